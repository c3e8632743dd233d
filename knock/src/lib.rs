//! `allowlist-knock`: temporary ingress for callers without AWS credentials. One handler
//! ([`api::Service`]) answers the HTTP API whether it runs as `serve` ([`serve`]) or on AWS Lambda
//! behind a function URL ([`lambda`]); it authenticates the caller ([`oidc`], [`keys`]) before
//! anything else, checks the door's policy ([`doors`], [`claims`]) and rate limits ([`limits`]),
//! and opens, extends or closes the grant through core's grant code ([`gate`]).

pub mod api;
pub mod app;
pub mod claims;
pub mod cli;
pub mod client;
pub mod doors;
pub mod gate;
pub mod keys;
pub mod lambda;
pub mod limits;
pub mod oidc;
pub mod serve;
pub mod source;
