//! HTTP load generator for `make bench`: drives a running server (`BENCH_URL`) with concurrent
//! clients and prints throughput and latency percentiles per scenario as a Markdown table.
//!
//! Scenarios, each run for `BENCH_SECONDS` with `BENCH_CONCURRENCY` clients on one machine:
//! - `GET /health/live` — the trivial endpoint every other figure is compared with;
//! - `GET /api/v1/rates/latest` — the hot read path (served from memory);
//! - `GET /api/v1/convert` — a quote (memory, no write);
//! - `POST /api/v1/conversions` — 64 partners converting, each with its own token (a write).
//!
//! It needs an admin account (`BENCH_ADMIN_EMAIL`, `BENCH_ADMIN_PASSWORD`) to create partners.
//! Run with `make bench`, which starts a release server on a scratch database first.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Outcome {
    name: &'static str,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Outcome {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let idx = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[idx] as f64 / 1000.0
    }
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

async fn token(client: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let res: Value = client
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login request")
        .json()
        .await
        .expect("login answer");
    res["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed for {email}: {res}"))
        .to_owned()
}

/// Runs `concurrency` clients for `duration`; client `i` sends requests built by `make(i)`.
async fn run<F>(name: &'static str, concurrency: usize, duration: Duration, make: F) -> Outcome
where
    F: Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let make = std::sync::Arc::new(make);
    let started = Instant::now();
    let deadline = started + duration;
    let mut handles = Vec::new();
    for i in 0..concurrency {
        let make = make.clone();
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                match make(i).send().await {
                    Ok(res) if res.status().is_success() => {
                        let _ = res.bytes().await;
                        latencies.push(t.elapsed().as_micros() as u64);
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.await.expect("client task");
        latencies_us.extend(l);
        errors += e;
    }
    latencies_us.sort_unstable();
    Outcome {
        name,
        requests: latencies_us.len(),
        errors,
        elapsed: started.elapsed(),
        latencies_us,
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; without a server to talk to there is nothing to do.
    let Ok(base) = std::env::var("BENCH_URL") else {
        eprintln!("load: set BENCH_URL (see `make bench`); skipping");
        return;
    };
    // reqwest is built without a default TLS provider (see main.rs).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seconds: u64 = env("BENCH_SECONDS", "10").parse().expect("BENCH_SECONDS");
    let concurrency: usize = env("BENCH_CONCURRENCY", "64")
        .parse()
        .expect("BENCH_CONCURRENCY");
    let duration = Duration::from_secs(seconds);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let admin = token(
        &client,
        &base,
        &env("BENCH_ADMIN_EMAIL", "bench-admin@example.com"),
        &env("BENCH_ADMIN_PASSWORD", "bench admin password"),
    )
    .await;

    // One partner per client, each converting with its own token.
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut partner_tokens = Vec::new();
    for i in 0..concurrency {
        let email = format!("bench-{run_id}-{i}@example.com");
        let password = "bench partner password";
        let res = client
            .post(format!("{base}/api/v1/partners"))
            .bearer_auth(&admin)
            .json(&json!({"email": email, "password": password, "display_name": format!("Bench partner {i}")}))
            .send()
            .await
            .expect("create partner");
        assert!(
            res.status().is_success(),
            "creating a partner: {}",
            res.status()
        );
        partner_tokens.push(token(&client, &base, &email, password).await);
    }
    let partner_tokens = std::sync::Arc::new(partner_tokens);

    let mut outcomes = Vec::new();
    let (c, b) = (client.clone(), base.clone());
    outcomes.push(
        run(
            "GET /health/live (trivial)",
            concurrency,
            duration,
            move |_| c.get(format!("{b}/health/live")),
        )
        .await,
    );
    // The cost of authentication on every request: JWT verification plus the user-status check
    // (a Redis MGET; PostgreSQL only on a cache miss).
    let (c, b, t) = (client.clone(), base.clone(), partner_tokens.clone());
    outcomes.push(
        run(
            "GET /api/v1/me (token + status check)",
            concurrency,
            duration,
            move |i| c.get(format!("{b}/api/v1/me")).bearer_auth(&t[i]),
        )
        .await,
    );
    let (c, b, t) = (client.clone(), base.clone(), partner_tokens.clone());
    outcomes.push(
        run(
            "GET /api/v1/rates/latest?base=USD",
            concurrency,
            duration,
            move |i| {
                c.get(format!("{b}/api/v1/rates/latest?base=USD"))
                    .bearer_auth(&t[i])
            },
        )
        .await,
    );
    let (c, b, t) = (client.clone(), base.clone(), partner_tokens.clone());
    outcomes.push(
        run(
            "GET /api/v1/convert GBP→JPY",
            concurrency,
            duration,
            move |i| {
                c.get(format!("{b}/api/v1/convert?from=GBP&to=JPY&amount=125.50"))
                    .bearer_auth(&t[i])
            },
        )
        .await,
    );
    let (c, b, t) = (client.clone(), base.clone(), partner_tokens.clone());
    outcomes.push(
        run(
            "POST /api/v1/conversions (64 partners)",
            concurrency,
            duration,
            move |i| {
                c.post(format!("{b}/api/v1/conversions"))
                    .bearer_auth(&t[i])
                    .json(&json!({"from": "USD", "to": "EUR", "amount": "100.00"}))
            },
        )
        .await,
    );

    let trivial = outcomes[0].requests as f64 / outcomes[0].elapsed.as_secs_f64();
    println!("| scenario | requests | errors | req/s | vs trivial | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for o in &outcomes {
        let rps = o.requests as f64 / o.elapsed.as_secs_f64();
        println!(
            "| {} | {} | {} | {:.0} | {:.0}% | {:.2} | {:.2} |",
            o.name,
            o.requests,
            o.errors,
            rps,
            100.0 * rps / trivial,
            o.percentile(0.50),
            o.percentile(0.99),
        );
    }
}
