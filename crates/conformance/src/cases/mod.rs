//! The cases of the suite, grouped by topic, and the helpers they share.

mod basic;
mod conditions;
mod consistency;
mod keys;
mod limits;
mod listing;
mod meta;
mod operations;
mod query;
mod races;
pub(crate) mod streaming;
mod transport;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use state_client::{ClientError, RawResponse};

use crate::raw::RawAnswer;
use crate::{Ctx, Target};

pub(crate) type Outcome = Result<(), String>;
type CaseFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

pub(crate) struct Case {
    pub name: &'static str,
    /// Whether the case applies to this target at all (its connector,
    /// the access to the backend it was given).
    pub applies: fn(&Target) -> bool,
    /// Peer proxies the case needs.
    pub peers: usize,
    pub run: for<'a, 't> fn(&'a Ctx<'t>) -> CaseFuture<'a>,
}

/// `case!(function)`, `case!(function, applies)`, `case!(function, applies, peers)`.
macro_rules! case {
    ($f:ident) => {
        case!($f, |_| true, 0)
    };
    ($f:ident, $applies:expr) => {
        case!($f, $applies, 0)
    };
    ($f:ident, $applies:expr, $peers:expr) => {
        crate::cases::Case {
            name: stringify!($f),
            applies: $applies,
            peers: $peers,
            run: |cx| Box::pin($f(cx)),
        }
    };
}
pub(crate) use case;

/// Fails the case with a message unless the condition holds.
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}
pub(crate) use ensure;

/// Fails the case unless both sides are equal, showing both.
macro_rules! ensure_eq {
    ($actual:expr, $expected:expr, $($message:tt)+) => {
        match (&$actual, &$expected) {
            (actual, expected) => {
                if actual != expected {
                    return Err(format!(
                        "{}: expected {:?}, got {:?}",
                        format!($($message)+),
                        expected,
                        actual
                    ));
                }
            }
        }
    };
}
pub(crate) use ensure_eq;

pub(crate) fn all() -> Vec<Case> {
    [
        basic::cases(),
        keys::cases(),
        listing::cases(),
        meta::cases(),
        operations::cases(),
        conditions::cases(),
        consistency::cases(),
        transport::cases(),
        limits::cases(),
        query::cases(),
        streaming::cases(),
        races::cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Adds what a failed client call was doing to its error.
pub(crate) fn doing<T>(what: &str, result: Result<T, ClientError>) -> Result<T, String> {
    result.map_err(|e| format!("{what}: {e}"))
}

/// Checks that a client call failed with this status and error code.
pub(crate) fn expect_error<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, ClientError>,
    status: u16,
    code: &str,
) -> Outcome {
    match result {
        Err(ClientError::Status {
            status: got_status,
            code: got_code,
            ..
        }) if got_status == status && got_code == code => Ok(()),
        other => Err(format!("{what}: expected {status} {code}, got {other:?}")),
    }
}

/// Checks an error answer in full: status, JSON body with `error` and
/// `message`, `Content-Type` and `Content-Length`.
pub(crate) fn expect_error_body(
    what: &str,
    answer: &RawResponse,
    status: u16,
    code: &str,
) -> Outcome {
    ensure_eq!(answer.status.as_u16(), status, "{what}: status");
    ensure_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "{what}: content type"
    );
    ensure_eq!(
        answer
            .header("content-length")
            .and_then(|l| l.parse::<usize>().ok()),
        Some(answer.body.len()),
        "{what}: content length"
    );
    let json = answer.json().map_err(|e| format!("{what}: {e}"))?;
    ensure_eq!(json["error"].as_str(), Some(code), "{what}: error code");
    ensure!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: error body without a message: {json}"
    );
    Ok(())
}

/// The same checks on an answer read from a raw connection.
pub(crate) fn expect_raw_error(what: &str, answer: &RawAnswer, status: u16, code: &str) -> Outcome {
    ensure_eq!(answer.status, status, "{what}: status");
    ensure_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "{what}: content type"
    );
    let json = answer.json().map_err(|e| format!("{what}: {e}"))?;
    ensure_eq!(json["error"].as_str(), Some(code), "{what}: error code");
    Ok(())
}

/// A request with headers, read whole whatever the status.
pub(crate) async fn request(
    cx: &Ctx<'_>,
    method: Method,
    path: &str,
    headers: &[(&'static str, &str)],
    body: impl Into<Bytes>,
) -> Result<RawResponse, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
        map.append(*name, value);
    }
    doing(
        &format!("{method} {path}"),
        cx.client.raw(method.clone(), path, map, body).await,
    )
}

/// Deterministic pseudo-random bytes (xorshift), so big bodies can be
/// generated twice and compared without keeping either.
pub(crate) struct Pattern(u64);

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        Pattern(seed.max(1))
    }

    pub fn fill(&mut self, buffer: &mut [u8]) {
        for chunk in buffer.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }

    pub fn bytes(seed: u64, length: usize) -> Vec<u8> {
        let mut data = vec![0; length];
        Pattern::new(seed).fill(&mut data);
        data
    }
}
