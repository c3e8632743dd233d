//! The typed model of `allowlist_egress_ips`: its attribute names (written once, here), the query
//! read from the configuration with each argument checked at its path, and the result written
//! back as the data source's state.

use crate::tfplugin::value::FromValue;
use crate::tfplugin::{AttributePath, Diagnostic, Diagnostics, Tri, Value};
use crate::validators;
use allowlist_core::accounts::{self, Accounts, AssumeRole, Organization};
use allowlist_core::egress::{
    check_filter_name, EgressAddress, EgressIps, EgressQuery, Filter, FilterProblem, Source,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Attribute names of `allowlist_egress_ips`.
pub mod attr {
    pub const REGIONS: &str = "regions";
    pub const TAGS: &str = "tags";
    pub const MIN_COUNT: &str = "min_count";
    pub const SOURCES: &str = "sources";
    pub const INCLUDE_CURRENT_ACCOUNT: &str = "include_current_account";
    pub const ADDRESSES: &str = "addresses";
    pub const CIDRS: &str = "cidrs";
    pub const PUBLIC_IPS: &str = "public_ips";
    pub const NAT_GATEWAYS: &str = "nat_gateways";
    pub const SYNC_TOKEN: &str = "sync_token";
    pub const ID: &str = "id";
    /// The `filter` block type.
    pub const FILTER: &str = "filter";
    /// The `account` block type.
    pub const ACCOUNT: &str = "account";
    /// The `organization` block type.
    pub const ORGANIZATION: &str = "organization";

    /// Attributes of an `account` block.
    pub mod account {
        pub const ROLE_ARN: &str = "role_arn";
        pub const EXTERNAL_ID: &str = "external_id";
    }

    /// Attributes of the `organization` block.
    pub mod organization {
        pub const ROLE_NAME: &str = "role_name";
        pub const EXCLUDE: &str = "exclude";
        pub const EXTERNAL_ID: &str = "external_id";
    }

    /// Attributes of an `addresses` element.
    pub mod address {
        pub const PUBLIC_IP: &str = "public_ip";
        pub const CIDR: &str = "cidr";
        pub const SOURCE: &str = "source";
        pub const RESOURCE_ID: &str = "resource_id";
        pub const ACCOUNT_ID: &str = "account_id";
        pub const REGION: &str = "region";
        pub const VPC_ID: &str = "vpc_id";
        pub const SUBNET_ID: &str = "subnet_id";
        pub const ALLOCATION_ID: &str = "allocation_id";
        pub const ASSOCIATED: &str = "associated";
    }

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
    let gateways = found.nat_gateways().map(|a| {
        Value::object([
            (ng::ID, Value::string(&a.resource_id)),
            (ng::REGION, Value::string(&a.region)),
            (ng::VPC_ID, optional(&a.vpc_id)),
            (ng::SUBNET_ID, optional(&a.subnet_id)),
            (ng::PUBLIC_IP, Value::string(a.public_ip.to_string())),
            (ng::ALLOCATION_ID, optional(&a.allocation_id)),
        ])
    });
    map.insert(attr::NAT_GATEWAYS.into(), Value::List(gateways.collect()));
    map.insert(
        attr::ADDRESSES.into(),
        Value::List(found.addresses.iter().map(address).collect()),
    );
    map.insert(attr::SYNC_TOKEN.into(), Value::string(found.sync_token()));
    map.insert(
        attr::ID.into(),
        Value::string(query_id(&found.regions, query)),
    );
    Some(state)
}

/// One element of `addresses`.
fn address(a: &EgressAddress) -> Value {
    use attr::address as ad;
    Value::object([
        (ad::PUBLIC_IP, Value::string(a.public_ip.to_string())),
        (ad::CIDR, Value::string(format!("{}/32", a.public_ip))),
        (ad::SOURCE, Value::string(a.source.name())),
        (ad::RESOURCE_ID, Value::string(&a.resource_id)),
        (ad::ACCOUNT_ID, Value::string(&a.account_id)),
        (ad::REGION, Value::string(&a.region)),
        (ad::VPC_ID, optional(&a.vpc_id)),
        (ad::SUBNET_ID, optional(&a.subnet_id)),
        (ad::ALLOCATION_ID, optional(&a.allocation_id)),
        (ad::ASSOCIATED, Value::Bool(a.associated)),
    ])
}

fn optional(value: &Option<String>) -> Value {
    value.as_ref().map_or(Value::Null, Value::string)
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
            sources: r.sources(),
            accounts: r.accounts(),
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

    /// `sources`: known names, at least one; default NAT gateways only.
    fn sources(&mut self) -> BTreeSet<Source> {
        let path = AttributePath::of(attr::SOURCES);
        let default = EgressQuery::default().sources;
        let list = match self.get::<Vec<Tri<String>>>(attr::SOURCES) {
            Some(Tri::Known(list)) => list,
            Some(tri) => {
                self.unknown_if(tri.is_unknown());
                return default;
            }
            None => return default,
        };
        if list.is_empty() {
            self.diags.push(
                Diagnostic::error(
                    "No Sources",
                    "sources is empty; omit it for NAT gateways only, or name nat_gateway and/or elastic_ip.",
                )
                .at(path.clone()),
            );
        }
        let mut sources = BTreeSet::new();
        for (i, name) in list.into_iter().enumerate() {
            match name {
                Tri::Known(name) => match Source::from_name(&name) {
                    Ok(source) => {
                        sources.insert(source);
                    }
                    Err(msg) => self
                        .diags
                        .push(Diagnostic::error("Invalid Source", msg).at(path.index(i))),
                },
                Tri::Unknown => self.unknown_if(true),
                Tri::Null => self.diags.push(
                    Diagnostic::error("Invalid Source", "A source cannot be null.")
                        .at(path.index(i)),
                ),
            }
        }
        if sources.is_empty() {
            return default;
        }
        sources
    }

    /// A string attribute of a nested block; None (and not fully known) when unknown.
    fn block_string(&mut self, block: &Value, path: &AttributePath, name: &str) -> Option<String> {
        match self.diags.take(block.get::<String>(path, name))? {
            Tri::Known(v) => Some(v),
            Tri::Null => None,
            Tri::Unknown => {
                self.unknown_if(true);
                None
            }
        }
    }

    /// The blocks of type `name` (an unknown list makes the query not fully known).
    fn blocks(&mut self, name: &str) -> Vec<Value> {
        match self.config.attr(name) {
            Value::List(blocks) => blocks.clone(),
            other => {
                self.unknown_if(other.is_unknown());
                Vec::new()
            }
        }
    }

    /// An optional external id at `path`, checked.
    fn external_id(&mut self, block: &Value, path: &AttributePath, name: &str) -> Option<String> {
        let id = self.block_string(block, path, name)?;
        if let Err(msg) = accounts::check_external_id(&id) {
            self.diags
                .push(Diagnostic::error("Invalid External ID", msg).at(path.attr(name)));
        }
        Some(id)
    }

    /// `account` blocks: role ARNs checked, one block per account.
    fn roles(&mut self) -> Vec<AssumeRole> {
        use attr::account as a;
        let mut roles = Vec::new();
        let mut first_at: HashMap<String, usize> = HashMap::new();
        for (i, block) in self.blocks(attr::ACCOUNT).iter().enumerate() {
            let path = AttributePath::of(attr::ACCOUNT).index(i);
            let external_id = self.external_id(block, &path, a::EXTERNAL_ID);
            let Some(arn) = self.block_string(block, &path, a::ROLE_ARN) else {
                continue;
            };
            let at = path.attr(a::ROLE_ARN);
            match accounts::check_role_arn(&arn) {
                Err(msg) => self
                    .diags
                    .push(Diagnostic::error("Invalid Role ARN", msg).at(at)),
                Ok(account) => {
                    if let Some(first) = first_at.insert(account.to_owned(), i) {
                        self.diags.push(
                            Diagnostic::error(
                                "Duplicate Account",
                                format!(
                                    "Account {account} is already listed by account block {first};                                      give each account once."
                                ),
                            )
                            .at(at),
                        );
                    }
                }
            }
            roles.push(AssumeRole {
                external_id,
                ..AssumeRole::new(arn)
            });
        }
        roles
    }

    /// The `organization` block: at most one, a role name, 12-digit excluded ids.
    fn organization(&mut self) -> Option<Organization> {
        use attr::organization as o;
        let blocks = self.blocks(attr::ORGANIZATION);
        for i in 1..blocks.len() {
            self.diags.push(
                Diagnostic::error(
                    "Too Many organization Blocks",
                    "Give at most one organization block.",
                )
                .at(AttributePath::of(attr::ORGANIZATION).index(i)),
            );
        }
        let block = blocks.first()?;
        let path = AttributePath::of(attr::ORGANIZATION).index(0);
        let external_id = self.external_id(block, &path, o::EXTERNAL_ID);
        let role_name = self.block_string(block, &path, o::ROLE_NAME);
        if let Some(Err(msg)) = role_name.as_deref().map(accounts::check_role_name) {
            self.diags
                .push(Diagnostic::error("Invalid Role Name", msg).at(path.attr(o::ROLE_NAME)));
        }
        let mut exclude = Vec::new();
        match self
            .diags
            .take(block.get::<Vec<Tri<String>>>(&path, o::EXCLUDE))
        {
            Some(Tri::Known(ids)) => {
                for (i, id) in ids.into_iter().enumerate() {
                    match id {
                        Tri::Known(id) => {
                            if let Err(msg) = accounts::check_account_id(&id) {
                                let at = path.attr(o::EXCLUDE).index(i);
                                self.diags
                                    .push(Diagnostic::error("Invalid Account ID", msg).at(at));
                            }
                            exclude.push(id);
                        }
                        Tri::Unknown => self.unknown_if(true),
                        Tri::Null => {}
                    }
                }
            }
            Some(Tri::Unknown) => self.unknown_if(true),
            _ => {}
        }
        Some(Organization {
            role_name: role_name.unwrap_or_default(),
            exclude,
            external_id,
        })
    }

    /// The accounts: `account` blocks or the `organization` (not both), and whether the current
    /// account is included (`include_current_account`, default: only when alone).
    fn accounts(&mut self) -> Accounts {
        let roles = self.roles();
        let organization = self.organization();
        let account_blocks =
            matches!(self.config.attr(attr::ACCOUNT), Value::List(b) if !b.is_empty());
        if account_blocks && organization.is_some() {
            self.diags.push(
                Diagnostic::error(
                    "Conflicting Account Selection",
                    "Give either account blocks or an organization block, not both: the organization                      already reaches every ACTIVE account (use exclude to leave some out).",
                )
                .at(AttributePath::of(attr::ORGANIZATION).index(0)),
            );
        }
        let others = account_blocks || organization.is_some();
        let include = match self.get::<bool>(attr::INCLUDE_CURRENT_ACCOUNT) {
            Some(Tri::Known(b)) => Some(b),
            Some(Tri::Unknown) => {
                self.unknown_if(true);
                None
            }
            _ => None,
        };
        if include == Some(false) && !others && !self.config.attr(attr::ACCOUNT).is_unknown() {
            self.diags.push(
                Diagnostic::error(
                    "No Account to Look In",
                    "include_current_account = false leaves no account: add account blocks or an                      organization block, or drop include_current_account.",
                )
                .at(AttributePath::of(attr::INCLUDE_CURRENT_ACCOUNT)),
            );
        }
        Accounts {
            current: accounts::include_current_account(include, others),
            roles,
            organization,
        }
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
    // Only what differs from the defaults, so ids of queries older than sources and accounts stay.
    if query.sources != EgressQuery::default().sources {
        for source in &query.sources {
            hash.update(format!("source={source}\n"));
        }
    }
    if query.accounts != Accounts::default() {
        hash.update(format!("current={}\n", query.accounts.current));
        for role in &query.accounts.roles {
            hash.update(format!("role={}\n", role.role_arn));
        }
        if let Some(org) = &query.accounts.organization {
            hash.update(format!(
                "organization={}={:?}\n",
                org.role_name, org.exclude
            ));
        }
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
            tags: BTreeMap::from([("Name".into(), "*proxy*".into())]),
            ..EgressQuery::default()
        };
        let a = query_id(&["us-west-2".into()], &q);
        assert_eq!(a, query_id(&["us-west-2".into()], &q.clone()));
        assert_ne!(a, query_id(&["eu-central-1".into()], &q));
        assert_eq!(a.len(), 16);
        // The id of a query without sources or accounts is what it was before they existed.
        assert_eq!(a, "91fd45df96b87e13");
        let eips = EgressQuery {
            sources: BTreeSet::from([Source::NatGateway, Source::ElasticIp]),
            ..q.clone()
        };
        assert_ne!(a, query_id(&["us-west-2".into()], &eips));
        let other_account = EgressQuery {
            accounts: Accounts {
                current: false,
                roles: vec![AssumeRole::new("arn:aws:iam::222222222222:role/r")],
                organization: None,
            },
            ..q
        };
        assert_ne!(a, query_id(&["us-west-2".into()], &other_account));
    }

    fn account(role_arn: &str) -> Value {
        Value::object([
            ("role_arn", Value::string(role_arn)),
            ("external_id", Value::Null),
        ])
    }

    #[test]
    fn accounts_default_and_combine() {
        // No account named: the current account alone, NAT gateways alone.
        let (q, diags) = Query::read(&config(&[]));
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(q.inner.accounts, Accounts::default());
        assert_eq!(q.inner.sources, BTreeSet::from([Source::NatGateway]));
        // Account blocks: the current account only when asked for.
        let two = Value::List(vec![
            account("arn:aws:iam::222222222222:role/reader"),
            account("arn:aws:iam::333333333333:role/reader"),
        ]);
        let (q, diags) = Query::read(&config(&[
            ("account", two.clone()),
            ("sources", Value::strings(["elastic_ip", "nat_gateway"])),
        ]));
        assert!(diags.is_empty(), "{diags:?}");
        assert!(!q.inner.accounts.current);
        assert_eq!(q.inner.accounts.roles.len(), 2);
        assert_eq!(q.inner.sources.len(), 2);
        let (q, _) = Query::read(&config(&[
            ("account", two),
            ("include_current_account", Value::Bool(true)),
        ]));
        assert!(q.inner.accounts.current);
        let org = Value::List(vec![Value::object([
            ("role_name", Value::string("reader")),
            ("exclude", Value::strings(["444444444444"])),
            ("external_id", Value::Null),
        ])]);
        let (q, diags) = Query::read(&config(&[("organization", org)]));
        assert!(diags.is_empty(), "{diags:?}");
        assert!(!q.inner.accounts.current);
        let org = q.inner.accounts.organization.expect("organization");
        assert_eq!(
            (org.role_name.as_str(), org.exclude),
            ("reader", vec!["444444444444".to_owned()])
        );
    }

    #[test]
    fn bad_accounts_and_sources_point_at_the_attribute() {
        let accounts = Value::List(vec![
            account("arn:aws:iam::222222222222:user/alice"),
            account("arn:aws:iam::333333333333:role/a"),
            account("arn:aws:iam::333333333333:role/b"),
        ]);
        let org = Value::List(vec![Value::object([
            ("role_name", Value::string("bad/name")),
            ("exclude", Value::strings(["444444444444", "44"])),
            ("external_id", Value::string("x")),
        ])]);
        let (_, diags) = Query::read(&config(&[
            ("sources", Value::strings(["nat_gateway", "nat-gateway"])),
            ("account", accounts),
            ("organization", org),
        ]));
        assert_eq!(
            diags.paths(),
            vec![
                "sources[1]",
                "account[0].role_arn",
                "account[2].role_arn",
                "organization[0].external_id",
                "organization[0].role_name",
                "organization[0].exclude[1]",
                "organization[0]",
            ]
        );
        let (_, diags) = Query::read(&config(&[("include_current_account", Value::Bool(false))]));
        assert_eq!(diags.paths(), vec!["include_current_account"]);
        let (_, diags) = Query::read(&config(&[("sources", Value::List(vec![]))]));
        assert_eq!(diags.paths(), vec!["sources"]);
    }
}
