//! The one error type that crosses the layers (http → mode → store), and
//! the one table of error kinds.
//!
//! Stores and the mode layer say *what* went wrong: an [`ErrorKind`], a
//! message, and the error that caused it when there is one (an I/O
//! error, a failed HTTP call), kept as it is so logs can show it. Each
//! kind has its code (the `error` of JSON bodies), its HTTP status and
//! its metrics label in the table below (`error_kinds!`), and nowhere
//! else; `http::errors` turns an error into an answer with them.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;

/// Declares [`ErrorKind`] and its table: `Kind => code, STATUS, label;`.
/// `label` names the kind in metrics; it is the code, except where two
/// kinds share a code.
macro_rules! error_kinds {
    ($( $(#[$doc:meta])* $kind:ident => $code:literal, $status:ident, $label:literal; )*) => {
        /// What went wrong, without the details.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $( $(#[$doc])* $kind, )*
        }

        impl ErrorKind {
            /// Every kind, in the order of the table: `kind.index()` is
            /// its position here.
            pub const ALL: &[ErrorKind] = &[$(ErrorKind::$kind),*];

            /// The stable machine-readable code sent as `error` in JSON
            /// bodies.
            pub fn code(self) -> &'static str {
                match self { $(ErrorKind::$kind => $code,)* }
            }

            /// The HTTP status of an answer with this error.
            pub fn status(self) -> StatusCode {
                match self { $(ErrorKind::$kind => StatusCode::$status,)* }
            }

            /// The kind's name in metrics labels, unique to it.
            pub fn label(self) -> &'static str {
                match self { $(ErrorKind::$kind => $label,)* }
            }
        }
    };
}

error_kinds! {
    /// Malformed request: key, body, JSON, framing or parameter.
    BadRequest => "bad_request", BAD_REQUEST, "bad_request";
    /// An extended attribute this connector does not know.
    UnsupportedAttribute => "unsupported_attribute", BAD_REQUEST, "unsupported_attribute";
    /// A read-only attribute, or the backend denied access.
    PermissionDenied => "permission_denied", FORBIDDEN, "permission_denied";
    /// The key does not exist.
    KeyNotFound => "key_not_found", NOT_FOUND, "key_not_found";
    /// Compare-and-swap: the key changed since this proxy last read or
    /// wrote it. Made by the mode layer, never by a store.
    VersionConflict => "conflict", CONFLICT, "version_conflict";
    /// The backend refuses the key in its present state: `a/b` where the
    /// file `a` exists (fs), a value of another type (Redis), an operation
    /// in progress on it (S3, GCS).
    KeyConflict => "conflict", CONFLICT, "conflict";
    /// An explicit `If-Match` / `If-None-Match` condition failed.
    PreconditionFailed => "precondition_failed", PRECONDITION_FAILED, "precondition_failed";
    /// The client sent its request body too slowly (below the minimum
    /// rate after the body timeout).
    RequestTimeout => "request_timeout", REQUEST_TIMEOUT, "request_timeout";
    /// The request body is above the configured limit.
    PayloadTooLarge => "payload_too_large", PAYLOAD_TOO_LARGE, "payload_too_large";
    /// The feature is absent for this connector.
    NotImplemented => "not_implemented", NOT_IMPLEMENTED, "not_implemented";
    /// The backend is unreachable or throttling.
    Unavailable => "unavailable", SERVICE_UNAVAILABLE, "unavailable";
    /// The proxy's memory budget for bodies stayed taken for the whole
    /// wait; answered with `Retry-After`.
    Busy => "unavailable", SERVICE_UNAVAILABLE, "busy";
    /// The backend did not answer within the configured timeout.
    Timeout => "timeout", GATEWAY_TIMEOUT, "timeout";
    /// Anything unexpected; logged when answered.
    Internal => "internal_error", INTERNAL_SERVER_ERROR, "internal_error";
}

impl ErrorKind {
    /// The position of the kind in [`ErrorKind::ALL`], for tables indexed
    /// by kind (the metrics).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The error that caused another one.
type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while serving a request.
///
/// Shown (`Display`) as its message followed by each of its sources,
/// `message: source: source of the source`, which is the text clients
/// get in error bodies; [`std::error::Error::source`] gives the cause
/// itself.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Source>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.source = Some(Arc::new(source));
        self
    }

    /// The same message and source under another kind (a backend's
    /// conflict that, under a condition, is a failed precondition).
    pub fn into_kind(mut self, kind: ErrorKind) -> Error {
        self.kind = kind;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::BadRequest, message)
    }

    pub fn internal(message: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Internal, message.to_string())
    }

    pub fn key_not_found(key: impl fmt::Display) -> Error {
        Error::new(ErrorKind::KeyNotFound, format!("key '{key}' not found"))
    }

    pub fn unsupported_attribute(name: impl fmt::Display) -> Error {
        Error::new(
            ErrorKind::UnsupportedAttribute,
            format!("attribute '{name}' is not supported by this connector"),
        )
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the sources.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The code sent as `error` in JSON bodies.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        let mut cause = self
            .source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static));
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Error");
        debug
            .field("kind", &self.kind)
            .field("message", &self.message);
        if let Some(source) = &self.source {
            debug.field("source", source);
        }
        debug.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// Errors are equal when they say the same thing; sources are not
/// compared.
impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kind of a failed result, `None` for a success (what tests compare).
pub fn kind_of<T>(result: &Result<T>) -> Option<ErrorKind> {
    result.as_ref().err().map(Error::kind)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_table_is_complete_ordered_and_labels_are_unique() {
        for (position, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), position, "{kind:?}");
        }
        let labels: HashSet<_> = ErrorKind::ALL.iter().map(|kind| kind.label()).collect();
        assert_eq!(labels.len(), ErrorKind::ALL.len());
        // Both conflicts answer as the protocol says: 409 `conflict`.
        for kind in [ErrorKind::VersionConflict, ErrorKind::KeyConflict] {
            assert_eq!((kind.code(), kind.status().as_u16()), ("conflict", 409));
        }
    }

    #[test]
    fn sources_are_kept_and_shown_after_the_message() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no entry");
        let error = Error::new(ErrorKind::PermissionDenied, "reading").with_source(io);
        assert_eq!(error.to_string(), "reading: no entry");
        assert_eq!(error.message(), "reading");
        let source = std::error::Error::source(&error).unwrap();
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        let moved = error.clone().into_kind(ErrorKind::Internal);
        assert_eq!(
            (moved.kind(), moved.to_string()),
            (ErrorKind::Internal, error.to_string())
        );
    }
}
