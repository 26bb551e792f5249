//! Message transports behind one small, transport-neutral trait: create
//! an actor's queue, receive a batch of its messages (each with its own
//! acknowledgement handle), send a message to an actor. Acknowledging
//! deletes the message; retrying makes it visible again at once.
//! Connecting again after a failure is each transport's own business.
//!
//! A received message is leased to its consumer for a while (SQS
//! visibility timeout, Pub/Sub ack deadline, JetStream ack wait); a
//! message still in work when the lease ends goes to another consumer.
//! [`Delivery::hold`] keeps renewing the lease while its work runs, so a
//! handler slower than the lease is not run twice. RabbitMQ has no lease
//! (a delivery stays with its channel until settled).
//!
//! Actors are addressed by name; a transport maps the name to its queue,
//! `asya-{ASYA_NAMESPACE}-{actor}`.

pub mod nats;
pub mod pubsub;
pub mod rabbitmq;
pub mod sqs;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::settings::{self, SettingError};

/// Default of `ASYA_NAMESPACE`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The queue of `actor` in `namespace`.
pub fn queue_name(namespace: &str, actor: &str) -> String {
    format!("asya-{namespace}-{actor}")
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Worth trying again: the transport is unreachable, busy, or broke
    /// off.
    #[error("{0}")]
    Unavailable(String),
    /// Never going to work as it is: the message is too large for the
    /// transport, or no queue exists for the actor.
    #[error("{0}")]
    Rejected(String),
}

pub type Result<T, E = TransportError> = std::result::Result<T, E>;

/// One received message and how to settle it.
pub struct Delivery {
    pub body: Bytes,
    settle: Box<dyn Settle>,
}

/// Settles one delivery; consumed by either call.
#[async_trait]
pub trait Settle: Send + Sync {
    /// How long the transport leases a delivery to its consumer; `None`
    /// when it has no lease to renew.
    fn lease(&self) -> Option<Duration> {
        None
    }
    /// Renews the lease for another [`Settle::lease`].
    async fn extend(&self) -> Result<()> {
        Ok(())
    }
    /// The message is done with: it is not delivered again.
    async fn ack(self: Box<Self>) -> Result<()>;
    /// The message is to be delivered again, as soon as possible.
    async fn retry(self: Box<Self>) -> Result<()>;
}

impl Delivery {
    pub fn new(body: Bytes, settle: Box<dyn Settle>) -> Delivery {
        Delivery { body, settle }
    }

    pub async fn ack(self) -> Result<()> {
        self.settle.ack().await
    }

    pub async fn retry(self) -> Result<()> {
        self.settle.retry().await
    }

    /// Runs `work`, renewing the lease at a third of its length meanwhile
    /// (two renewals may fail before it runs out). A failed renewal is
    /// logged and tried again at the next tick: at worst the message is
    /// delivered twice, which what it produces tolerates (ids are derived,
    /// checkpoints idempotent).
    pub async fn hold<F: Future>(&self, work: F) -> F::Output {
        let Some(lease) = self.settle.lease() else {
            return work.await;
        };
        let every = (lease / 3).max(Duration::from_millis(100));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tokio::pin!(work);
        loop {
            tokio::select! {
                output = &mut work => return output,
                _ = ticks.tick() => {
                    if let Err(e) = self.settle.extend().await {
                        tracing::warn!(error = %e, "renewing the lease of a message in work failed");
                    }
                }
            }
        }
    }
}

#[async_trait]
pub trait Transport: Send + Sync {
    /// `sqs`, `rabbitmq`, ...
    fn kind(&self) -> &'static str;

    /// Creates the queue of `actor` (and whatever routes to it) if it
    /// does not exist yet.
    async fn create_queue(&self, actor: &str) -> Result<()>;

    /// Up to `max` messages of `actor`'s queue. Waits at most the
    /// transport's poll time for the first one, so it may return none.
    async fn receive(&self, actor: &str, max: usize) -> Result<Vec<Delivery>>;

    /// Sends `body` to `actor`'s queue; returns once the transport has
    /// taken it (stored it durably, where it can say so).
    async fn send(&self, actor: &str, body: Bytes) -> Result<()>;
}

/// The transport `ASYA_TRANSPORT` names, configured from its own
/// settings.
pub async fn from_env() -> settings::Result<Arc<dyn Transport>> {
    let namespace = settings::or("ASYA_NAMESPACE", DEFAULT_NAMESPACE);
    let kind = settings::required("ASYA_TRANSPORT")?;
    Ok(match kind.as_str() {
        "sqs" => Arc::new(sqs::Sqs::new(sqs::Config::from_env(namespace)?)?),
        "rabbitmq" => Arc::new(rabbitmq::Rabbitmq::new(rabbitmq::Config::from_env(
            namespace,
        )?)),
        "pubsub" => Arc::new(pubsub::Pubsub::new(pubsub::Config::from_env(namespace)?)?),
        "nats" => Arc::new(nats::Nats::new(nats::Config::from_env(namespace)?)),
        other => {
            return Err(SettingError(format!(
                "ASYA_TRANSPORT={other:?} is not supported here (sqs, rabbitmq, pubsub, nats)"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_named_after_namespace_and_actor() {
        assert_eq!(queue_name("default", "x-sink"), "asya-default-x-sink");
    }

    /// Counts renewals; leased for `lease`, if any.
    struct Counting {
        lease: Option<Duration>,
        extended: Arc<std::sync::atomic::AtomicUsize>,
    }

    #[async_trait]
    impl Settle for Counting {
        fn lease(&self) -> Option<Duration> {
            self.lease
        }
        async fn extend(&self) -> Result<()> {
            self.extended
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
        async fn ack(self: Box<Self>) -> Result<()> {
            Ok(())
        }
        async fn retry(self: Box<Self>) -> Result<()> {
            Ok(())
        }
    }

    fn delivery(lease: Option<Duration>) -> (Delivery, Arc<std::sync::atomic::AtomicUsize>) {
        let extended = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let settle = Counting {
            lease,
            extended: Arc::clone(&extended),
        };
        (Delivery::new(Bytes::new(), Box::new(settle)), extended)
    }

    #[tokio::test]
    async fn work_longer_than_the_lease_renews_it_meanwhile() {
        let (delivery, extended) = delivery(Some(Duration::from_millis(300)));
        // A tenth of a second between renewals: about nine in a second.
        let output = delivery
            .hold(async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                7
            })
            .await;
        assert_eq!(output, 7);
        let renewals = extended.load(std::sync::atomic::Ordering::SeqCst);
        assert!(renewals >= 3, "{renewals} renewals in a second of work");
        // None after the work is done.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(extended.load(std::sync::atomic::Ordering::SeqCst), renewals);
    }

    #[tokio::test]
    async fn work_on_a_delivery_without_lease_renews_nothing() {
        let (delivery, extended) = delivery(None);
        let output = delivery
            .hold(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                "done"
            })
            .await;
        assert_eq!(output, "done");
        assert_eq!(extended.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
