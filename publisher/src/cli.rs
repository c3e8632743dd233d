//! The command line: clap parses the flags (each also read from an `ALLOWLIST_…` variable), then
//! [`PublishArgs::options`] and friends check them into the options the library functions take.
//! Both steps report a bad value naming its flag, and both end in exit code 2.

use crate::prefix_lists::SyncOptions;
use crate::publish::PublishOptions;
use crate::sweep::SweepOptions;
use allowlist_core::accounts::{self, Accounts, AssumeRole, Organization};
use allowlist_core::duration;
use allowlist_core::egress::{
    check_requested_regions, EgressQuery, Filter, FilterProblem, LookupError, Source, ALL_REGIONS,
};
use allowlist_core::logging::{LogFormat, LogLevel};
use allowlist_core::prefix_list::PrefixListRef;
use allowlist_core::AwsSettings;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::time::Duration;

/// The shortest `--every`.
pub const MIN_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Parser)]
#[command(
    name = "allowlist-publisher",
    version,
    about = "Publish NAT gateway egress IPs as a static ip-ranges.json, and sweep expired temporary ingress",
    long_about = "Publish NAT gateway egress IPs as a static ip-ranges.json (AWS's ip-ranges schema) \
                  and a plain-text list on S3 behind CloudFront, and sweep expired \
                  allowlist_temporary_ingress rules.\n\n\
                  Every flag also reads the ALLOWLIST_... environment variable shown. AWS \
                  credentials come from the SDK's usual sources (environment, profile, SSO, \
                  instance/task role).\n\n\
                  Exit codes: 0 success, 1 error, 2 bad usage, 3 refused by a guard."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes, before or after the command name.
#[derive(Debug, Args)]
pub struct Global {
    /// Home region: the S3 bucket's region, and where DescribeRegions is asked [default: the
    /// SDK's, from AWS_REGION or the profile]
    #[arg(long, global = true, env = "ALLOWLIST_REGION", value_name = "REGION")]
    pub region: Option<String>,
    /// Named profile from the shared AWS config files [default: the SDK's, from AWS_PROFILE]
    #[arg(long, global = true, env = "ALLOWLIST_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// Custom endpoint for every AWS service, e.g. a local emulator (S3 then uses path-style
    /// addressing) [default: the SDK's, from AWS_ENDPOINT_URL]
    #[arg(
        long,
        global = true,
        env = "ALLOWLIST_ENDPOINT_URL",
        value_name = "URL"
    )]
    pub endpoint_url: Option<String>,
    /// Time allowed for one AWS call, retries and backoff included (throttling and server errors
    /// are retried within it; one attempt gets at most 20s), e.g. 30s or 2m
    #[arg(long, global = true, env = "ALLOWLIST_REQUEST_TIMEOUT", value_name = "DURATION", default_value = "60s", allow_hyphen_values = true, value_parser = parse_timeout)]
    pub request_timeout: Duration,
    /// Log format on stderr: human lines, or one JSON object per line (CloudWatch)
    #[arg(long, global = true, env = "ALLOWLIST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Most detailed log level shown
    #[arg(long, global = true, env = "ALLOWLIST_LOG_LEVEL", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Look up the egress IPs and publish them; writes only when the prefix set changed
    Publish(PublishArgs),
    /// Revoke temporary ingress rules whose allowlist:expires-at has passed
    Sweep(SweepArgs),
    /// Publish, then sweep, every --every, until SIGTERM or SIGINT
    Run(RunArgs),
}

/// Which regions to look in.
#[derive(Debug, Args)]
pub struct RegionsArg {
    /// Regions to look in, comma-separated or repeated; "all" means every region enabled for
    /// the account
    #[arg(
        long,
        env = "ALLOWLIST_REGIONS",
        value_delimiter = ',',
        default_value = ALL_REGIONS,
        value_name = "REGIONS"
    )]
    pub regions: Vec<String>,
}

impl Global {
    /// Where AWS is, checked: a bad `--endpoint-url` is a usage error naming the flag (checked
    /// here rather than by clap, whose message would echo the value with any credentials in it).
    pub fn aws_settings(&self) -> Result<AwsSettings, UsageError> {
        if let Some(url) = &self.endpoint_url {
            allowlist_core::url::check_http(url)
                .map_err(|message| UsageError::new("--endpoint-url", message))?;
        }
        Ok(AwsSettings {
            region: self.region.clone(),
            profile: self.profile.clone(),
            endpoint_url: self.endpoint_url.clone(),
            request_timeout: Some(self.request_timeout),
            assume_role: None,
        })
    }
}

/// Which accounts to look in (publish) or sweep: the publisher's own, assumed roles, or every
/// account of the organization.
#[derive(Debug, Args)]
pub struct AccountArgs {
    /// Role to assume in each account to look in, an IAM role ARN. Repeat or comma-separate;
    /// one AssumeRole per role per process
    #[arg(
        long = "assume-role",
        env = "ALLOWLIST_ASSUME_ROLES",
        value_delimiter = ',',
        value_name = "ARN"
    )]
    pub assume_roles: Vec<String>,
    /// External id for the roles of --assume-role and --organization-role
    #[arg(long, env = "ALLOWLIST_EXTERNAL_ID", value_name = "ID")]
    pub external_id: Option<String>,
    /// Look in every ACTIVE account of the organization through the role of this name in each
    /// (needs the management account or a delegated administrator)
    #[arg(
        long,
        env = "ALLOWLIST_ORGANIZATION_ROLE",
        value_name = "NAME",
        conflicts_with = "assume_roles"
    )]
    pub organization_role: Option<String>,
    /// Account id to leave out of --organization-role. Repeat or comma-separate
    #[arg(
        long = "exclude-account",
        env = "ALLOWLIST_EXCLUDE_ACCOUNTS",
        value_delimiter = ',',
        value_name = "ID",
        requires = "organization_role"
    )]
    pub exclude_accounts: Vec<String>,
    /// Also look in the account of the publisher's own credentials (always, without
    /// --assume-role and --organization-role)
    #[arg(long, env = "ALLOWLIST_INCLUDE_CURRENT_ACCOUNT")]
    pub include_current_account: bool,
}

impl AccountArgs {
    /// The accounts, each role ARN and account id checked.
    pub fn accounts(&self) -> Result<Accounts, UsageError> {
        if let Some(id) = &self.external_id {
            accounts::check_external_id(id).map_err(|m| UsageError::new("--external-id", m))?;
        }
        let mut seen = std::collections::HashSet::new();
        let mut roles = Vec::new();
        for arn in &self.assume_roles {
            let account = accounts::check_role_arn(arn.trim())
                .map_err(|m| UsageError::new("--assume-role", m))?;
            if !seen.insert(account.to_owned()) {
                return Err(UsageError::new(
                    "--assume-role",
                    format!("account {account} is given twice; give one role per account"),
                ));
            }
            roles.push(AssumeRole {
                external_id: self.external_id.clone(),
                ..AssumeRole::new(arn.trim())
            });
        }
        let organization = match &self.organization_role {
            None => None,
            Some(name) => {
                accounts::check_role_name(name)
                    .map_err(|m| UsageError::new("--organization-role", m))?;
                for id in &self.exclude_accounts {
                    accounts::check_account_id(id)
                        .map_err(|m| UsageError::new("--exclude-account", m))?;
                }
                Some(Organization {
                    role_name: name.clone(),
                    exclude: self.exclude_accounts.clone(),
                    external_id: self.external_id.clone(),
                })
            }
        };
        let others = !roles.is_empty() || organization.is_some();
        Ok(Accounts {
            current: accounts::include_current_account(
                self.include_current_account.then_some(true),
                others,
            ),
            roles,
            organization,
        })
    }
}

/// Where egress addresses come from, as flags name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    NatGateway,
    ElasticIp,
}

impl From<SourceArg> for Source {
    fn from(arg: SourceArg) -> Source {
        match arg {
            SourceArg::NatGateway => Source::NatGateway,
            SourceArg::ElasticIp => Source::ElasticIp,
        }
    }
}

impl RegionsArg {
    /// The region list, each name checked for shape ("all" alone, or region names).
    pub fn checked(&self) -> Result<Vec<String>, UsageError> {
        check_requested_regions(&self.regions).map_err(|err| {
            let message = match err {
                LookupError::NoRegions => "give at least one region, or \"all\"".to_owned(),
                other => other.to_string(),
            };
            UsageError::new("--regions", message)
        })
    }
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("destination")
        .args(["bucket", "out"])
        .required(true)
        .multiple(true)
))]
pub struct PublishArgs {
    #[command(flatten)]
    pub regions: RegionsArg,
    /// NAT gateway (and Elastic IP) tag to match, KEY=VALUE; values may use * and ? wildcards. Repeat or
    /// comma-separate for several (all must match)
    #[arg(long = "tag", env = "ALLOWLIST_TAGS", value_delimiter = ',', value_parser = parse_tag, value_name = "KEY=VALUE")]
    pub tags: Vec<(String, String)>,
    /// Raw DescribeNatGateways filter, NAME=V1,V2 (vpc-id, subnet-id, nat-gateway-id, tag-key,
    /// tag:<key>). Repeat for several; in the environment variable separate them with ';'
    #[arg(long = "filter", env = "ALLOWLIST_FILTERS", value_delimiter = ';', value_parser = parse_filter, value_name = "NAME=V1,V2")]
    pub filters: Vec<Filter>,
    /// Where egress addresses come from: NAT gateways, and/or Elastic IPs carrying the --tag
    /// tags (associated or not). Repeat or comma-separate
    #[arg(
        long = "source",
        env = "ALLOWLIST_SOURCES",
        value_enum,
        value_delimiter = ',',
        default_value = "nat-gateway",
        value_name = "SOURCES"
    )]
    pub sources: Vec<SourceArg>,
    #[command(flatten)]
    pub accounts: AccountArgs,
    /// S3 bucket to publish to
    #[arg(
        long,
        env = "ALLOWLIST_BUCKET",
        value_name = "NAME",
        required_unless_present = "out"
    )]
    pub bucket: Option<String>,
    /// Object key of the JSON document
    #[arg(
        long,
        env = "ALLOWLIST_KEY",
        value_name = "KEY",
        default_value = "ip-ranges.json"
    )]
    pub key: String,
    /// Object key of the plain-text list (one CIDR per line), written next to the document
    #[arg(long, env = "ALLOWLIST_TEXT_KEY", value_name = "KEY")]
    pub text_key: Option<String>,
    /// Cache-Control of the objects written
    #[arg(
        long,
        env = "ALLOWLIST_CACHE_CONTROL",
        value_name = "VALUE",
        default_value = "public, max-age=300"
    )]
    pub cache_control: String,
    /// CloudFront distribution to invalidate (the written paths) after a change
    #[arg(
        long,
        env = "ALLOWLIST_DISTRIBUTION_ID",
        value_name = "ID",
        requires = "bucket"
    )]
    pub distribution_id: Option<String>,
    /// Write the JSON document to this local file ("-" for stdout) instead of S3. With --bucket
    /// too, the published object is only read: a preview
    #[arg(long, env = "ALLOWLIST_OUT", value_name = "FILE|-")]
    pub out: Option<String>,
    /// Write the plain-text list to this local file ("-" for stdout)
    #[arg(
        long,
        env = "ALLOWLIST_TEXT_OUT",
        value_name = "FILE|-",
        requires = "out"
    )]
    pub text_out: Option<String>,
    /// The service field of every prefix
    #[arg(long, env = "ALLOWLIST_SERVICE", value_name = "NAME", default_value = allowlist_core::document::DEFAULT_SERVICE)]
    pub service: String,
    /// Refuse (exit 3) to publish fewer prefixes than this
    #[arg(
        long,
        env = "ALLOWLIST_MIN_COUNT",
        value_name = "N",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    pub min_count: usize,
    /// Refuse (exit 3) to publish a list that lost more than this percentage of the published
    /// prefixes
    #[arg(
        long,
        env = "ALLOWLIST_MAX_SHRINK",
        value_name = "PERCENT",
        default_value_t = 50,
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(u8).range(0..=100)
    )]
    pub max_shrink: u8,
    /// Publish despite --min-count, --max-shrink or an unreadable published document (never
    /// despite a failed region)
    #[arg(long, env = "ALLOWLIST_FORCE")]
    pub force: bool,
    #[command(flatten)]
    pub push: PushArgs,
}

/// Telling others about a change: SNS and managed prefix lists (S3 publishing only).
#[derive(Debug, Args)]
pub struct PushArgs {
    /// SNS topic to announce every change on: one message per change, body
    /// {"create-time","synctoken","md5","url"} as AWS's AmazonIpSpaceChanged. Needs --public-url
    #[arg(
        long,
        env = "ALLOWLIST_SNS_TOPIC_ARN",
        value_name = "ARN",
        requires = "public_url",
        requires = "bucket",
        conflicts_with = "out"
    )]
    pub sns_topic_arn: Option<String>,
    /// Address customers fetch the document at: the announcement's url (e.g.
    /// https://ips.example.com/ip-ranges.json)
    #[arg(long, env = "ALLOWLIST_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Managed prefix list to keep equal to the published prefixes of its address family,
    /// REGION=pl-ID. Repeat or comma-separate for several
    #[arg(
        long = "prefix-list",
        env = "ALLOWLIST_PREFIX_LISTS",
        value_delimiter = ',',
        value_parser = parse_prefix_list,
        value_name = "REGION=pl-ID",
        requires = "bucket",
        conflicts_with = "out"
    )]
    pub prefix_lists: Vec<PrefixListRef>,
    /// Raise a prefix list's MaxEntries when the published set outgrows it. Every security
    /// group rule that references the list counts as MaxEntries rules against the group's quota
    #[arg(long, env = "ALLOWLIST_PREFIX_LIST_GROW", requires = "prefix_lists")]
    pub prefix_list_grow: bool,
}

/// `--sns-topic-arn` checked: the topic and the region its API is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub arn: String,
    pub region: String,
    /// `--public-url`.
    pub url: String,
}

impl PushArgs {
    /// The checked topic, if one is given.
    pub fn topic(&self) -> Result<Option<Topic>, UsageError> {
        let Some(arn) = &self.sns_topic_arn else {
            return Ok(None);
        };
        let arn = arn.trim();
        let region = crate::announce::topic_region(arn).ok_or_else(|| {
            UsageError::new(
                "--sns-topic-arn",
                format!("{arn:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"),
            )
        })?;
        let url = self.public_url.as_deref().unwrap_or_default().trim();
        allowlist_core::url::check_http(url)
            .map_err(|message| UsageError::new("--public-url", message))?;
        Ok(Some(Topic {
            arn: arn.to_owned(),
            region: region.to_owned(),
            url: url.to_owned(),
        }))
    }

    /// The checked prefix-list sync, if lists are given; `publish` supplies its guards.
    pub fn sync(&self, options: &PublishOptions) -> Result<Option<SyncOptions>, UsageError> {
        if self.prefix_lists.is_empty() {
            return Ok(None);
        }
        let mut lists: Vec<PrefixListRef> = Vec::new();
        for list in &self.prefix_lists {
            if lists.iter().any(|l| l.id == list.id) {
                return Err(UsageError::new(
                    "--prefix-list",
                    format!("{} is given twice", list.id),
                ));
            }
            lists.push(list.clone());
        }
        Ok(Some(SyncOptions {
            lists,
            grow: self.prefix_list_grow,
            max_shrink: options.max_shrink,
            force: options.force,
        }))
    }
}

impl PublishArgs {
    /// The checked lookup and guard options.
    pub fn options(&self) -> Result<PublishOptions, UsageError> {
        let mut tags = BTreeMap::new();
        for (key, value) in &self.tags {
            if tags.insert(key.clone(), value.clone()).is_some() {
                return Err(UsageError::new(
                    "--tag",
                    format!("the tag key {key:?} is given twice; a gateway has one value per key"),
                ));
            }
        }
        for (flag, value) in [
            ("--key", Some(&self.key)),
            ("--text-key", self.text_key.as_ref()),
            ("--bucket", self.bucket.as_ref()),
            ("--service", Some(&self.service)),
            ("--cache-control", Some(&self.cache_control)),
            ("--out", self.out.as_ref()),
            ("--text-out", self.text_out.as_ref()),
        ] {
            if value.is_some_and(|v| v.trim().is_empty()) {
                return Err(UsageError::new(flag, "must not be empty".to_owned()));
            }
        }
        if self.text_key.is_some() && self.text_key.as_deref() == Some(self.key.as_str()) {
            return Err(UsageError::new(
                "--text-key",
                "must differ from --key".to_owned(),
            ));
        }
        Ok(PublishOptions {
            query: EgressQuery {
                regions: self.regions.checked()?,
                tags,
                filters: self.filters.clone(),
                sources: self.sources.iter().map(|&s| s.into()).collect(),
                accounts: self.accounts.accounts()?,
            },
            service: self.service.clone(),
            min_count: self.min_count,
            max_shrink: self.max_shrink,
            force: self.force,
            cache_control: self.cache_control.clone(),
        })
    }
}

/// Sweep flags shared by `sweep` and `run`.
#[derive(Debug, Args)]
pub struct SweepTiming {
    /// Only revoke rules expired for longer than this (a margin for clock skew), e.g. 2m
    #[arg(long, env = "ALLOWLIST_GRACE", value_name = "DURATION", default_value = "0s", allow_hyphen_values = true, value_parser = parse_grace)]
    pub grace: Duration,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub regions: RegionsArg,
    #[command(flatten)]
    pub timing: SweepTiming,
    #[command(flatten)]
    pub accounts: AccountArgs,
    /// List the rules that would be revoked, on stdout, and revoke nothing
    #[arg(long, env = "ALLOWLIST_DRY_RUN")]
    pub dry_run: bool,
}

impl SweepArgs {
    pub fn options(&self) -> Result<SweepOptions, UsageError> {
        Ok(SweepOptions {
            regions: self.regions.checked()?,
            accounts: self.accounts.accounts()?,
            grace: self.timing.grace,
            dry_run: self.dry_run,
        })
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub publish: PublishArgs,
    #[command(flatten)]
    pub timing: SweepTiming,
    /// Time between the starts of two cycles, e.g. 30s, 5m, 1h (at least 1s)
    #[arg(long, env = "ALLOWLIST_EVERY", value_name = "DURATION", default_value = "5m", allow_hyphen_values = true, value_parser = parse_every)]
    pub every: Duration,
}

impl RunArgs {
    /// The sweep half of a cycle: the same accounts and regions as the publish half.
    pub fn sweep_options(&self) -> Result<SweepOptions, UsageError> {
        Ok(SweepOptions {
            regions: self.publish.regions.checked()?,
            accounts: self.publish.accounts.accounts()?,
            grace: self.timing.grace,
            dry_run: false,
        })
    }
}

/// A flag with a bad value, found after clap's parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct UsageError {
    pub flag: &'static str,
    pub message: String,
}

impl UsageError {
    pub fn new(flag: &'static str, message: String) -> Self {
        UsageError { flag, message }
    }
}

fn parse_prefix_list(s: &str) -> Result<PrefixListRef, String> {
    PrefixListRef::parse(s)
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected KEY=VALUE (e.g. Name=*proxy*), got {s:?}")),
    }
}

fn parse_filter(s: &str) -> Result<Filter, String> {
    let (name, values) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=V1,V2 (e.g. vpc-id=vpc-0abc), got {s:?}"))?;
    let filter = Filter {
        name: name.trim().to_owned(),
        values: values.split(',').map(str::to_owned).collect(),
    };
    filter.check().map_err(|p| match p {
        FilterProblem::Name(m) | FilterProblem::Values(m) => m,
    })?;
    Ok(filter)
}

/// A flag's duration, through core's one parser and cap (surrounding blanks ignored).
fn parse_duration(s: &str) -> Result<Duration, String> {
    duration::parse(s.trim()).map_err(|e| e.to_string())
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    duration::parse_positive(s.trim()).map_err(|e| e.to_string())
}

fn parse_grace(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

fn parse_every(s: &str) -> Result<Duration, String> {
    let every = parse_duration(s)?;
    if every < MIN_EVERY {
        return Err(format!("must be at least {}", duration::format(MIN_EVERY)));
    }
    Ok(every)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut argv = vec!["allowlist-publisher"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
    }

    fn publish(args: &[&str]) -> PublishArgs {
        let mut argv = vec!["publish"];
        argv.extend_from_slice(args);
        match parse(&argv).unwrap().command {
            Command::Publish(p) => p,
            other => panic!("not publish: {other:?}"),
        }
    }

    /// The message of a parse error, which must name `flag`, and its exit code.
    fn refused(args: &[&str], flag: &str) {
        let err = parse(args).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        assert!(err.to_string().contains(flag), "{flag} not named in: {err}");
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn publish_defaults_and_lists() {
        let args = publish(&[
            "--bucket",
            "b",
            "--regions",
            "us-east-1,eu-west-1",
            "--regions",
            "us-east-1",
            "--tag",
            "Name=*proxy*,env=prod",
            "--filter",
            "vpc-id=vpc-1,vpc-2",
        ]);
        let options = args.options().unwrap();
        assert_eq!(options.query.regions, ["us-east-1", "eu-west-1"]);
        assert_eq!(options.query.tags["Name"], "*proxy*");
        assert_eq!(options.query.tags["env"], "prod");
        assert_eq!(options.query.filters[0].values, ["vpc-1", "vpc-2"]);
        assert_eq!(options.min_count, 1);
        assert_eq!(options.max_shrink, 50);
        assert_eq!(options.service, "EGRESS");
        assert_eq!(options.cache_control, "public, max-age=300");
        assert_eq!(args.key, "ip-ranges.json");
        assert_eq!(publish(&["--out", "-"]).regions.regions, ["all"]);
    }

    #[test]
    fn bad_values_name_their_flag() {
        refused(
            &["publish", "--bucket", "b", "--max-shrink", "150"],
            "--max-shrink",
        );
        refused(
            &["publish", "--bucket", "b", "--min-count", "-1"],
            "--min-count",
        );
        refused(&["publish", "--bucket", "b", "--tag", "novalue"], "--tag");
        refused(
            &["publish", "--bucket", "b", "--filter", "state=available"],
            "--filter",
        );
        refused(&["publish"], "--bucket");
        refused(&["publish"], "--out");
        refused(&["run"], "--out");
        refused(
            &["publish", "--out", "-", "--distribution-id", "E1"],
            "--bucket",
        );
        refused(&["run", "--bucket", "b", "--every", "0s"], "--every");
        refused(&["run", "--bucket", "b", "--every", "soon"], "--every");
        refused(&["sweep", "--grace", "-5m"], "--grace");
        refused(
            &["publish", "--bucket", "b", "--log-format", "xml"],
            "--log-format",
        );
    }

    #[test]
    fn checked_values_name_their_flag() {
        let err = publish(&["--bucket", "b", "--regions", "us-east-1,all"])
            .options()
            .unwrap_err();
        assert_eq!(err.flag, "--regions");
        let err = publish(&["--bucket", "b", "--regions", "US_EAST"])
            .options()
            .unwrap_err();
        assert_eq!(err.flag, "--regions");
        let err = publish(&["--bucket", "b", "--tag", "env=a", "--tag", "env=b"])
            .options()
            .unwrap_err();
        assert_eq!(err.flag, "--tag");
        let err = publish(&["--bucket", "b", "--text-key", "ip-ranges.json"])
            .options()
            .unwrap_err();
        assert_eq!(err.flag, "--text-key");
        let err = publish(&["--bucket", "", "--key", "k"])
            .options()
            .unwrap_err();
        assert_eq!(err.flag, "--bucket");
    }

    #[test]
    fn account_and_source_flags() {
        const A: &str = "arn:aws:iam::222222222222:role/reader";
        const B: &str = "arn:aws:iam::333333333333:role/reader";
        let both = format!("{A},{B}");
        let options = publish(&["--out", "-", "--assume-role", &both, "--external-id", "x-1"])
            .options()
            .unwrap();
        let accounts = options.query.accounts;
        assert!(
            !accounts.current,
            "other accounts named: the current one only on request"
        );
        assert_eq!(accounts.roles.len(), 2);
        assert_eq!(accounts.roles[1].external_id.as_deref(), Some("x-1"));
        let with_current = publish(&[
            "--out",
            "-",
            "--assume-role",
            A,
            "--include-current-account",
        ]);
        assert!(with_current.options().unwrap().query.accounts.current);
        let plain = publish(&["--out", "-"]).options().unwrap().query;
        assert_eq!(plain.accounts, Accounts::default());
        assert_eq!(plain.sources, EgressQuery::default().sources);
        let eips = publish(&["--out", "-", "--source", "nat-gateway,elastic-ip"]);
        assert_eq!(eips.options().unwrap().query.sources.len(), 2);
        let org = publish(&[
            "--out",
            "-",
            "--organization-role",
            "reader",
            "--exclude-account",
            "444444444444",
        ])
        .options()
        .unwrap()
        .query
        .accounts;
        assert_eq!(
            org.organization.map(|o| o.exclude),
            Some(vec!["444444444444".to_owned()])
        );
        for (args, flag) in [
            (
                vec!["--assume-role", "arn:aws:iam::2:role/r"],
                "--assume-role",
            ),
            (
                vec!["--assume-role", A, "--assume-role", A],
                "--assume-role",
            ),
            (
                vec!["--assume-role", A, "--external-id", "x"],
                "--external-id",
            ),
            (vec!["--organization-role", "a/b"], "--organization-role"),
        ] {
            let mut argv = vec!["--out", "-"];
            argv.extend(args);
            assert_eq!(publish(&argv).options().unwrap_err().flag, flag);
        }
        refused(&["publish", "--out", "-", "--source", "eip"], "--source");
        refused(
            &["publish", "--out", "-", "--exclude-account", "444444444444"],
            "--organization-role",
        );
        let Command::Sweep(sweep) = parse(&["sweep", "--assume-role", A]).unwrap().command else {
            panic!("not sweep")
        };
        assert_eq!(sweep.options().unwrap().accounts.roles.len(), 1);
    }

    #[test]
    fn push_flags() {
        let args = publish(&[
            "--bucket",
            "b",
            "--sns-topic-arn",
            "arn:aws:sns:eu-west-1:123456789012:ip-ranges",
            "--public-url",
            "https://ips.example.com/ip-ranges.json",
            "--prefix-list",
            "us-east-1=pl-0a1b,eu-west-1=pl-0c2d",
            "--prefix-list",
            "us-west-2=pl-0e3f",
            "--prefix-list-grow",
        ]);
        let topic = args.push.topic().unwrap().unwrap();
        assert_eq!(topic.region, "eu-west-1");
        assert_eq!(topic.url, "https://ips.example.com/ip-ranges.json");
        let sync = args.push.sync(&args.options().unwrap()).unwrap().unwrap();
        assert_eq!(
            sync.lists
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "us-east-1=pl-0a1b",
                "eu-west-1=pl-0c2d",
                "us-west-2=pl-0e3f"
            ]
        );
        assert!(sync.grow);
        assert_eq!((sync.max_shrink, sync.force), (50, false));
        let none = publish(&["--bucket", "b"]);
        assert_eq!(none.push.topic().unwrap(), None);
        assert_eq!(none.push.sync(&none.options().unwrap()).unwrap(), None);
    }

    #[test]
    fn push_flags_name_themselves_when_wrong() {
        let topic = "arn:aws:sns:eu-west-1:123456789012:t";
        refused(
            &["publish", "--bucket", "b", "--sns-topic-arn", topic],
            "--public-url",
        );
        refused(
            &[
                "publish",
                "--out",
                "-",
                "--sns-topic-arn",
                topic,
                "--public-url",
                "https://x",
            ],
            "--sns-topic-arn",
        );
        refused(
            &["publish", "--bucket", "b", "--prefix-list", "pl-0a1b"],
            "--prefix-list",
        );
        refused(
            &["publish", "--out", "f", "--prefix-list", "us-east-1=pl-1"],
            "--prefix-list",
        );
        refused(
            &["publish", "--bucket", "b", "--prefix-list-grow"],
            "--prefix-list",
        );
        let args = publish(&[
            "--bucket",
            "b",
            "--sns-topic-arn",
            "my-topic",
            "--public-url",
            "https://x",
        ]);
        assert_eq!(args.push.topic().unwrap_err().flag, "--sns-topic-arn");
        let args = publish(&[
            "--bucket",
            "b",
            "--sns-topic-arn",
            topic,
            "--public-url",
            "ips.example.com",
        ]);
        assert_eq!(args.push.topic().unwrap_err().flag, "--public-url");
        let args = publish(&[
            "--bucket",
            "b",
            "--prefix-list",
            "us-east-1=pl-1,us-east-1=pl-1",
        ]);
        assert_eq!(
            args.push.sync(&args.options().unwrap()).unwrap_err().flag,
            "--prefix-list"
        );
    }

    #[test]
    fn run_and_sweep_durations() {
        let Command::Run(run) = parse(&["run", "--bucket", "b", "--every", "2s"])
            .unwrap()
            .command
        else {
            panic!("not run")
        };
        assert_eq!(run.every, Duration::from_secs(2));
        assert_eq!(run.timing.grace, Duration::ZERO);
        assert_eq!(run.sweep_options().unwrap().regions, ["all"]);
        let Command::Sweep(sweep) = parse(&["sweep", "--grace", "2m", "--dry-run"])
            .unwrap()
            .command
        else {
            panic!("not sweep")
        };
        let options = sweep.options().unwrap();
        assert_eq!(options.grace, Duration::from_secs(120));
        assert!(options.dry_run);
    }

    #[test]
    fn help_and_version_are_not_errors_of_usage() {
        for args in [
            &["--help"][..],
            &["publish", "--help"],
            &["sweep", "--help"],
            &["run", "--help"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::DisplayHelp, "{args:?}");
            assert_eq!(err.exit_code(), 0);
        }
    }
}
