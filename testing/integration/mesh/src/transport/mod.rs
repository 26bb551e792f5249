//! Message transports behind one small, transport-neutral trait: create
//! an actor's queue, receive a batch of its messages (each with its own
//! acknowledgement handle), send a message to an actor. Acknowledging
//! deletes the message; retrying makes it visible again at once.
//! Connecting again after a failure is each transport's own business.
//!
//! Actors are addressed by name; a transport maps the name to its queue,
//! `asya-{ASYA_NAMESPACE}-{actor}`.

pub mod rabbitmq;
pub mod sqs;

use std::sync::Arc;

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
pub trait Settle: Send {
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
        other => {
            return Err(SettingError(format!(
                "ASYA_TRANSPORT={other:?} is not supported here (sqs, rabbitmq)"
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
}
