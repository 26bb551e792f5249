//! Readiness: whether the backend answered a cheap probe recently.
//!
//! The outcome of a probe is kept for a short interval, so that frequent
//! readiness checks (every replica, every few seconds) do not load the
//! backend; checks that arrive while a probe runs wait for it and share
//! its outcome instead of starting their own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::store::Store;

/// How long a probe's outcome answers readiness checks.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(2);
/// A probe that takes longer than this counts as failed: an orchestrator
/// gives up on a readiness check after about a second anyway.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

struct Probed {
    at: Instant,
    outcome: Result<(), String>,
}

pub struct Readiness {
    store: Arc<dyn Store>,
    max_age: Duration,
    last: Mutex<Option<Probed>>,
}

impl Readiness {
    pub fn new(store: Arc<dyn Store>, max_age: Duration) -> Readiness {
        Readiness {
            store,
            max_age,
            last: Mutex::new(None),
        }
    }

    /// `Ok` when the backend answered; `Err` says why it is not ready.
    pub async fn check(&self) -> Result<(), String> {
        // Held across the probe: concurrent checks queue here and then
        // find the fresh outcome.
        let mut last = self.last.lock().await;
        if let Some(probed) = last.as_ref()
            && probed.at.elapsed() < self.max_age
        {
            return probed.outcome.clone();
        }
        let outcome = match tokio::time::timeout(PROBE_TIMEOUT, self.store.probe()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("the backend probe failed: {error}")),
            Err(_) => Err(format!(
                "the backend probe did not answer within {} s",
                PROBE_TIMEOUT.as_secs()
            )),
        };
        if let Err(reason) = &outcome {
            tracing::warn!(reason = %reason, "not ready");
        }
        *last = Some(Probed {
            at: Instant::now(),
            outcome: outcome.clone(),
        });
        outcome
    }
}
