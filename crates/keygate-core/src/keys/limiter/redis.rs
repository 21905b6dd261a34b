//! Cluster-wide limits in Redis: one Lua script checks and takes a request of the minute and a
//! budget reservation atomically; another gives the reservation back and adds the real cost.
//!
//! Keys (a single Redis, or a primary with replicas; not Redis Cluster):
//! - `keygate:budget:{token_id}` hash: `s` settled spend and `r` reservations (micro-USD),
//!   `i:{instance}` each instance's share of `r`. Seeded from the store's spend on first use.
//! - `keygate:window:{token_id}:{minute}` hash: `q` requests, `t` tokens; expires after 3 min.
//! - `keygate:instances` hash: instance -> last heartbeat (ms); `keygate:instance:{id}` set:
//!   the keys an instance holds reservations on, for reaping a silent one.
//!
//! The store stays the record of spend (the spend writer adds every settled cost to it);
//! Redis holds the live view all instances admit against. If Redis loses its data, budgets are
//! seeded again from the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncCommands, Client, RedisError, Script};
use arc_swap::ArcSwapOption;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{retry_after, AdmitError};
use crate::keys::limits::{to_micros, Refusal, MICROS};
use crate::keys::spend::{now_ms, SpendWriter};
use crate::store::{KeyRecord, SpendEntry};

/// Longest a Redis call may take before the request is refused.
const TIMEOUT: Duration = Duration::from_millis(500);
/// After a failed connection, requests fail at once for this long instead of each retrying.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
/// Settlements queued for Redis; beyond it they are dropped (their reservations stay held
/// until this instance is reaped: the cluster errs on the side of refusing).
const SETTLE_QUEUE: usize = 100_000;
/// Budget hashes live this long after their last use (then are seeded again from the store).
const BUDGET_TTL_SECS: i64 = 7 * 24 * 3600;

const ADMIT: &str = r"
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local reserve = tonumber(ARGV[4])
if rpm >= 0 or tpm >= 0 then
  local w = redis.call('HMGET', KEYS[1], 'q', 't')
  local q = tonumber(w[1] or '0')
  local t = tonumber(w[2] or '0')
  if tpm >= 0 and t >= tpm then return {2, t} end
  if rpm >= 0 and q >= rpm then return {1, q} end
  redis.call('HINCRBY', KEYS[1], 'q', 1)
  redis.call('EXPIRE', KEYS[1], 180)
end
if cap >= 0 then
  redis.call('HSETNX', KEYS[2], 's', ARGV[5])
  local b = redis.call('HMGET', KEYS[2], 's', 'r')
  local s = tonumber(b[1] or '0')
  local r = tonumber(b[2] or '0')
  if s + r + reserve > cap or (reserve == 0 and s >= cap) then return {3, s + r} end
  if reserve > 0 then
    redis.call('HINCRBY', KEYS[2], 'r', reserve)
    redis.call('HINCRBY', KEYS[2], ARGV[6], reserve)
    redis.call('SADD', KEYS[3], ARGV[7])
  end
  redis.call('EXPIRE', KEYS[2], ARGV[8])
end
return {0, 0}
";

const SETTLE: &str = r"
local reserved = tonumber(ARGV[1])
if reserved > 0 then
  local held = tonumber(redis.call('HGET', KEYS[1], ARGV[4]) or '0')
  if held >= reserved then
    redis.call('HINCRBY', KEYS[1], ARGV[4], -reserved)
    redis.call('HINCRBY', KEYS[1], 'r', -reserved)
  end
end
local cost = tonumber(ARGV[2])
if cost > 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 's', cost)
end
local tokens = tonumber(ARGV[3])
if tokens > 0 then
  redis.call('HINCRBY', KEYS[2], 't', tokens)
  redis.call('EXPIRE', KEYS[2], 180)
end
return 0
";

const RECOVER: &str = r"
local held = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
redis.call('HDEL', KEYS[1], ARGV[1])
if held > 0 then
  redis.call('HINCRBY', KEYS[1], 'r', -held)
  redis.call('HINCRBY', KEYS[1], 's', held)
end
return held
";

const INSTANCES: &str = "keygate:instances";

fn budget_key(token_id: &str) -> String {
    format!("keygate:budget:{token_id}")
}

fn window_key(token_id: &str, minute: i64) -> String {
    format!("keygate:window:{token_id}:{minute}")
}

fn instance_key(instance: &str) -> String {
    format!("keygate:instance:{instance}")
}

/// A request settled, for Redis.
struct Settle {
    token_id: String,
    reserved: i64,
    cost: i64,
    tokens: i64,
    minute: i64,
}

/// Limits counted in Redis.
pub struct RedisLimiter {
    client: Client,
    conn: ArcSwapOption<ConnectionManager>,
    /// When the last connection attempt failed (single-flight connects).
    connecting: Mutex<Option<Instant>>,
    instance: Arc<str>,
    field: String,
    writer: SpendWriter,
    admit: Script,
    settle: Script,
    recover: Script,
    settle_tx: mpsc::Sender<Settle>,
    settle_rx: std::sync::Mutex<Option<mpsc::Receiver<Settle>>>,
    settler: std::sync::Mutex<Option<JoinHandle<()>>>,
    stop: CancellationToken,
    /// Whether this instance is in `keygate:instances` (a reservation must never exist
    /// without it, or no reaper would find it after a crash).
    joined: std::sync::atomic::AtomicBool,
    settler_started: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// How the connections to Redis (admissions, and the settler's own) behave: every call and
/// connect bounded by [`TIMEOUT`], one reconnect attempt before a call fails.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(RECONNECT_PAUSE)
}

fn unavailable(err: &RedisError) -> AdmitError {
    tracing::warn!(error = %err, "cannot reach Redis to check a key's limits");
    AdmitError::Unavailable("Redis does not answer".into())
}

impl RedisLimiter {
    /// A limiter on the Redis at `url` (connected on first use).
    pub fn new(url: &str, instance: Arc<str>, writer: SpendWriter) -> Result<Self, RedisError> {
        let client = Client::open(url)?;
        let (settle_tx, settle_rx) = mpsc::channel(SETTLE_QUEUE);
        Ok(Self {
            client,
            conn: ArcSwapOption::empty(),
            connecting: Mutex::new(None),
            field: format!("i:{instance}"),
            instance,
            writer,
            admit: Script::new(ADMIT),
            settle: Script::new(SETTLE),
            recover: Script::new(RECOVER),
            settle_tx,
            settle_rx: std::sync::Mutex::new(Some(settle_rx)),
            settler: std::sync::Mutex::new(None),
            stop: CancellationToken::new(),
            joined: std::sync::atomic::AtomicBool::new(false),
            settler_started: std::sync::atomic::AtomicBool::new(false),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, AdmitError> {
        if let Some(conn) = self.conn.load_full() {
            return Ok(ConnectionManager::clone(&conn));
        }
        let mut last_failure = self.connecting.lock().await;
        if let Some(conn) = self.conn.load_full() {
            return Ok(ConnectionManager::clone(&conn));
        }
        if last_failure.is_some_and(|at| at.elapsed() < RECONNECT_PAUSE) {
            return Err(AdmitError::Unavailable("Redis does not answer".into()));
        }
        match self
            .client
            .get_connection_manager_with_config(manager_config())
            .await
        {
            Ok(conn) => {
                *last_failure = None;
                self.conn.store(Some(Arc::new(conn.clone())));
                Ok(conn)
            }
            Err(err) => {
                *last_failure = Some(Instant::now());
                Err(unavailable(&err))
            }
        }
    }

    /// Counts the request and reserves its budget in one script.
    pub(super) async fn admit(&self, key: &KeyRecord, reserve: i64) -> Result<(), AdmitError> {
        self.start_settler();
        let mut conn = self.connection().await?;
        if !self.joined.load(std::sync::atomic::Ordering::Acquire) {
            let joined: Result<(), RedisError> =
                conn.hset(INSTANCES, &*self.instance, now_ms()).await;
            joined.map_err(|err| unavailable(&err))?;
            self.joined
                .store(true, std::sync::atomic::Ordering::Release);
        }
        let minute = super::now_minute();
        let cap = key.max_budget.map_or(-1, to_micros);
        let answer: (i64, i64) = self
            .admit
            .key(window_key(&key.token_id, minute))
            .key(budget_key(&key.token_id))
            .key(instance_key(&self.instance))
            .arg(key.rpm_limit.unwrap_or(-1))
            .arg(key.tpm_limit.unwrap_or(-1))
            .arg(cap)
            .arg(reserve)
            .arg(to_micros(key.spend))
            .arg(&self.field)
            .arg(&key.token_id)
            .arg(BUDGET_TTL_SECS)
            .invoke_async(&mut conn)
            .await
            .map_err(|err| unavailable(&err))?;
        let retry_after = retry_after();
        match answer {
            (0, _) => Ok(()),
            (1, _) => Err(AdmitError::Refused(Refusal::Rpm {
                limit: key.rpm_limit.unwrap_or(0),
                retry_after,
            })),
            (2, _) => Err(AdmitError::Refused(Refusal::Tpm {
                limit: key.tpm_limit.unwrap_or(0),
                retry_after,
            })),
            (_, held) => Err(AdmitError::Refused(Refusal::Budget {
                spend: held as f64 / MICROS,
                max_budget: key.max_budget.unwrap_or(0.0),
            })),
        }
    }

    /// Queues a settlement (never waits); the settler sends it.
    pub(super) fn settle(
        &self,
        token_id: String,
        reserved: i64,
        cost: i64,
        tokens: i64,
        minute: i64,
    ) {
        let settle = Settle {
            token_id,
            reserved,
            cost,
            tokens,
            minute,
        };
        if self.settle_tx.try_send(settle).is_err() {
            metrics::counter!("keygate_limiter_settle_dropped_total").increment(1);
            tracing::error!("Redis settlement queue full; a reservation stays held");
        }
    }

    /// Starts the task that sends settlements, once (it needs a runtime, and the limiter is
    /// built before one may exist).
    fn start_settler(&self) {
        if self
            .settler_started
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return;
        }
        let Ok(mut rx) = self.settle_rx.lock() else {
            return;
        };
        let Some(rx) = rx.take() else {
            return;
        };
        self.settler_started
            .store(true, std::sync::atomic::Ordering::Release);
        let task = tokio::spawn(settler(
            self.client.clone(),
            self.settle.clone(),
            self.field.clone(),
            rx,
            self.stop.clone(),
        ));
        if let Ok(mut slot) = self.settler.lock() {
            *slot = Some(task);
        }
    }

    /// Sets a key's settled spend (admin update, budget reset).
    pub(super) async fn spend_set(&self, token_id: &str, usd: f64) {
        let Ok(mut conn) = self.connection().await else {
            return;
        };
        let set: Result<(), RedisError> =
            conn.hset(budget_key(token_id), "s", to_micros(usd)).await;
        if let Err(err) = set {
            tracing::warn!(error = %err, "cannot set a key's spend in Redis");
        }
    }

    /// Drops a key's budget hash.
    pub(super) async fn forget(&self, token_id: &str) {
        let Ok(mut conn) = self.connection().await else {
            return;
        };
        let deleted: Result<(), RedisError> = conn.del(budget_key(token_id)).await;
        if let Err(err) = deleted {
            tracing::warn!(error = %err, "cannot drop a key's counters in Redis");
        }
    }

    /// Heartbeat; as leader, charges silent instances' reservations.
    pub(super) async fn tend(&self, leader: bool, silent_ms: i64) {
        let Ok(mut conn) = self.connection().await else {
            return;
        };
        let now = now_ms();
        let beat: Result<(), RedisError> = conn.hset(INSTANCES, &*self.instance, now).await;
        if let Err(err) = beat {
            tracing::warn!(error = %err, "cannot record this instance's heartbeat in Redis");
            return;
        }
        if !leader {
            return;
        }
        let instances: Vec<(String, i64)> = match conn.hgetall(INSTANCES).await {
            Ok(instances) => instances,
            Err(err) => {
                tracing::warn!(error = %err, "cannot list the cluster's instances in Redis");
                return;
            }
        };
        for (instance, heartbeat) in instances {
            if heartbeat < now - silent_ms {
                self.reap(&mut conn, &instance).await;
            }
        }
    }

    /// Charges what `instance` still holds to its keys (in Redis and, through the spend
    /// writer, in the store) and forgets it.
    async fn reap(&self, conn: &mut ConnectionManager, instance: &str) {
        let set = instance_key(instance);
        let token_ids: Vec<String> = match conn.smembers(&set).await {
            Ok(ids) => ids,
            Err(err) => {
                tracing::warn!(error = %err, %instance, "cannot reap a silent instance");
                return;
            }
        };
        let field = format!("i:{instance}");
        let mut charged = 0i64;
        for token_id in &token_ids {
            let held: Result<i64, RedisError> = self
                .recover
                .key(budget_key(token_id))
                .arg(&field)
                .invoke_async(conn)
                .await;
            match held {
                Ok(held) if held > 0 => {
                    charged += held;
                    self.writer.record(SpendEntry {
                        token_id: token_id.clone(),
                        model: "(held by a stopped instance)".into(),
                        prompt_tokens: 0,
                        completion_tokens: 0,
                        cost: held as f64 / MICROS,
                        status: 0,
                        latency_ms: 0.0,
                        created_at: now_ms(),
                    });
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, %instance, "cannot reap a silent instance");
                    return;
                }
            }
        }
        let forgotten: Result<(), RedisError> = ::redis::pipe()
            .del(&set)
            .hdel(INSTANCES, instance)
            .query_async(conn)
            .await;
        if let Err(err) = forgotten {
            tracing::warn!(error = %err, %instance, "cannot forget a silent instance");
            return;
        }
        metrics::counter!("keygate_instances_reaped_total").increment(1);
        tracing::warn!(%instance, keys = token_ids.len(), charged_usd = charged as f64 / MICROS, "instance went silent; its reservations were charged to their keys");
    }

    /// Sends the queued settlements, then charges whatever is still held and leaves.
    pub(super) async fn leave(&self) {
        self.stop.cancel();
        let task = self.settler.lock().ok().and_then(|mut slot| slot.take());
        if let Some(task) = task {
            let _ = task.await;
        }
        if let Ok(mut conn) = self.connection().await {
            self.reap(&mut conn, &self.instance.clone()).await;
        }
    }
}

/// Sends settlements to Redis in pipelines, retrying while Redis is away (they stay queued).
/// Once `stop` is cancelled it sends what is queued (trying for a few seconds) and returns.
async fn settler(
    client: Client,
    script: Script,
    field: String,
    mut rx: mpsc::Receiver<Settle>,
    stop: CancellationToken,
) {
    let mut conn: Option<ConnectionManager> = None;
    let mut batch = Vec::with_capacity(256);
    let mut deadline: Option<Instant> = None;
    loop {
        if deadline.is_none() && stop.is_cancelled() {
            deadline = Some(Instant::now() + Duration::from_secs(5));
        }
        if batch.is_empty() {
            if deadline.is_some() {
                while batch.len() < 256 {
                    match rx.try_recv() {
                        Ok(settle) => batch.push(settle),
                        Err(_) => break,
                    }
                }
                if batch.is_empty() {
                    return;
                }
            } else {
                tokio::select! {
                    count = rx.recv_many(&mut batch, 256) => if count == 0 { return },
                    () = stop.cancelled() => continue,
                }
            }
        }
        if deadline.is_some_and(|at| Instant::now() > at) {
            tracing::error!(pending = batch.len(), "settlements not sent to Redis at shutdown; their reservations stay held until this instance is reaped");
            return;
        }
        match conn.as_mut() {
            Some(c) => {
                let mut pipe = ::redis::pipe();
                pipe.load_script(&script).ignore();
                for s in &batch {
                    pipe.invoke_script(
                        script
                            .key(budget_key(&s.token_id))
                            .key(window_key(&s.token_id, s.minute))
                            .arg(s.reserved)
                            .arg(s.cost)
                            .arg(s.tokens)
                            .arg(&field),
                    )
                    .ignore();
                }
                match pipe.query_async::<()>(c).await {
                    Ok(()) => {
                        batch.clear();
                        continue;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, pending = batch.len(), "cannot settle in Redis; retrying");
                    }
                }
            }
            None => {
                match client
                    .get_connection_manager_with_config(manager_config())
                    .await
                {
                    Ok(c) => {
                        conn = Some(c);
                        continue;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot connect to Redis to settle; retrying");
                    }
                }
            }
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}
