//! The sidecar's side of the runtime socket: `POST /invoke` with an
//! envelope, and the runtime's answer read back into one of its shapes
//! (frames, nothing, a handler error, a refused envelope), whether it
//! came as JSON or as an event stream. At most a set number of bytes of
//! an answer is read; a longer one is outside the protocol.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use state_client::{Client, ClientError};

use crate::envelope::Frame;
use crate::sse;

/// What the runtime made of an envelope.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// One or more results (200 frames, or `downstream` events).
    Frames(Vec<Frame>),
    /// 204, or a stream that ended without results or errors.
    Empty,
    /// The handler raised (500, or an `error` event): the error body,
    /// `{"error": "processing_error", "details": {..}}`.
    Failed(Value),
    /// The runtime refused the envelope (400): its error body.
    Refused(Value),
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// No answer at all: the runtime is not there or broke the
    /// connection. Nothing is known about the message.
    #[error("runtime unreachable: {0}")]
    Unreachable(String),
    #[error("runtime did not answer within {0:?}")]
    Timeout(Duration),
    /// An answer outside the protocol.
    #[error("runtime answered outside the protocol: {0}")]
    Protocol(String),
}

/// A keep-alive client of one runtime socket.
pub struct Runtime {
    client: Client,
    timeout: Duration,
    max_answer: usize,
}

impl Runtime {
    pub fn new(socket: &Path, timeout: Duration, max_answer: usize) -> Runtime {
        Runtime {
            client: Client::new(socket),
            timeout,
            max_answer,
        }
    }

    pub async fn healthy(&self) -> bool {
        self.client.healthz().await.is_ok()
    }

    pub async fn invoke(&self, envelope: Bytes) -> Result<Answer, InvokeError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let call =
            self.client
                .raw_limited(Method::POST, "/invoke", headers, envelope, self.max_answer);
        let response = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| InvokeError::Timeout(self.timeout))?
            .map_err(|e| match e {
                // An answer came, but too long (or not HTTP).
                ClientError::InvalidResponse(problem) => InvokeError::Protocol(problem),
                e => InvokeError::Unreachable(e.to_string()),
            })?;
        let is_stream = response
            .header(header::CONTENT_TYPE.as_str())
            .is_some_and(|t| t.starts_with(sse::CONTENT_TYPE));
        read_answer(response.status, is_stream, &response.body)
    }
}

/// Turns a status and body into an [`Answer`].
pub fn read_answer(
    status: StatusCode,
    is_stream: bool,
    body: &[u8],
) -> Result<Answer, InvokeError> {
    let json_body = || -> Result<Value, InvokeError> {
        serde_json::from_slice(body).map_err(|e| {
            InvokeError::Protocol(format!("{status} with a body that is not JSON: {e}"))
        })
    };
    match status {
        StatusCode::NO_CONTENT => Ok(Answer::Empty),
        StatusCode::OK if is_stream => read_stream(body),
        StatusCode::OK => {
            let mut value = json_body()?;
            let frames = value
                .get_mut("frames")
                .map(Value::take)
                .ok_or_else(|| InvokeError::Protocol("200 without `frames`".into()))?;
            let frames: Vec<Frame> = serde_json::from_value(frames)
                .map_err(|e| InvokeError::Protocol(format!("bad frame: {e}")))?;
            Ok(if frames.is_empty() {
                Answer::Empty
            } else {
                Answer::Frames(frames)
            })
        }
        StatusCode::BAD_REQUEST => Ok(Answer::Refused(json_body()?)),
        StatusCode::INTERNAL_SERVER_ERROR => Ok(Answer::Failed(json_body()?)),
        other => Err(InvokeError::Protocol(format!(
            "status {other}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ))),
    }
}

/// Frames from `downstream` events; an `error` event wins over them.
fn read_stream(body: &[u8]) -> Result<Answer, InvokeError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| InvokeError::Protocol("event stream is not UTF-8".into()))?;
    let mut frames = Vec::new();
    let mut done = false;
    for event in sse::parse(text) {
        match event.name.as_str() {
            sse::DOWNSTREAM => frames.push(
                serde_json::from_str(&event.data)
                    .map_err(|e| InvokeError::Protocol(format!("bad downstream frame: {e}")))?,
            ),
            sse::ERROR => {
                let error = serde_json::from_str(&event.data).unwrap_or_else(
                    |_| json!({"error": "processing_error", "details": {"message": event.data}}),
                );
                return Ok(Answer::Failed(error));
            }
            sse::DONE => done = true,
            // Progress for whoever watches the task; nothing to route.
            _ => {}
        }
    }
    if !done {
        return Err(InvokeError::Protocol(
            "event stream ended without `done`".into(),
        ));
    }
    Ok(if frames.is_empty() {
        Answer::Empty
    } else {
        Answer::Frames(frames)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(events: &[(&str, &str)]) -> Vec<u8> {
        let mut text = String::new();
        for (name, data) in events {
            sse::write(&mut text, &sse::Event::new(name, *data));
        }
        text.into_bytes()
    }

    #[test]
    fn json_answers_map_to_their_shapes() {
        let frames = br#"{"frames":[{"payload":1,"route":{"prev":["a"],"curr":"b","next":[]}}]}"#;
        let Answer::Frames(read) = read_answer(StatusCode::OK, false, frames).unwrap() else {
            panic!("frames expected");
        };
        assert_eq!(read[0].route.curr, "b");
        assert_eq!(
            read_answer(StatusCode::NO_CONTENT, false, b"").unwrap(),
            Answer::Empty
        );
        let failed = br#"{"error":"processing_error","details":{"message":"m"}}"#;
        assert!(matches!(
            read_answer(StatusCode::INTERNAL_SERVER_ERROR, false, failed).unwrap(),
            Answer::Failed(v) if v["details"]["message"] == "m"
        ));
        assert!(matches!(
            read_answer(
                StatusCode::BAD_REQUEST,
                false,
                br#"{"error":"msg_parsing_error"}"#
            )
            .unwrap(),
            Answer::Refused(_)
        ));
        assert!(read_answer(StatusCode::OK, false, b"{}").is_err());
        assert!(read_answer(StatusCode::BAD_GATEWAY, false, b"").is_err());
    }

    #[test]
    fn streams_give_frames_or_their_error() {
        let frame = r#"{"payload":{"x":1},"route":{"prev":[],"curr":"","next":[]}}"#;
        let ok = stream(&[("upstream", "{}"), ("downstream", frame), ("done", "")]);
        assert!(matches!(
            read_answer(StatusCode::OK, true, &ok).unwrap(),
            Answer::Frames(f) if f.len() == 1
        ));
        let empty = stream(&[("done", "")]);
        assert_eq!(
            read_answer(StatusCode::OK, true, &empty).unwrap(),
            Answer::Empty
        );
        let failed = stream(&[
            ("downstream", frame),
            (
                "error",
                r#"{"error":"processing_error","details":{"message":"disk"}}"#,
            ),
            ("done", ""),
        ]);
        assert!(matches!(
            read_answer(StatusCode::OK, true, &failed).unwrap(),
            Answer::Failed(v) if v["details"]["message"] == "disk"
        ));
        let cut = stream(&[("downstream", frame)]);
        assert!(read_answer(StatusCode::OK, true, &cut).is_err());
    }
}
