//! The yardstick for the redis store in docs/performance.md: GETs of one
//! value straight from Redis with the `redis` crate (the same client the
//! proxy uses), at a given concurrency, latency percentiles as JSON.
//!
//!   cargo run --release --example redis_direct_bench -- redis://127.0.0.1:6390/0 1 5
//!   (URL, concurrency, seconds)

use std::time::{Duration, Instant};

use redis::AsyncCommands;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".into());
    let concurrency: usize = args.next().map_or(1, |c| c.parse().expect("concurrency"));
    let seconds: f64 = args.next().map_or(5.0, |s| s.parse().expect("seconds"));
    let client = redis::Client::open(url).expect("url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let value = vec![b'x'; 1024];
    let _: () = connection.set("direct-bench", &value).await.expect("set");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut connection = connection.clone();
            tokio::spawn(async move {
                let mut nanos = Vec::new();
                while Instant::now() < deadline {
                    let began = Instant::now();
                    let _: Vec<u8> = connection.get("direct-bench").await.expect("get");
                    nanos.push(began.elapsed().as_nanos() as u64);
                }
                nanos
            })
        })
        .collect();
    let mut nanos = Vec::new();
    for worker in workers {
        nanos.extend(worker.await.expect("worker"));
    }
    nanos.sort_unstable();
    let at = |p: f64| {
        nanos[((p / 100.0 * nanos.len() as f64).ceil() as usize).clamp(1, nanos.len()) - 1] as f64
            / 1e6
    };
    println!(
        "{{\"concurrency\": {concurrency}, \"requests_per_second\": {:.0}, \"latency_ms\": {{\"p50\": {:.3}, \"p90\": {:.3}, \"p99\": {:.3}}}}}",
        nanos.len() as f64 / seconds,
        at(50.0),
        at(90.0),
        at(99.0)
    );
}
