//! `allowlist_egress_ips`: the public IPs of available, tagged NAT gateways across many regions,
//! looked up concurrently, as a sorted, de-duplicated list of `/32` CIDRs.
//!
//! Its `id` is a digest of the query (regions, tags, filters); `sync_token` is a digest of the
//! result and changes exactly when the set of addresses changes.

use crate::diagnostics::lookup_error;
use crate::provider::{check_regions, configured, Shared};
use crate::tfplugin::{
    Attribute, AttributePath, Block, DataSource, Diagnostic, Diagnostics, Mode, Nesting, Schema,
    Tri, Type, Value,
};
use allowlist_core::egress::{self, EgressQuery, Filter, FilterProblem};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub struct EgressIpsDataSource {
    shared: Shared,
}

impl EgressIpsDataSource {
    pub fn new(shared: Shared) -> Self {
        EgressIpsDataSource { shared }
    }
}

fn nat_gateway_type() -> Type {
    Type::object([
        ("id", Type::String),
        ("region", Type::String),
        ("vpc_id", Type::String),
        ("subnet_id", Type::String),
        ("public_ip", Type::String),
        ("allocation_id", Type::String),
    ])
}

#[async_trait]
impl DataSource for EgressIpsDataSource {
    fn type_name(&self) -> &'static str {
        "allowlist_egress_ips"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new(
                "Looks up every public IP of every `available` NAT gateway matching `tags` and `filter` in \
                 all `regions` at once, and returns them as a sorted, de-duplicated list of `/32` CIDRs. \
                 The lookup is all-or-nothing: if any region fails, the read fails with an error naming \
                 that region, and no partial list is ever returned.",
            )
            .attribute(Attribute::new(
                "regions",
                Type::list(Type::String),
                Mode::Optional,
                "Regions to look in, e.g. `[\"us-west-2\", \"eu-central-1\"]`; `[\"all\"]` means every region \
                 enabled for the account. Defaults to the provider's `egress_regions`, else the provider's region.",
            ))
            .attribute(Attribute::new(
                "tags",
                Type::map(Type::String),
                Mode::Optional,
                "Tags every NAT gateway must carry. Values may use the wildcards `*` (any run of characters) \
                 and `?` (one character), e.g. `{ Name = \"*proxy*\" }`; `\\` makes the next character literal.",
            ))
            .attribute(Attribute::new(
                "min_count",
                Type::Number,
                Mode::Optional,
                "Fail the read when fewer distinct addresses than this are found, so an empty or shrunken \
                 list never reaches a firewall. Defaults to 0 (no minimum).",
            ))
            .attribute(Attribute::new(
                "cidrs",
                Type::list(Type::String),
                Mode::Computed,
                "The distinct public IPs as `/32` CIDRs, sorted numerically.",
            ))
            .attribute(Attribute::new(
                "public_ips",
                Type::list(Type::String),
                Mode::Computed,
                "The distinct public IPs, sorted numerically.",
            ))
            .attribute(Attribute::new(
                "nat_gateways",
                Type::list(nat_gateway_type()),
                Mode::Computed,
                "One entry per public address of each matching NAT gateway (a gateway with secondary \
                 addresses has several): `id`, `region`, `vpc_id`, `subnet_id`, `public_ip`, `allocation_id`. \
                 Sorted by `public_ip`, then `region` and `id`.",
            ))
            .attribute(Attribute::new(
                "sync_token",
                Type::String,
                Mode::Computed,
                "A SHA-256 digest of `cidrs`: it changes exactly when the set of addresses changes, so it can \
                 trigger downstream updates.",
            ))
            .attribute(Attribute::new(
                "id",
                Type::String,
                Mode::Computed,
                "A digest of the query (regions, tags and filters).",
            ))
            .block(
                "filter",
                Nesting::List,
                Block::new(
                    "A raw EC2 filter for DescribeNatGateways, e.g. `name = \"vpc-id\"`. Allowed names: \
                     `nat-gateway-id`, `subnet-id`, `vpc-id`, `tag-key`, `tag:<key>`. Several blocks must all match.",
                )
                .attribute(Attribute::new(
                    "name",
                    Type::String,
                    Mode::Required,
                    "The filter name.",
                ))
                .attribute(Attribute::new(
                    "values",
                    Type::list(Type::String),
                    Mode::Required,
                    "Accepted values (any may match); EC2 wildcards `*` and `?` are allowed.",
                )),
            ),
        )
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        Query::read(config).1
    }

    async fn read(&self, config: &Value) -> Result<Value, Diagnostics> {
        let (query, mut diags) = Query::read(config);
        if diags.has_errors() {
            return Err(diags);
        }
        if !query.fully_known {
            diags.push(Diagnostic::error(
                "Lookup Arguments Not Known",
                "The lookup's arguments are not known yet; Terraform reads this data source once they are.",
            ));
            return Err(diags);
        }
        let provider = configured(&self.shared)?;
        let from_config = !query.inner.regions.is_empty();
        let mut lookup_query = query.inner.clone();
        if !from_config {
            lookup_query.regions = if provider.egress_regions.is_empty() {
                provider
                    .aws
                    .home_region()
                    .map(str::to_owned)
                    .into_iter()
                    .collect()
            } else {
                provider.egress_regions.clone()
            };
        }
        let regions_path = root().attr("regions");
        let attr = from_config.then_some((&regions_path, lookup_query.regions.as_slice()));
        let found = egress::lookup(&provider.aws, &lookup_query)
            .await
            .map_err(|err| lookup_error(&err, attr))?;

        let cidrs = found.cidrs();
        tracing::info!(
            regions = found.regions.len(),
            addresses = cidrs.len(),
            "egress lookup finished"
        );
        if let Some(min) = query.min_count {
            if (cidrs.len() as i64) < min {
                return Err(Diagnostic::error(
                    "Too Few Egress Addresses",
                    format!(
                        "Found {} distinct addresses in {} regions ({}), fewer than min_count = {min}. \
                         Check the tags and filters, and that the NAT gateways are available.",
                        cidrs.len(),
                        found.regions.len(),
                        found.regions.join(", ")
                    ),
                )
                .at(root().attr("min_count"))
                .into());
            }
        }

        let mut state = config.clone();
        let Some(map) = state.as_map_mut() else {
            return Err(Diagnostic::error(
                "Invalid Request",
                "The configuration is not an object.",
            )
            .into());
        };
        map.insert("cidrs".into(), Value::strings(cidrs));
        map.insert(
            "public_ips".into(),
            Value::strings(found.public_ips().iter().map(ToString::to_string)),
        );
        map.insert(
            "nat_gateways".into(),
            Value::List(
                found
                    .addresses
                    .iter()
                    .map(|a| {
                        Value::object([
                            ("id", Value::string(&a.id)),
                            ("region", Value::string(&a.region)),
                            ("vpc_id", Value::string(&a.vpc_id)),
                            ("subnet_id", Value::string(&a.subnet_id)),
                            ("public_ip", Value::string(a.public_ip.to_string())),
                            ("allocation_id", Value::string(&a.allocation_id)),
                        ])
                    })
                    .collect(),
            ),
        );
        map.insert("sync_token".into(), Value::string(found.sync_token()));
        map.insert(
            "id".into(),
            Value::string(query_id(&found.regions, &lookup_query)),
        );
        Ok(state)
    }
}

fn root() -> AttributePath {
    AttributePath::root()
}

/// The data source's arguments, checked.
struct Query {
    inner: EgressQuery,
    min_count: Option<i64>,
    /// False when some argument is unknown (validation runs before values are known).
    fully_known: bool,
}

impl Query {
    fn read(config: &Value) -> (Query, Diagnostics) {
        let mut diags = Diagnostics::new();
        let mut fully_known = true;
        let mut known = |tri_unknown: bool| fully_known &= !tri_unknown;

        let mut regions = Vec::new();
        match diags.take(config.get::<Vec<Tri<String>>>(&root(), "regions")) {
            Some(Tri::Known(list)) => {
                diags.extend(check_regions(&list, &root().attr("regions"), true));
                if list.is_empty() {
                    diags.push(
                        Diagnostic::error(
                            "No Regions",
                            "regions is empty; omit it to use the provider's egress_regions, or name regions.",
                        )
                        .at(root().attr("regions")),
                    );
                }
                known(list.iter().any(Tri::is_unknown));
                regions = list.into_iter().filter_map(Tri::known).collect();
            }
            Some(tri) => known(tri.is_unknown()),
            None => {}
        }

        let mut tags = BTreeMap::new();
        match diags.take(config.get::<BTreeMap<String, Tri<String>>>(&root(), "tags")) {
            Some(Tri::Known(map)) => {
                for (key, value) in map {
                    if key.is_empty() {
                        diags.push(
                            Diagnostic::error("Invalid Tag Key", "Tag keys cannot be empty.")
                                .at(root().attr("tags")),
                        );
                    }
                    match value {
                        Tri::Known(v) => {
                            tags.insert(key, v);
                        }
                        Tri::Unknown => known(true),
                        Tri::Null => diags.push(
                            Diagnostic::error(
                                "Invalid Tag Value",
                                "A tag value cannot be null; use \"*\" to match any value.",
                            )
                            .at(root().attr("tags").key(&key)),
                        ),
                    }
                }
            }
            Some(tri) => known(tri.is_unknown()),
            None => {}
        }

        let mut filters = Vec::new();
        if let Value::List(blocks) = config.attr("filter") {
            for (i, block) in blocks.iter().enumerate() {
                let path = root().attr("filter").index(i);
                let name = diags.take(block.get::<String>(&path, "name"));
                let values = diags.take(block.get::<Vec<Tri<String>>>(&path, "values"));
                let (Some(Tri::Known(name)), Some(Tri::Known(values))) = (name, values) else {
                    known(true);
                    continue;
                };
                known(values.iter().any(Tri::is_unknown));
                let filter = Filter {
                    name,
                    values: values.into_iter().filter_map(Tri::known).collect(),
                };
                match filter.check() {
                    Ok(()) => filters.push(filter),
                    Err(FilterProblem::Name(msg)) => {
                        diags.push(Diagnostic::error("Invalid Filter", msg).at(path.attr("name")))
                    }
                    Err(FilterProblem::Values(msg)) => {
                        diags.push(Diagnostic::error("Invalid Filter", msg).at(path.attr("values")))
                    }
                }
            }
        } else if config.attr("filter").is_unknown() {
            known(true);
        }

        let mut min_count = None;
        match diags.take(config.get::<i64>(&root(), "min_count")) {
            Some(Tri::Known(n)) if n < 0 => diags.push(
                Diagnostic::error("Invalid min_count", "min_count cannot be negative.")
                    .at(root().attr("min_count")),
            ),
            Some(Tri::Known(n)) => min_count = Some(n),
            Some(tri) => known(tri.is_unknown()),
            None => {}
        }

        let query = Query {
            inner: EgressQuery {
                regions,
                tags,
                filters,
            },
            min_count,
            fully_known,
        };
        (query, diags)
    }
}

/// A stable digest of what was asked (after defaults were applied).
fn query_id(regions: &[String], query: &EgressQuery) -> String {
    let mut hash = Sha256::new();
    for region in regions {
        hash.update(format!("region={region}\n"));
    }
    for (k, v) in &query.tags {
        hash.update(format!("tag={}={}\n", k.len(), k));
        hash.update(format!("{v}\n"));
    }
    for f in &query.filters {
        hash.update(format!("filter={}={:?}\n", f.name, f.values));
    }
    hex::encode(&hash.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, OnceLock};

    fn config(pairs: &[(&str, Value)]) -> Value {
        let ds = EgressIpsDataSource::new(Arc::new(OnceLock::new()));
        let mut v = Value::object(pairs.iter().map(|(k, v)| (*k, v.clone())));
        ds.schema().block.conform(&mut v).expect("conforms");
        v
    }

    #[test]
    fn schema_is_valid_and_fully_described() {
        let ds = EgressIpsDataSource::new(Arc::new(OnceLock::new()));
        assert_eq!(ds.schema().block.check("allowlist_egress_ips"), Ok(()));
    }

    #[test]
    fn reads_a_full_query() {
        let filter = Value::object([
            ("name", Value::string("vpc-id")),
            ("values", Value::strings(["vpc-1"])),
        ]);
        let (q, diags) = Query::read(&config(&[
            ("regions", Value::strings(["us-west-2", "eu-central-1"])),
            ("tags", Value::object([("Name", Value::string("*proxy*"))])),
            ("filter", Value::List(vec![filter])),
            (
                "min_count",
                Value::Number(crate::tfplugin::value::Number::Int(2)),
            ),
        ]));
        assert!(diags.is_empty(), "{diags:?}");
        assert!(q.fully_known);
        assert_eq!(q.inner.regions, vec!["us-west-2", "eu-central-1"]);
        assert_eq!(
            q.inner.tags.get("Name").map(String::as_str),
            Some("*proxy*")
        );
        assert_eq!(q.inner.filters[0].name, "vpc-id");
        assert_eq!(q.min_count, Some(2));
    }

    #[test]
    fn bad_arguments_point_at_the_attribute() {
        let bad_filter = Value::object([
            ("name", Value::string("state")),
            ("values", Value::strings(["pending"])),
        ]);
        let no_values = Value::object([
            ("name", Value::string("vpc-id")),
            ("values", Value::List(vec![])),
        ]);
        let (_, diags) = Query::read(&config(&[
            ("regions", Value::strings(["us-west-2", "not a region"])),
            ("filter", Value::List(vec![bad_filter, no_values])),
            (
                "min_count",
                Value::Number(crate::tfplugin::value::Number::Int(-1)),
            ),
        ]));
        assert_eq!(
            diags.paths(),
            vec![
                "regions[1]",
                "filter[0].name",
                "filter[1].values",
                "min_count"
            ]
        );
    }

    #[test]
    fn unknown_arguments_validate_but_are_not_read() {
        let (q, diags) = Query::read(&config(&[("regions", Value::List(vec![Value::unknown()]))]));
        assert!(diags.is_empty());
        assert!(!q.fully_known);
    }

    #[test]
    fn query_id_depends_on_the_query_only() {
        let q = EgressQuery {
            regions: vec![],
            tags: BTreeMap::from([("Name".into(), "*proxy*".into())]),
            filters: vec![],
        };
        let a = query_id(&["us-west-2".into()], &q);
        assert_eq!(a, query_id(&["us-west-2".into()], &q.clone()));
        assert_ne!(a, query_id(&["eu-central-1".into()], &q));
        assert_eq!(a.len(), 16);
    }
}
