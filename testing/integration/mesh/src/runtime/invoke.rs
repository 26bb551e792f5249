//! `POST /invoke`: one envelope in, the handler's outcome out, in the
//! answer shapes of Asya's runtime socket protocol:
//!
//! - 200 `{"frames": [...]}`: results, each with the shifted route;
//! - 204: the handler returned nothing;
//! - 400 `{"error": "msg_parsing_error", "details": {..}}`: not an
//!   envelope, or a payload the handler refuses before any work (a size
//!   past its cap);
//! - 500 `{"error": "processing_error", "details": {..}}`;
//! - 200 `text/event-stream` for the crew handlers: `error` when the
//!   checkpoint failed, then `done`.

use std::path::PathBuf;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::checkpoint;
use super::handlers::{self, Handler, Raised};
use super::mounts::Mounts;
use crate::envelope::{Envelope, ErrorInfo, Frame};
use crate::sse;
use crate::web::{self, Response};

/// What `/invoke` needs.
pub struct Invoker {
    pub handler: Handler,
    pub mounts: Mounts,
    /// Where the crew handlers checkpoint (`ASYA_PERSISTENCE_MOUNT`).
    pub persistence_mount: Option<PathBuf>,
}

impl Invoker {
    pub async fn invoke(&self, body: &Bytes) -> Response {
        let envelope = match Envelope::parse(body) {
            Ok(envelope) => envelope,
            Err(e) => {
                return refused(ErrorInfo::new("ValidationError", e.to_string()));
            }
        };
        match self.handler {
            Handler::Payload(handler) => match handlers::pause(&envelope.payload) {
                Err(refusal) => answer(&envelope, Err(refusal)),
                Ok(pause) => {
                    if let Some(pause) = pause {
                        tokio::time::sleep(pause).await;
                    }
                    answer(&envelope, handler(&envelope.payload))
                }
            },
            Handler::Checkpoint => self.checkpoint(&envelope).await,
        }
    }

    async fn checkpoint(&self, envelope: &Envelope) -> Response {
        let mut stream = String::new();
        let outcome = match &self.persistence_mount {
            Some(mount) => checkpoint::write(&self.mounts, mount, envelope).await,
            None => Err(ErrorInfo::new(
                "CheckpointError",
                "ASYA_PERSISTENCE_MOUNT is not set",
            )),
        };
        match outcome {
            Ok(key) => tracing::debug!(id = %envelope.id, key, "checkpoint written"),
            Err(raised) => {
                tracing::warn!(id = %envelope.id, error = %raised.message, "checkpoint failed");
                let data = processing_error(raised).to_string();
                sse::write(&mut stream, &sse::Event::new(sse::ERROR, data));
            }
        }
        sse::write(&mut stream, &sse::Event::new(sse::DONE, ""));
        web::bytes(StatusCode::OK, sse::CONTENT_TYPE, stream)
    }
}

/// The answer to what a payload handler returned.
fn answer(envelope: &Envelope, outcome: Result<Vec<Value>, Raised>) -> Response {
    match outcome {
        Ok(results) if results.is_empty() => web::empty(StatusCode::NO_CONTENT),
        Ok(results) => {
            let route = envelope.route.shifted();
            let frames: Vec<Frame> = results
                .into_iter()
                .map(|payload| Frame {
                    payload,
                    route: route.clone(),
                    headers: envelope.headers.clone(),
                    status: envelope.status.clone(),
                    ..Frame::default()
                })
                .collect();
            web::json(StatusCode::OK, &json!({ "frames": frames }))
        }
        Err(Raised::Error(raised)) => {
            web::json(StatusCode::INTERNAL_SERVER_ERROR, &processing_error(raised))
        }
        Err(Raised::Invalid(details)) => refused(details),
    }
}

/// A 400 answer: the envelope or its payload is not taken.
fn refused(details: ErrorInfo) -> Response {
    web::json(
        StatusCode::BAD_REQUEST,
        &json!({"error": "msg_parsing_error", "details": details}),
    )
}

/// The body of a 500 answer (and of an SSE `error` event).
pub fn processing_error(details: ErrorInfo) -> Value {
    json!({"error": "processing_error", "details": details})
}
