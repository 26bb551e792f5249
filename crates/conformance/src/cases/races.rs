//! Concurrent writers: counters that must end exact, creates that must
//! have exactly one winner.

use std::sync::Arc;

use state_client::{Client, ClientError, Condition};

use super::{Case, Outcome, case, doing, ensure_eq};
use crate::Ctx;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(race_explicit_if_match),
        case!(race_implicit_cas_across_proxies, |t| t.profile.cas(), 3),
        case!(race_create_if_absent),
    ]
}

/// Give up on one increment after this many conflicts (a livelock, not
/// contention, at that point).
const MAX_ATTEMPTS: usize = 10_000;

/// Read, add one, write back; retried while the write is refused with
/// `retry_status`. With `explicit`, the write carries `If-Match`.
async fn increment(
    client: &Client,
    key: &str,
    explicit: bool,
    retry_status: u16,
) -> Result<(), String> {
    for _ in 0..MAX_ATTEMPTS {
        let object = client.get(key).await.map_err(|e| format!("read: {e}"))?;
        let value: u64 = std::str::from_utf8(&object.data)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| format!("counter holds {:?}", object.data))?;
        let condition = match (explicit, object.etag) {
            (true, Some(etag)) => Condition::IfMatch(etag),
            (true, None) => return Err("GET answered without ETag".into()),
            (false, _) => Condition::None,
        };
        match client.put(key, (value + 1).to_string(), condition).await {
            Ok(_) => return Ok(()),
            Err(ClientError::Status { status, .. }) if status == retry_status => continue,
            Err(e) => return Err(format!("write: {e}")),
        }
    }
    Err(format!("no increment succeeded in {MAX_ATTEMPTS} attempts"))
}

/// Runs `per_client` increments from each client concurrently and checks
/// the final count.
async fn race(
    cx: &Ctx<'_>,
    clients: Vec<Arc<Client>>,
    per_client: usize,
    explicit: bool,
    retry_status: u16,
) -> Outcome {
    let key = cx.key("counter");
    doing(
        "create the counter",
        cx.client.put(&key, "0", Condition::None).await,
    )?;
    let total = clients.len() * per_client;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let key = key.clone();
            tokio::spawn(async move {
                for _ in 0..per_client {
                    increment(&client, &key, explicit, retry_status).await?;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let object = doing("read the counter", cx.client.get(&key).await)?;
    ensure_eq!(
        String::from_utf8_lossy(&object.data),
        total.to_string(),
        "counter after {total} increments"
    );
    Ok(())
}

async fn race_explicit_if_match(cx: &Ctx<'_>) -> Outcome {
    // Eight clients of one proxy: If-Match makes each write conditional,
    // conflicts answer 412 and are retried.
    let clients = (0..8)
        .map(|_| Arc::new(Client::new(&cx.target.socket)))
        .collect();
    race(cx, clients, 25, true, 412).await
}

async fn race_implicit_cas_across_proxies(cx: &Ctx<'_>) -> Outcome {
    // As the compat runtime: no headers, one client on each of four
    // proxies over the same backend; the remembered version makes each
    // plain write conditional, conflicts answer 409 and are retried.
    let sockets = std::iter::once(&cx.target.socket).chain(cx.target.peers.iter().take(3));
    let clients = sockets
        .map(|socket| Arc::new(Client::new(socket)))
        .collect();
    race(cx, clients, 50, false, 409).await
}

async fn race_create_if_absent(cx: &Ctx<'_>) -> Outcome {
    let key = cx.key("only-one");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let client = Client::new(&cx.target.socket);
            let key = key.clone();
            tokio::spawn(async move {
                client
                    .put(&key, format!("writer {i}"), Condition::IfAbsent)
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.map_err(|e| e.to_string())? {
            Ok(_) => winners.push(i),
            Err(e) if e.status() == Some(412) => {}
            Err(e) => return Err(format!("writer {i}: {e}")),
        }
    }
    ensure_eq!(
        winners.len(),
        1,
        "number of successful creates (winners {winners:?})"
    );
    let object = doing("GET", cx.client.get(&key).await)?;
    ensure_eq!(
        String::from_utf8_lossy(&object.data),
        format!("writer {}", winners[0]),
        "the winner's value"
    );
    Ok(())
}
