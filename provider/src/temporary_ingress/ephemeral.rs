//! `ephemeral "allowlist_temporary_ingress"`: the grant for one Terraform run (Terraform >= 1.10).
//! Open makes the grant as the resource's create does (same checks, same core code, plus the
//! `allowlist:ephemeral` tag), renew moves its expiry a `ttl` past now, close releases its rules
//! (revoking those no other grant holds). Nothing is stored in state: what renew and close need
//! travels in the private bytes Terraform hands back ([`Handle`]).

use super::model::Model;
use super::{make_grant, plan, schema, Caches, Kind};
use crate::diagnostics::{aws_error, grant_error};
use crate::provider_data::ProviderDataCell;
use crate::tfplugin::{Diagnostic, Diagnostics, EphemeralResource, Opened, Schema, Tri, Value};
use allowlist_core::clock::{format_instant, parse_instant, Clock};
use allowlist_core::duration;
use allowlist_core::ingress::{self, Hold};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The `ttl` of an ephemeral grant that does not set one.
pub const DEFAULT_TTL: &str = "15m";

pub struct EphemeralIngress {
    provider: ProviderDataCell,
    clock: Arc<dyn Clock>,
    caches: Caches,
}

impl EphemeralIngress {
    pub fn new(provider: ProviderDataCell, clock: Arc<dyn Clock>) -> Self {
        EphemeralIngress {
            provider,
            clock,
            caches: Caches::default(),
        }
    }
}

/// What renew and close need to find the grant again, as the private bytes (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Handle {
    region: String,
    id: String,
    ttl: Duration,
    created_at: SystemTime,
    granted_by: String,
}

impl Handle {
    fn to_bytes(&self) -> Vec<u8> {
        serde_json::json!({
            "region": self.region,
            "id": self.id,
            "ttl": duration::format(self.ttl),
            "created_at": format_instant(self.created_at),
            "granted_by": self.granted_by,
        })
        .to_string()
        .into_bytes()
    }

    fn from_bytes(bytes: &[u8]) -> Result<Handle, Diagnostics> {
        let bad = || {
            Diagnostics::from(Diagnostic::error(
                "Invalid Ephemeral Resource Data",
                "The private data Terraform returned for this grant cannot be read; this is a bug in Terraform or the provider. The grant's rules expire by their tags and the sweep revokes them.",
            ))
        };
        let json: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| bad())?;
        let text = |key: &str| json.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        Ok(Handle {
            region: text("region").ok_or_else(bad)?,
            id: text("id").ok_or_else(bad)?,
            ttl: text("ttl")
                .and_then(|t| duration::parse_positive(&t).ok())
                .ok_or_else(bad)?,
            created_at: text("created_at")
                .and_then(|t| parse_instant(&t))
                .ok_or_else(bad)?,
            granted_by: text("granted_by").ok_or_else(bad)?,
        })
    }

    /// When Terraform should renew a grant that expires `ttl` after `now`: halfway, so a renewal
    /// that fails or comes late still lands well before the rules expire.
    fn renew_at(&self, now: SystemTime) -> SystemTime {
        now + self.ttl / 2
    }
}

#[async_trait]
impl EphemeralResource for EphemeralIngress {
    fn type_name(&self) -> &'static str {
        super::TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema(Kind::Ephemeral)
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        match Model::read(config) {
            Ok(config) => super::model::check(&config),
            Err(diags) => diags,
        }
    }

    async fn open(&self, config: &Value) -> Result<Opened, Diagnostics> {
        let provider = self.provider.get()?;
        let mut model = Model::read(config)?;
        let checks = super::model::check(&model);
        if checks.has_errors() {
            return Err(checks);
        }
        if model.ttl.is_null() {
            model.ttl = Tri::Known(DEFAULT_TTL.to_owned());
        }
        if let (Some(ttl), Tri::Known(written)) = (model.ttl(), &model.ttl) {
            plan::check_ttl_limit(written, ttl, provider.max_ttl)?;
        }
        let defaults = plan::create_defaults(&model, provider.aws.home_region())?;
        if let Some(region) = defaults.region {
            model.region = Tri::Known(region);
        }
        if let Some(protocol) = defaults.protocol {
            model.protocol = Tri::Known(protocol.to_owned());
        }
        if let Some(allow_world) = defaults.allow_world {
            model.allow_world = Tri::Known(allow_world);
        }
        let grant = make_grant(
            provider,
            &self.caches,
            self.clock.as_ref(),
            &mut model,
            true,
        )
        .await?;
        let handle = Handle {
            region: grant.region.clone(),
            id: grant.id.clone(),
            ttl: grant
                .expires_at
                .duration_since(grant.created_at)
                .unwrap_or_default(),
            created_at: grant.created_at,
            granted_by: grant.granted_by.clone(),
        };
        Ok(Opened {
            result: model.to_value(),
            private: handle.to_bytes(),
            renew_at: Some(handle.renew_at(grant.created_at)),
        })
    }

    async fn renew(&self, private: &[u8]) -> Result<Opened, Diagnostics> {
        let provider = self.provider.get()?;
        let handle = Handle::from_bytes(private)?;
        let now = self.clock.now();
        let rules = ingress::grant_rules(
            &provider.aws,
            &handle.region,
            std::slice::from_ref(&handle.id),
        )
        .await
        .map_err(|e| Diagnostics::from(aws_error("Unable to Renew Ingress Grant", &e)))?;
        if rules.is_empty() {
            return Err(Diagnostic::error(
                "Ingress Grant Gone",
                format!(
                    "Every rule of the ephemeral grant {} in {} is gone (revoked by hand, or swept after it expired); access has ended. Run Terraform again.",
                    handle.id, handle.region
                ),
            )
            .into());
        }
        let hold = Hold {
            created_at: Some(handle.created_at),
            expires_at: now + handle.ttl,
            granted_by: Some(handle.granted_by.clone()),
            ephemeral: true,
        };
        ingress::set_expiry(
            &provider.aws,
            &handle.region,
            &handle.id,
            &rules,
            &hold,
            now,
        )
        .await
        .map_err(|e| Diagnostics::from(grant_error("Unable to Renew Ingress Grant", &e, None)))?;
        tracing::info!(grant = %handle.id, expires_at = %format_instant(hold.expires_at), "ephemeral grant renewed");
        Ok(Opened {
            result: Value::Null,
            private: handle.to_bytes(),
            renew_at: Some(handle.renew_at(now)),
        })
    }

    async fn close(&self, private: &[u8]) -> Diagnostics {
        let result = async {
            let provider = self.provider.get()?;
            let handle = Handle::from_bytes(private)?;
            let rules = ingress::grant_rules(
                &provider.aws,
                &handle.region,
                std::slice::from_ref(&handle.id),
            )
            .await
            .map_err(|e| Diagnostics::from(aws_error("Unable to Close Ingress Grant", &e)))?;
            ingress::release(
                &provider.aws,
                &handle.region,
                &handle.id,
                &rules,
                self.clock.now(),
            )
            .await
            .map_err(|e| {
                Diagnostics::from(grant_error("Unable to Close Ingress Grant", &e, None))
            })?;
            tracing::info!(grant = %handle.id, rules = rules.len(), "ephemeral grant closed");
            Ok::<(), Diagnostics>(())
        }
        .await;
        result.err().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_round_trips_and_refuses_garbage() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_726_400);
        let handle = Handle {
            region: "us-west-2".into(),
            id: "grant-0123456789abcdef".into(),
            ttl: Duration::from_secs(900),
            created_at: t,
            granted_by: "arn:aws:iam::123456789012:user/ci".into(),
        };
        assert_eq!(
            Handle::from_bytes(&handle.to_bytes()).ok(),
            Some(handle.clone())
        );
        assert!(Handle::from_bytes(b"").is_err());
        assert!(Handle::from_bytes(br#"{"region":"us-west-2"}"#).is_err());
        // Renewal halfway: a 15 minute grant is renewed 7.5 minutes in.
        assert_eq!(handle.renew_at(t), t + Duration::from_secs(450));
    }

    #[test]
    fn ttl_defaults_to_fifteen_minutes() {
        let schema = schema(Kind::Ephemeral);
        let ttl = schema
            .block
            .find(crate::temporary_ingress::attr::TTL)
            .map(|a| a.mode);
        // Optional and computed: the result carries the default when the configuration has none.
        assert_eq!(ttl, Some(crate::tfplugin::Mode::OptionalComputed));
        assert_eq!(
            duration::parse_positive(DEFAULT_TTL).ok(),
            Some(Duration::from_secs(900))
        );
    }
}
