//! The gateway: the mesh's HTTP entry (TCP).
//!
//! - `POST /tools/call` `{"name", "arguments"}`: a task enters the mesh at
//!   the tool's entrypoint; the answer is an MCP tool result whose
//!   `content[0].text` is JSON `{"task_id", "message", "status_url"}`.
//! - `GET /mesh/{id}`: the task (404 when unknown).
//! - `POST /mesh/{id}/final`: an end actor's report.
//! - `GET /health`.
//!
//! A task is `pending` until the transport has taken its first message,
//! then `running` until an end actor reports.

pub mod flows;
pub mod tasks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::envelope::{self, Envelope, Route, Status, phase};
use crate::report::{self, FinalReport};
use crate::settings;
use crate::transport::Transport;
use crate::web::{self as web, Handler, Listener, Response};
use flows::Flows;
use tasks::{Change, TaskStatus, Tasks};

/// Largest request body (a task's arguments, a final report).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

pub struct Config {
    pub addr: SocketAddr,
    pub flows_file: PathBuf,
    /// Most tasks kept in memory (`ASYA_GATEWAY_MAX_TASKS`).
    pub max_tasks: usize,
}

impl Config {
    pub fn from_env() -> settings::Result<Config> {
        Ok(Config {
            addr: settings::parsed(
                "ASYA_GATEWAY_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8080)),
            )?,
            flows_file: PathBuf::from(settings::required("ASYA_FLOWS_FILE")?),
            max_tasks: settings::at_least_one("ASYA_GATEWAY_MAX_TASKS", tasks::DEFAULT_MAX_TASKS)?,
        })
    }
}

struct Gateway {
    flows: Flows,
    tasks: Tasks,
    transport: Arc<dyn Transport>,
}

/// Serves until `shutdown` completes.
pub async fn run(
    config: Config,
    transport: Arc<dyn Transport>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let flows = Flows::read(&config.flows_file)?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("binding {}: {e}", config.addr))?;
    tracing::info!(addr = %config.addr, tools = flows.iter().count(), transport = transport.kind(), "gateway serving");
    let gateway = Arc::new(Gateway {
        flows,
        tasks: Tasks::with_max(config.max_tasks),
        transport,
    });
    let handler: Handler = Arc::new(move |request| {
        let gateway = Arc::clone(&gateway);
        Box::pin(async move { gateway.handle(request).await })
    });
    web::serve(
        Listener::Tcp(listener),
        handler,
        shutdown,
        Duration::from_secs(5),
    )
    .await;
    Ok(())
}

#[derive(Deserialize)]
struct ToolCall {
    name: String,
    #[serde(default)]
    arguments: Value,
}

impl Gateway {
    async fn handle(&self, request: Request<Incoming>) -> Response {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (&method, segments.as_slice()) {
            (&Method::GET, ["health"]) => web::json(StatusCode::OK, &json!({"status": "ok"})),
            (&Method::POST, ["tools", "call"]) => match read_json(request).await {
                Ok(body) => self.call_tool(body).await,
                Err(answer) => answer,
            },
            (&Method::GET, ["mesh", id]) => match self.tasks.get(&decode(id)) {
                Some(task) => web::json(StatusCode::OK, &json!(task)),
                None => not_found(id),
            },
            (&Method::POST, ["mesh", id, "final"]) => match read_json(request).await {
                Ok(body) => self.final_report(&decode(id), body),
                Err(answer) => answer,
            },
            _ => web::error(StatusCode::NOT_FOUND, "not_found", "no such route"),
        }
    }

    async fn call_tool(&self, body: Value) -> Response {
        let call: ToolCall = match serde_json::from_value(body) {
            Ok(call) => call,
            Err(e) => return web::error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()),
        };
        let Some(flow) = self.flows.get(&call.name) else {
            return web::error(
                StatusCode::NOT_FOUND,
                "unknown_tool",
                &format!("no tool named {:?}", call.name),
            );
        };
        let now = chrono::Utc::now();
        let created = envelope::rfc3339(now);
        // A timeout too large for a date means no practical deadline.
        let deadline = i64::try_from(flow.timeout)
            .ok()
            .and_then(chrono::TimeDelta::try_seconds)
            .and_then(|timeout| now.checked_add_signed(timeout))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        let id = envelope::new_id();
        let first = Envelope {
            id: id.clone(),
            route: Route {
                prev: Vec::new(),
                curr: flow.entrypoint.clone(),
                next: flow.route_next.clone(),
                extra: Map::new(),
            },
            payload: call.arguments,
            status: Some(Status {
                phase: Some(phase::PENDING.into()),
                actor: Some(flow.entrypoint.clone()),
                attempt: Some(1),
                max_attempts: Some(1),
                created_at: Some(created.clone()),
                updated_at: Some(created.clone()),
                deadline_at: Some(envelope::rfc3339(deadline)),
                ..Status::default()
            }),
            ..Envelope::default()
        };
        if let Err(full) = self.tasks.create(&id, &flow.name, &created) {
            tracing::warn!(error = %full, "refusing a new task");
            return web::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &tool_result(&id, &full.to_string(), true),
            );
        }
        let sent = self
            .transport
            .send(&flow.entrypoint, Bytes::from(first.to_bytes()))
            .await;
        let now = envelope::now_rfc3339();
        if let Err(e) = sent {
            let message = format!("the task could not enter the mesh: {e}");
            let mut failed = Change::to(TaskStatus::Failed);
            failed.error = Some(message.clone());
            self.tasks.advance(&id, failed, &now);
            tracing::warn!(%id, error = %e, "sending a new task failed");
            return web::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &tool_result(&id, &message, true),
            );
        }
        self.tasks
            .advance(&id, Change::to(TaskStatus::Running), &now);
        let message = format!("task {id} sent to {}", flow.entrypoint);
        web::json(StatusCode::OK, &tool_result(&id, &message, false))
    }

    fn final_report(&self, id: &str, body: Value) -> Response {
        let report: FinalReport = match serde_json::from_value(body) {
            Ok(report) => report,
            Err(e) => return web::error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()),
        };
        let status = match report.status.as_str() {
            report::SUCCEEDED => TaskStatus::Succeeded,
            report::FAILED => TaskStatus::Failed,
            other => {
                return web::error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!("status {other:?} is not final"),
                );
            }
        };
        let change = Change {
            status,
            result: report.result,
            error: report.error,
            reported_by: Some(report.actor),
        };
        match self.tasks.advance(id, change, &envelope::now_rfc3339()) {
            Some(task) => web::json(StatusCode::OK, &json!({"id": id, "status": task.status})),
            None => not_found(id),
        }
    }
}

/// An MCP tool result carrying the task's handle.
fn tool_result(id: &str, message: &str, is_error: bool) -> Value {
    let text = json!({"task_id": id, "message": message, "status_url": format!("/mesh/{id}")});
    json!({
        "content": [{"type": "text", "text": text.to_string()}],
        "isError": is_error,
    })
}

async fn read_json(request: Request<Incoming>) -> Result<Value, Response> {
    let body = web::read_body(request, MAX_BODY_BYTES).await?;
    serde_json::from_slice(&body).map_err(|e| {
        web::error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("body is not JSON: {e}"),
        )
    })
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

fn not_found(id: &str) -> Response {
    web::error(StatusCode::NOT_FOUND, "not_found", &format!("no task {id}"))
}
