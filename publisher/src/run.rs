//! `run`: publish then sweep on a fixed schedule in one process, until asked to stop, and sweep
//! again between cycles when a rule it has seen is due to expire.
//!
//! Cycles are independent: a failed cycle is logged and the next tick tries again. Each sweep
//! reports the earliest expiry among the rules it left alone; when that (plus `--grace`) comes
//! before the next tick, the loop wakes for it and sweeps only, so an expired grant is revoked
//! within about a second of its expiry rather than up to `--every` later. [`wake_delay`] decides,
//! from the clock's reading, and bounds it: at most one wake-up per expiry instant, never sooner
//! than [`MIN_WAKE_GAP`] after a sweep, none after a failed listing. A stop request (SIGTERM/SIGINT)
//! between sweeps ends the loop at once; during one it lets it finish (its AWS calls are bounded by
//! timeouts), and a second request abandons it.

use crate::publish::{publish_once, PublishOptions, Target};
use crate::report;
use crate::sweep::{sweep_once, SweepOptions};
use allowlist_core::clock::{format_instant, Clock};
use allowlist_core::Aws;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{Instant, MissedTickBehavior};

/// The shortest time from the end of one sweep to a wake-up sweep: however many rules expire one
/// after another, and whatever the clock does, `run` lists the rules at most about once a second.
pub const MIN_WAKE_GAP: Duration = Duration::from_secs(1);

/// How long after a rule is due the wake-up comes, so that the sweep's clock surely reads past
/// the rule's expiry (tags hold whole seconds; timers and clocks round).
pub const WAKE_SLACK: Duration = Duration::from_millis(50);

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    /// Cycles started.
    pub cycles: u64,
    /// Cycles in which publish or sweep failed.
    pub failed_cycles: u64,
    /// Sweeps started between cycles, for an expiry.
    pub wakes: u64,
    /// True when a second stop request abandoned a cycle or a wake-up sweep.
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

/// What one cycle or wake-up sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// True when everything it tried succeeded.
    pub ok: bool,
    /// The earliest expiry among our rules the sweep left alone (None if it listed none, or could
    /// not list).
    pub next_expiry: Option<SystemTime>,
}

impl Cycle<'_> {
    /// One publish and one sweep, each logged with its summary or error.
    pub async fn once(&self, number: u64) -> Pass {
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
        let swept = self.sweep_only(number).await;
        Pass {
            ok: published && swept.ok,
            ..swept
        }
    }

    /// One sweep, logged with its summary (under the number of the cycle it follows) or error.
    pub async fn sweep_only(&self, number: u64) -> Pass {
        match sweep_once(self.aws, self.clock, self.sweep).await {
            Ok(outcome) => Pass {
                ok: report::swept(&outcome, Some(number)) == 0,
                next_expiry: outcome.next_expiry(),
            },
            Err(err) => {
                report::sweep_failed(&err, Some(number));
                Pass {
                    ok: false,
                    next_expiry: None,
                }
            }
        }
    }
}

/// How long to wait before sweeping again for `next_expiry`, or None when there is nothing to
/// wake for before the next tick (which sweeps anyway).
///
/// `now` is the clock's reading after the sweep, `until_tick` the time left until the next
/// scheduled cycle. A rule expiring at `t` is revoked by a sweep whose clock reads at least
/// `t + grace`; the wait is at least [`MIN_WAKE_GAP`], so an expiry already passed (a rule the
/// sweep just missed, a clock that jumped) costs one sweep a second at most, never a busy loop.
pub fn wake_delay(
    now: SystemTime,
    next_expiry: Option<SystemTime>,
    grace: Duration,
    until_tick: Duration,
) -> Option<Duration> {
    let due = next_expiry?.checked_add(grace)?;
    let wait = due
        .duration_since(now)
        .unwrap_or(Duration::ZERO)
        .saturating_add(WAKE_SLACK)
        .max(MIN_WAKE_GAP);
    (wait < until_tick).then_some(wait)
}

/// What the loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// A scheduled cycle: publish, then sweep.
    Cycle,
    /// A sweep only, for an expiry before the next cycle.
    Wake,
}

/// Runs a cycle every `every` (the first at once), and a sweep in between whenever a rule is due
/// to expire before the next cycle, until `stop` yields or closes.
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
        wakes: 0,
        abandoned: false,
    };
    let mut next_tick = Instant::now();
    let mut wake_at: Option<Instant> = None;
    loop {
        let work = tokio::select! {
            biased;
            _ = stop.recv() => break,
            at = ticker.tick() => {
                next_tick = at + every;
                Work::Cycle
            }
            () = tokio::time::sleep_until(wake_at.unwrap_or(next_tick)), if wake_at.is_some() => Work::Wake,
        };
        wake_at = None;
        let number = match work {
            Work::Cycle => {
                outcome.cycles += 1;
                outcome.cycles
            }
            Work::Wake => {
                outcome.wakes += 1;
                tracing::debug!(
                    cycle = outcome.cycles,
                    "woke for an expiry: sweeping (no publish)"
                );
                outcome.cycles
            }
        };
        let job = async {
            match work {
                Work::Cycle => cycle.once(number).await,
                Work::Wake => cycle.sweep_only(number).await,
            }
        };
        tokio::pin!(job);
        let (pass, stop_after) = tokio::select! {
            pass = &mut job => (pass, false),
            _ = stop.recv() => {
                tracing::info!(cycle = number, "stop requested: finishing the current cycle (send it again to abandon it)");
                let finished = tokio::select! {
                    pass = &mut job => Some(pass),
                    _ = stop.recv() => None,
                };
                match finished {
                    Some(pass) => (pass, true),
                    None => {
                        tracing::warn!(cycle = number, "stop requested again: abandoning the current cycle");
                        outcome.abandoned = true;
                        if work == Work::Cycle {
                            outcome.failed_cycles += 1;
                        }
                        return outcome;
                    }
                }
            }
        };
        if !pass.ok && work == Work::Cycle {
            outcome.failed_cycles += 1;
        }
        if stop_after {
            break;
        }
        match (pass.ok, work) {
            (true, _) => {}
            (false, Work::Cycle) => {
                tracing::warn!(cycle = number, next_in = %humantime::format_duration(every), "cycle failed; trying again at the next tick");
            }
            (false, Work::Wake) => {
                tracing::warn!(
                    cycle = number,
                    "sweep between cycles failed; the next cycle tries again"
                );
            }
        }
        let until_tick = next_tick.saturating_duration_since(Instant::now());
        let now = cycle.clock.now();
        if let Some(delay) = wake_delay(now, pass.next_expiry, cycle.sweep.grace, until_tick) {
            wake_at = Some(Instant::now() + delay);
            tracing::debug!(
                cycle = number,
                next_expiry = pass.next_expiry.map(format_instant).as_deref(),
                wake_in = %humantime::format_duration(delay),
                "a rule expires before the next cycle: waking for it"
            );
        }
    }
    tracing::info!(
        cycles = outcome.cycles,
        failed = outcome.failed_cycles,
        wakes = outcome.wakes,
        "stopped"
    );
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn wakes_just_after_the_expiry_plus_grace() {
        let now = at(0);
        // A 20-second grant under `--every 5m`: wake 20 s (+ the slack) from now.
        assert_eq!(
            wake_delay(now, Some(at(20)), Duration::ZERO, 300 * S),
            Some(20 * S + WAKE_SLACK)
        );
        // --grace 2m moves the wake-up with it.
        assert_eq!(
            wake_delay(now, Some(at(20)), 120 * S, 300 * S),
            Some(140 * S + WAKE_SLACK)
        );
        // Sub-second remainders are kept (the wake is on the expiry, not the next second).
        let now = at(0) + Duration::from_millis(400);
        assert_eq!(
            wake_delay(now, Some(at(20)), Duration::ZERO, 300 * S),
            Some(Duration::from_millis(19_600) + WAKE_SLACK)
        );
    }

    #[test]
    fn nothing_to_wake_for_before_the_tick() {
        let now = at(0);
        // Nothing waiting to expire.
        assert_eq!(wake_delay(now, None, Duration::ZERO, 300 * S), None);
        // The tick comes first (or at the same time): it sweeps anyway.
        assert_eq!(
            wake_delay(now, Some(at(400)), Duration::ZERO, 300 * S),
            None
        );
        assert_eq!(
            wake_delay(now, Some(at(300)), Duration::ZERO, 300 * S + WAKE_SLACK),
            None
        );
        assert_eq!(wake_delay(now, Some(at(200)), 120 * S, 300 * S), None);
        // The tick is already due (a cycle overran --every).
        assert_eq!(
            wake_delay(now, Some(at(0)), Duration::ZERO, Duration::ZERO),
            None
        );
    }

    #[test]
    fn never_a_busy_loop() {
        // An expiry already passed (missed by a sweep, a clock that jumped forward): one wake-up
        // after the minimum gap, not at once.
        let now = at(100);
        assert_eq!(
            wake_delay(now, Some(at(40)), Duration::ZERO, 300 * S),
            Some(MIN_WAKE_GAP)
        );
        // Expiring within the gap: still the gap.
        assert_eq!(
            wake_delay(
                now,
                Some(at(100) + Duration::from_millis(300)),
                Duration::ZERO,
                300 * S
            ),
            Some(MIN_WAKE_GAP)
        );
        // However often it is asked, every wait is at least the gap.
        for offset in 0..50u64 {
            let next = at(90) + Duration::from_millis(offset * 250);
            let wait = wake_delay(now, Some(next), Duration::ZERO, 300 * S).expect("a wake");
            assert!(wait >= MIN_WAKE_GAP, "{wait:?}");
        }
        // With `--every 1s` the gap reaches the tick: no wake-ups at all, the ticks sweep.
        assert_eq!(wake_delay(now, Some(at(40)), Duration::ZERO, S), None);
    }

    #[test]
    fn far_expiries_do_not_overflow() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799);
        assert_eq!(wake_delay(at(0), Some(far), Duration::MAX, 300 * S), None);
        assert_eq!(
            wake_delay(at(0), Some(far), Duration::ZERO, Duration::MAX),
            {
                let d = far.duration_since(at(0)).expect("later");
                Some(d + WAKE_SLACK)
            }
        );
    }
}
