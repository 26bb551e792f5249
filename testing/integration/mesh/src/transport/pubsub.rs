//! Google Cloud Pub/Sub through its REST API (`/v1/projects/P/...`),
//! against the emulator (`ASYA_PUBSUB_ENDPOINT`, no auth). REST rather
//! than gRPC: no maintained Rust crate speaks to the emulator without
//! pulling in Google's auth stack and a protobuf toolchain, while REST is
//! four JSON calls on `reqwest`, already in the tree.
//!
//! A topic and a subscription per queue, both named after it. Receiving
//! is a synchronous pull with `returnImmediately` (a pull without it
//! waits about 90 s on an empty subscription, and a pull cut short by a
//! client timeout may take messages with it), repeated for up to
//! `ASYA_PUBSUB_WAIT`. A message is acked by `acknowledge`, retried by
//! `modifyAckDeadline` to 0, and its lease renewed by `modifyAckDeadline`
//! to the subscription's deadline (`ASYA_PUBSUB_ACK_DEADLINE` seconds).
//!
//! A topic that does not exist is "not yet": the emulator keeps nothing
//! across a restart, and until the setup step has run again a send is
//! retried rather than refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Delivery, Result, Settle, Transport, TransportError, queue_name};
use crate::settings::{self, SettingError};

/// What one Pub/Sub message may carry (the service's limit).
pub const MAX_MESSAGE_BYTES: usize = 10_000_000;
/// What one pull asks for at most.
const MAX_BATCH: usize = 100;
/// Pause between empty pulls.
const EMPTY_PAUSE: Duration = Duration::from_millis(50);

pub struct Config {
    pub endpoint: String,
    pub project: String,
    pub namespace: String,
    /// Ack deadline of the subscriptions, seconds (10 to 600).
    pub ack_deadline_seconds: u32,
    /// How long one receive keeps pulling an empty subscription.
    pub wait: Duration,
}

impl Config {
    pub fn from_env(namespace: String) -> settings::Result<Config> {
        let endpoint = settings::var("ASYA_PUBSUB_ENDPOINT")
            .or_else(|| settings::var("PUBSUB_EMULATOR_HOST"))
            .ok_or_else(|| {
                SettingError("ASYA_PUBSUB_ENDPOINT (or PUBSUB_EMULATOR_HOST) must be set".into())
            })?;
        let endpoint = if endpoint.contains("://") {
            endpoint
        } else {
            format!("http://{endpoint}")
        };
        Ok(Config {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            project: settings::required("ASYA_PUBSUB_PROJECT_ID")?,
            namespace,
            ack_deadline_seconds: settings::parsed("ASYA_PUBSUB_ACK_DEADLINE", 30u32)?
                .clamp(10, 600),
            wait: settings::duration("ASYA_PUBSUB_WAIT", Duration::from_secs(1))?,
        })
    }
}

pub struct Pubsub {
    inner: Arc<Client>,
}

struct Client {
    config: Config,
    http: reqwest::Client,
}

impl Pubsub {
    pub fn new(config: Config) -> settings::Result<Pubsub> {
        // The emulator answers nothing at all to a message it cannot
        // take (11 MiB), so every call needs a limit.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| SettingError(format!("Pub/Sub client: {e}")))?;
        Ok(Pubsub {
            inner: Arc::new(Client { config, http }),
        })
    }
}

/// What a call answered when it was not a success.
enum Failure {
    Status(u16, String),
    Transport(TransportError),
}

impl Client {
    fn path(&self, kind: &str, actor: &str) -> String {
        format!(
            "projects/{}/{kind}/{}",
            self.config.project,
            queue_name(&self.config.namespace, actor)
        )
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> std::result::Result<Value, Failure> {
        let url = format!("{}/v1/{path}", self.config.endpoint);
        let unavailable = |e: reqwest::Error| {
            Failure::Transport(TransportError::Unavailable(format!("Pub/Sub {path}: {e}")))
        };
        let response = self
            .http
            .request(method, &url)
            .json(body)
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status().as_u16();
        let text = response.bytes().await.map_err(unavailable)?;
        if !(200..300).contains(&status) {
            return Err(Failure::Status(
                status,
                String::from_utf8_lossy(&text).chars().take(300).collect(),
            ));
        }
        if text.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(&text).map_err(|e| {
            Failure::Transport(TransportError::Unavailable(format!(
                "Pub/Sub {path}: answer is not JSON: {e}"
            )))
        })
    }

    /// A call whose every failure is worth trying again.
    async fn retryable(&self, method: reqwest::Method, path: &str, body: &Value) -> Result<Value> {
        self.call(method, path, body)
            .await
            .map_err(|failure| match failure {
                Failure::Transport(e) => e,
                Failure::Status(status, text) => {
                    TransportError::Unavailable(format!("Pub/Sub {path}: {status} {text}"))
                }
            })
    }

    /// Creates a resource; one that exists already (409) is fine.
    async fn create(&self, path: &str, body: &Value) -> Result<()> {
        match self.call(reqwest::Method::PUT, path, body).await {
            Ok(_) | Err(Failure::Status(409, _)) => Ok(()),
            Err(Failure::Transport(e)) => Err(e),
            Err(Failure::Status(status, text)) => Err(TransportError::Unavailable(format!(
                "Pub/Sub creating {path}: {status} {text}"
            ))),
        }
    }

    async fn deadline(&self, subscription: &str, ack_id: &str, seconds: u32) -> Result<()> {
        self.retryable(
            reqwest::Method::POST,
            &format!("{subscription}:modifyAckDeadline"),
            &json!({"ackIds": [ack_id], "ackDeadlineSeconds": seconds}),
        )
        .await
        .map(drop)
    }
}

#[async_trait]
impl Transport for Pubsub {
    fn kind(&self) -> &'static str {
        "pubsub"
    }

    async fn create_queue(&self, actor: &str) -> Result<()> {
        let topic = self.inner.path("topics", actor);
        self.inner.create(&topic, &json!({})).await?;
        self.inner
            .create(
                &self.inner.path("subscriptions", actor),
                &json!({"topic": topic, "ackDeadlineSeconds": self.inner.config.ack_deadline_seconds}),
            )
            .await
    }

    async fn receive(&self, actor: &str, max: usize) -> Result<Vec<Delivery>> {
        let subscription = self.inner.path("subscriptions", actor);
        let until = Instant::now() + self.inner.config.wait;
        let messages = loop {
            let answer = self
                .inner
                .retryable(
                    reqwest::Method::POST,
                    &format!("{subscription}:pull"),
                    &json!({"maxMessages": max.clamp(1, MAX_BATCH), "returnImmediately": true}),
                )
                .await?;
            match answer.get("receivedMessages") {
                Some(Value::Array(messages)) if !messages.is_empty() => break messages.clone(),
                _ if Instant::now() >= until => return Ok(Vec::new()),
                _ => tokio::time::sleep(EMPTY_PAUSE).await,
            }
        };
        let mut deliveries = Vec::with_capacity(messages.len());
        for message in &messages {
            let ack_id = message["ackId"].as_str().ok_or_else(|| {
                TransportError::Unavailable("Pub/Sub pull: a message without ackId".into())
            })?;
            let data = message["message"]["data"].as_str().unwrap_or("");
            let body = STANDARD.decode(data).map_err(|e| {
                TransportError::Unavailable(format!("Pub/Sub pull: data is not base64: {e}"))
            })?;
            deliveries.push(Delivery::new(
                Bytes::from(body),
                Box::new(AckId {
                    client: Arc::clone(&self.inner),
                    subscription: subscription.clone(),
                    ack_id: ack_id.to_owned(),
                }),
            ));
        }
        Ok(deliveries)
    }

    async fn send(&self, actor: &str, body: Bytes) -> Result<()> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(TransportError::Rejected(format!(
                "Pub/Sub publish: {} bytes is more than Pub/Sub takes ({MAX_MESSAGE_BYTES})",
                body.len()
            )));
        }
        let topic = self.inner.path("topics", actor);
        let answer = self
            .inner
            .call(
                reqwest::Method::POST,
                &format!("{topic}:publish"),
                &json!({"messages": [{"data": STANDARD.encode(&body)}]}),
            )
            .await;
        match answer {
            Ok(_) => Ok(()),
            Err(Failure::Transport(e)) => Err(e),
            // 404 included: see the module's note on restarts.
            Err(Failure::Status(status, text))
                if status == 404 || status >= 500 || status == 429 =>
            {
                Err(TransportError::Unavailable(format!(
                    "Pub/Sub publish to {topic}: {status} {text}"
                )))
            }
            Err(Failure::Status(status, text)) => Err(TransportError::Rejected(format!(
                "Pub/Sub publish to {topic}: {status} {text}"
            ))),
        }
    }
}

/// How one pulled message is settled.
struct AckId {
    client: Arc<Client>,
    subscription: String,
    ack_id: String,
}

#[async_trait]
impl Settle for AckId {
    fn lease(&self) -> Option<Duration> {
        Some(Duration::from_secs(u64::from(
            self.client.config.ack_deadline_seconds,
        )))
    }

    async fn extend(&self) -> Result<()> {
        self.client
            .deadline(
                &self.subscription,
                &self.ack_id,
                self.client.config.ack_deadline_seconds,
            )
            .await
    }

    async fn ack(self: Box<Self>) -> Result<()> {
        self.client
            .retryable(
                reqwest::Method::POST,
                &format!("{}:acknowledge", self.subscription),
                &json!({"ackIds": [self.ack_id]}),
            )
            .await
            .map(drop)
    }

    async fn retry(self: Box<Self>) -> Result<()> {
        self.client
            .deadline(&self.subscription, &self.ack_id, 0)
            .await
    }
}
