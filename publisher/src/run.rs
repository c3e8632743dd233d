//! `run`: publish then sweep on a fixed schedule in one process, until asked to stop.
//!
//! Cycles are independent: a failed cycle is logged and the next tick tries again. A stop request
//! (SIGTERM/SIGINT) between cycles ends the loop at once; during a cycle it lets the cycle finish
//! (its AWS calls are bounded by timeouts), and a second request abandons it.

use crate::publish::{publish_once, PublishOptions, Target};
use crate::report;
use crate::sweep::{sweep_once, SweepOptions};
use allowlist_core::clock::Clock;
use allowlist_core::Aws;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::MissedTickBehavior;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    /// Cycles started.
    pub cycles: u64,
    /// Cycles in which publish or sweep failed.
    pub failed_cycles: u64,
    /// True when a second stop request abandoned a cycle.
    pub abandoned: bool,
}

/// Everything one cycle needs.
#[derive(Debug, Clone, Copy)]
pub struct Cycle<'a> {
    pub aws: &'a Aws,
    pub target: &'a Target<'a>,
    pub clock: &'a dyn Clock,
    pub publish: &'a PublishOptions,
    pub sweep: &'a SweepOptions,
}

impl Cycle<'_> {
    /// One publish and one sweep, each logged with its summary or error. True when both succeed.
    pub async fn once(&self, number: u64) -> bool {
        let published = match publish_once(self.aws, self.target, self.clock, self.publish).await {
            Ok(outcome) => {
                report::published(&outcome, Some(number));
                true
            }
            Err(err) => {
                report::publish_failed(&err, Some(number));
                false
            }
        };
        let swept = match sweep_once(self.aws, self.clock, self.sweep).await {
            Ok(outcome) => report::swept(&outcome, Some(number)) == 0,
            Err(err) => {
                report::sweep_failed(&err, Some(number));
                false
            }
        };
        published && swept
    }
}

/// Runs a cycle every `every` (the first at once) until `stop` yields or closes.
pub async fn run(
    cycle: Cycle<'_>,
    every: Duration,
    stop: &mut UnboundedReceiver<()>,
) -> RunOutcome {
    let mut ticker = tokio::time::interval(every);
    // A cycle longer than `every` delays the next one instead of bunching them up.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut outcome = RunOutcome {
        cycles: 0,
        failed_cycles: 0,
        abandoned: false,
    };
    loop {
        tokio::select! {
            biased;
            _ = stop.recv() => break,
            _ = ticker.tick() => {}
        }
        outcome.cycles += 1;
        let number = outcome.cycles;
        let work = cycle.once(number);
        tokio::pin!(work);
        let (ok, stop_after) = tokio::select! {
            ok = &mut work => (ok, false),
            _ = stop.recv() => {
                tracing::info!(cycle = number, "stop requested: finishing the current cycle (send it again to abandon it)");
                let finished = tokio::select! {
                    ok = &mut work => Some(ok),
                    _ = stop.recv() => None,
                };
                match finished {
                    Some(ok) => (ok, true),
                    None => {
                        tracing::warn!(cycle = number, "stop requested again: abandoning the current cycle");
                        outcome.abandoned = true;
                        outcome.failed_cycles += 1;
                        return outcome;
                    }
                }
            }
        };
        if stop_after {
            if !ok {
                outcome.failed_cycles += 1;
            }
            break;
        }
        if !ok {
            outcome.failed_cycles += 1;
            tracing::warn!(cycle = number, next_in = %humantime::format_duration(every), "cycle failed; trying again at the next tick");
        }
    }
    tracing::info!(
        cycles = outcome.cycles,
        failed = outcome.failed_cycles,
        "stopped"
    );
    outcome
}
