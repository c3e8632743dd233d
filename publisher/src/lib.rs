//! `allowlist-publisher` as a library: the commands are functions (`publish_once`,
//! `sweep_once`, `run`) that take the AWS clients, the stores and the clock as arguments, so tests
//! call them directly; `main` only parses flags and sets up logging.

pub mod announce;
pub mod app;
pub mod cdn;
pub mod cli;
pub mod pending;
pub mod prefix_lists;
pub mod publish;
pub mod report;
pub mod run;
pub mod store;
pub mod sweep;

pub use publish::{publish_ips, publish_once, PublishError, PublishOptions, PublishReport};
pub use sweep::{sweep_once, SweepOptions, SweepReport};
