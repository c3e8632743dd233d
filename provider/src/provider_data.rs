//! What ConfigureProvider builds and every data source and resource receives: the AWS clients and
//! the provider-wide settings. Types hold a [`ProviderDataCell`] and never import the provider.

use crate::tfplugin::{Diagnostic, Diagnostics};
use allowlist_core::Aws;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The configured provider, as the data sources and resources see it.
#[derive(Debug)]
pub struct ProviderData {
    /// AWS clients, built once per region and reused.
    pub aws: Aws,
    /// Default regions for `allowlist_egress_ips` (may be `["all"]`); empty means the home region.
    pub egress_regions: Vec<String>,
    /// The longest `ttl` a temporary ingress grant may have.
    pub max_ttl: Duration,
    /// Where the caller's public IP is detected.
    pub ip_lookup_url: String,
}

/// Where the provider puts its [`ProviderData`] once configured; every type holds a clone.
#[derive(Debug, Clone, Default)]
pub struct ProviderDataCell(Arc<OnceLock<ProviderData>>);

impl ProviderDataCell {
    /// Stores the configuration. Terraform configures each provider process once; a repeat keeps
    /// the first.
    pub fn set(&self, data: ProviderData) {
        let _ = self.0.set(data);
    }

    /// The configured provider, or a diagnostic when Terraform has not configured it.
    pub fn get(&self) -> Result<&ProviderData, Diagnostics> {
        self.0.get().ok_or_else(|| {
            Diagnostic::error(
                "Provider Not Configured",
                "Terraform called the provider before configuring it. This is a bug; please report it.",
            )
            .into()
        })
    }
}
