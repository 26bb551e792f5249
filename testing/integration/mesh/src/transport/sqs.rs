//! SQS through its JSON protocol (`X-Amz-Target: AmazonSQS.<Action>`),
//! requests signed with SigV4 (`object_store`'s signer, already in the
//! tree), so the same client works against moto and real SQS.
//!
//! Queue URLs come from `GetQueueUrl` and are kept. A message is acked by
//! `DeleteMessage` and retried by `ChangeMessageVisibility` to 0; its
//! lease (the visibility timeout) is renewed by `ChangeMessageVisibility`
//! to the full timeout again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::{HttpRequest, HttpRequestBody};
use serde_json::{Value, json};
use tokio::sync::RwLock;

use super::{Delivery, Result, Settle, Transport, TransportError, queue_name};
use crate::settings::{self, SettingError};

/// What real SQS allows: queues are created with this limit so that it
/// is enforced by emulators too.
pub const MAX_MESSAGE_BYTES: u32 = 262_144;
/// What one `ReceiveMessage` can return.
const MAX_BATCH: usize = 10;

pub struct Config {
    pub endpoint: String,
    pub region: String,
    pub namespace: String,
    pub credential: AwsCredential,
    /// Long-poll time of one receive (`ASYA_SQS_WAIT_TIME_SECONDS`).
    pub wait_seconds: u32,
    /// How long a received message stays invisible to others
    /// (`ASYA_SQS_VISIBILITY_TIMEOUT`, seconds).
    pub visibility_seconds: u32,
}

impl Config {
    pub fn from_env(namespace: String) -> settings::Result<Config> {
        let endpoint = settings::var("ASYA_SQS_ENDPOINT")
            .or_else(|| settings::var("AWS_ENDPOINT_URL"))
            .ok_or_else(|| {
                SettingError("ASYA_SQS_ENDPOINT (or AWS_ENDPOINT_URL) must be set".into())
            })?;
        Ok(Config {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: settings::var("ASYA_AWS_REGION")
                .or_else(|| settings::var("AWS_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            namespace,
            credential: AwsCredential {
                key_id: settings::required("AWS_ACCESS_KEY_ID")?,
                secret_key: settings::required("AWS_SECRET_ACCESS_KEY")?,
                token: settings::var("AWS_SESSION_TOKEN"),
            },
            wait_seconds: settings::parsed("ASYA_SQS_WAIT_TIME_SECONDS", 20u32)?.min(20),
            visibility_seconds: settings::parsed("ASYA_SQS_VISIBILITY_TIMEOUT", 30u32)?,
        })
    }
}

pub struct Sqs {
    inner: Arc<Client>,
}

/// The signed client, shared with the deliveries it hands out.
struct Client {
    config: Config,
    http: reqwest::Client,
    urls: RwLock<HashMap<String, String>>,
}

impl Sqs {
    pub fn new(config: Config) -> settings::Result<Sqs> {
        // Long polls last `wait_seconds`; anything longer than that plus
        // a margin is a hung endpoint.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(u64::from(config.wait_seconds) + 30))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| SettingError(format!("SQS client: {e}")))?;
        Ok(Sqs {
            inner: Arc::new(Client {
                config,
                http,
                urls: RwLock::new(HashMap::new()),
            }),
        })
    }
}

impl Client {
    /// One signed call of the JSON protocol; an error answer becomes
    /// [`TransportError`] by its `__type`.
    async fn call(&self, action: &str, body: &Value) -> Result<Value> {
        let body = Bytes::from(body.to_string());
        let url = format!("{}/", self.config.endpoint);
        let mut request: HttpRequest = http::Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header("x-amz-target", format!("AmazonSQS.{action}"))
            .header("content-type", "application/x-amz-json-1.0")
            .body(HttpRequestBody::from(body.clone()))
            .map_err(|e| TransportError::Rejected(format!("SQS {action}: {e}")))?;
        AwsAuthorizer::new(&self.config.credential, "sqs", &self.config.region)
            .try_authorize(&mut request, None)
            .map_err(|e| TransportError::Rejected(format!("SQS {action}: signing: {e}")))?;
        let response = self
            .http
            .post(&url)
            .headers(request.headers().clone())
            .body(body)
            .send()
            .await
            .map_err(|e| TransportError::Unavailable(format!("SQS {action}: {e}")))?;
        let status = response.status();
        let text = response
            .bytes()
            .await
            .map_err(|e| TransportError::Unavailable(format!("SQS {action}: {e}")))?;
        let answer: Value = if text.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&text).map_err(|e| {
                TransportError::Unavailable(format!("SQS {action}: answer is not JSON: {e}"))
            })?
        };
        if status.is_success() {
            return Ok(answer);
        }
        let kind = answer["__type"].as_str().unwrap_or("");
        let kind = kind.rsplit('#').next().unwrap_or(kind);
        let message = answer["message"]
            .as_str()
            .or_else(|| answer["Message"].as_str())
            .unwrap_or("");
        let error = format!("SQS {action}: {status} {kind}: {message}");
        Err(match kind {
            "QueueDoesNotExist"
            | "AWS.SimpleQueueService.NonExistentQueue"
            | "InvalidParameterValue"
            | "InvalidMessageContents" => TransportError::Rejected(error),
            _ => TransportError::Unavailable(error),
        })
    }

    async fn queue_url(&self, actor: &str) -> Result<String> {
        if let Some(url) = self.urls.read().await.get(actor) {
            return Ok(url.clone());
        }
        let name = queue_name(&self.config.namespace, actor);
        let answer = self
            .call("GetQueueUrl", &json!({"QueueName": name}))
            .await?;
        let url = answer["QueueUrl"]
            .as_str()
            .ok_or_else(|| TransportError::Unavailable("GetQueueUrl: no QueueUrl".into()))?
            .to_owned();
        self.urls
            .write()
            .await
            .insert(actor.to_owned(), url.clone());
        Ok(url)
    }
}

#[async_trait]
impl Transport for Sqs {
    fn kind(&self) -> &'static str {
        "sqs"
    }

    async fn create_queue(&self, actor: &str) -> Result<()> {
        let name = queue_name(&self.inner.config.namespace, actor);
        let attributes = json!({
            "MaximumMessageSize": MAX_MESSAGE_BYTES.to_string(),
            "VisibilityTimeout": self.inner.config.visibility_seconds.to_string(),
        });
        self.inner
            .call(
                "CreateQueue",
                &json!({"QueueName": name, "Attributes": attributes}),
            )
            .await
            .map(drop)
    }

    async fn receive(&self, actor: &str, max: usize) -> Result<Vec<Delivery>> {
        let url = self.inner.queue_url(actor).await?;
        let answer = self
            .inner
            .call(
                "ReceiveMessage",
                &json!({
                    "QueueUrl": url,
                    "MaxNumberOfMessages": max.clamp(1, MAX_BATCH),
                    "WaitTimeSeconds": self.inner.config.wait_seconds,
                    "VisibilityTimeout": self.inner.config.visibility_seconds,
                }),
            )
            .await?;
        let messages = match answer.get("Messages") {
            Some(Value::Array(messages)) => messages,
            _ => return Ok(Vec::new()),
        };
        let mut deliveries = Vec::with_capacity(messages.len());
        for message in messages {
            let (Some(body), Some(receipt)) =
                (message["Body"].as_str(), message["ReceiptHandle"].as_str())
            else {
                return Err(TransportError::Unavailable(
                    "ReceiveMessage: a message without Body or ReceiptHandle".into(),
                ));
            };
            deliveries.push(Delivery::new(
                Bytes::copy_from_slice(body.as_bytes()),
                Box::new(Receipt {
                    client: Arc::clone(&self.inner),
                    url: url.clone(),
                    receipt: receipt.to_owned(),
                }),
            ));
        }
        Ok(deliveries)
    }

    async fn send(&self, actor: &str, body: Bytes) -> Result<()> {
        let url = self.inner.queue_url(actor).await?;
        let text = std::str::from_utf8(&body).map_err(|_| {
            TransportError::Rejected("SQS message bodies must be UTF-8 text".into())
        })?;
        if text.len() > MAX_MESSAGE_BYTES as usize {
            return Err(TransportError::Rejected(format!(
                "SQS SendMessage: {} bytes is more than SQS takes ({MAX_MESSAGE_BYTES})",
                text.len()
            )));
        }
        self.inner
            .call(
                "SendMessage",
                &json!({"QueueUrl": url, "MessageBody": text}),
            )
            .await
            .map(drop)
    }
}

/// How one received SQS message is settled.
struct Receipt {
    client: Arc<Client>,
    url: String,
    receipt: String,
}

impl Receipt {
    async fn visibility(&self, seconds: u32) -> Result<()> {
        self.client
            .call(
                "ChangeMessageVisibility",
                &json!({"QueueUrl": self.url, "ReceiptHandle": self.receipt, "VisibilityTimeout": seconds}),
            )
            .await
            .map(drop)
    }
}

#[async_trait]
impl Settle for Receipt {
    fn lease(&self) -> Option<Duration> {
        Some(Duration::from_secs(u64::from(
            self.client.config.visibility_seconds,
        )))
    }

    async fn extend(&self) -> Result<()> {
        self.visibility(self.client.config.visibility_seconds).await
    }

    async fn ack(self: Box<Self>) -> Result<()> {
        self.client
            .call(
                "DeleteMessage",
                &json!({"QueueUrl": self.url, "ReceiptHandle": self.receipt}),
            )
            .await
            .map(drop)
    }

    async fn retry(self: Box<Self>) -> Result<()> {
        self.visibility(0).await
    }
}
