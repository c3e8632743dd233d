//! The allowlist Terraform provider as a library: the protocol layer ([`tfplugin`], which knows
//! nothing of AWS or of our resources), the provider configuration ([`provider`]), one module per
//! data source and resource, and the mapping of domain errors to diagnostics ([`diagnostics`]).
//! The binary `terraform-provider-allowlist` is a thin `main` over [`tfplugin::handshake::serve`].

pub mod data_source_egress_ips;
pub mod diagnostics;
pub mod provider;
pub mod resource_temporary_ingress;
pub mod rule_snapshot;
pub mod tfplugin;
