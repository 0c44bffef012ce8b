//! Prometheus metrics: request counts and latency histograms by route and status.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route pattern (`/v1/keys/{key_id}`), never the raw path: label cardinality stays bounded.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    index_sets: Gauge,
    index_faces: Gauge,
    index_bytes: Gauge,
    limits: crate::limits::LimitMetrics,
    metering: crate::metering::MeteringMetrics,
    billing: crate::billing::BillingMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("faceplate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let latency = HistogramFamily::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0005, 2.0, 16))) as fn() -> Histogram,
        );
        registry.register("http_request_duration_seconds", "Time to answer HTTP requests", latency.clone());
        let (index_sets, index_faces, index_bytes) = (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register("faceset_indexes", "FaceSet indexes loaded in this node's memory", index_sets.clone());
        registry.register("faceset_index_faces", "Faces held by the loaded FaceSet indexes", index_faces.clone());
        registry.register("faceset_index_bytes", "Memory used by the loaded FaceSet indexes", index_bytes.clone());
        let limits = crate::limits::LimitMetrics::default();
        registry.register("limit_decisions", "Rate and in-flight limit decisions", limits.decisions.clone());
        registry.register(
            "limiter_redis_failures",
            "Calls to the shared limiter (Redis) that failed or timed out",
            limits.redis_failures.clone(),
        );
        let metering = crate::metering::MeteringMetrics::default();
        registry.register("usage_events", "Billable answers by what recording them did", metering.events.clone());
        registry.register("quota_refusals", "Billable requests refused by a quota", metering.quota_refusals.clone());
        let billing = crate::billing::BillingMetrics::default();
        registry.register(
            "billing_meter_events",
            "Usage events sent to Stripe, by result",
            billing.meter_events.clone(),
        );
        registry.register("billing_webhooks", "Stripe webhooks received, by result", billing.webhooks.clone());
        Metrics { registry, requests, latency, index_sets, index_faces, index_bytes, limits, metering, billing }
    }

    /// The billing counters, registered here.
    pub fn billing(&self) -> crate::billing::BillingMetrics {
        self.billing.clone()
    }

    /// The metering counters, registered here.
    pub fn metering(&self) -> crate::metering::MeteringMetrics {
        self.metering.clone()
    }

    /// The limiter's counters, registered here.
    pub fn limits(&self) -> crate::limits::LimitMetrics {
        self.limits.clone()
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let (method, route) = (method.to_string(), route.to_string());
        self.latency.get_or_create(&RouteLabels { method: method.clone(), route: route.clone() }).observe(seconds);
        self.requests.get_or_create(&RequestLabels { method, route, status }).inc();
    }

    /// Sets the FaceSet index gauges (read at scrape time).
    pub fn set_index_stats(&self, stats: crate::search_index::IndexStats) {
        self.index_sets.set(stats.sets as i64);
        self.index_faces.set(stats.faces as i64);
        self.index_bytes.set(stats.bytes as i64);
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;
