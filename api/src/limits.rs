//! Rate and in-flight limits per API key and per tenant, from the tenant's plan and the key's own settings.
//!
//! - **Rates** are GCRA (the generic cell rate algorithm): a subject allowed `q` requests per second may send
//!   `q` at once after a quiet second, then one every `1/q` seconds. Nothing is queued: a request over the
//!   rate is refused at once with the time until it would be allowed.
//! - **In flight** counts requests from authentication to the end of the response.
//!
//! A key is held to its own limits (the key's settings, else the plan's per-key ones) and to its tenant's
//! (the plan's), so one busy key cannot starve the tenant's others beyond the plan. In-flight slots are taken
//! first, then rates, so a request refused for concurrency uses up no rate.
//!
//! On the embedded default both live in this process (`governor` for rates). With `limits.redis_url` they live
//! in Redis, so every node sees the same counts: one Lua script checks and takes the key's and the tenant's
//! slots and rates atomically, on Redis's clock (the nodes' clocks may differ). An in-flight slot in Redis is
//! a sorted-set member that expires after a lease, so a node that dies holding slots frees them. When Redis
//! fails or is slow, `on_redis_failure` decides: `open` limits on this node alone, `closed` refuses with 503;
//! either way the failure is logged and counted, and Redis is not asked again for a second, so a dead Redis
//! costs one timeout a second, not one per request.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faceplate_store::{Authenticated, Plan};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::config::{LimitsConfig, RedisFailure};

/// Whose limit: the key's or its tenant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Key,
    Tenant,
}

impl Subject {
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Key => "key",
            Subject::Tenant => "tenant",
        }
    }
}

/// The limits one request is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub key_qps: u32,
    pub key_concurrency: u32,
    pub tenant_qps: u32,
    pub tenant_concurrency: u32,
}

impl Policy {
    /// The plan's limits, with the key's own where it sets them.
    pub fn of(plan: &Plan, key_qps: Option<i32>, key_concurrency: Option<i32>) -> Policy {
        let own = |v: Option<i32>, plan: u32| v.and_then(|v| u32::try_from(v).ok()).filter(|&v| v > 0).unwrap_or(plan);
        Policy {
            key_qps: own(key_qps, plan.key_qps),
            key_concurrency: own(key_concurrency, plan.key_concurrency),
            tenant_qps: plan.tenant_qps.max(1),
            tenant_concurrency: plan.tenant_concurrency.max(1),
        }
    }

    fn qps(&self, subject: Subject) -> u32 {
        match subject {
            Subject::Key => self.key_qps,
            Subject::Tenant => self.tenant_qps,
        }
    }

    fn concurrency(&self, subject: Subject) -> u32 {
        match subject {
            Subject::Key => self.key_concurrency,
            Subject::Tenant => self.tenant_concurrency,
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Over the subject's requests per second; allowed again after `retry_after`.
    Rate { subject: Subject, qps: u32, retry_after: Duration },
    /// The subject already has `limit` requests in flight.
    Concurrency { subject: Subject, limit: u32 },
    /// The shared limiter failed and `on_redis_failure` is `closed`.
    Unavailable,
}

/// What the `RateLimit-Policy` and `RateLimit` headers of an admitted request say: the key's rate, the
/// requests it may still send at once, and the seconds until it may send its full burst again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateState {
    pub key_qps: u32,
    pub tenant_qps: u32,
    pub remaining: u32,
    pub reset_secs: u64,
}

/// An admitted request's in-flight slots, freed when this is dropped (when the request ends).
pub struct Admission {
    pub rate: RateState,
    _local: Vec<LocalSlot>,
    _redis: Option<RedisSlots>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `allowed`, `rate_limited`, `concurrency_limited`, `unavailable`.
    pub decision: &'static str,
    /// `key`, `tenant`, or `none`.
    pub subject: &'static str,
    /// `local` or `redis`.
    pub backend: &'static str,
}

/// The limiter's Prometheus counters.
#[derive(Clone, Default)]
pub struct LimitMetrics {
    pub decisions: Family<DecisionLabels, Counter>,
    /// Calls to Redis that failed or timed out (each time, `on_redis_failure` applied).
    pub redis_failures: Counter,
}

pub struct Limits {
    enabled: bool,
    local: LocalLimiter,
    redis: Option<RedisLimiter>,
    on_redis_failure: RedisFailure,
    metrics: LimitMetrics,
}

impl Limits {
    pub fn new(config: &LimitsConfig, metrics: LimitMetrics) -> anyhow::Result<Limits> {
        let redis = match &config.redis_url {
            Some(url) => Some(RedisLimiter::new(url, config)?),
            None => None,
        };
        Ok(Limits {
            enabled: config.enabled,
            local: LocalLimiter::default(),
            redis,
            on_redis_failure: config.on_redis_failure,
            metrics,
        })
    }

    /// Opens the connection to Redis and loads the scripts, so the first requests do not pay for that within
    /// their timeout. A failure is only logged: requests then retry, and `on_redis_failure` applies.
    pub async fn warm_up(&self) {
        let Some(redis) = &self.redis else { return };
        match tokio::time::timeout(Duration::from_secs(5), redis.warm_up()).await {
            Ok(Ok(())) => tracing::info!("shared rate limiter (Redis) connected"),
            Ok(Err(e)) => tracing::warn!(error = %e, "shared rate limiter (Redis) is not reachable yet"),
            Err(_) => tracing::warn!("shared rate limiter (Redis) did not answer within 5 s"),
        }
    }

    /// Admits the request or says why not. `None` when limits are off.
    pub async fn admit(&self, caller: &Authenticated, request_id: &str) -> Result<Option<Admission>, Refusal> {
        if !self.enabled {
            return Ok(None);
        }
        let policy = Policy::of(&caller.plan, caller.key.rate_limit_qps, caller.key.max_concurrency);
        let (key, tenant) = (caller.key.id.as_str(), caller.tenant.id.as_str());
        let (decision, backend) = match &self.redis {
            Some(redis) => match redis.admit(key, tenant, &policy, request_id).await {
                Ok(decision) => (decision, "redis"),
                Err(unanswered) => {
                    // Logged once per failed call: at most one a second while Redis is down.
                    if let Unanswered::Failed(e) = unanswered {
                        self.metrics.redis_failures.inc();
                        tracing::warn!(error = %e, mode = ?self.on_redis_failure,
                            "shared rate limiter (Redis) failed; not asked again for a second");
                    }
                    match self.on_redis_failure {
                        RedisFailure::Open => (self.local.admit(key, tenant, &policy), "local"),
                        RedisFailure::Closed => (Err(Refusal::Unavailable), "redis"),
                    }
                }
            },
            None => (self.local.admit(key, tenant, &policy), "local"),
        };
        let (label, subject) = match &decision {
            Ok(_) => ("allowed", "none"),
            Err(Refusal::Rate { subject, .. }) => ("rate_limited", subject.as_str()),
            Err(Refusal::Concurrency { subject, .. }) => ("concurrency_limited", subject.as_str()),
            Err(Refusal::Unavailable) => ("unavailable", "none"),
        };
        self.metrics.decisions.get_or_create(&DecisionLabels { decision: label, subject, backend }).inc();
        decision.map(Some)
    }
}

// ---------------------------------------------------------------------------------------------------------
// In this process.

type DirectLimiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// Rates and in-flight counts of the subjects this node has seen. A subject's rate limiter is replaced when
/// its rate changes (a plan or key change), starting it afresh.
#[derive(Default)]
struct LocalLimiter {
    rates: Mutex<HashMap<String, (u32, Arc<DirectLimiter>)>>,
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
}

/// One in-flight slot of one subject, given back on drop.
struct LocalSlot {
    subject: String,
    counts: Arc<Mutex<HashMap<String, u32>>>,
}

impl Drop for LocalSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.subject) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.subject);
            }
        }
    }
}

impl LocalLimiter {
    fn admit(&self, key: &str, tenant: &str, policy: &Policy) -> Result<Admission, Refusal> {
        let subjects = [(Subject::Key, format!("k:{key}")), (Subject::Tenant, format!("t:{tenant}"))];
        let mut slots = Vec::with_capacity(2);
        for (subject, id) in &subjects {
            // A refusal drops the slots taken so far.
            slots.push(
                self.take_slot(id, policy.concurrency(*subject))
                    .ok_or(Refusal::Concurrency { subject: *subject, limit: policy.concurrency(*subject) })?,
            );
        }
        let mut remaining = 0;
        let mut reset = Duration::ZERO;
        for (subject, id) in &subjects {
            let qps = policy.qps(*subject);
            let limiter = self.rate_limiter(id, qps);
            match limiter.check() {
                Ok(snapshot) if *subject == Subject::Key => {
                    remaining = snapshot.remaining_burst_capacity();
                    // The burst refills one cell per 1/qps seconds.
                    reset = Duration::from_secs_f64(f64::from(qps - remaining.min(qps)) / f64::from(qps));
                }
                Ok(_) => {}
                Err(not_until) => {
                    let retry_after = not_until.wait_time_from(DefaultClock::default().now());
                    return Err(Refusal::Rate { subject: *subject, qps, retry_after });
                }
            }
        }
        let rate = RateState {
            key_qps: policy.key_qps,
            tenant_qps: policy.tenant_qps,
            remaining,
            reset_secs: reset.as_secs_f64().ceil() as u64,
        };
        Ok(Admission { rate, _local: slots, _redis: None })
    }

    fn take_slot(&self, subject: &str, limit: u32) -> Option<LocalSlot> {
        let mut counts = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(subject.to_string()).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(LocalSlot { subject: subject.to_string(), counts: self.in_flight.clone() })
    }

    fn rate_limiter(&self, subject: &str, qps: u32) -> Arc<DirectLimiter> {
        let mut rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((current, limiter)) = rates.get(subject)
            && *current == qps
        {
            return limiter.clone();
        }
        let per_second = NonZeroU32::new(qps).unwrap_or(NonZeroU32::MIN);
        let limiter = Arc::new(RateLimiter::direct(Quota::per_second(per_second)).with_middleware());
        rates.insert(subject.to_string(), (qps, limiter.clone()));
        limiter
    }
}

// ---------------------------------------------------------------------------------------------------------
// In Redis, shared by every node.

/// Checks and takes the key's and the tenant's in-flight slots and rates, all or nothing.
/// KEYS: key rate, tenant rate, key in-flight set, tenant in-flight set.
/// ARGV: key interval (µs), key burst, tenant interval (µs), tenant burst, key concurrency, tenant concurrency,
/// request id, lease (ms).
/// Returns {outcome, retry-after µs, key's remaining burst, µs until the key's burst is full}; outcome 0/1:
/// key/tenant rate exceeded, 2/3: key/tenant in-flight limit reached, 9: admitted.
/// Times are Redis's (`TIME`), in microseconds: 16 digits, exact in Lua's doubles, stored with `%.0f` because
/// Lua's own number formatting keeps only 14. (Numbers returned become integers; those are small.)
const ADMIT_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local lease = tonumber(ARGV[8])
local function room(set, limit)
  redis.call('ZREMRANGEBYSCORE', set, '-inf', string.format('%.0f', now))
  return redis.call('ZCARD', set) < limit
end
if not room(KEYS[3], tonumber(ARGV[5])) then return {2, 0, 0, 0} end
if not room(KEYS[4], tonumber(ARGV[6])) then return {3, 0, 0, 0} end
local function tat(key)
  local stored = tonumber(redis.call('GET', key) or '0')
  if stored < now then return now end
  return stored
end
local ki, kb, ti, tb = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ktat, ttat = tat(KEYS[1]), tat(KEYS[2])
local kwait = ktat - (kb - 1) * ki - now
if kwait > 0 then return {0, kwait, 0, 0} end
local twait = ttat - (tb - 1) * ti - now
if twait > 0 then return {1, twait, 0, 0} end
local knew, tnew = ktat + ki, ttat + ti
redis.call('SET', KEYS[1], string.format('%.0f', knew), 'PX', math.ceil((knew - now) / 1000) + 1)
redis.call('SET', KEYS[2], string.format('%.0f', tnew), 'PX', math.ceil((tnew - now) / 1000) + 1)
local expires = string.format('%.0f', now + lease * 1000)
redis.call('ZADD', KEYS[3], expires, ARGV[7])
redis.call('PEXPIRE', KEYS[3], lease)
redis.call('ZADD', KEYS[4], expires, ARGV[7])
redis.call('PEXPIRE', KEYS[4], lease)
local remaining = math.floor((kb * ki - (knew - now)) / ki)
return {9, 0, remaining, knew - now}
";

/// Gives back a request's in-flight slots. KEYS: key set, tenant set. ARGV: request id.
const RELEASE_SCRIPT: &str = r"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
";

/// How long Redis is left alone after a failure.
const REDIS_BACKOFF: Duration = Duration::from_secs(1);

/// Why the shared limiter gave no decision.
enum Unanswered {
    /// Redis failed less than [`REDIS_BACKOFF`] ago and was not asked.
    BackingOff,
    Failed(anyhow::Error),
}

struct RedisLimiter {
    client: redis::Client,
    /// Opened on first use; a failed opening leaves it empty for the next request to retry.
    connection: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    admit: redis::Script,
    release: Arc<redis::Script>,
    prefix: String,
    timeout: Duration,
    lease_ms: u64,
    /// Until when Redis counts as down after a failure.
    down_until: Mutex<Option<Instant>>,
}

struct RedisSlots {
    connection: redis::aio::ConnectionManager,
    release: Arc<redis::Script>,
    sets: [String; 2],
    request_id: String,
    timeout: Duration,
}

impl Drop for RedisSlots {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (mut connection, release) = (self.connection.clone(), self.release.clone());
        let (sets, request_id, timeout) = (self.sets.clone(), std::mem::take(&mut self.request_id), self.timeout);
        // If this fails the slot expires with its lease.
        runtime.spawn(async move {
            let mut invocation = release.prepare_invoke();
            invocation.key(&sets[0]).key(&sets[1]).arg(&request_id);
            match tokio::time::timeout(timeout, invocation.invoke_async::<i64>(&mut connection)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "could not free an in-flight slot in Redis; its lease will"),
                Err(_) => tracing::warn!("freeing an in-flight slot in Redis timed out; its lease will"),
            }
        });
    }
}

impl RedisLimiter {
    fn new(url: &str, config: &LimitsConfig) -> anyhow::Result<RedisLimiter> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("limits.redis_url `{url}`: {e}"))?;
        Ok(RedisLimiter {
            client,
            connection: tokio::sync::OnceCell::new(),
            admit: redis::Script::new(ADMIT_SCRIPT),
            release: Arc::new(redis::Script::new(RELEASE_SCRIPT)),
            prefix: config.redis_prefix.clone(),
            timeout: Duration::from_millis(config.redis_timeout_ms.max(1)),
            lease_ms: config.concurrency_lease_secs.max(1) * 1000,
            down_until: Mutex::new(None),
        })
    }

    async fn admit(
        &self,
        key: &str,
        tenant: &str,
        policy: &Policy,
        request_id: &str,
    ) -> Result<Result<Admission, Refusal>, Unanswered> {
        if self.down_until.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|until| Instant::now() < until) {
            return Err(Unanswered::BackingOff);
        }
        let result = match tokio::time::timeout(self.timeout, self.call_admit(key, tenant, policy, request_id)).await {
            Ok(result) => result,
            Err(_) => Err(anyhow::anyhow!("no answer from Redis within {} ms", self.timeout.as_millis())),
        };
        let mut down_until = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(decision) => {
                if down_until.take().is_some() {
                    tracing::info!("shared rate limiter (Redis) answers again");
                }
                Ok(decision)
            }
            Err(e) => {
                *down_until = Some(Instant::now() + REDIS_BACKOFF);
                Err(Unanswered::Failed(e))
            }
        }
    }

    async fn call_admit(
        &self,
        key: &str,
        tenant: &str,
        policy: &Policy,
        request_id: &str,
    ) -> anyhow::Result<Result<Admission, Refusal>> {
        let mut connection = self.connection().await?;
        let p = &self.prefix;
        let names = [
            format!("{p}:rate:k:{key}"),
            format!("{p}:rate:t:{tenant}"),
            format!("{p}:flight:k:{key}"),
            format!("{p}:flight:t:{tenant}"),
        ];
        let interval = |qps: u32| 1_000_000 / u64::from(qps.max(1));
        let mut invocation = self.admit.prepare_invoke();
        invocation
            .key(&names[0])
            .key(&names[1])
            .key(&names[2])
            .key(&names[3])
            .arg(interval(policy.key_qps))
            .arg(policy.key_qps)
            .arg(interval(policy.tenant_qps))
            .arg(policy.tenant_qps)
            .arg(policy.key_concurrency)
            .arg(policy.tenant_concurrency)
            .arg(request_id)
            .arg(self.lease_ms);
        let reply: Vec<i64> = invocation.invoke_async(&mut connection).await?;
        let [outcome, wait_us, remaining, full_in_us] = reply[..] else {
            anyhow::bail!("unexpected reply from the limiter script: {reply:?}");
        };
        let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok(match outcome {
            0 => Err(Refusal::Rate { subject: Subject::Key, qps: policy.key_qps, retry_after: micros(wait_us) }),
            1 => Err(Refusal::Rate { subject: Subject::Tenant, qps: policy.tenant_qps, retry_after: micros(wait_us) }),
            2 => Err(Refusal::Concurrency { subject: Subject::Key, limit: policy.key_concurrency }),
            3 => Err(Refusal::Concurrency { subject: Subject::Tenant, limit: policy.tenant_concurrency }),
            9 => {
                let rate = RateState {
                    key_qps: policy.key_qps,
                    tenant_qps: policy.tenant_qps,
                    remaining: u32::try_from(remaining).unwrap_or(0),
                    reset_secs: micros(full_in_us).as_secs_f64().ceil() as u64,
                };
                let [_, _, key_set, tenant_set] = names;
                let slots = RedisSlots {
                    connection,
                    release: self.release.clone(),
                    sets: [key_set, tenant_set],
                    request_id: request_id.to_string(),
                    timeout: self.timeout,
                };
                Ok(Admission { rate, _local: Vec::new(), _redis: Some(slots) })
            }
            other => anyhow::bail!("unexpected outcome {other} from the limiter script"),
        })
    }

    async fn warm_up(&self) -> anyhow::Result<()> {
        let mut connection = self.connection().await?;
        for script in [&self.admit, &*self.release] {
            script.prepare_invoke().load_async(&mut connection).await?;
        }
        Ok(())
    }

    /// The shared connection, opened on first use (so a node starts while Redis is down); it reconnects on
    /// its own after a failure. Once open, requests share it without a lock.
    async fn connection(&self) -> anyhow::Result<redis::aio::ConnectionManager> {
        let opened = self
            .connection
            .get_or_try_init(|| async {
                // One quick attempt: a request must not wait for reconnection back-offs (the manager still
                // reconnects on its own later).
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_number_of_retries(1)
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout));
                redis::aio::ConnectionManager::new_with_config(self.client.clone(), config).await
            })
            .await?;
        Ok(opened.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            id: "test".into(),
            name: "Test".into(),
            tenant_qps: 3,
            tenant_concurrency: 2,
            key_qps: 1,
            key_concurrency: 1,
            currency: "usd".into(),
            base_fee_cents: 0,
            products: Default::default(),
        }
    }

    #[test]
    fn a_key_sets_its_own_limits_and_the_plan_fills_the_rest() {
        let policy = Policy::of(&plan(), Some(10), None);
        assert_eq!(policy, Policy { key_qps: 10, key_concurrency: 1, tenant_qps: 3, tenant_concurrency: 2 });
        assert_eq!(Policy::of(&plan(), Some(0), Some(-1)).key_qps, 1);
    }

    #[test]
    fn in_process_limits_hold_per_key_and_per_tenant_and_slots_come_back() {
        let limiter = LocalLimiter::default();
        let policy = Policy::of(&plan(), None, None);
        let first = limiter.admit("k1", "t", &policy).expect("first request");
        assert_eq!((first.rate.key_qps, first.rate.remaining), (1, 0));
        // The key has its one request in flight.
        assert_eq!(
            limiter.admit("k1", "t", &policy).err(),
            Some(Refusal::Concurrency { subject: Subject::Key, limit: 1 })
        );
        // Another key of the tenant takes the tenant's second slot; a third key finds the tenant full.
        let second = limiter.admit("k2", "t", &policy).expect("another key");
        assert_eq!(
            limiter.admit("k3", "t", &policy).err(),
            Some(Refusal::Concurrency { subject: Subject::Tenant, limit: 2 })
        );
        drop((first, second));
        // The slots are back: k3 gets in (the refusals took no rate), and k1 is now held by its rate of one
        // request a second, which it used.
        drop(limiter.admit("k3", "t", &policy).expect("slot freed"));
        match limiter.admit("k1", "t", &policy) {
            Err(Refusal::Rate { subject: Subject::Key, qps: 1, retry_after }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1), "{retry_after:?}");
            }
            other => panic!("expected the key's rate refusal, got {:?}", other.map(|a| a.rate)),
        }
    }
}
