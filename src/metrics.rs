//! Request metrics and their Prometheus exposition, through the `metrics` facade and
//! `metrics-exporter-prometheus`.
//!
//! Every label has a bounded set of values, whatever clients send: the method is one of the
//! nine standard methods or `OTHER`, the route is the matched route pattern (a request that
//! matches no route is `unmatched`), the status is the status code. A flood of made-up methods
//! or paths therefore adds no series. Each [`Metrics`] owns its recorder (not the process-global
//! one), so that apps in one test process never mix their counts. Pool gauges are read at scrape
//! time. Who may read `/metrics`, and on which listener, is `settings.metrics` (see `health.rs`).

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::http::Method;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram, with_local_recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

const REQUESTS: &str = "http_requests_total";
const DURATION: &str = "http_request_duration_seconds";
/// 1 while lag-tolerant reads go to the read replica, 0 while they go to the primary.
const REPLICA_UP: &str = "db_replica_up";
/// Lag-tolerant reads sent to the primary because the replica was lagging or down.
const REPLICA_FALLBACKS: &str = "db_replica_fallbacks_total";

/// Latency bucket upper bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The route label of a request that matched no route (404s, probes, scanners).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The request counter and latency histogram of one label set.
type RequestSeries = (metrics::Counter, metrics::Histogram);

/// route → (method, status) → its series.
type SeriesByRoute = HashMap<String, HashMap<(&'static str, u16), RequestSeries>>;

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// route → (method, status) → its series: registered once, then found without building the
    /// labels (three strings) and hashing them in the recorder on every request. Bounded like
    /// the labels themselves.
    series: RwLock<SeriesByRoute>,
    /// Requests observed, for [`UPKEEP_EVERY`].
    observed: AtomicU64,
}

/// Every this many requests, the latency samples recorded since are folded into the
/// histograms' buckets ([`PrometheusHandle::run_upkeep`]). The recorder keeps each sample until
/// then (or until a scrape), so without it memory grew by 8 bytes per request between scrapes:
/// tens of MB over a benchmark's few million requests, and without bound where nobody scrapes.
const UPKEEP_EVERY: u64 = 8192;

/// Gauges read at scrape time.
pub struct PoolGauges {
    pub pg_size: u32,
    pub pg_idle: usize,
    pub pg_max: u32,
    pub redis_size: usize,
    pub redis_available: usize,
    pub redis_max: usize,
    /// Whether lag-tolerant reads go to the read replica now; `None` without one.
    pub replica_up: Option<bool>,
    /// Reads sent to the primary because the replica was lagging or down, since start.
    pub replica_fallbacks: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.to_owned()), &BUCKETS)
            // Only an empty bucket list is refused, and ours is a non-empty constant.
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        with_local_recorder(&recorder, || {
            describe_counter!(
                REQUESTS,
                "HTTP requests served, by method, route and status."
            );
            describe_histogram!(DURATION, Unit::Seconds, "Time to serve HTTP requests.");
            describe_gauge!(
                REPLICA_UP,
                "1 while lag-tolerant reads go to the read replica, 0 while they go to the primary (lagging or down)."
            );
            describe_counter!(
                REPLICA_FALLBACKS,
                "Lag-tolerant reads sent to the primary because the read replica was lagging or down."
            );
            for (name, help) in GAUGES {
                describe_gauge!(name, help);
            }
        });
        Self {
            recorder,
            handle,
            series: RwLock::default(),
            observed: AtomicU64::new(0),
        }
    }

    /// Counts one served request. `route` is the matched route pattern, `None` when no route
    /// matched.
    pub fn observe_request(
        &self,
        method: &Method,
        route: Option<String>,
        status: u16,
        elapsed: Duration,
    ) {
        if self.observed.fetch_add(1, Ordering::Relaxed) % UPKEEP_EVERY == UPKEEP_EVERY - 1 {
            self.handle.run_upkeep();
        }
        let method = method_label(method);
        let route = route.as_deref().unwrap_or(UNMATCHED_ROUTE);
        let seconds = elapsed.as_secs_f64();
        {
            let series = self.series.read().unwrap_or_else(|p| p.into_inner());
            if let Some((counter, histogram)) =
                series.get(route).and_then(|r| r.get(&(method, status)))
            {
                counter.increment(1);
                histogram.record(seconds);
                return;
            }
        }
        let labels = [
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ];
        let (counter, histogram) = with_local_recorder(&self.recorder, || {
            (
                metrics::counter!(REQUESTS, &labels),
                metrics::histogram!(DURATION, &labels),
            )
        });
        counter.increment(1);
        histogram.record(seconds);
        self.series
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(route.to_owned())
            .or_default()
            .insert((method, status), (counter, histogram));
    }

    /// The Prometheus text exposition, with the pool gauges as of now.
    pub fn render(&self, pools: &PoolGauges) -> String {
        let values = [
            f64::from(pools.pg_size),
            pools.pg_idle as f64,
            f64::from(pools.pg_max),
            pools.redis_size as f64,
            pools.redis_available as f64,
            pools.redis_max as f64,
        ];
        with_local_recorder(&self.recorder, || {
            for ((name, _), value) in GAUGES.iter().zip(values) {
                metrics::gauge!(*name).set(value);
            }
            if let Some(up) = pools.replica_up {
                metrics::gauge!(REPLICA_UP).set(if up { 1.0 } else { 0.0 });
                metrics::counter!(REPLICA_FALLBACKS).absolute(pools.replica_fallbacks);
            }
        });
        self.handle.render()
    }
}

/// Pool gauges, in the order [`Metrics::render`] reads them.
const GAUGES: [(&str, &str); 6] = [
    ("db_pool_connections", "Open PostgreSQL connections."),
    ("db_pool_idle_connections", "Idle PostgreSQL connections."),
    (
        "db_pool_max_connections",
        "Configured PostgreSQL pool size.",
    ),
    ("redis_pool_connections", "Open Redis connections."),
    (
        "redis_pool_available_connections",
        "Idle Redis connections.",
    ),
    ("redis_pool_max_connections", "Configured Redis pool size."),
];

/// The method label: the standard methods by name, anything else (actix accepts any token as
/// an extension method) as `OTHER`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> PoolGauges {
        PoolGauges {
            pg_size: 1,
            pg_idle: 1,
            pg_max: 5,
            redis_size: 0,
            redis_available: 0,
            redis_max: 8,
            replica_up: None,
            replica_fallbacks: 0,
        }
    }

    #[test]
    fn samples_folded_in_between_scrapes_are_all_counted() {
        let m = Metrics::new();
        let n = UPKEEP_EVERY * 2 + 5;
        for _ in 0..n {
            let route = Some("/health/live".to_owned());
            m.observe_request(&Method::GET, route, 200, Duration::from_millis(3));
        }
        let text = m.render(&gauges());
        let count = format!(
            "http_request_duration_seconds_count{{method=\"GET\",route=\"/health/live\",status=\"200\"}} {n}"
        );
        assert!(text.contains(&count), "{text}");
        assert!(text.contains(&format!("le=\"0.005\"}} {n}")), "{text}");
    }

    #[test]
    fn a_request_lands_in_its_bucket_and_every_larger_one() {
        let m = Metrics::new();
        let route = Some("/health/live".to_owned());
        m.observe_request(&Method::GET, route, 200, Duration::from_millis(3));
        let text = m.render(&gauges());
        assert!(
            text.contains(
                "http_requests_total{method=\"GET\",route=\"/health/live\",status=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("le=\"0.0025\"} 0"), "{text}");
        assert!(text.contains("le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("db_pool_max_connections 5"), "{text}");
    }

    #[test]
    fn made_up_methods_and_unmatched_paths_share_one_series() {
        let m = Metrics::new();
        for i in 0..100 {
            let method = Method::from_bytes(format!("X{i}").as_bytes()).unwrap();
            m.observe_request(&method, None, 404, Duration::from_millis(1));
        }
        let text = m.render(&gauges());
        assert!(
            text.contains(
                "http_requests_total{method=\"OTHER\",route=\"unmatched\",status=\"404\"} 100"
            ),
            "{text}"
        );
        assert_eq!(text.matches("http_requests_total{").count(), 1, "{text}");
    }
}
