//! The Terraform plugin protocol (version 6), ignorant of AWS and of our resources.
//!
//! A provider implements [`Provider`], [`DataSource`], [`Resource`] and [`EphemeralResource`] in
//! terms of [`Value`]s,
//! [`Schema`]s and [`Diagnostics`]; this module does everything else: the go-plugin handshake
//! with AutoMTLS ([`handshake`]), the gRPC services ([`server`]), msgpack/JSON values ([`value`]),
//! the plan rules ([`plan`]) and logs in the format Terraform reads ([`log`]).

pub mod diagnostics;
pub mod handshake;
pub mod log;
pub mod plan;
pub mod schema;
pub mod server;
pub mod value;

/// Code generated from `proto/` by `build.rs`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
#[rustfmt::skip]
pub mod proto {
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
}

pub use diagnostics::{AttributePath, Diagnostic, Diagnostics};
pub use schema::{Attribute, Block, Mode, Nesting, Schema, Type};
pub use value::{ToValue, Tri, Value};

use async_trait::async_trait;
use std::sync::Arc;
use std::time::SystemTime;

/// The provider as a whole: its configuration schema, configuration, and what it offers.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The schema of the `provider` block.
    fn schema(&self) -> Schema;

    /// Checks the known values of a provider configuration.
    fn validate(&self, config: &Value) -> Diagnostics;

    /// Configures the provider; called once per process before resources and data sources run.
    async fn configure(&self, terraform_version: &str, config: &Value) -> Diagnostics;

    fn data_sources(&self) -> Vec<Arc<dyn DataSource>>;

    fn resources(&self) -> Vec<Arc<dyn Resource>>;

    /// Ephemeral resources (protocol 6.7, Terraform >= 1.10; older Terraform never asks).
    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource>> {
        Vec::new()
    }
}

/// A data source: read-only, its result must be wholly known.
#[async_trait]
pub trait DataSource: Send + Sync {
    fn type_name(&self) -> &'static str;

    fn schema(&self) -> Schema;

    /// Checks the known values of a configuration (it may contain unknowns).
    fn validate(&self, config: &Value) -> Diagnostics;

    /// Reads the data: the configuration plus every computed attribute, or error diagnostics.
    async fn read(&self, config: &Value) -> Result<Value, Diagnostics>;
}

/// What a plan looks like while a resource adjusts it (after the generic rules of [`plan`]).
#[derive(Debug)]
pub struct PlanChange<'a> {
    /// The current state; null on create.
    pub prior: &'a Value,
    pub config: &'a Value,
    /// The plan so far; the resource may set known values or mark more attributes unknown.
    pub planned: Value,
    /// Extra attributes whose change requires replacement (force-new ones are added anyway).
    pub requires_replace: Vec<AttributePath>,
    pub diagnostics: Diagnostics,
}

/// The outcome of refreshing a resource.
#[derive(Debug)]
pub enum ReadOutcome {
    /// It exists; here is its current state.
    Found(Value),
    /// It no longer exists; Terraform will plan to create it.
    Gone,
}

/// A managed resource.
#[async_trait]
pub trait Resource: Send + Sync {
    fn type_name(&self) -> &'static str;

    fn schema(&self) -> Schema;

    /// Checks the known values of a configuration (it may contain unknowns).
    fn validate(&self, config: &Value) -> Diagnostics;

    /// Adjusts a create or update plan. Not called for destroys.
    async fn modify_plan(&self, plan: &mut PlanChange<'_>);

    /// Creates the resource. On error, returns what was left behind (null for nothing).
    async fn create(&self, planned: &Value) -> (Value, Diagnostics);

    async fn read(&self, state: &Value) -> Result<(ReadOutcome, Diagnostics), Diagnostics>;

    /// Updates in place. On error, returns the state as it now is.
    async fn update(&self, prior: &Value, planned: &Value) -> (Value, Diagnostics);

    async fn delete(&self, prior: &Value) -> Diagnostics;

    /// Finds an existing resource by its import id.
    async fn import(&self, id: &str) -> Result<Value, Diagnostics>;
}

/// What opening (or renewing) an ephemeral resource gives Terraform.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    /// The result object (open only; renew returns none).
    pub result: Value,
    /// Opaque bytes Terraform hands back to renew and close.
    pub private: Vec<u8>,
    /// When Terraform should call renew, if ever.
    pub renew_at: Option<SystemTime>,
}

/// An ephemeral resource: opened when Terraform needs it during one run, renewed while the run
/// lasts, closed at its end; never stored in state.
#[async_trait]
pub trait EphemeralResource: Send + Sync {
    fn type_name(&self) -> &'static str;

    fn schema(&self) -> Schema;

    /// Checks the known values of a configuration (it may contain unknowns).
    fn validate(&self, config: &Value) -> Diagnostics;

    /// Opens it from a wholly known configuration: the result (configuration plus every
    /// computed attribute), the private bytes for renew and close, and when to renew.
    async fn open(&self, config: &Value) -> Result<Opened, Diagnostics>;

    /// Renews it: new private bytes and the next renewal time (`result` is ignored).
    async fn renew(&self, private: &[u8]) -> Result<Opened, Diagnostics>;

    /// Closes it. Called even after Terraform asked the provider to stop.
    async fn close(&self, private: &[u8]) -> Diagnostics;
}
