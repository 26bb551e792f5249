//! The one place where errors become HTTP responses.

use http::{HeaderValue, Response, StatusCode, header};

use super::body::ResponseBody;
use crate::error::Error;

pub fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::BadRequest(_) | Error::UnsupportedAttribute(_) => StatusCode::BAD_REQUEST,
        Error::PermissionDenied(_) => StatusCode::FORBIDDEN,
        Error::KeyNotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
        Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `{"error": code, "message": text}` with its status.
pub fn error_response(error: &Error) -> Response<ResponseBody> {
    match error {
        Error::Internal(_) => tracing::error!(error = %error, "internal error"),
        Error::Unavailable(_) | Error::Timeout(_) => {
            tracing::warn!(error = %error, code = error.code(), "backend error")
        }
        _ => tracing::debug!(error = %error, code = error.code(), "request refused"),
    }
    json_error(status_of(error), error.code(), &error.to_string())
}

/// An error answer for routing failures that have no [`Error`] variant
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
    fn every_error_has_its_status_and_code() {
        let cases = [
            (Error::bad_request("x"), 400, "bad_request"),
            (
                Error::UnsupportedAttribute("x".into()),
                400,
                "unsupported_attribute",
            ),
            (
                Error::PermissionDenied("x".into()),
                403,
                "permission_denied",
            ),
            (Error::KeyNotFound("x".into()), 404, "key_not_found"),
            (Error::Conflict("x".into()), 409, "conflict"),
            (
                Error::PreconditionFailed("x".into()),
                412,
                "precondition_failed",
            ),
            (Error::PayloadTooLarge("x".into()), 413, "payload_too_large"),
            (Error::NotImplemented("x".into()), 501, "not_implemented"),
            (Error::Unavailable("x".into()), 503, "unavailable"),
            (Error::Timeout("x".into()), 504, "timeout"),
            (Error::internal("x"), 500, "internal_error"),
        ];
        for (error, status, code) in cases {
            assert_eq!(status_of(&error).as_u16(), status, "{error:?}");
            assert_eq!(error.code(), code);
        }
    }

    #[tokio::test]
    async fn error_bodies_are_json_with_code_and_message() {
        let response = error_response(&Error::KeyNotFound("a/b".into()));
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "key_not_found");
        assert_eq!(json["message"], "key 'a/b' not found");
    }
}
