//! The one error type that crosses the layers (http → mode → store).
//!
//! Stores and the mode layer say *what* went wrong; the HTTP layer alone
//! decides how that looks on the wire (`http::errors`).

/// Everything that can go wrong while serving a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Malformed request: key, body, JSON, framing or parameter.
    #[error("{0}")]
    BadRequest(String),
    /// An extended attribute this connector does not know.
    #[error("attribute '{0}' is not supported by this connector")]
    UnsupportedAttribute(String),
    /// A read-only attribute, or the backend denied access.
    #[error("{0}")]
    PermissionDenied(String),
    /// The key does not exist.
    #[error("key '{0}' not found")]
    KeyNotFound(String),
    /// Compare-and-swap conflict against the version this proxy remembered,
    /// or a key that cannot be stored next to an existing one.
    #[error("{0}")]
    Conflict(String),
    /// An explicit `If-Match` / `If-None-Match` condition failed.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The request body is above the configured limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The feature is absent for this connector.
    #[error("{0}")]
    NotImplemented(String),
    /// The backend is unreachable or throttling.
    #[error("{0}")]
    Unavailable(String),
    /// The backend did not answer within the configured timeout.
    #[error("{0}")]
    Timeout(String),
    /// Anything unexpected; logged when answered.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::BadRequest(message.into())
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Error::Internal(message.to_string())
    }

    /// The stable machine-readable code sent as `error` in JSON bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::UnsupportedAttribute(_) => "unsupported_attribute",
            Error::PermissionDenied(_) => "permission_denied",
            Error::KeyNotFound(_) => "key_not_found",
            Error::Conflict(_) => "conflict",
            Error::PreconditionFailed(_) => "precondition_failed",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::NotImplemented(_) => "not_implemented",
            Error::Unavailable(_) => "unavailable",
            Error::Timeout(_) => "timeout",
            Error::Internal(_) => "internal_error",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
