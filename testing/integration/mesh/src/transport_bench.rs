//! `asya-mesh transport-bench`: the raw rate of a transport with the same
//! client the sidecars use and no actors: `messages` published to one
//! queue (`concurrency` in flight) while a consumer receives and acks
//! them, and the round trip of one message at a time (send, receive,
//! ack). The pipeline benchmark puts its numbers beside these.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::transport::Transport;

/// The queue the benchmark uses (as an actor name).
pub const ACTOR: &str = "bench-transport";

pub struct Plan {
    pub messages: usize,
    pub size: usize,
    pub concurrency: usize,
    /// Messages sent one at a time for the round trip.
    pub round_trips: usize,
}

/// Runs both measurements; the result as JSON.
pub async fn run(transport: Arc<dyn Transport>, plan: &Plan) -> Result<Value, String> {
    transport
        .create_queue(ACTOR)
        .await
        .map_err(|e| e.to_string())?;
    drain(&*transport).await?;
    let body = Bytes::from(vec![b'x'; plan.size]);

    // Throughput: publishers and one consumer at the same time.
    let started = Instant::now();
    let publish = {
        let (transport, body) = (Arc::clone(&transport), body.clone());
        let (messages, concurrency) = (plan.messages, plan.concurrency.max(1));
        tokio::spawn(async move {
            let sends = futures_util::stream::iter(0..messages)
                .map(|_| transport.send(ACTOR, body.clone()))
                .buffer_unordered(concurrency);
            sends
                .filter_map(|sent| async move { sent.err().map(|e| e.to_string()) })
                .collect::<Vec<String>>()
                .await
        })
    };
    let mut acked = 0;
    let deadline = started + Duration::from_secs(300);
    while acked < plan.messages {
        if Instant::now() > deadline {
            return Err(format!(
                "only {acked} of {} messages came back",
                plan.messages
            ));
        }
        let batch = transport
            .receive(ACTOR, plan.concurrency.max(1))
            .await
            .map_err(|e| e.to_string())?;
        let acks = futures_util::future::join_all(batch.into_iter().map(|d| d.ack())).await;
        for ack in acks {
            ack.map_err(|e| e.to_string())?;
            acked += 1;
        }
    }
    let elapsed = started.elapsed();
    let failures = publish.await.map_err(|e| e.to_string())?;
    if let Some(first) = failures.first() {
        return Err(format!("{} sends failed, first: {first}", failures.len()));
    }

    // Round trip: one message at a time.
    let mut trips = Vec::with_capacity(plan.round_trips);
    for _ in 0..plan.round_trips {
        let began = Instant::now();
        transport
            .send(ACTOR, body.clone())
            .await
            .map_err(|e| e.to_string())?;
        let mut received = Vec::new();
        while received.is_empty() {
            received = transport
                .receive(ACTOR, 1)
                .await
                .map_err(|e| e.to_string())?;
        }
        for delivery in received {
            delivery.ack().await.map_err(|e| e.to_string())?;
        }
        trips.push(began.elapsed().as_secs_f64() * 1e3);
    }
    trips.sort_by(f64::total_cmp);
    let median = trips.get(trips.len() / 2).copied().unwrap_or(0.0);
    Ok(json!({
        "transport": transport.kind(),
        "messages": plan.messages,
        "size": plan.size,
        "concurrency": plan.concurrency,
        "seconds": elapsed.as_secs_f64(),
        "messages_per_second": plan.messages as f64 / elapsed.as_secs_f64(),
        "round_trip_ms_median": median,
    }))
}

/// Acks whatever an earlier run left in the queue.
async fn drain(transport: &dyn Transport) -> Result<(), String> {
    loop {
        let left = transport
            .receive(ACTOR, 10)
            .await
            .map_err(|e| e.to_string())?;
        if left.is_empty() {
            return Ok(());
        }
        for delivery in left {
            delivery.ack().await.map_err(|e| e.to_string())?;
        }
    }
}
