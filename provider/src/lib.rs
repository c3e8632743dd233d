//! The allowlist Terraform provider as a library: the protocol layer ([`tfplugin`], which knows
//! nothing of AWS or of our resources), the provider configuration ([`provider`]) and what it
//! hands every type ([`provider_data`]), one module per data source and resource, the checks they
//! share ([`validators`]), and the mapping of domain errors to diagnostics ([`diagnostics`]).
//! The binary `terraform-provider-allowlist` is a thin `main` over [`tfplugin::handshake::serve`].

pub mod diagnostics;
pub mod egress_ips;
pub mod grants;
pub mod provider;
pub mod provider_data;
pub mod temporary_ingress;
pub mod tfplugin;
pub mod validators;
