//! Prometheus text exposition of request counts and latencies per route and status, and of pool
//! usage. Kept in-process and lock-protected: a scrape is rare, an observation is a map lookup.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Latency bucket upper bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum_secs: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Series>>,
}

/// Gauges read at scrape time.
pub struct PoolGauges {
    pub pg_size: u32,
    pub pg_idle: usize,
    pub pg_max: u32,
    pub redis_size: usize,
    pub redis_available: usize,
    pub redis_max: usize,
}

impl Metrics {
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut map = match self.requests.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let series = map
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default();
        series.count += 1;
        series.sum_secs += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                series.buckets[i] += 1;
            }
        }
    }

    pub fn render(&self, pools: &PoolGauges) -> String {
        let mut out = String::new();
        let map = match self.requests.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        out.push_str(
            "# HELP http_requests_total HTTP requests served, by method, route and status.\n",
        );
        out.push_str("# TYPE http_requests_total counter\n");
        for ((method, route, status), s) in map.iter() {
            let _ = writeln!(
                out,
                "http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                s.count
            );
        }
        out.push_str("# HELP http_request_duration_seconds Time to serve HTTP requests.\n");
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        for ((method, route, status), s) in map.iter() {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                escape(route)
            );
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_secs
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        for (name, help, value) in [
            (
                "db_pool_connections",
                "Open PostgreSQL connections.",
                pools.pg_size as f64,
            ),
            (
                "db_pool_idle_connections",
                "Idle PostgreSQL connections.",
                pools.pg_idle as f64,
            ),
            (
                "db_pool_max_connections",
                "Configured PostgreSQL pool size.",
                pools.pg_max as f64,
            ),
            (
                "redis_pool_connections",
                "Open Redis connections.",
                pools.redis_size as f64,
            ),
            (
                "redis_pool_available_connections",
                "Idle Redis connections.",
                pools.redis_available as f64,
            ),
            (
                "redis_pool_max_connections",
                "Configured Redis pool size.",
                pools.redis_max as f64,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_lands_in_its_bucket_and_every_larger_one() {
        let m = Metrics::default();
        m.observe_request("GET", "/health/live", 200, Duration::from_millis(3));
        let text = m.render(&PoolGauges {
            pg_size: 1,
            pg_idle: 1,
            pg_max: 5,
            redis_size: 0,
            redis_available: 0,
            redis_max: 8,
        });
        assert!(text.contains(
            "http_requests_total{method=\"GET\",route=\"/health/live\",status=\"200\"} 1"
        ));
        assert!(text.contains("le=\"0.0025\"} 0"));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("db_pool_max_connections 5"));
    }
}
