//! Connector scenarios of component runs, beyond the protocol suite:
//! what only a real process on a real backend can show. [`run`] picks
//! the scenarios of a profile.

mod buckets;
pub mod gcs;
mod redis;
pub mod s3;

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};
use state_client::{Client, Condition};

use crate::Profile;
use crate::cases::streaming::{pattern_stream, verify_with};
use crate::component::Proxy;

/// Runs the scenarios that apply to the profile; returns what they
/// measured (for `results.json`) and what failed.
pub async fn run(
    profile: &Profile,
    env: &BTreeMap<String, String>,
    proxies: &[Proxy],
    namespace: &str,
) -> (Value, Vec<String>) {
    let mut measures = json!({});
    let mut failures = Vec::new();
    if profile.streams() {
        let bytes = match env
            .get("SCENARIO_STREAM_BYTES")
            .map(|text| text.parse::<u64>())
        {
            None => 1 << 30,
            Some(Ok(bytes)) => bytes,
            Some(Err(_)) => {
                failures.push("SCENARIO_STREAM_BYTES must be a number of bytes".to_owned());
                return (measures, failures);
            }
        };
        let key = format!("{namespace}/stream.bin");
        match stream_round_trip(&proxies[0], &key, bytes).await {
            Ok(measure) => {
                println!(
                    "streamed {} MiB up in {:.1} s and down in {:.1} s; proxy peak RSS {} KiB",
                    measure.bytes >> 20,
                    measure.upload_seconds,
                    measure.download_seconds,
                    measure.peak_rss_kib
                );
                measures["stream"] = json!({
                    "bytes": measure.bytes,
                    "upload_seconds": measure.upload_seconds,
                    "download_seconds": measure.download_seconds,
                    "peak_rss_kib": measure.peak_rss_kib,
                });
            }
            Err(e) => failures.push(format!("stream scenario: {e}")),
        }
    }
    if profile.store == "redis" {
        match redis::outage(env, &proxies[0], namespace).await {
            Ok(measure) => measures["redis_outage"] = measure,
            Err(e) => failures.push(format!("redis outage scenario: {e}")),
        }
    }
    if profile.store == "gcs" {
        let (gcs_measures, gcs_failures) = gcs::run(env, proxies, namespace).await;
        measures["gcs"] = gcs_measures;
        failures.extend(gcs_failures);
    }
    if profile.store == "s3" {
        let (s3_measures, s3_failures) = s3::run(profile, env, proxies, namespace).await;
        measures["s3"] = s3_measures;
        failures.extend(s3_failures);
    }
    (measures, failures)
}

/// What a streaming round trip measured.
#[derive(Debug)]
pub struct StreamMeasure {
    pub bytes: u64,
    pub upload_seconds: f64,
    pub download_seconds: f64,
    /// Peak resident memory of the proxy process over its whole life.
    pub peak_rss_kib: u64,
}

/// Uploads `bytes` generated on the fly (chunked, never held whole),
/// downloads and compares them, and reads the proxy's peak memory. The
/// proxy must have streamed: its peak stays far below the body size.
pub async fn stream_round_trip(
    proxy: &Proxy,
    key: &str,
    bytes: u64,
) -> Result<StreamMeasure, String> {
    let client = Client::new(&proxy.socket);
    let length = usize::try_from(bytes).map_err(|e| e.to_string())?;
    let started = Instant::now();
    client
        .put_stream(key, pattern_stream(99, length), None, Condition::None)
        .await
        .map_err(|e| format!("streamed upload of {bytes} bytes: {e}"))?;
    let upload_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    verify_with(&client, key, 99, length).await?;
    let download_seconds = started.elapsed().as_secs_f64();
    let (_, peak_rss_kib) = proxy.memory_kib().ok_or("cannot read the proxy's memory")?;
    client
        .delete(key, Condition::None)
        .await
        .map_err(|e| format!("deleting the streamed object: {e}"))?;
    if peak_rss_kib * 1024 > bytes / 4 {
        return Err(format!(
            "the proxy's peak memory ({peak_rss_kib} KiB) grew with the body ({bytes} bytes): it did not stream"
        ));
    }
    Ok(StreamMeasure {
        bytes,
        upload_seconds,
        download_seconds,
        peak_rss_kib,
    })
}
