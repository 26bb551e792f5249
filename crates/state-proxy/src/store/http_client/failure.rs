//! Unsuccessful answers as errors: the backend's error body decoded by
//! its [`Dialect`](super::Dialect), then one status table for every
//! backend.

use http::StatusCode;
use reqwest::Response;
use tokio::time::Instant;

use super::{HttpClient, header};
use crate::error::{Error, ErrorKind};

/// Longest backend message quoted in an error.
const MESSAGE_LIMIT: usize = 300;

/// What a backend's error body says.
#[derive(Debug, Default)]
pub(crate) struct BackendError {
    /// The backend's error code (`NoSuchKey`, `SlowDown`); empty when it
    /// has none.
    pub code: String,
    pub message: String,
}

impl HttpClient {
    /// Turns an unsuccessful answer into an error: `missing` says what a
    /// 404 means for this call (given the backend's code and the message).
    pub async fn failure(
        &self,
        response: Response,
        deadline: Instant,
        what: &str,
        missing: impl FnOnce(&str, String) -> Error,
    ) -> Error {
        let status = response.status();
        let retry_after = header(response.headers(), "retry-after").map(str::to_owned);
        // The message is a courtesy: a body that does not come in time is
        // left out rather than turning a clear status into a timeout.
        let detail = match self.body(response, deadline, what).await {
            Ok(body) => self.dialect.decode_error(&body),
            Err(_) => BackendError::default(),
        };
        self.status_error(status, &detail, retry_after.as_deref(), what, missing)
    }

    /// The error a status and the backend's error body stand for.
    pub fn status_error(
        &self,
        status: StatusCode,
        detail: &BackendError,
        retry_after: Option<&str>,
        what: &str,
        missing: impl FnOnce(&str, String) -> Error,
    ) -> Error {
        let mut text = format!("{} {what}: {status}", self.backend.name);
        for part in [&detail.code, &detail.message] {
            if !part.is_empty() {
                text.push_str(": ");
                text.push_str(part);
            }
        }
        if let Some(seconds) = retry_after {
            text.push_str(&format!(" (retry after {seconds} s)"));
        }
        if let Some((kind, hint)) = self.dialect.classify(status, &detail.code) {
            if let Some(hint) = hint {
                text.push(' ');
                text.push_str(&hint);
            }
            return Error::new(kind, text);
        }
        let kind = match status.as_u16() {
            400 => ErrorKind::BadRequest,
            401 | 403 => ErrorKind::PermissionDenied,
            404 => return missing(&detail.code, text),
            408 | 504 => ErrorKind::Timeout,
            409 => ErrorKind::KeyConflict,
            412 => ErrorKind::PreconditionFailed,
            413 => ErrorKind::PayloadTooLarge,
            429 | 500 | 502 | 503 => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, text)
    }
}

/// The start of a body, as text, for messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MESSAGE_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
