//! The gRPC services Terraform calls: `tfplugin6.Provider` translated onto [`Provider`],
//! [`DataSource`] and [`Resource`], plus go-plugin's `GRPCController` and `GRPCStdio`.
//!
//! Each method only decodes, calls, and encodes; the generic rules (plan, conformance of results
//! to the schema, "stopped" handling) live here once so no resource repeats them.

use super::diagnostics::{Diagnostic, Diagnostics};
use super::plan;
use super::proto::plugin as plugin_pb;
use super::proto::tfplugin6 as pb;
use super::schema::{Block, Schema};
use super::value::Value;
use super::{DataSource, EphemeralResource, Opened, PlanChange, Provider, ReadOutcome, Resource};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{watch, Notify};
use tonic::{Request, Response, Status};

/// The `tfplugin6.Provider` service.
pub struct ProviderService<P> {
    provider: Arc<P>,
    provider_schema: Schema,
    data_sources: HashMap<&'static str, (Arc<dyn DataSource>, Schema)>,
    resources: HashMap<&'static str, (Arc<dyn Resource>, Schema)>,
    ephemeral: HashMap<&'static str, (Arc<dyn EphemeralResource>, Schema)>,
    schema_response: pb::get_provider_schema::Response,
    stopped: watch::Sender<bool>,
}

impl<P: Provider> ProviderService<P> {
    pub fn new(provider: P) -> Self {
        let provider_schema = provider.schema();
        let data_sources: HashMap<_, _> = provider
            .data_sources()
            .into_iter()
            .map(|d| (d.type_name(), (d.clone(), d.schema())))
            .collect();
        let resources: HashMap<_, _> = provider
            .resources()
            .into_iter()
            .map(|r| (r.type_name(), (r.clone(), r.schema())))
            .collect();
        let ephemeral: HashMap<_, _> = provider
            .ephemeral_resources()
            .into_iter()
            .map(|e| (e.type_name(), (e.clone(), e.schema())))
            .collect();

        // Schemas are checked once; a broken one is reported instead of confusing Terraform.
        let mut diagnostics = Diagnostics::new();
        let checks = std::iter::once(("provider", &provider_schema))
            .chain(data_sources.iter().map(|(n, (_, s))| (*n, s)))
            .chain(resources.iter().map(|(n, (_, s))| (*n, s)))
            .chain(ephemeral.iter().map(|(n, (_, s))| (*n, s)));
        for (name, schema) in checks {
            if let Err(err) = schema.block.check(name) {
                diagnostics.push(Diagnostic::error(
                    "Invalid Provider Schema",
                    err.to_string(),
                ));
            }
        }
        let schema_response = pb::get_provider_schema::Response {
            provider: Some(provider_schema.to_proto()),
            resource_schemas: resources
                .iter()
                .map(|(n, (_, s))| ((*n).to_owned(), s.to_proto()))
                .collect(),
            data_source_schemas: data_sources
                .iter()
                .map(|(n, (_, s))| ((*n).to_owned(), s.to_proto()))
                .collect(),
            ephemeral_resource_schemas: ephemeral
                .iter()
                .map(|(n, (_, s))| ((*n).to_owned(), s.to_proto()))
                .collect(),
            diagnostics: diagnostics.to_proto(),
            provider_meta: Some(
                Schema::new(super::Block::new("No provider_meta is used.")).to_proto(),
            ),
            server_capabilities: Some(pb::ServerCapabilities {
                plan_destroy: false,
                // Every RPC works without GetProviderSchema having run in this process.
                get_provider_schema_optional: true,
            }),
        };
        ProviderService {
            provider: Arc::new(provider),
            provider_schema,
            data_sources,
            resources,
            ephemeral,
            schema_response,
            stopped: watch::channel(false).0,
        }
    }

    /// Runs `work` unless or until Terraform asks the provider to stop.
    async fn unless_stopped<T>(&self, work: impl Future<Output = T>) -> Result<T, Diagnostics> {
        let mut stopped = self.stopped.subscribe();
        if *stopped.borrow() {
            return Err(stopped_diagnostic().into());
        }
        tokio::select! {
            out = work => Ok(out),
            _ = stopped.wait_for(|s| *s) => Err(stopped_diagnostic().into()),
        }
    }

    fn data_source(&self, type_name: &str) -> Result<&(Arc<dyn DataSource>, Schema), Diagnostics> {
        self.data_sources
            .get(type_name)
            .ok_or_else(|| unknown_type("Data Source", type_name).into())
    }

    fn resource(&self, type_name: &str) -> Result<&(Arc<dyn Resource>, Schema), Diagnostics> {
        self.resources
            .get(type_name)
            .ok_or_else(|| unknown_type("Resource", type_name).into())
    }
}

impl<P> ProviderService<P> {
    fn ephemeral_resource(
        &self,
        type_name: &str,
    ) -> Result<&(Arc<dyn EphemeralResource>, Schema), Diagnostics> {
        self.ephemeral
            .get(type_name)
            .ok_or_else(|| unknown_type("Ephemeral Resource", type_name).into())
    }
}

fn timestamp(t: SystemTime) -> pb::Timestamp {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    pb::Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

fn type_names<T: ?Sized>(
    types: &HashMap<&'static str, (Arc<T>, Schema)>,
) -> Vec<pb::get_metadata::TypeMetadata> {
    let mut names: Vec<&str> = types.keys().copied().collect();
    names.sort_unstable();
    names
        .into_iter()
        .map(|n| pb::get_metadata::TypeMetadata {
            type_name: n.to_owned(),
        })
        .collect()
}

fn stopped_diagnostic() -> Diagnostic {
    Diagnostic::error(
        "Provider Stopped",
        "Terraform asked the provider to stop (interrupt); the operation was not completed.",
    )
}

fn unknown_type(kind: &str, type_name: &str) -> Diagnostic {
    Diagnostic::error(
        format!("Unknown {kind} Type"),
        format!(
            "This provider has no {} named {type_name:?}. Check the type name and the provider version.",
            kind.to_lowercase()
        ),
    )
}

/// Decodes a `DynamicValue` (msgpack, else JSON, else null) into a diagnostic on failure.
fn decode(value: Option<&pb::DynamicValue>, what: &str) -> Result<Value, Diagnostics> {
    let result = match value {
        Some(v) if !v.msgpack.is_empty() => Value::from_msgpack(&v.msgpack),
        Some(v) if !v.json.is_empty() => Value::from_json(&v.json),
        _ => Ok(Value::Null),
    };
    result.map_err(|err| {
        Diagnostic::error(
            "Invalid Request",
            format!("The provider could not decode the {what} sent by Terraform: {err}."),
        )
        .into()
    })
}

/// Decodes a `DynamicValue` that must be an object of `block` (or null, where `null_ok`): what
/// Terraform always sends, so anything else is a malformed request, refused before any work.
fn decode_object(
    value: Option<&pb::DynamicValue>,
    what: &str,
    block: &Block,
    null_ok: bool,
) -> Result<Value, Diagnostics> {
    let value = decode(value, what)?;
    if null_ok && value.is_null() {
        return Ok(value);
    }
    block.check_value(&value).map_err(|err| {
        Diagnostic::error(
            "Invalid Request",
            format!("The {what} sent by Terraform does not match the schema: {err}. This is a bug in Terraform or in the request."),
        )
        .at(err.path)
    })?;
    Ok(value)
}

fn encode(value: &Value) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue {
        msgpack: value.to_msgpack(),
        json: Vec::new(),
    })
}

/// Both the prior and the new state are null: a change of nothing, which Terraform never asks for.
fn nothing_to_do(verb: &str) -> Diagnostics {
    Diagnostic::error(
        "Invalid Request",
        format!("Terraform asked to {verb} a change from null to null (both states are empty). This is a bug in Terraform or in the request."),
    )
    .into()
}

/// Makes a result carry exactly the schema's attributes and no unknowns.
fn finish(schema: &Schema, mut value: Value, allow_unknown: bool) -> Result<Value, Diagnostics> {
    let bug = |detail: String| -> Diagnostics {
        Diagnostic::error(
            "Provider Produced an Invalid Object",
            format!("{detail}. This is a bug in the provider; please report it."),
        )
        .into()
    };
    schema
        .block
        .conform(&mut value)
        .map_err(|e| bug(e.to_string()))?;
    if !allow_unknown && !value.is_wholly_known() {
        return Err(bug("the result contains unknown values".into()));
    }
    Ok(value)
}

/// Splits an outcome into the value (or a fallback) and all diagnostics.
fn split<T>(result: Result<(T, Diagnostics), Diagnostics>, fallback: T) -> (T, Diagnostics) {
    result.unwrap_or_else(|diags| (fallback, diags))
}

#[tonic::async_trait]
impl<P: Provider> pb::provider_server::Provider for ProviderService<P> {
    async fn get_metadata(
        &self,
        _request: Request<pb::get_metadata::Request>,
    ) -> Result<Response<pb::get_metadata::Response>, Status> {
        tracing::debug!(rpc = "GetMetadata", "rpc");
        Ok(Response::new(pb::get_metadata::Response {
            server_capabilities: self.schema_response.server_capabilities,
            diagnostics: self.schema_response.diagnostics.clone(),
            data_sources: type_names(&self.data_sources),
            resources: type_names(&self.resources),
            ephemeral_resources: type_names(&self.ephemeral),
        }))
    }

    async fn get_provider_schema(
        &self,
        _request: Request<pb::get_provider_schema::Request>,
    ) -> Result<Response<pb::get_provider_schema::Response>, Status> {
        tracing::debug!("GetProviderSchema");
        Ok(Response::new(self.schema_response.clone()))
    }

    async fn validate_provider_config(
        &self,
        request: Request<pb::validate_provider_config::Request>,
    ) -> Result<Response<pb::validate_provider_config::Response>, Status> {
        let req = request.into_inner();
        let config = decode_object(
            req.config.as_ref(),
            "provider configuration",
            &self.provider_schema.block,
            false,
        );
        let diagnostics = match config {
            Ok(config) => self.provider.validate(&config),
            Err(diags) => diags,
        };
        Ok(Response::new(pb::validate_provider_config::Response {
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn validate_resource_config(
        &self,
        request: Request<pb::validate_resource_config::Request>,
    ) -> Result<Response<pb::validate_resource_config::Response>, Status> {
        let req = request.into_inner();
        tracing::debug!(rpc = "ValidateResourceConfig", type_name = %req.type_name, "rpc");
        let diagnostics = self
            .resource(&req.type_name)
            .and_then(|(r, schema)| {
                let config =
                    decode_object(req.config.as_ref(), "configuration", &schema.block, false)?;
                Ok(r.validate(&config))
            })
            .unwrap_or_else(|d| d);
        Ok(Response::new(pb::validate_resource_config::Response {
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<pb::validate_data_resource_config::Request>,
    ) -> Result<Response<pb::validate_data_resource_config::Response>, Status> {
        let req = request.into_inner();
        tracing::debug!(rpc = "ValidateDataResourceConfig", type_name = %req.type_name, "rpc");
        let diagnostics = self
            .data_source(&req.type_name)
            .and_then(|(d, schema)| {
                let config =
                    decode_object(req.config.as_ref(), "configuration", &schema.block, false)?;
                Ok(d.validate(&config))
            })
            .unwrap_or_else(|d| d);
        Ok(Response::new(pb::validate_data_resource_config::Response {
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<pb::upgrade_resource_state::Request>,
    ) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
        let req = request.into_inner();
        tracing::debug!(rpc = "UpgradeResourceState", type_name = %req.type_name, "rpc");
        let result = (|| {
            let (_, schema) = self.resource(&req.type_name)?;
            if req.version > schema.version {
                return Err(Diagnostic::error(
                    "Unsupported State Version",
                    format!(
                        "The state was written by a newer provider (schema version {}, this one knows {}). Upgrade the provider.",
                        req.version, schema.version
                    ),
                )
                .into());
            }
            let raw = req.raw_state.unwrap_or_default();
            if raw.json.is_empty() {
                return Err(Diagnostic::error(
                    "Unsupported State Format",
                    "The state has no JSON form (flatmap states come from Terraform before 0.12).",
                )
                .into());
            }
            let invalid = |detail: String| -> Diagnostics {
                Diagnostic::error("Invalid Stored State", detail).into()
            };
            let mut state = Value::from_json(&raw.json)
                .map_err(|e| invalid(format!("The stored state is not valid JSON: {e}.")))?;
            // Attributes removed since the state was written are dropped; added ones become null.
            // (What conform cannot fix, such as a state that is not an object, the check reports.)
            schema.block.prune(&mut state);
            let _ = schema.block.conform(&mut state);
            schema.block.check_value(&state).map_err(|e| {
                invalid(format!("The stored state does not match the schema: {e}."))
            })?;
            finish(schema, state, false)
        })();
        let (state, diagnostics) = match result {
            Ok(state) => (encode(&state), Diagnostics::new()),
            Err(diags) => (None, diags),
        };
        Ok(Response::new(pb::upgrade_resource_state::Response {
            upgraded_state: state,
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn configure_provider(
        &self,
        request: Request<pb::configure_provider::Request>,
    ) -> Result<Response<pb::configure_provider::Response>, Status> {
        let req = request.into_inner();
        tracing::debug!(terraform_version = %req.terraform_version, "ConfigureProvider");
        let config = decode_object(
            req.config.as_ref(),
            "provider configuration",
            &self.provider_schema.block,
            false,
        );
        let diagnostics = match config {
            Ok(mut config) => match self.provider_schema.block.conform(&mut config) {
                Ok(()) => self
                    .unless_stopped(self.provider.configure(&req.terraform_version, &config))
                    .await
                    .unwrap_or_else(|d| d),
                Err(err) => {
                    Diagnostic::error("Invalid Request", format!("Provider configuration: {err}."))
                        .into()
                }
            },
            Err(diags) => diags,
        };
        Ok(Response::new(pb::configure_provider::Response {
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn read_resource(
        &self,
        request: Request<pb::read_resource::Request>,
    ) -> Result<Response<pb::read_resource::Response>, Status> {
        let req = request.into_inner();
        tracing::debug!(rpc = "ReadResource", type_name = %req.type_name, "rpc");
        let current = req.current_state.clone();
        let result = async {
            let (resource, schema) = self.resource(&req.type_name)?;
            let state = decode_object(
                req.current_state.as_ref(),
                "current state",
                &schema.block,
                false,
            )?;
            let (outcome, diags) = self.unless_stopped(resource.read(&state)).await??;
            let new_state = match outcome {
                ReadOutcome::Found(v) => finish(schema, v, false)?,
                ReadOutcome::Gone => Value::Null,
            };
            Ok((encode(&new_state), diags))
        }
        .await;
        // On failure the state is returned unchanged, so nothing is lost.
        let (new_state, diagnostics) = split(result, current);
        Ok(Response::new(pb::read_resource::Response {
            new_state,
            diagnostics: diagnostics.to_proto(),
            private: req.private,
        }))
    }

    async fn plan_resource_change(
        &self,
        request: Request<pb::plan_resource_change::Request>,
    ) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        let req = request.into_inner();
        tracing::debug!(rpc = "PlanResourceChange", type_name = %req.type_name, "rpc");
        let result = async {
            let (resource, schema) = self.resource(&req.type_name)?;
            let block = &schema.block;
            let prior = decode_object(req.prior_state.as_ref(), "prior state", block, true)?;
            let proposed = decode_object(
                req.proposed_new_state.as_ref(),
                "proposed new state",
                block,
                true,
            )?;
            // A destroy plan has no configuration; anything else has one.
            let config = decode_object(
                req.config.as_ref(),
                "configuration",
                block,
                proposed.is_null(),
            )?;
            if prior.is_null() && proposed.is_null() {
                return Err(nothing_to_do("plan"));
            }
            if proposed.is_null() {
                // Destroy: the plan stays null.
                return Ok((Value::Null, Vec::new(), Diagnostics::new()));
            }
            let mut change = PlanChange {
                prior: &prior,
                config: &config,
                planned: plan::plan_change(&schema.block, &prior, &proposed, &config),
                requires_replace: Vec::new(),
                diagnostics: Diagnostics::new(),
            };
            self.unless_stopped(resource.modify_plan(&mut change))
                .await?;
            let replace = plan::replace_paths(
                &schema.block,
                &prior,
                &change.planned,
                change.requires_replace,
            );
            let planned = finish(schema, change.planned, true)?;
            Ok((planned, replace, change.diagnostics))
        }
        .await;
        let (planned, replace, diagnostics) = match result {
            Ok(parts) => parts,
            Err(diags) => (Value::Null, Vec::new(), diags),
        };
        Ok(Response::new(pb::plan_resource_change::Response {
            planned_state: encode(&planned),
            requires_replace: replace.iter().map(|p| p.to_proto()).collect(),
            planned_private: req.prior_private,
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn apply_resource_change(
        &self,
        request: Request<pb::apply_resource_change::Request>,
    ) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        let req = request.into_inner();
        tracing::debug!(rpc = "ApplyResourceChange", type_name = %req.type_name, "rpc");
        // Applies are not cut short by StopProvider: a half-finished change is worse than a late
        // one, and every AWS call is bounded by timeouts.
        let result = async {
            let (resource, schema) = self.resource(&req.type_name)?;
            let prior =
                decode_object(req.prior_state.as_ref(), "prior state", &schema.block, true)?;
            let planned = decode_object(
                req.planned_state.as_ref(),
                "planned state",
                &schema.block,
                true,
            )?;
            if prior.is_null() && planned.is_null() {
                return Err(nothing_to_do("apply"));
            }
            let (state, mut diags) = if planned.is_null() {
                let diags = resource.delete(&prior).await;
                // A failed delete leaves the object in place.
                let state = if diags.has_errors() {
                    prior
                } else {
                    Value::Null
                };
                (state, diags)
            } else if prior.is_null() {
                resource.create(&planned).await
            } else {
                resource.update(&prior, &planned).await
            };
            match finish(schema, state, false) {
                Ok(state) => Ok((encode(&state), diags)),
                Err(bug) => {
                    diags.extend(bug);
                    Err(diags)
                }
            }
        }
        .await;
        let (new_state, diagnostics) = split(result, None);
        Ok(Response::new(pb::apply_resource_change::Response {
            new_state,
            private: Vec::new(),
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn import_resource_state(
        &self,
        request: Request<pb::import_resource_state::Request>,
    ) -> Result<Response<pb::import_resource_state::Response>, Status> {
        let req = request.into_inner();
        tracing::debug!(rpc = "ImportResourceState", type_name = %req.type_name, "rpc");
        let result = async {
            let (resource, schema) = self.resource(&req.type_name)?;
            let state = self.unless_stopped(resource.import(&req.id)).await??;
            finish(schema, state, false)
        }
        .await;
        let (imported, diagnostics) = match result {
            Ok(state) => (
                vec![pb::import_resource_state::ImportedResource {
                    type_name: req.type_name,
                    state: encode(&state),
                    private: Vec::new(),
                }],
                Diagnostics::new(),
            ),
            Err(diags) => (Vec::new(), diags),
        };
        Ok(Response::new(pb::import_resource_state::Response {
            imported_resources: imported,
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn read_data_source(
        &self,
        request: Request<pb::read_data_source::Request>,
    ) -> Result<Response<pb::read_data_source::Response>, Status> {
        let req = request.into_inner();
        tracing::debug!(rpc = "ReadDataSource", type_name = %req.type_name, "rpc");
        tracing::debug!(type_name = %req.type_name, "ReadDataSource");
        let result = async {
            let (data_source, schema) = self.data_source(&req.type_name)?;
            let config = decode_object(req.config.as_ref(), "configuration", &schema.block, false)?;
            let state = self.unless_stopped(data_source.read(&config)).await??;
            finish(schema, state, false)
        }
        .await;
        let (state, diagnostics) = match result {
            Ok(state) => (encode(&state), Diagnostics::new()),
            Err(diags) => (None, diags),
        };
        Ok(Response::new(pb::read_data_source::Response {
            state,
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn validate_ephemeral_resource_config(
        &self,
        request: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> Result<Response<pb::validate_ephemeral_resource_config::Response>, Status> {
        let req = request.into_inner();
        tracing::debug!(rpc = "ValidateEphemeralResourceConfig", type_name = %req.type_name, "rpc");
        let diagnostics = self
            .ephemeral_resource(&req.type_name)
            .and_then(|(e, schema)| {
                let config =
                    decode_object(req.config.as_ref(), "configuration", &schema.block, false)?;
                Ok(e.validate(&config))
            })
            .unwrap_or_else(|d| d);
        Ok(Response::new(
            pb::validate_ephemeral_resource_config::Response {
                diagnostics: diagnostics.to_proto(),
            },
        ))
    }

    async fn open_ephemeral_resource(
        &self,
        request: Request<pb::open_ephemeral_resource::Request>,
    ) -> Result<Response<pb::open_ephemeral_resource::Response>, Status> {
        let req = request.into_inner();
        tracing::debug!(rpc = "OpenEphemeralResource", type_name = %req.type_name, "rpc");
        let result = async {
            let (resource, schema) = self.ephemeral_resource(&req.type_name)?;
            let config = decode_object(req.config.as_ref(), "configuration", &schema.block, false)?;
            let opened = self.unless_stopped(resource.open(&config)).await??;
            let result = finish(schema, opened.result.clone(), false)?;
            Ok::<_, Diagnostics>(Opened { result, ..opened })
        }
        .await;
        Ok(Response::new(match result {
            Ok(opened) => pb::open_ephemeral_resource::Response {
                diagnostics: Vec::new(),
                renew_at: opened.renew_at.map(timestamp),
                result: encode(&opened.result),
                private: Some(opened.private),
            },
            Err(diags) => pb::open_ephemeral_resource::Response {
                diagnostics: diags.to_proto(),
                ..Default::default()
            },
        }))
    }

    async fn renew_ephemeral_resource(
        &self,
        request: Request<pb::renew_ephemeral_resource::Request>,
    ) -> Result<Response<pb::renew_ephemeral_resource::Response>, Status> {
        let req = request.into_inner();
        tracing::debug!(rpc = "RenewEphemeralResource", type_name = %req.type_name, "rpc");
        let private = req.private.unwrap_or_default();
        let result = async {
            let (resource, _) = self.ephemeral_resource(&req.type_name)?;
            self.unless_stopped(resource.renew(&private)).await?
        }
        .await;
        Ok(Response::new(match result {
            Ok(renewed) => pb::renew_ephemeral_resource::Response {
                diagnostics: Vec::new(),
                renew_at: renewed.renew_at.map(timestamp),
                private: Some(renewed.private),
            },
            Err(diags) => pb::renew_ephemeral_resource::Response {
                diagnostics: diags.to_proto(),
                renew_at: None,
                // Unchanged: a later renew or close still knows what to act on.
                private: Some(private),
            },
        }))
    }

    async fn close_ephemeral_resource(
        &self,
        request: Request<pb::close_ephemeral_resource::Request>,
    ) -> Result<Response<pb::close_ephemeral_resource::Response>, Status> {
        let req = request.into_inner();
        tracing::debug!(rpc = "CloseEphemeralResource", type_name = %req.type_name, "rpc");
        let private = req.private.unwrap_or_default();
        // Not subject to StopProvider: an interrupted run must still close what it opened.
        let diagnostics = match self.ephemeral_resource(&req.type_name) {
            Ok((resource, _)) => resource.close(&private).await,
            Err(diags) => diags,
        };
        Ok(Response::new(pb::close_ephemeral_resource::Response {
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn stop_provider(
        &self,
        _request: Request<pb::stop_provider::Request>,
    ) -> Result<Response<pb::stop_provider::Response>, Status> {
        tracing::info!("StopProvider: cancelling work in progress");
        self.stopped.send_replace(true);
        Ok(Response::new(pb::stop_provider::Response {
            error: String::new(),
        }))
    }
}

/// `plugin.GRPCController`: Terraform's request to end the process.
pub struct Controller {
    pub shutdown: Arc<Notify>,
}

#[tonic::async_trait]
impl plugin_pb::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(
        &self,
        _request: Request<plugin_pb::Empty>,
    ) -> Result<Response<plugin_pb::Empty>, Status> {
        tracing::debug!("Shutdown requested by Terraform");
        self.shutdown.notify_one();
        Ok(Response::new(plugin_pb::Empty {}))
    }
}

/// `plugin.GRPCStdio`: Terraform opens it once; we never write to stdout or stderr through it.
pub struct Stdio;

#[tonic::async_trait]
impl plugin_pb::grpc_stdio_server::GrpcStdio for Stdio {
    async fn stream_stdio(
        &self,
        _request: Request<plugin_pb::Empty>,
    ) -> Result<Response<tonic::codegen::BoxStream<plugin_pb::StdioData>>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
}
