//! The yardstick for the s3 store in docs/performance.md: GETs or PUTs of
//! a 1 KiB object straight to an S3 endpoint (moto here) with a plain
//! `object_store` client, at a given concurrency for a bounded time,
//! each worker on its own key (as `state-proxy bench` does). Prints
//! requests/s and latency percentiles as JSON.
//!
//!   cargo run --release --example s3_direct_bench -- http://127.0.0.1:PORT BUCKET get 16 5
//!   (endpoint, bucket, get|put, concurrency, seconds; credentials from
//!   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, default test/test)

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let endpoint = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:5000".into());
    let bucket = args.next().unwrap_or_else(|| "asya-state-component".into());
    let op = args.next().unwrap_or_else(|| "get".into());
    let concurrency: usize = args.next().map_or(16, |c| c.parse().expect("concurrency"));
    let seconds: f64 = args.next().map_or(5.0, |s| s.parse().expect("seconds"));
    let key_id = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "test".into());
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "test".into());
    let store: Arc<dyn ObjectStore> = Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_bucket_name(&bucket)
            .with_region("us-east-1")
            .with_access_key_id(key_id)
            .with_secret_access_key(secret)
            .with_virtual_hosted_style_request(false)
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .build()
            .expect("s3 client"),
    );
    let value = Bytes::from(vec![b'x'; 1024]);
    let paths: Vec<Path> = (0..concurrency)
        .map(|worker| Path::from(format!("direct-bench/{worker}")))
        .collect();
    for path in &paths {
        store
            .put(path, PutPayload::from(value.clone()))
            .await
            .expect("prepare");
    }
    // One second of warm-up, as `state-proxy bench` does by default.
    let start = Instant::now() + Duration::from_secs(1);
    let deadline = start + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = paths
        .into_iter()
        .map(|path| {
            let (store, value, op) = (store.clone(), value.clone(), op.clone());
            tokio::spawn(async move {
                let (mut nanos, mut errors) = (Vec::new(), 0u64);
                while Instant::now() < deadline {
                    let began = Instant::now();
                    let ok = match op.as_str() {
                        "put" => store
                            .put(&path, PutPayload::from(value.clone()))
                            .await
                            .is_ok(),
                        _ => match store.get(&path).await {
                            Ok(result) => result.bytes().await.is_ok(),
                            Err(_) => false,
                        },
                    };
                    if began >= start {
                        nanos.push(began.elapsed().as_nanos() as u64);
                        errors += u64::from(!ok);
                    }
                }
                (nanos, errors)
            })
        })
        .collect();
    let (mut nanos, mut errors) = (Vec::new(), 0);
    for worker in workers {
        let (worker_nanos, worker_errors) = worker.await.expect("worker");
        nanos.extend(worker_nanos);
        errors += worker_errors;
    }
    nanos.sort_unstable();
    let at = |p: f64| {
        nanos[((p / 100.0 * nanos.len() as f64).ceil() as usize).clamp(1, nanos.len()) - 1] as f64
            / 1e6
    };
    println!(
        "{{\"op\": \"{op}\", \"concurrency\": {concurrency}, \"requests\": {}, \"errors\": {errors}, \"requests_per_second\": {:.0}, \"latency_ms\": {{\"p50\": {:.3}, \"p90\": {:.3}, \"p99\": {:.3}}}}}",
        nanos.len(),
        nanos.len() as f64 / seconds,
        at(50.0),
        at(90.0),
        at(99.0)
    );
}
