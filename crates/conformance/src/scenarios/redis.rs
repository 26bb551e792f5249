//! Redis going away under running proxies, and coming back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use state_client::{Client, Condition};

use crate::component::Proxy;

/// How long the proxy may take to serve again once Redis is back.
const RECOVERY_LIMIT: Duration = Duration::from_secs(20);

async fn control(env: &BTreeMap<String, String>, action: &str) -> Result<(), String> {
    let script = env
        .get("EMULATOR_CONTROL")
        .ok_or("the emulator env has no EMULATOR_CONTROL")?;
    let dir = env
        .get("EMULATOR_DIR")
        .ok_or("the emulator env has no EMULATOR_DIR")?;
    let status = tokio::process::Command::new(script)
        .args([action, dir])
        .status()
        .await
        .map_err(|e| format!("{script} {action}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{script} {action} failed with {status}"))
    }
}

/// Stops Redis: requests answer 503 `unavailable` promptly (no hang, no
/// 500) while `/healthz` stays 200; restarts it: the same proxy process
/// serves again by itself.
pub async fn outage(
    env: &BTreeMap<String, String>,
    proxy: &Proxy,
    namespace: &str,
) -> Result<Value, String> {
    let client = Client::new_connection_per_request(&proxy.socket);
    let key = format!("{namespace}/outage");
    client
        .put(&key, "before", Condition::None)
        .await
        .map_err(|e| format!("PUT before the outage: {e}"))?;

    control(env, "stop").await?;
    let mut slowest = Duration::ZERO;
    for attempt in 0..3 {
        let started = Instant::now();
        match client.get(&key).await {
            Err(e) if e.status() == Some(503) && e.code() == Some("unavailable") => {}
            other => {
                return Err(format!(
                    "GET {attempt} with Redis down: expected 503 unavailable, got {other:?}"
                ));
            }
        }
        slowest = slowest.max(started.elapsed());
    }
    client
        .healthz()
        .await
        .map_err(|e| format!("healthz with Redis down: {e}"))?;

    control(env, "restart").await?;
    let restarted = Instant::now();
    // Polled: the first request after the restart may still meet the
    // broken connection; the proxy reconnects on its own. The restarted
    // Redis kept nothing, so the read finds the key missing.
    loop {
        match client.get(&key).await {
            Err(e) if e.status() == Some(404) => break,
            Err(e) if e.status() == Some(503) && restarted.elapsed() < RECOVERY_LIMIT => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => {
                return Err(format!(
                    "GET after Redis came back: expected 404, got {other:?}"
                ));
            }
        }
    }
    let recovery = restarted.elapsed();
    client
        .put(&key, "after", Condition::None)
        .await
        .map_err(|e| format!("PUT after Redis came back: {e}"))?;
    let object = client
        .get(&key)
        .await
        .map_err(|e| format!("GET after Redis came back: {e}"))?;
    if object.data != "after" {
        return Err(format!("after recovery the value is {:?}", object.data));
    }
    println!(
        "redis outage: 503 within {} ms while down; serving again {} ms after the restart",
        slowest.as_millis(),
        recovery.as_millis()
    );
    Ok(json!({
        "unavailable_answer_ms": slowest.as_secs_f64() * 1e3,
        "recovery_ms": recovery.as_secs_f64() * 1e3,
    }))
}
