//! Rate limits: a token bucket per key (a principal, or a source IP), `per_minute` requests a
//! minute with bursts up to the same number. Time is passed in, so tests move it by hand. Memory
//! is bounded: buckets that have refilled are dropped once the table grows past [`MAX_KEYS`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Keys tracked before full buckets are dropped.
pub const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: SystemTime,
}

/// Per-key token buckets.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `per_minute` = 0 turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key` at `now`; Err is how long until one is available.
    pub fn check(&self, key: &str, now: SystemTime) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let rate = capacity / 60.0; // tokens per second
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            buckets.retain(|_, b| refill(*b, now, rate, capacity).tokens < capacity);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        *bucket = refill(*bucket, now, rate, capacity);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

fn refill(b: Bucket, now: SystemTime, rate: f64, capacity: f64) -> Bucket {
    // A clock going backwards refills nothing.
    let elapsed = now.duration_since(b.at).unwrap_or_default().as_secs_f64();
    Bucket {
        tokens: (b.tokens + elapsed * rate).min(capacity),
        at: now.max(b.at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_726_400) + Duration::from_secs_f64(secs)
    }

    #[test]
    fn a_burst_then_one_per_interval() {
        let limiter = RateLimiter::new(10);
        for _ in 0..10 {
            assert!(limiter.check("alice", at(0.0)).is_ok());
        }
        let wait = limiter
            .check("alice", at(0.0))
            .expect_err("11th in a minute");
        assert!(
            wait > Duration::from_secs(5) && wait <= Duration::from_secs(6),
            "{wait:?}"
        );
        assert!(limiter.check("bob", at(0.0)).is_ok(), "keys are apart");
        assert!(limiter.check("alice", at(5.9)).is_err());
        assert!(
            limiter.check("alice", at(6.1)).is_ok(),
            "one token every 6 s"
        );
        assert!(limiter.check("alice", at(6.2)).is_err());
        // A clock going back neither refills nor panics.
        assert!(limiter.check("alice", at(1.0)).is_err());
        // A quiet minute refills the whole burst, no more.
        for _ in 0..10 {
            assert!(limiter.check("alice", at(200.0)).is_ok());
        }
        assert!(limiter.check("alice", at(200.0)).is_err());
    }

    #[test]
    fn zero_is_off_and_the_table_stays_bounded() {
        let off = RateLimiter::new(0);
        for _ in 0..1000 {
            assert!(off.check("x", at(0.0)).is_ok());
        }
        let limiter = RateLimiter::new(60);
        for i in 0..(MAX_KEYS + 10) {
            assert!(limiter.check(&format!("ip-{i}"), at(0.0)).is_ok());
        }
        // A minute later every bucket is full again: they were dropped, not kept forever.
        assert!(limiter.check("late", at(61.0)).is_ok());
        let size = limiter
            .buckets
            .lock()
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        assert!(size < MAX_KEYS, "{size}");
    }
}
