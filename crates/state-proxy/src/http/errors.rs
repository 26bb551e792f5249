//! The one place where errors become HTTP responses.

use http::{HeaderValue, Response, StatusCode, header};

use super::body::ResponseBody;
use crate::error::{Error, ErrorKind};

/// The status of an answer with `error` (from the kind's table).
pub fn status_of(error: &Error) -> StatusCode {
    error.kind().status()
}

/// `{"error": code, "message": text}` with its status. The error is
/// logged with its source, whose details (an OS error number, the URL of
/// a failed call) the message only paraphrases.
pub fn error_response(error: &Error) -> Response<ResponseBody> {
    let source = std::error::Error::source(error);
    match error.kind() {
        ErrorKind::Internal => {
            tracing::error!(error = %error, source = ?source, "internal error")
        }
        ErrorKind::Unavailable | ErrorKind::Timeout => {
            tracing::warn!(error = %error, source = ?source, code = error.code(), "backend error")
        }
        _ => tracing::debug!(error = %error, code = error.code(), "request refused"),
    }
    let mut response = json_error(status_of(error), error.code(), &error.to_string());
    if error.kind() == ErrorKind::Busy {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    response
}

/// `Retry-After` of a 503 for a full memory budget: bodies held in memory
/// are usually gone within a second.
const RETRY_AFTER_SECS: &str = "1";

/// An error answer for routing failures that have no [`ErrorKind`]
/// (`not_found`, `method_not_allowed`).
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn every_error_has_the_status_and_code_of_the_protocol() {
        let cases = [
            (ErrorKind::BadRequest, 400, "bad_request"),
            (
                ErrorKind::UnsupportedAttribute,
                400,
                "unsupported_attribute",
            ),
            (ErrorKind::PermissionDenied, 403, "permission_denied"),
            (ErrorKind::KeyNotFound, 404, "key_not_found"),
            (ErrorKind::VersionConflict, 409, "conflict"),
            (ErrorKind::KeyConflict, 409, "conflict"),
            (ErrorKind::PreconditionFailed, 412, "precondition_failed"),
            (ErrorKind::RequestTimeout, 408, "request_timeout"),
            (ErrorKind::PayloadTooLarge, 413, "payload_too_large"),
            (ErrorKind::NotImplemented, 501, "not_implemented"),
            (ErrorKind::Unavailable, 503, "unavailable"),
            (ErrorKind::Busy, 503, "unavailable"),
            (ErrorKind::Timeout, 504, "timeout"),
            (ErrorKind::Internal, 500, "internal_error"),
        ];
        assert_eq!(cases.len(), ErrorKind::ALL.len());
        for (kind, status, code) in cases {
            let error = Error::new(kind, "x");
            assert_eq!(status_of(&error).as_u16(), status, "{kind:?}");
            assert_eq!(error.code(), code);
        }
    }

    #[tokio::test]
    async fn error_bodies_are_json_with_code_and_message() {
        let response = error_response(&Error::key_not_found("a/b"));
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "key_not_found");
        assert_eq!(json["message"], "key 'a/b' not found");
    }
}
