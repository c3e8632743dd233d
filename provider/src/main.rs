//! `terraform-provider-allowlist`: a Terraform provider process, started by Terraform.
//!
//! Run by hand it prints go-plugin's "this binary is a plugin" message and exits 1.

use allowlist_core::clock::SystemClock;
use std::process::ExitCode;
use std::sync::Arc;
use terraform_provider_allowlist::{provider, tfplugin};

/// Log lines say `allowlist.<module>`; our crates log at any level Terraform asks for, and
/// dependencies (AWS SDK, HTTP, TLS) at most at INFO.
const LOG_SOURCE: tfplugin::log::Source = tfplugin::log::Source {
    name: "allowlist",
    own_targets: &["terraform_provider_allowlist", "allowlist_core"],
};

fn main() -> ExitCode {
    if let Err(err) = tfplugin::handshake::check_cookie() {
        eprintln!("{err}");
        return ExitCode::from(1);
    }
    tfplugin::log::init(LOG_SOURCE);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("terraform-provider-allowlist: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let clock = match SystemClock::from_env() {
        Ok(clock) => clock,
        Err(err) => {
            eprintln!("terraform-provider-allowlist: {err}");
            return ExitCode::from(1);
        }
    };
    let provider = provider::AllowlistProvider::new(Arc::new(clock));
    let result = runtime.block_on(tfplugin::handshake::serve(provider));
    let code = match result {
        Ok(()) => 0,
        Err(err) => {
            tracing::error!(error = %err, "provider failed");
            eprintln!("terraform-provider-allowlist: {err}");
            1
        }
    };
    // Exit at once: Terraform waits for the process to end after Shutdown, and connections it
    // still holds open must not delay that.
    std::process::exit(code)
}
