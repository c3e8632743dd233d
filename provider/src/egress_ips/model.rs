//! The typed model of `allowlist_egress_ips`: its attribute names (written once, here), the query
//! read from the configuration with each argument checked at its path, and the result written
//! back as the data source's state.

use crate::tfplugin::value::FromValue;
use crate::tfplugin::{AttributePath, Diagnostic, Diagnostics, Tri, Value};
use crate::validators;
use allowlist_core::egress::{check_filter_name, EgressIps, EgressQuery, Filter, FilterProblem};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Attribute names of `allowlist_egress_ips`.
pub mod attr {
    pub const REGIONS: &str = "regions";
    pub const TAGS: &str = "tags";
    pub const MIN_COUNT: &str = "min_count";
    pub const CIDRS: &str = "cidrs";
    pub const PUBLIC_IPS: &str = "public_ips";
    pub const NAT_GATEWAYS: &str = "nat_gateways";
    pub const SYNC_TOKEN: &str = "sync_token";
    pub const ID: &str = "id";
    /// The `filter` block type.
    pub const FILTER: &str = "filter";

    /// Attributes of a `filter` block.
    pub mod filter {
        pub const NAME: &str = "name";
        pub const VALUES: &str = "values";
    }

    /// Attributes of a `nat_gateways` element.
    pub mod nat_gateway {
        pub const ID: &str = "id";
        pub const REGION: &str = "region";
        pub const VPC_ID: &str = "vpc_id";
        pub const SUBNET_ID: &str = "subnet_id";
        pub const PUBLIC_IP: &str = "public_ip";
        pub const ALLOCATION_ID: &str = "allocation_id";
    }
}

/// The data source's state: the configuration with every computed attribute filled from `found`,
/// looked up for `query` (whose regions are the ones actually asked). None when the
/// configuration is not an object (a malformed request).
pub fn state(config: &Value, query: &EgressQuery, found: &EgressIps) -> Option<Value> {
    use attr::nat_gateway as ng;
    let mut state = config.clone();
    let map = state.as_map_mut()?;
    map.insert(attr::CIDRS.into(), Value::strings(found.cidrs()));
    map.insert(
        attr::PUBLIC_IPS.into(),
        Value::strings(found.public_ips().iter().map(ToString::to_string)),
    );
    let gateways = found.addresses.iter().map(|a| {
        Value::object([
            (ng::ID, Value::string(&a.id)),
            (ng::REGION, Value::string(&a.region)),
            (ng::VPC_ID, Value::string(&a.vpc_id)),
            (ng::SUBNET_ID, Value::string(&a.subnet_id)),
            (ng::PUBLIC_IP, Value::string(a.public_ip.to_string())),
            (ng::ALLOCATION_ID, Value::string(&a.allocation_id)),
        ])
    });
    map.insert(attr::NAT_GATEWAYS.into(), Value::List(gateways.collect()));
    map.insert(attr::SYNC_TOKEN.into(), Value::string(found.sync_token()));
    map.insert(
        attr::ID.into(),
        Value::string(query_id(&found.regions, query)),
    );
    Some(state)
}

/// The data source's arguments, checked.
#[derive(Debug)]
pub struct Query {
    pub inner: EgressQuery,
    pub min_count: Option<i64>,
    /// False when some argument is unknown (validation runs before values are known).
    pub fully_known: bool,
}

impl Query {
    /// Reads the configuration; type errors and bad values are diagnostics at their attribute.
    pub fn read(config: &Value) -> (Query, Diagnostics) {
        let mut r = Reader {
            config,
            diags: Diagnostics::new(),
            fully_known: true,
        };
        let inner = EgressQuery {
            regions: r.regions(),
            tags: r.tags(),
            filters: r.filters(),
        };
        let min_count = r.min_count();
        let query = Query {
            inner,
            min_count,
            fully_known: r.fully_known,
        };
        (query, r.diags)
    }
}

/// Reads one argument at a time, collecting diagnostics and whether everything was known.
struct Reader<'a> {
    config: &'a Value,
    diags: Diagnostics,
    fully_known: bool,
}

impl Reader<'_> {
    /// Reads `name` as `T`; None (with a diagnostic) when it has the wrong type.
    fn get<T: FromValue>(&mut self, name: &str) -> Option<Tri<T>> {
        self.diags
            .take(self.config.get::<T>(&AttributePath::root(), name))
    }

    fn unknown_if(&mut self, unknown: bool) {
        self.fully_known &= !unknown;
    }

    /// `regions`: names or `["all"]`, not empty.
    fn regions(&mut self) -> Vec<String> {
        let path = AttributePath::of(attr::REGIONS);
        match self.get::<Vec<Tri<String>>>(attr::REGIONS) {
            Some(Tri::Known(list)) => {
                self.diags
                    .extend(validators::region_list(&list, &path, true));
                if list.is_empty() {
                    self.diags.push(
                        Diagnostic::error(
                            "No Regions",
                            "regions is empty; omit it to use the provider's egress_regions, or name regions.",
                        )
                        .at(path),
                    );
                }
                self.unknown_if(list.iter().any(Tri::is_unknown));
                list.into_iter().filter_map(Tri::known).collect()
            }
            Some(tri) => {
                self.unknown_if(tri.is_unknown());
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// `tags`: non-empty keys, non-null values (wildcard patterns).
    fn tags(&mut self) -> BTreeMap<String, String> {
        let path = AttributePath::of(attr::TAGS);
        let mut tags = BTreeMap::new();
        let map = match self.get::<BTreeMap<String, Tri<String>>>(attr::TAGS) {
            Some(Tri::Known(map)) => map,
            Some(tri) => {
                self.unknown_if(tri.is_unknown());
                return tags;
            }
            None => return tags,
        };
        for (key, value) in map {
            if key.is_empty() {
                self.diags.push(
                    Diagnostic::error("Invalid Tag Key", "Tag keys cannot be empty.")
                        .at(path.clone()),
                );
            }
            match value {
                Tri::Known(v) => {
                    tags.insert(key, v);
                }
                Tri::Unknown => self.unknown_if(true),
                Tri::Null => self.diags.push(
                    Diagnostic::error(
                        "Invalid Tag Value",
                        "A tag value cannot be null; use \"*\" to match any value.",
                    )
                    .at(path.key(&key)),
                ),
            }
        }
        tags
    }

    /// `filter` blocks: an allowed name and at least one value each.
    fn filters(&mut self) -> Vec<Filter> {
        let blocks = match self.config.attr(attr::FILTER) {
            Value::List(blocks) => blocks,
            other => {
                self.unknown_if(other.is_unknown());
                return Vec::new();
            }
        };
        let mut filters = Vec::new();
        for (i, block) in blocks.iter().enumerate() {
            let path = AttributePath::of(attr::FILTER).index(i);
            let name = self
                .diags
                .take(block.get::<String>(&path, attr::filter::NAME));
            let values = self
                .diags
                .take(block.get::<Vec<Tri<String>>>(&path, attr::filter::VALUES));
            let (Some(Tri::Known(name)), Some(values)) = (name, values) else {
                self.unknown_if(true);
                continue;
            };
            // Values not known yet (a variable at validate, another resource's attribute at
            // plan): the name is checked now, the values once they are known.
            let values = match values {
                Tri::Known(values) if !values.iter().any(Tri::is_unknown) => values,
                _ => {
                    self.unknown_if(true);
                    if let Err(FilterProblem::Name(msg) | FilterProblem::Values(msg)) =
                        check_filter_name(&name)
                    {
                        let at = path.attr(attr::filter::NAME);
                        self.diags
                            .push(Diagnostic::error("Invalid Filter", msg).at(at));
                    }
                    continue;
                }
            };
            let filter = Filter {
                name,
                values: values.into_iter().filter_map(Tri::known).collect(),
            };
            let (msg, at) = match filter.check() {
                Ok(()) => {
                    filters.push(filter);
                    continue;
                }
                Err(FilterProblem::Name(msg)) => (msg, attr::filter::NAME),
                Err(FilterProblem::Values(msg)) => (msg, attr::filter::VALUES),
            };
            self.diags
                .push(Diagnostic::error("Invalid Filter", msg).at(path.attr(at)));
        }
        filters
    }

    /// `min_count`: not negative.
    fn min_count(&mut self) -> Option<i64> {
        match self.get::<i64>(attr::MIN_COUNT) {
            Some(Tri::Known(n)) if n < 0 => {
                self.diags.push(
                    Diagnostic::error("Invalid min_count", "min_count cannot be negative.")
                        .at(AttributePath::of(attr::MIN_COUNT)),
                );
                None
            }
            Some(Tri::Known(n)) => Some(n),
            Some(tri) => {
                self.unknown_if(tri.is_unknown());
                None
            }
            None => None,
        }
    }
}

/// A stable digest of what was asked (after defaults were applied).
pub fn query_id(regions: &[String], query: &EgressQuery) -> String {
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
    use crate::egress_ips::EgressIpsDataSource;
    use crate::provider_data::ProviderDataCell;
    use crate::tfplugin::DataSource;

    fn config(pairs: &[(&str, Value)]) -> Value {
        let ds = EgressIpsDataSource::new(ProviderDataCell::default());
        let mut v = Value::object(pairs.iter().map(|(k, v)| (*k, v.clone())));
        ds.schema().block.conform(&mut v).expect("conforms");
        v
    }

    #[test]
    fn schema_is_valid_and_fully_described() {
        let ds = EgressIpsDataSource::new(ProviderDataCell::default());
        assert_eq!(ds.schema().block.check(ds.type_name()), Ok(()));
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
    fn unknown_filter_values_pass_until_known() {
        let filter =
            |values: Value| Value::object([("name", Value::string("vpc-id")), ("values", values)]);
        for values in [
            Value::List(vec![Value::unknown()]),
            Value::List(vec![Value::unknown(), Value::unknown()]),
            Value::unknown(),
        ] {
            let (q, diags) = Query::read(&config(&[(
                "filter",
                Value::List(vec![filter(values.clone())]),
            )]));
            assert!(diags.is_empty(), "{values:?}: {diags:?}");
            assert!(!q.fully_known);
        }
        // A bad name is still refused while the values are unknown.
        let bad = Value::object([
            ("name", Value::string("state")),
            ("values", Value::List(vec![Value::unknown()])),
        ]);
        let (_, diags) = Query::read(&config(&[("filter", Value::List(vec![bad]))]));
        assert_eq!(diags.paths(), vec!["filter[0].name"]);
        // Once known, an empty value is refused.
        let (_, diags) = Query::read(&config(&[(
            "filter",
            Value::List(vec![filter(Value::strings([""]))]),
        )]));
        assert_eq!(diags.paths(), vec!["filter[0].values"]);
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
