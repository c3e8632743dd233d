//! What each command does, given the parsed command line and the clock; returns the exit code.

use crate::api::Service;
use crate::cli::{Cli, ClientArgs, Command, ServerArgs, UsageError};
use crate::gate::AwsGate;
use crate::{client, keys, lambda, serve};
use allowlist_core::clock::Clock;
use allowlist_core::{Aws, AwsSettings};
use std::io::Write;
use std::sync::Arc;

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// Runs the command.
pub async fn execute(cli: &Cli, clock: Arc<dyn Clock>) -> u8 {
    match &cli.command {
        Command::Serve(args) => {
            let tls = match (&args.tls_cert, &args.tls_key) {
                (Some(cert), Some(key)) => match serve::tls_acceptor(cert, key) {
                    Ok(tls) => Some(tls),
                    Err(e) => return usage(&UsageError::new(e.flag, e.message)),
                },
                _ => None,
            };
            let service = match build(cli, &args.server, clock).await {
                Ok(s) => s,
                Err(e) => return usage(&e),
            };
            if let Some(oidc) = service.oidc() {
                // Warm the key cache in the background: the first knock then finds it fetched.
                let service = service.clone();
                let issuer = oidc.issuer().to_owned();
                tokio::spawn(async move {
                    if let Some(oidc) = service.oidc() {
                        oidc.warm().await;
                    }
                    tracing::debug!(%issuer, "key cache warmed");
                });
            }
            match serve::serve(args.listen, tls, service).await {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    tracing::error!(error = %e, "cannot serve");
                    EXIT_ERROR
                }
            }
        }
        Command::Lambda(args) => {
            let service = match build(cli, args, clock).await {
                Ok(s) => s,
                Err(e) => {
                    lambda::report_init_error(&e.to_string()).await;
                    return usage(&e);
                }
            };
            match lambda::run(service).await {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    tracing::error!(error = %e, "the Lambda runtime loop stopped");
                    EXIT_ERROR
                }
            }
        }
        Command::Open(args) => client_command(args, true).await,
        Command::Close(args) => client_command(args, false).await,
        Command::HashKey { name } => {
            let mut key = String::new();
            if std::io::stdin().read_line(&mut key).is_err() || key.trim().is_empty() {
                eprintln!("error: write the key on stdin");
                return EXIT_USAGE;
            }
            let line = format!("{name} = \"{}\"", keys::hash_line(key.trim()));
            print_line(&line)
        }
    }
}

async fn build(
    cli: &Cli,
    args: &ServerArgs,
    clock: Arc<dyn Clock>,
) -> Result<Arc<Service<AwsGate>>, UsageError> {
    let env_region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .ok();
    let region = cli.global.region.clone().or(env_region);
    let settings = args.settings(region.as_deref())?;
    if let Some(url) = &cli.global.endpoint_url {
        allowlist_core::url::check_http(url).map_err(|m| UsageError::new("--endpoint-url", m))?;
    }
    let aws = Aws::load(&AwsSettings {
        region,
        endpoint_url: cli.global.endpoint_url.clone(),
        ..AwsSettings::default()
    })
    .await;
    tracing::info!(
        doors = settings.doors.doors.len(),
        api_keys = settings.keys.is_some(),
        oidc = settings.oidc.as_ref().map(|o| o.issuer()).unwrap_or("none"),
        "configured"
    );
    let gate = AwsGate { aws: Arc::new(aws) };
    Ok(Arc::new(Service::new(settings, clock, gate)))
}

fn usage(e: &UsageError) -> u8 {
    eprintln!("error: {e}");
    EXIT_USAGE
}

async fn client_command(args: &ClientArgs, open: bool) -> u8 {
    if let Err(m) = allowlist_core::url::check_http(&args.url) {
        return usage(&UsageError::new("--url", m));
    }
    let credential = match client::credential(args.token_command.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    match client::knock(
        &args.url,
        &args.door,
        &credential,
        open,
        args.ttl.as_deref(),
    )
    .await
    {
        Ok(grant) if open => print_line(&serde_json::to_string_pretty(&grant).unwrap_or_default()),
        Ok(_) => {
            eprintln!("closed door {:?}", args.door);
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_ERROR
        }
    }
}

fn print_line(line: &str) -> u8 {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}") {
        Ok(()) => EXIT_OK,
        Err(_) => EXIT_ERROR,
    }
}
