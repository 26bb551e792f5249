//! `state-proxy bench`: load a running proxy with GET, PUT or HEAD of
//! N-byte values at a fixed concurrency, bounded in time and requests,
//! and print throughput and latency percentiles as JSON.
//!
//! The load generator speaks HTTP/1.1 by hand (`wire`): one task per
//! connection writing a prepared request and reading the answer, so that
//! it costs the machine as little as possible and the numbers describe the
//! proxy, not the client.

mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, ValueEnum};
use serde::Serialize;
use state_client::{Client, Condition};

use crate::config::parse_size;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Get,
    Put,
    Head,
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[arg(long, env = "CONNECTOR_SOCKET", default_value = "./state.sock")]
    pub socket: PathBuf,
    /// Request kind.
    #[arg(long, value_enum, default_value = "get")]
    pub op: Operation,
    /// Value size (bytes, or with a KiB/MiB suffix).
    #[arg(long, default_value = "1KiB", value_parser = parse_size)]
    pub size: u64,
    /// Requests in flight at once (one connection each with keep-alive).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Stop after this many requests in all, if sooner.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Open a new connection per request (the compat client's way).
    #[arg(long)]
    pub new_connection: bool,
    /// Keys are `<key-prefix>/<worker>`; existing values are overwritten.
    #[arg(long, default_value = "bench")]
    pub key_prefix: String,
    /// Seconds of unmeasured warm-up before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Threads of the load generator (the proxy needs cores too).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub op: Operation,
    pub threads: usize,
    pub size: u64,
    pub concurrency: usize,
    pub connection: &'static str,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub latency_ms: Latency,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Runs the benchmark on its own runtime (`--threads` worker threads)
/// and returns its report.
pub fn run(args: &BenchArgs) -> Result<Report, String> {
    if args.concurrency == 0 || args.threads == 0 {
        return Err("--concurrency and --threads must be at least 1".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(measure(args))
}

async fn measure(args: &BenchArgs) -> Result<Report, String> {
    let value = Bytes::from(vec![b'x'; args.size as usize]);
    let keys: Vec<String> = (0..args.concurrency)
        .map(|worker| format!("{}/{worker}", args.key_prefix))
        .collect();
    // Every worker reads and writes its own key, which exists beforehand.
    let setup = Client::new(&args.socket);
    for key in &keys {
        setup
            .put(key, value.clone(), Condition::None)
            .await
            .map_err(|e| format!("preparing {key}: {e}"))?;
    }
    let warmup = Duration::from_secs_f64(args.warmup.max(0.0));
    let measured = Duration::from_secs_f64(args.duration.max(0.0));
    let budget = Arc::new(AtomicU64::new(args.requests.unwrap_or(u64::MAX)));
    let start = Instant::now() + warmup;
    let deadline = start + measured;
    let workers: Vec<_> = keys
        .into_iter()
        .map(|key| {
            let request = wire::request(args.op, &key, &value);
            let mut connection = wire::Connection::new(&args.socket, !args.new_connection);
            let (budget, head) = (Arc::clone(&budget), args.op == Operation::Head);
            tokio::spawn(async move {
                let mut samples = Samples::default();
                loop {
                    let began = Instant::now();
                    if began >= deadline {
                        break;
                    }
                    let measuring = began >= start;
                    if measuring && take_one(&budget).is_none() {
                        break;
                    }
                    let outcome = connection.exchange(&request, head).await;
                    if measuring {
                        samples.record(began.elapsed(), outcome.err());
                    }
                }
                samples
            })
        })
        .collect();
    let mut all = Samples::default();
    for worker in workers {
        all.merge(worker.await.map_err(|e| e.to_string())?);
    }
    let seconds = (Instant::now().min(deadline).max(start) - start).as_secs_f64();
    Ok(all.report(args, seconds))
}

fn take_one(budget: &AtomicU64) -> Option<u64> {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(1)
        })
        .ok()
}

#[derive(Default)]
struct Samples {
    nanos: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Samples {
    fn record(&mut self, took: Duration, error: Option<String>) {
        self.nanos.push(took.as_nanos() as u64);
        if let Some(error) = error {
            self.errors += 1;
            self.first_error.get_or_insert(error);
        }
    }

    fn merge(&mut self, other: Samples) {
        self.nanos.extend(other.nanos);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn report(mut self, args: &BenchArgs, seconds: f64) -> Report {
        self.nanos.sort_unstable();
        let percentile = |p: f64| -> f64 {
            if self.nanos.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * self.nanos.len() as f64).ceil() as usize;
            self.nanos[rank.clamp(1, self.nanos.len()) - 1] as f64 / 1e6
        };
        let requests = self.nanos.len() as u64;
        Report {
            op: args.op,
            threads: args.threads,
            size: args.size,
            concurrency: args.concurrency,
            connection: if args.new_connection {
                "new"
            } else {
                "keep-alive"
            },
            requests,
            errors: self.errors,
            first_error: self.first_error.clone(),
            seconds,
            requests_per_second: if seconds > 0.0 {
                requests as f64 / seconds
            } else {
                0.0
            },
            latency_ms: Latency {
                p50: percentile(50.0),
                p90: percentile(90.0),
                p99: percentile(99.0),
                max: percentile(100.0),
            },
        }
    }
}
