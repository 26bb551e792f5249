//! NATS JetStream (`async-nats`): one stream per namespace
//! (`asya-{namespace}`), holding subject `asya.{namespace}.{actor}` of
//! every actor whose queue was created, and one durable pull consumer per
//! actor, named after its queue (`asya-{namespace}-{actor}`), with
//! explicit acks. A message is acked (and the ack confirmed by the
//! server), retried by `nak`, and its lease (the consumer's ack wait,
//! `ASYA_NATS_ACK_WAIT`) renewed by an in-progress ack.
//!
//! The client reconnects by itself, with back-off, after the server went
//! away; the first connection is made on first use, so a sidecar may
//! start before the server.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::Mutex;

use super::{Delivery, Result, Settle, Transport, TransportError};
use crate::settings;

pub struct Config {
    pub url: String,
    pub namespace: String,
    /// How long the server leaves a delivered message with its consumer
    /// before delivering it again.
    pub ack_wait: Duration,
    /// How long one receive waits for a first message.
    pub wait: Duration,
}

impl Config {
    pub fn from_env(namespace: String) -> settings::Result<Config> {
        Ok(Config {
            url: settings::required("ASYA_NATS_URL")?,
            namespace,
            ack_wait: settings::duration("ASYA_NATS_ACK_WAIT", Duration::from_secs(30))?,
            wait: settings::duration("ASYA_NATS_WAIT", Duration::from_secs(1))?,
        })
    }
}

pub struct Nats {
    config: Config,
    client: Mutex<Option<(async_nats::Client, jetstream::Context)>>,
    consumers: Mutex<HashMap<String, consumer::PullConsumer>>,
}

fn unavailable(what: &str) -> impl Fn(String) -> TransportError + '_ {
    move |e| TransportError::Unavailable(format!("NATS {what}: {e}"))
}

impl Nats {
    pub fn new(config: Config) -> Nats {
        Nats {
            config,
            client: Mutex::new(None),
            consumers: Mutex::new(HashMap::new()),
        }
    }

    fn stream_name(&self) -> String {
        format!("asya-{}", self.config.namespace)
    }

    fn subject(&self, actor: &str) -> String {
        format!("asya.{}.{actor}", self.config.namespace)
    }

    fn durable(&self, actor: &str) -> String {
        super::queue_name(&self.config.namespace, actor)
    }

    /// The connection, made on first use; after that the client keeps it
    /// (reconnecting with back-off) on its own.
    async fn connection(&self) -> Result<(async_nats::Client, jetstream::Context)> {
        let mut current = self.client.lock().await;
        if let Some(connection) = current.as_ref() {
            return Ok(connection.clone());
        }
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100 * 2u64.saturating_pow(attempts.min(6) as u32)).min(5000))
            })
            .connect(self.config.url.as_str())
            .await
            .map_err(|e| unavailable("connect")(e.to_string()))?;
        let context = jetstream::new(client.clone());
        *current = Some((client, context.clone()));
        Ok((current.as_ref().expect("set above").0.clone(), context))
    }

    async fn consumer(&self, actor: &str) -> Result<consumer::PullConsumer> {
        if let Some(consumer) = self.consumers.lock().await.get(actor) {
            return Ok(consumer.clone());
        }
        let (_, context) = self.connection().await?;
        let consumer: consumer::PullConsumer = context
            .get_consumer_from_stream(self.durable(actor), self.stream_name())
            .await
            .map_err(|e| unavailable("consumer")(e.to_string()))?;
        self.consumers
            .lock()
            .await
            .insert(actor.to_owned(), consumer.clone());
        Ok(consumer)
    }
}

#[async_trait]
impl Transport for Nats {
    fn kind(&self) -> &'static str {
        "nats"
    }

    async fn create_queue(&self, actor: &str) -> Result<()> {
        let (_, context) = self.connection().await?;
        let subject = self.subject(actor);
        let mut stream = context
            .get_or_create_stream(stream::Config {
                name: self.stream_name(),
                subjects: vec![subject.clone()],
                storage: stream::StorageType::File,
                ..stream::Config::default()
            })
            .await
            .map_err(|e| unavailable("stream")(e.to_string()))?;
        let mut config = stream
            .info()
            .await
            .map_err(|e| unavailable("stream info")(e.to_string()))?
            .config
            .clone();
        if !config.subjects.contains(&subject) {
            config.subjects.push(subject.clone());
            context
                .update_stream(config)
                .await
                .map_err(|e| unavailable("stream update")(e.to_string()))?;
        }
        stream
            .get_or_create_consumer(
                &self.durable(actor),
                consumer::pull::Config {
                    durable_name: Some(self.durable(actor)),
                    filter_subject: subject,
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.config.ack_wait,
                    max_deliver: -1,
                    ..consumer::pull::Config::default()
                },
            )
            .await
            .map(drop)
            .map_err(|e| unavailable("consumer")(e.to_string()))
    }

    async fn receive(&self, actor: &str, max: usize) -> Result<Vec<Delivery>> {
        let consumer = self.consumer(actor).await?;
        let mut batch = consumer
            .fetch()
            .max_messages(max.max(1))
            .expires(self.config.wait)
            .messages()
            .await
            .map_err(|e| unavailable("fetch")(e.to_string()))?;
        let mut deliveries = Vec::new();
        while let Some(message) = batch.next().await {
            match message {
                Ok(message) => deliveries.push(Delivery::new(
                    message.payload.clone(),
                    Box::new(Acker {
                        message,
                        lease: self.config.ack_wait,
                    }),
                )),
                // Taken messages come again after their ack wait.
                Err(e) if deliveries.is_empty() => return Err(unavailable("fetch")(e.to_string())),
                Err(_) => break,
            }
        }
        Ok(deliveries)
    }

    async fn send(&self, actor: &str, body: Bytes) -> Result<()> {
        let (client, context) = self.connection().await?;
        let limit = client.server_info().max_payload;
        if limit > 0 && body.len() > limit {
            return Err(TransportError::Rejected(format!(
                "NATS: {} bytes is more than the server takes ({limit})",
                body.len()
            )));
        }
        let ack = context
            .publish(self.subject(actor), body)
            .await
            .map_err(|e| unavailable("publish")(e.to_string()))?;
        match ack.await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::StreamNotFound => {
                Err(TransportError::Rejected(format!(
                    "NATS: no stream takes {:?} (no queue for {actor:?})",
                    self.subject(actor)
                )))
            }
            Err(e) => Err(unavailable("publish ack")(e.to_string())),
        }
    }
}

/// How one JetStream message is settled.
struct Acker {
    message: jetstream::Message,
    lease: Duration,
}

#[async_trait]
impl Settle for Acker {
    fn lease(&self) -> Option<Duration> {
        Some(self.lease)
    }

    async fn extend(&self) -> Result<()> {
        self.message
            .ack_with(AckKind::Progress)
            .await
            .map_err(|e| unavailable("in-progress ack")(e.to_string()))
    }

    async fn ack(self: Box<Self>) -> Result<()> {
        // Confirmed by the server, so that "acked" means it will not come
        // again.
        self.message
            .double_ack()
            .await
            .map_err(|e| unavailable("ack")(e.to_string()))
    }

    async fn retry(self: Box<Self>) -> Result<()> {
        self.message
            .ack_with(AckKind::Nak(None))
            .await
            .map_err(|e| unavailable("nak")(e.to_string()))
    }
}
