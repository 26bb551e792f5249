//! `asya-mesh setup`: creates the queues of a profile's actors (and what
//! routes to them), the way Asya's queue-setup jobs do, and waits for the
//! transport to answer first: it may start after this step.

use std::time::{Duration, Instant};

use crate::transport::Transport;

/// Creates every actor's queue; retries while the transport is
/// unreachable, until `patience` is spent.
pub async fn create_queues(
    transport: &dyn Transport,
    actors: &[String],
    patience: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + patience;
    for actor in actors {
        loop {
            match transport.create_queue(actor).await {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    tracing::info!(%actor, error = %e, "transport not ready; trying again");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(format!("creating the queue of {actor}: {e}")),
            }
        }
        tracing::info!(%actor, transport = transport.kind(), "queue ready");
    }
    Ok(())
}
