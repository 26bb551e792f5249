//! The actor sidecar: consumes its actor's queue, calls its runtime over
//! the Unix socket, sends on what the runtime produced (see [`routing`]),
//! and only then acknowledges the message. Anything that fails before
//! everything was sent leaves the message to the transport, which
//! delivers it again: redelivery, never loss.
//!
//! End actors (x-sink, x-sump) pass the envelope to their runtime as it
//! came, never route further, and report the outcome to the gateway; a
//! checkpoint that failed in a way that may pass (storage unavailable) is
//! retried the same way.
//!
//! What can never succeed is not retried: a message the transport
//! refuses (too large) is replaced by a small failure to x-sump; a
//! checkpoint the proxy refuses with 4xx ends the task as failed (a small
//! failure to x-sump, or a report to the gateway); a report the gateway
//! refuses with 4xx is dropped. The message is then acknowledged.
//!
//! At most `ASYA_SIDECAR_CONCURRENCY` messages are in work at once. On
//! SIGTERM the sidecar stops receiving, lets the messages in work finish
//! within the grace period and exits.

pub mod invoke;
pub mod routing;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::envelope::{Envelope, ErrorInfo, has_passed, now_rfc3339, reason};
use crate::report::FinalReport;
use crate::runtime::checkpoint::PROXY_STATUS;
use crate::runtime::{DEFAULT_SOCKET_DIR, READY_FILE, SOCKET_NAME};
use crate::settings;
use crate::transport::{Delivery, Transport, TransportError};
use invoke::{Answer, InvokeError, Runtime};
use routing::{CHECKPOINT_ERROR, Outgoing, Router, TRANSPORT_ERROR};

/// Written into the socket directory once the sidecar consumes.
pub const SIDECAR_READY_FILE: &str = "sidecar-ready";

pub struct Config {
    pub router: Router,
    pub is_end_actor: bool,
    pub gateway_url: Option<String>,
    pub socket_dir: PathBuf,
    /// How long one invocation of the runtime may take.
    pub actor_timeout: Duration,
    pub concurrency: usize,
    /// How long a message that is to be retried waits first (so an
    /// outage is not hammered in a tight loop).
    pub retry_delay: Duration,
    pub shutdown_grace: Duration,
    /// Most bytes read of one runtime answer (JSON or event stream).
    pub max_answer_bytes: usize,
}

/// Default of `ASYA_SIDECAR_MAX_ANSWER_BYTES` (64 MiB).
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

impl Config {
    pub fn from_env() -> settings::Result<Config> {
        let concurrency = settings::at_least_one("ASYA_SIDECAR_CONCURRENCY", 16)?;
        Ok(Config {
            router: Router {
                actor: settings::required("ASYA_ACTOR_NAME")?,
                sink: settings::or("ASYA_ACTOR_SINK", "x-sink"),
                sump: settings::or("ASYA_ACTOR_SUMP", "x-sump"),
            },
            is_end_actor: settings::flag("ASYA_IS_END_ACTOR", false)?,
            gateway_url: settings::var("ASYA_GATEWAY_URL")
                .map(|url| url.trim_end_matches('/').to_owned()),
            socket_dir: settings::path_or("ASYA_SOCKET_DIR", DEFAULT_SOCKET_DIR),
            actor_timeout: settings::duration(
                "ASYA_RESILIENCY_ACTOR_TIMEOUT",
                Duration::from_secs(60),
            )?,
            concurrency,
            retry_delay: settings::duration(
                "ASYA_SIDECAR_RETRY_DELAY",
                Duration::from_millis(500),
            )?,
            shutdown_grace: settings::duration("ASYA_SHUTDOWN_GRACE", Duration::from_secs(30))?,
            max_answer_bytes: settings::at_least_one(
                "ASYA_SIDECAR_MAX_ANSWER_BYTES",
                DEFAULT_MAX_ANSWER_BYTES,
            )?,
        })
    }
}

/// Runs until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    transport: Arc<dyn Transport>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let runtime = Runtime::new(
        &config.socket_dir.join(SOCKET_NAME),
        config.actor_timeout,
        config.max_answer_bytes,
    );
    if !wait_for_runtime(&config, &runtime, &shutdown).await {
        return Ok(());
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("gateway client: {e}"))?;
    let worker = Arc::new(Worker {
        reporter: config.gateway_url.clone().map(|base| Reporter {
            http,
            base,
            actor: config.router.actor.clone(),
            is_sump: config.router.actor == config.router.sump,
        }),
        runtime,
        transport,
        shutdown: shutdown.clone(),
        retry_delay: config.retry_delay,
        is_end_actor: config.is_end_actor,
        router: config.router.clone(),
    });
    let actor = config.router.actor.clone();
    tracing::info!(%actor, transport = worker.transport.kind(), end_actor = config.is_end_actor, "sidecar consuming");
    let ready_file = config.socket_dir.join(SIDECAR_READY_FILE);
    let permits = Arc::new(Semaphore::new(config.concurrency));
    let mut in_work = JoinSet::new();
    let mut consuming = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        let first = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("never closed"),
            () = shutdown.cancelled() => break,
        };
        let mut held = vec![first];
        while let Ok(permit) = Arc::clone(&permits).try_acquire_owned() {
            held.push(permit);
        }
        let received = tokio::select! {
            received = worker.transport.receive(&actor, held.len()) => received,
            () = shutdown.cancelled() => break,
        };
        match received {
            Ok(deliveries) => {
                backoff = Duration::from_millis(100);
                if !consuming {
                    consuming = true;
                    std::fs::write(&ready_file, std::process::id().to_string())
                        .map_err(|e| format!("{}: {e}", ready_file.display()))?;
                }
                for (delivery, permit) in deliveries.into_iter().zip(held.drain(..)) {
                    let worker = Arc::clone(&worker);
                    in_work.spawn(async move {
                        worker.handle(delivery).await;
                        drop(permit);
                    });
                }
            }
            Err(e) => {
                tracing::warn!(%actor, error = %e, ?backoff, "receiving failed; trying again");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        while in_work.try_join_next().is_some() {}
    }
    tracing::info!(%actor, in_work = in_work.len(), "stopping: finishing messages in work");
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while in_work.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(%actor, "grace period over; unfinished messages will be delivered again");
        in_work.shutdown().await;
    }
    let _ = std::fs::remove_file(&ready_file);
    Ok(())
}

/// Waits for `runtime-ready` and an answered `/healthz`; false when
/// stopped first.
async fn wait_for_runtime(
    config: &Config,
    runtime: &Runtime,
    shutdown: &CancellationToken,
) -> bool {
    let ready_file = config.socket_dir.join(READY_FILE);
    loop {
        if ready_file.exists() && runtime.healthy().await {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
            () = shutdown.cancelled() => return false,
        }
    }
}

/// What one message needs.
struct Worker {
    router: Router,
    runtime: Runtime,
    transport: Arc<dyn Transport>,
    reporter: Option<Reporter>,
    is_end_actor: bool,
    retry_delay: Duration,
    shutdown: CancellationToken,
}

impl Worker {
    async fn handle(&self, delivery: Delivery) {
        // The transport's lease is renewed while the message is in work.
        let settled = delivery
            .hold(async {
                if self.is_end_actor {
                    self.finish(&delivery.body).await
                } else {
                    self.relay(&delivery.body).await
                }
            })
            .await;
        match settled {
            Ok(()) => {
                if let Err(e) = delivery.ack().await {
                    // It comes again; what it produced is idempotent by id.
                    tracing::warn!(error = %e, "ack failed; the message will be delivered again");
                }
            }
            Err(why) => {
                tracing::warn!(actor = %self.router.actor, %why, delay = ?self.retry_delay, "message to be delivered again");
                tokio::select! {
                    () = tokio::time::sleep(self.retry_delay) => {}
                    () = self.shutdown.cancelled() => {}
                }
                if let Err(e) = delivery.retry().await {
                    tracing::warn!(error = %e, "retry failed; the transport delivers it again later");
                }
            }
        }
    }

    /// A regular actor: invoke, route, send everything; `Err` when the
    /// message must come again.
    async fn relay(&self, body: &Bytes) -> Result<(), String> {
        let now = now_rfc3339();
        let outgoing = match Envelope::parse(body) {
            Err(e) => vec![self.router.unparseable(body, &e.to_string(), &now)],
            Ok(input) if input.route.curr != self.router.actor => {
                vec![self.router.mismatch(&input, &now)]
            }
            Ok(input) if self.expired(&input) => vec![self.router.expired(&input, &now)],
            Ok(input) => match self.runtime.invoke(body.clone()).await {
                Ok(answer) => self.router.route(&input, answer, &now),
                Err(InvokeError::Unreachable(e)) => {
                    return Err(format!("runtime unreachable: {e}"));
                }
                Err(e @ InvokeError::Timeout(_)) => vec![self.router.failure_of(
                    &input,
                    reason::TIMEOUT,
                    ErrorInfo::new("TimeoutError", e.to_string()),
                    &now,
                )],
                Err(e @ InvokeError::Protocol(_)) => vec![self.router.failure_of(
                    &input,
                    reason::RUNTIME_ERROR,
                    ErrorInfo::new("RuntimeError", e.to_string()),
                    &now,
                )],
            },
        };
        for message in outgoing {
            self.send(message).await?;
        }
        Ok(())
    }

    fn expired(&self, input: &Envelope) -> bool {
        input
            .status
            .as_ref()
            .and_then(|s| s.deadline_at.as_deref())
            .is_some_and(|deadline| has_passed(deadline, chrono::Utc::now()))
    }

    /// Sends one message. One the transport can never take (too large,
    /// no queue for the actor) is replaced by a small stand-in to x-sump,
    /// so that the task still ends. `Err` only for what may work later.
    async fn send(&self, message: Outgoing) -> Result<(), String> {
        let Outgoing { actor, envelope } = message;
        let problem = match self
            .transport
            .send(&actor, envelope.to_bytes().into())
            .await
        {
            Ok(()) => return Ok(()),
            Err(TransportError::Rejected(e)) => format!("sending to {actor}: {e}"),
            Err(e) => return Err(format!("sending to {actor}: {e}")),
        };
        tracing::warn!(id = %envelope.id, to = %actor, error = %problem, "transport refused the message; a small failure goes to the sump instead");
        let stand_in =
            self.router
                .undeliverable(&envelope, TRANSPORT_ERROR, &problem, &now_rfc3339());
        self.send_or_give_up(stand_in).await
    }

    /// Sends a stand-in. When the transport refuses even that, nothing
    /// more can be done: the failure is reported where this sidecar
    /// reports, and the message is done with rather than retried forever.
    async fn send_or_give_up(&self, stand_in: Outgoing) -> Result<(), String> {
        let Outgoing { actor, envelope } = stand_in;
        match self
            .transport
            .send(&actor, envelope.to_bytes().into())
            .await
        {
            Ok(()) => Ok(()),
            Err(TransportError::Rejected(e)) => {
                tracing::error!(id = %envelope.id, to = %actor, error = %e, "the transport refused the stand-in too; giving the message up");
                self.give_up(&envelope).await
            }
            Err(e) => Err(format!("sending to {actor}: {e}")),
        }
    }

    /// Tells the gateway how a task ended when this sidecar reports (end
    /// actors); otherwise only the log says it.
    async fn give_up(&self, failure: &Envelope) -> Result<(), String> {
        match &self.reporter {
            Some(reporter) => reporter.report(failure).await,
            None => Ok(()),
        }
    }

    /// An end actor: the runtime checkpoints, the gateway hears of it;
    /// `Err` when either failed in a way that may pass (storage or the
    /// gateway unavailable) and the message must come again.
    async fn finish(&self, body: &Bytes) -> Result<(), String> {
        let (envelope, body) = match Envelope::parse(body) {
            Ok(envelope) => (envelope, body.clone()),
            Err(e) => {
                // Kept as a failure of its own rather than dropped.
                let carrier = self
                    .router
                    .unparseable(body, &e.to_string(), &now_rfc3339())
                    .envelope;
                let bytes = Bytes::from(carrier.to_bytes());
                (carrier, bytes)
            }
        };
        let failed = |error: &Value| {
            let message = error["details"]["message"].as_str().unwrap_or("");
            format!("{} of {} failed: {message}", self.router.actor, envelope.id)
        };
        let refused = match self.runtime.invoke(body).await {
            Ok(Answer::Frames(_) | Answer::Empty) => None,
            Ok(Answer::Failed(error)) if !refused_for_good(&error) => {
                return Err(failed(&error));
            }
            Ok(Answer::Failed(error) | Answer::Refused(error)) => Some(failed(&error)),
            Err(e @ InvokeError::Protocol(_)) => Some(format!("{}: {e}", self.router.actor)),
            Err(e) => return Err(format!("{} of {}: {e}", self.router.actor, envelope.id)),
        };
        match refused {
            Some(problem) => self.checkpoint_refused(&envelope, &problem).await,
            // Stored: the gateway hears of the outcome.
            None => self.give_up(&envelope).await,
        }
    }

    /// A checkpoint refused for good (the proxy answered 4xx, the runtime
    /// answered outside the protocol): trying again gives the same. x-sink
    /// hands x-sump a small failure, which x-sump stores and reports;
    /// x-sump (or x-sink, when x-sump cannot take it) reports the failure
    /// itself. Either way the message is done with.
    async fn checkpoint_refused(&self, envelope: &Envelope, problem: &str) -> Result<(), String> {
        tracing::error!(actor = %self.router.actor, id = %envelope.id, %problem, "checkpoint refused for good; the task ends failed");
        let stand_in =
            self.router
                .undeliverable(envelope, CHECKPOINT_ERROR, problem, &now_rfc3339());
        if self.router.actor == self.router.sump {
            self.give_up(&stand_in.envelope).await
        } else {
            self.send_or_give_up(stand_in).await
        }
    }
}

/// Whether a checkpoint error will come again however often it is tried:
/// the proxy refused the write with a 4xx (400 invalid key, 413 too
/// large, ...), not one that may pass (408, 409 conflict, 429).
pub fn refused_for_good(error: &Value) -> bool {
    error["details"][PROXY_STATUS]
        .as_u64()
        .is_some_and(|status| (400..500).contains(&status) && !matches!(status, 408 | 409 | 429))
}

/// Tells the gateway how a task ended.
struct Reporter {
    http: reqwest::Client,
    base: String,
    actor: String,
    is_sump: bool,
}

impl Reporter {
    async fn report(&self, envelope: &Envelope) -> Result<(), String> {
        let report = FinalReport::of(envelope, &self.actor, self.is_sump);
        let id =
            percent_encoding::utf8_percent_encode(&report.id, percent_encoding::NON_ALPHANUMERIC);
        let url = format!("{}/mesh/{id}/final", self.base);
        let response = self
            .http
            .post(&url)
            .json(&report)
            .send()
            .await
            .map_err(|e| format!("reporting {}: {e}", report.id))?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            // Not a task of this gateway (a fan-out child, a task of a
            // gateway that restarted): nothing to tell.
            404 => {
                tracing::debug!(id = %report.id, "the gateway does not track this task");
                Ok(())
            }
            // The gateway will not take this report however often it is
            // sent: retrying would hold the message forever.
            status @ 400..=499 => {
                tracing::error!(id = %report.id, status, "the gateway refused the report; not sending it again");
                Ok(())
            }
            status => Err(format!(
                "reporting {}: gateway answered {status}",
                report.id
            )),
        }
    }
}
