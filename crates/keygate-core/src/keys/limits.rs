//! Per-key limits held in memory, exact within one process: the budget ledger (spend settled so
//! far plus reservations of requests in flight), requests and tokens per minute, and concurrent
//! requests. Every check-and-take is one atomic step (a compare-and-swap or a short critical
//! section), never a read then a write across an await.
//!
//! Money is counted in micro-dollars (integers) so concurrent additions are exact. The ledger of
//! a key is created from its stored spend the first time the key is used and lives while the
//! process does; settled spend also goes to the store in batches (see `spend`).
//!
//! When limits are kept for the whole cluster (see [`super::limiter`]), the ledger only counts
//! this instance's concurrent requests; the budget and the per-minute windows live in
//! PostgreSQL or Redis, and the [`Admission`] carries the [`Hold`] that gives them back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::limiter::Hold;
use crate::store::KeyRecord;

/// One USD in ledger units.
pub const MICROS: f64 = 1_000_000.0;

/// USD to ledger units (rounded up, so a reservation never undercounts).
pub fn to_micros(usd: f64) -> i64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * MICROS).ceil() as i64
    } else {
        0
    }
}

/// Why a request may not start now.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Spend plus reservations would pass `max_budget`.
    Budget {
        /// USD spent and reserved.
        spend: f64,
        /// The cap.
        max_budget: f64,
    },
    /// `rpm_limit` reached in this minute.
    Rpm {
        /// The limit.
        limit: i64,
        /// Seconds until the next minute.
        retry_after: u64,
    },
    /// `tpm_limit` reached in this minute.
    Tpm {
        /// The limit.
        limit: i64,
        /// Seconds until the next minute.
        retry_after: u64,
    },
    /// `max_parallel_requests` requests already in flight.
    Parallel {
        /// The limit.
        limit: i64,
    },
}

/// The live counters of one key.
#[derive(Debug)]
pub struct KeyLedger {
    /// Settled spend, micro-USD (the stored spend at load plus what settled since).
    spent: AtomicI64,
    /// Reservations of requests in flight, micro-USD.
    reserved: AtomicI64,
    in_flight: AtomicI64,
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    minute: u64,
    requests: i64,
    tokens: i64,
}

/// Seconds since the epoch: the clock of the per-minute windows.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl KeyLedger {
    fn new(spent_usd: f64) -> Self {
        Self {
            spent: AtomicI64::new(to_micros(spent_usd)),
            reserved: AtomicI64::new(0),
            in_flight: AtomicI64::new(0),
            window: Mutex::new(Window::default()),
        }
    }

    /// USD settled so far.
    pub fn spent_usd(&self) -> f64 {
        self.spent.load(Ordering::Acquire) as f64 / MICROS
    }

    /// Takes what a request needs (a slot, a request of the minute, `reserve` micro-USD of
    /// budget), all or nothing. The returned [`Admission`] gives them back when dropped,
    /// unless settled.
    pub fn admit(self: &Arc<Self>, key: &KeyRecord, reserve: i64) -> Result<Admission, Refusal> {
        let admission = self.take_slot(key)?;
        if let Err(refusal) = self.count_request(key) {
            drop(admission);
            return Err(refusal);
        }
        let mut admission = admission;
        if let Some(max) = key.max_budget {
            let cap = to_micros(max);
            let mut reserved = self.reserved.load(Ordering::Acquire);
            loop {
                let spent = self.spent.load(Ordering::Acquire);
                if spent + reserved + reserve > cap || (reserve == 0 && spent >= cap) {
                    return Err(Refusal::Budget {
                        spend: (spent + reserved) as f64 / MICROS,
                        max_budget: max,
                    });
                }
                match self.reserved.compare_exchange_weak(
                    reserved,
                    reserved + reserve,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(actual) => reserved = actual,
                }
            }
            admission.reserved = reserve;
        }
        Ok(admission)
    }

    /// Takes only a concurrency slot (`max_parallel_requests`, which is per instance); the
    /// budget and the windows are then taken elsewhere (cluster-wide limits).
    pub fn take_slot(self: &Arc<Self>, key: &KeyRecord) -> Result<Admission, Refusal> {
        if let Some(limit) = key.max_parallel_requests {
            let now = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
            if now > limit {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::Parallel { limit });
            }
        } else {
            self.in_flight.fetch_add(1, Ordering::AcqRel);
        }
        Ok(Admission {
            ledger: self.clone(),
            reserved: 0,
            open: true,
            hold: None,
        })
    }

    fn count_request(&self, key: &KeyRecord) -> Result<(), Refusal> {
        if key.rpm_limit.is_none() && key.tpm_limit.is_none() {
            return Ok(());
        }
        let now = now_secs();
        let minute = now / 60;
        let retry_after = 60 - now % 60;
        let mut window = match self.window.lock() {
            Ok(window) => window,
            Err(poisoned) => poisoned.into_inner(),
        };
        if window.minute != minute {
            *window = Window {
                minute,
                requests: 0,
                tokens: 0,
            };
        }
        if let Some(limit) = key.tpm_limit {
            if window.tokens >= limit {
                return Err(Refusal::Tpm { limit, retry_after });
            }
        }
        if let Some(limit) = key.rpm_limit {
            if window.requests >= limit {
                return Err(Refusal::Rpm { limit, retry_after });
            }
        }
        window.requests += 1;
        Ok(())
    }

    fn add_tokens(&self, tokens: i64) {
        let minute = now_secs() / 60;
        let mut window = match self.window.lock() {
            Ok(window) => window,
            Err(poisoned) => poisoned.into_inner(),
        };
        if window.minute == minute {
            window.tokens += tokens;
        }
    }

    /// Sets the settled spend (after a budget reset or an admin update).
    pub fn set_spent(&self, usd: f64) {
        self.spent.store(to_micros(usd), Ordering::Release);
    }
}

/// What an admitted request holds: its slot, its reservation (here, or in the cluster's
/// [`Hold`]). Settle it with the real cost.
#[derive(Debug)]
pub struct Admission {
    ledger: Arc<KeyLedger>,
    reserved: i64,
    open: bool,
    hold: Option<Hold>,
}

impl Admission {
    /// The reservation taken, micro-USD.
    pub fn reserved(&self) -> i64 {
        self.reserved
    }

    /// Records a reservation taken in the cluster's store; it is given back through `hold`.
    pub(crate) fn held(mut self, reserved: i64, hold: Hold) -> Self {
        self.reserved = reserved;
        self.hold = Some(hold);
        self
    }

    /// Replaces the reservation with the real cost and counts the tokens.
    pub fn settle(mut self, cost_micros: i64, tokens: i64) {
        self.ledger.spent.fetch_add(cost_micros, Ordering::AcqRel);
        match self.hold.take() {
            Some(hold) => {
                hold.release(self.reserved, cost_micros, tokens);
                // Given back through the hold, not here.
                self.reserved = 0;
            }
            None => self.ledger.add_tokens(tokens),
        }
        self.release();
    }

    fn release(&mut self) {
        if self.open {
            self.open = false;
            match self.hold.take() {
                Some(hold) => hold.release(self.reserved, 0, 0),
                None => {
                    self.ledger
                        .reserved
                        .fetch_sub(self.reserved, Ordering::AcqRel);
                }
            }
            self.ledger.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.release();
    }
}

/// Every key's ledger.
#[derive(Debug, Default)]
pub struct Ledgers {
    /// Keyed by token id (hashed with foldhash: SipHash's cost, paid on every request, buys
    /// nothing here, as the ids are SHA-256 digests and the seed is random).
    keys: Mutex<HashMap<String, Arc<KeyLedger>, foldhash::fast::RandomState>>,
}

impl Ledgers {
    /// The ledger of `key`, created from its stored spend on first use.
    pub fn of(&self, key: &KeyRecord) -> Arc<KeyLedger> {
        let mut keys = match self.keys.lock() {
            Ok(keys) => keys,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(ledger) = keys.get(&key.token_id) {
            return ledger.clone();
        }
        keys.entry(key.token_id.clone())
            .or_insert_with(|| Arc::new(KeyLedger::new(key.spend)))
            .clone()
    }

    /// The settled spend of `token_id` in this process, if its ledger exists.
    pub fn spent(&self, token_id: &str) -> Option<f64> {
        let keys = match self.keys.lock() {
            Ok(keys) => keys,
            Err(poisoned) => poisoned.into_inner(),
        };
        keys.get(token_id).map(|ledger| ledger.spent_usd())
    }

    /// Sets the settled spend of `token_id`, if its ledger exists (an admin set `spend`).
    pub fn set_spent(&self, token_id: &str, usd: f64) {
        let keys = match self.keys.lock() {
            Ok(keys) => keys,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(ledger) = keys.get(token_id) {
            ledger.set_spent(usd);
        }
    }

    /// Forgets a key's ledger (deleted or regenerated): a later use starts again from the
    /// stored spend.
    pub fn forget(&self, token_id: &str) {
        let mut keys = match self.keys.lock() {
            Ok(keys) => keys,
            Err(poisoned) => poisoned.into_inner(),
        };
        keys.remove(token_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(max_budget: Option<f64>) -> KeyRecord {
        KeyRecord {
            max_budget,
            ..crate::keys::test_record("t")
        }
    }

    #[test]
    fn concurrent_reservations_never_pass_the_budget() {
        let ledger = Arc::new(KeyLedger::new(0.0));
        let k = key(Some(1.0));
        let admitted = std::sync::atomic::AtomicI64::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if let Ok(a) = ledger.admit(&k, to_micros(0.01)) {
                            admitted.fetch_add(1, Ordering::SeqCst);
                            a.settle(to_micros(0.01), 10);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.load(Ordering::SeqCst), 100);
        assert!((ledger.spent_usd() - 1.0).abs() < 1e-9);
        assert!(matches!(ledger.admit(&k, 0), Err(Refusal::Budget { .. })));
    }

    #[test]
    fn dropped_admissions_give_back_their_slot_and_reservation() {
        let ledger = Arc::new(KeyLedger::new(0.0));
        let mut k = key(Some(1.0));
        k.max_parallel_requests = Some(1);
        let first = ledger.admit(&k, to_micros(0.6)).unwrap();
        assert!(matches!(
            ledger.admit(&k, 0),
            Err(Refusal::Parallel { limit: 1 })
        ));
        drop(first);
        let second = ledger.admit(&k, to_micros(0.6)).unwrap();
        assert_eq!(second.reserved(), 600_000);
        second.settle(to_micros(0.2), 5);
        assert!((ledger.spent_usd() - 0.2).abs() < 1e-9);
    }

    #[test]
    fn rpm_and_tpm_per_minute() {
        let ledger = Arc::new(KeyLedger::new(0.0));
        let mut k = key(None);
        k.rpm_limit = Some(2);
        ledger.admit(&k, 0).unwrap().settle(0, 0);
        ledger.admit(&k, 0).unwrap().settle(0, 0);
        match ledger.admit(&k, 0) {
            Err(Refusal::Rpm {
                limit: 2,
                retry_after,
            }) => assert!((1..=60).contains(&retry_after)),
            other => panic!("{other:?}"),
        }
        let ledger = Arc::new(KeyLedger::new(0.0));
        let mut k = key(None);
        k.tpm_limit = Some(100);
        ledger.admit(&k, 0).unwrap().settle(0, 150);
        assert!(matches!(
            ledger.admit(&k, 0),
            Err(Refusal::Tpm { limit: 100, .. })
        ));
    }
}
