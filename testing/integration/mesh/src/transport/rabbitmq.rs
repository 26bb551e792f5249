//! RabbitMQ (AMQP 0-9-1, `lapin`): a durable topic exchange (`asya` by
//! default), one durable queue per actor bound with the actor's name as
//! routing key, persistent messages published with confirms (and
//! `mandatory`, so a message no queue takes is an error, not silence),
//! manual acks, `nack` with requeue to retry.
//!
//! One connection with a publishing channel (confirm mode) and a
//! consuming channel (prefetch `ASYA_RABBITMQ_PREFETCH`). When the
//! connection breaks, the next call connects again; messages that were
//! delivered but not acked go back to their queue by the broker's rules.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{
    Acker, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    ExchangeKind,
};
use tokio::sync::Mutex;

use super::{Delivery, Result, Settle, Transport, TransportError, queue_name};
use crate::settings;

/// `delivery_mode` of a message the broker writes to disk.
const PERSISTENT: u8 = 2;

pub struct Config {
    pub url: String,
    pub exchange: String,
    pub namespace: String,
    /// Unacked messages the broker hands this consumer at most.
    pub prefetch: u16,
    /// How long one receive waits for a first message.
    pub wait: Duration,
}

impl Config {
    pub fn from_env(namespace: String) -> settings::Result<Config> {
        Ok(Config {
            url: settings::required("ASYA_RABBITMQ_URL")?,
            exchange: settings::or("ASYA_RABBITMQ_EXCHANGE", "asya"),
            namespace,
            prefetch: settings::at_least_one("ASYA_RABBITMQ_PREFETCH", 32u16)?,
            wait: settings::duration("ASYA_RABBITMQ_WAIT", Duration::from_secs(1))?,
        })
    }
}

pub struct Rabbitmq {
    config: Config,
    session: Mutex<Option<Session>>,
    /// Consumers by actor, on the session's consuming channel.
    consumers: Mutex<HashMap<String, Consumer>>,
}

/// One connection and its channels.
#[derive(Clone)]
struct Session {
    connection: Arc<Connection>,
    publish: Channel,
    consume: Channel,
}

impl Session {
    fn usable(&self) -> bool {
        self.connection.status().connected()
            && self.publish.status().connected()
            && self.consume.status().connected()
    }
}

fn unavailable(what: &str) -> impl Fn(lapin::Error) -> TransportError + '_ {
    move |e| TransportError::Unavailable(format!("RabbitMQ {what}: {e}"))
}

impl Rabbitmq {
    pub fn new(config: Config) -> Rabbitmq {
        Rabbitmq {
            config,
            session: Mutex::new(None),
            consumers: Mutex::new(HashMap::new()),
        }
    }

    /// The current session, connecting (again) when there is none or it
    /// broke; consumers of a broken session are dropped with it.
    async fn session(&self) -> Result<Session> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref().filter(|s| s.usable()) {
            return Ok(session.clone());
        }
        if current.take().is_some() {
            tracing::warn!("RabbitMQ connection lost; connecting again");
            self.consumers.lock().await.clear();
        }
        let connection = Connection::connect(&self.config.url, ConnectionProperties::default())
            .await
            .map_err(unavailable("connect"))?;
        let publish = connection
            .create_channel()
            .await
            .map_err(unavailable("channel"))?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unavailable("confirm.select"))?;
        let consume = connection
            .create_channel()
            .await
            .map_err(unavailable("channel"))?;
        consume
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await
            .map_err(unavailable("basic.qos"))?;
        let session = Session {
            connection: Arc::new(connection),
            publish,
            consume,
        };
        *current = Some(session.clone());
        Ok(session)
    }
}

#[async_trait]
impl Transport for Rabbitmq {
    fn kind(&self) -> &'static str {
        "rabbitmq"
    }

    async fn create_queue(&self, actor: &str) -> Result<()> {
        let session = self.session().await?;
        let channel = &session.publish;
        let queue = queue_name(&self.config.namespace, actor);
        channel
            .exchange_declare(
                self.config.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(unavailable("exchange.declare"))?;
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(unavailable("queue.declare"))?;
        channel
            .queue_bind(
                queue.as_str().into(),
                self.config.exchange.as_str().into(),
                actor.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable("queue.bind"))
    }

    async fn receive(&self, actor: &str, max: usize) -> Result<Vec<Delivery>> {
        let session = self.session().await?;
        let mut consumers = self.consumers.lock().await;
        if !consumers.contains_key(actor) {
            let queue = queue_name(&self.config.namespace, actor);
            let tag = format!("{actor}-{}", std::process::id());
            let consumer = session
                .consume
                .basic_consume(
                    queue.as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(unavailable("basic.consume"))?;
            consumers.insert(actor.to_owned(), consumer);
        }
        let consumer = consumers.get_mut(actor).expect("inserted above");
        let mut deliveries = Vec::new();
        let first = match tokio::time::timeout(self.config.wait, consumer.next()).await {
            Err(_) => return Ok(deliveries),
            Ok(first) => first,
        };
        let mut next = first;
        loop {
            match next {
                Some(Ok(delivery)) => deliveries.push(Delivery::new(
                    Bytes::from(delivery.data),
                    Box::new(Tag(delivery.acker)),
                )),
                Some(Err(e)) => {
                    consumers.remove(actor);
                    if deliveries.is_empty() {
                        return Err(unavailable("consume")(e));
                    }
                    break;
                }
                None => {
                    consumers.remove(actor);
                    break;
                }
            }
            if deliveries.len() >= max.max(1) {
                break;
            }
            // More only if they are already here.
            match consumer_ready(&mut consumers, actor) {
                Some(more) => next = more,
                None => break,
            }
        }
        Ok(deliveries)
    }

    async fn send(&self, actor: &str, body: Bytes) -> Result<()> {
        let session = self.session().await?;
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into());
        let confirm = session
            .publish
            .basic_publish(
                self.config.exchange.as_str().into(),
                actor.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &body,
                properties,
            )
            .await
            .map_err(unavailable("basic.publish"))?
            .await
            .map_err(unavailable("publisher confirm"))?;
        match confirm {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(TransportError::Rejected(format!(
                "RabbitMQ: no queue is bound to {actor:?} on exchange {:?}",
                self.config.exchange
            ))),
            Confirmation::Nack(_) => Err(TransportError::Unavailable(format!(
                "RabbitMQ refused a message to {actor:?} (nack)"
            ))),
            Confirmation::NotRequested => Err(TransportError::Unavailable(
                "RabbitMQ: the publishing channel lost confirm mode".into(),
            )),
        }
    }
}

/// The next delivery of `actor`'s consumer if one is already buffered.
fn consumer_ready(
    consumers: &mut HashMap<String, Consumer>,
    actor: &str,
) -> Option<Option<lapin::Result<lapin::message::Delivery>>> {
    consumers.get_mut(actor)?.next().now_or_never()
}

/// A delivery's acknowledgement handle.
struct Tag(Acker);

#[async_trait]
impl Settle for Tag {
    async fn ack(self: Box<Self>) -> Result<()> {
        self.0
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(unavailable("basic.ack"))
    }

    async fn retry(self: Box<Self>) -> Result<()> {
        self.0
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await
            .map(drop)
            .map_err(unavailable("basic.nack"))
    }
}
