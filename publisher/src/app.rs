//! Turns a parsed command line into library calls: builds the AWS clients and stores once, runs
//! the command, logs its summary and maps the outcome to the exit code.

use crate::announce::SnsTopic;
use crate::cdn::CloudFront;
use crate::cli::{Cli, Command, PublishArgs, RunArgs, SweepArgs, Topic, UsageError};
use crate::prefix_lists::SyncOptions;
use crate::publish::{publish_once, Announce, Baseline, Lists, Place, Target};
use crate::report;
use crate::run::{run, Cycle};
use crate::store::{FileStore, S3Store, Store, STDOUT};
use crate::sweep::sweep_once;
use allowlist_core::call_log::CallLog;
use allowlist_core::clock::Clock;
use allowlist_core::egress::ALL_REGIONS;
use allowlist_core::prefix_list::PrefixLists;
use allowlist_core::region::{self as regions, RegionFailure};
use allowlist_core::{Aws, AwsSettings};
use tokio::sync::mpsc;

/// Exit codes (README): success, error, bad usage, refused by a guard.
pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// Runs the command; returns the process exit code.
pub async fn execute(cli: &Cli, clock: &dyn Clock) -> u8 {
    let result = match cli.global.aws_settings() {
        Ok(settings) => match &cli.command {
            Command::Publish(args) => publish(args, &settings, clock).await,
            Command::Sweep(args) => sweep(args, &settings, clock).await,
            Command::Run(args) => schedule(args, &settings, clock).await,
        },
        Err(usage) => Err(usage),
    };
    result.unwrap_or_else(|usage| {
        eprintln!("error: {usage}\n\nFor more information, try '--help'.");
        EXIT_USAGE
    })
}

async fn publish(
    args: &PublishArgs,
    settings: &AwsSettings,
    clock: &dyn Clock,
) -> Result<u8, UsageError> {
    let options = args.options()?;
    let topic = args.push.topic()?;
    let sync = args.push.sync(&options)?;
    let aws = Aws::load(settings).await;
    check_bucket_region(&aws, args)?;
    let outputs = Outputs::new(&aws, args, topic, sync);
    let target = outputs.target(args);
    Ok(match publish_once(&aws, &target, clock, &options).await {
        Ok(outcome) => {
            report::published(&outcome, None);
            EXIT_OK
        }
        Err(err) => {
            report::publish_failed(&err, None);
            err.exit_code()
        }
    })
}

async fn sweep(
    args: &SweepArgs,
    settings: &AwsSettings,
    clock: &dyn Clock,
) -> Result<u8, UsageError> {
    let options = args.options()?;
    let aws = Aws::load(settings).await;
    Ok(match sweep_once(&aws, clock, &options).await {
        Ok(outcome) => {
            if options.dry_run {
                if let Err(err) = report::print_dry_run(&outcome) {
                    tracing::error!("writing the listing to stdout failed: {err}");
                    return Ok(EXIT_ERROR);
                }
            }
            let failures = report::swept(&outcome, None);
            if outcome.unknown_regions.is_some() {
                EXIT_USAGE
            } else if failures > 0 {
                EXIT_ERROR
            } else {
                EXIT_OK
            }
        }
        Err(err) => {
            report::sweep_failed(&err, None);
            err.exit_code()
        }
    })
}

async fn schedule(
    args: &RunArgs,
    settings: &AwsSettings,
    clock: &dyn Clock,
) -> Result<u8, UsageError> {
    let publish = args.publish.options()?;
    let topic = args.publish.push.topic()?;
    let sync = args.publish.push.sync(&publish)?;
    let sweep = args.sweep_options()?;
    let aws = Aws::load(settings).await;
    // A misspelt region would fail every cycle forever: check the names once, up front.
    if publish.query.regions.iter().all(|r| r != ALL_REGIONS) {
        let names: Vec<&str> = publish.query.regions.iter().map(String::as_str).collect();
        if let RegionFailure::Unknown(message) = regions::explain(&aws, &names).await {
            return Err(UsageError::new("--regions", message));
        }
    }
    check_bucket_region(&aws, &args.publish)?;
    let outputs = Outputs::new(&aws, &args.publish, topic, sync);
    let target = outputs.target(&args.publish);
    let signals = match StopSignals::listen() {
        Ok(signals) => signals,
        Err(err) => {
            tracing::error!("cannot listen for SIGTERM/SIGINT, so could not stop cleanly: {err}");
            return Ok(EXIT_ERROR);
        }
    };
    let (stop_tx, mut stop_rx) = mpsc::unbounded_channel();
    tokio::spawn(signals.forward(stop_tx));
    tracing::info!(every = %humantime::format_duration(args.every), "running publish and sweep on a schedule");
    let cycle = Cycle {
        aws: &aws,
        target: &target,
        clock,
        publish: &publish,
        sweep: &sweep,
    };
    let outcome = run(cycle, args.every, &mut stop_rx).await;
    Ok(if outcome.abandoned {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}

/// S3 needs the bucket's region; without one every call would fail with an SDK message.
fn check_bucket_region(aws: &Aws, args: &PublishArgs) -> Result<(), UsageError> {
    if args.bucket.is_some() && aws.home_region().is_none() {
        return Err(UsageError::new(
            "--region",
            "no region is set for the bucket: pass --region (or set ALLOWLIST_REGION or \
             AWS_REGION, or a region in the AWS profile)"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Listens for SIGTERM and SIGINT; set up before the loop starts, so a failure to listen is an
/// error at startup rather than a loop that could not be stopped (or stopped at once).
struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Sends one message per signal received, for as long as the receiver lives.
    async fn forward(mut self, stop: mpsc::UnboundedSender<()>) {
        loop {
            let name = tokio::select! {
                _ = self.terminate.recv() => "SIGTERM",
                _ = self.interrupt.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "stop requested");
            if stop.send(()).is_err() {
                return;
            }
        }
    }
}

/// The stores a publish writes to and the places it tells, built once per process.
#[derive(Debug)]
struct Outputs<'a> {
    s3: Option<S3Store>,
    cdn: Option<CloudFront>,
    sns: Option<(SnsTopic, String)>,
    lists: Option<(PrefixLists<'a>, SyncOptions)>,
}

static FILES: FileStore = FileStore;

impl<'a> Outputs<'a> {
    fn new(
        aws: &'a Aws,
        args: &PublishArgs,
        topic: Option<Topic>,
        sync: Option<SyncOptions>,
    ) -> Self {
        let config = aws.config();
        let s3 = args.bucket.as_ref().map(|bucket| {
            let conf = aws_sdk_s3::config::Builder::from(config)
                // Custom endpoints (emulators, S3-compatible stores) rarely have per-bucket DNS.
                .force_path_style(config.endpoint_url().is_some())
                .interceptor(CallLog::new(aws.home_region().unwrap_or("?")))
                .build();
            S3Store::new(aws_sdk_s3::Client::from_conf(conf), bucket.clone())
        });
        let cdn = args.distribution_id.as_ref().map(|id| {
            let conf = aws_sdk_cloudfront::config::Builder::from(config)
                // CloudFront is global; its API lives in us-east-1.
                .region(aws_sdk_cloudfront::config::Region::new("us-east-1"))
                .interceptor(CallLog::new("us-east-1"))
                .build();
            CloudFront::new(aws_sdk_cloudfront::Client::from_conf(conf), id.clone())
        });
        let sns = topic.map(|topic| {
            let conf = aws_sdk_sns::config::Builder::from(config)
                // A topic's API is in the topic's region.
                .region(aws_sdk_sns::config::Region::new(topic.region.clone()))
                .interceptor(CallLog::new(&topic.region))
                .build();
            let client = aws_sdk_sns::Client::from_conf(conf);
            (SnsTopic::new(client, topic.arn), topic.url)
        });
        let lists = sync.map(|sync| (PrefixLists::new(aws), sync));
        Outputs {
            s3,
            cdn,
            sns,
            lists,
        }
    }

    fn target<'b>(&'b self, args: &'b PublishArgs) -> Target<'b> {
        let files: &'b dyn Store = &FILES;
        match (&args.out, &self.s3) {
            // Publish to S3, in place.
            (None, Some(s3)) => Target {
                json: Place {
                    store: s3,
                    key: &args.key,
                },
                text: args.text_key.as_deref().map(|key| Place {
                    store: s3 as &dyn Store,
                    key,
                }),
                baseline: Baseline::Output,
                cdn: self.cdn.as_ref().map(|c| c as &dyn crate::cdn::Cdn),
                announce: self.sns.as_ref().map(|(topic, url)| Announce {
                    announcer: topic,
                    url,
                }),
                prefix_lists: self
                    .lists
                    .as_ref()
                    .map(|(api, options)| Lists { api, options }),
            },
            // Preview: the published object is the baseline, the result goes to a local file.
            (Some(out), Some(s3)) => Target {
                json: Place {
                    store: files,
                    key: out,
                },
                text: args
                    .text_out
                    .as_deref()
                    .map(|key| Place { store: files, key }),
                baseline: Baseline::Elsewhere(Place {
                    store: s3,
                    key: &args.key,
                }),
                cdn: None,
                announce: None,
                prefix_lists: None,
            },
            // A local file, which is its own baseline (stdout has none).
            (Some(out), None) => Target {
                json: Place {
                    store: files,
                    key: out,
                },
                text: args
                    .text_out
                    .as_deref()
                    .map(|key| Place { store: files, key }),
                baseline: if out == STDOUT {
                    Baseline::Nothing
                } else {
                    Baseline::Output
                },
                cdn: None,
                announce: None,
                prefix_lists: None,
            },
            // clap requires --bucket or --out; treat the impossible case as stdout.
            (None, None) => Target {
                json: Place {
                    store: files,
                    key: STDOUT,
                },
                text: None,
                baseline: Baseline::Nothing,
                cdn: None,
                announce: None,
                prefix_lists: None,
            },
        }
    }
}
