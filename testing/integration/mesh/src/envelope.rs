//! The envelope actors pass to each other (JSON), the frames a runtime
//! answers with, and the route shift.
//!
//! Every struct keeps the fields it does not know in `extra`, so an
//! envelope written by a newer or different runtime passes through this
//! mesh unchanged. Phases and reasons are plain strings for the same
//! reason: a value this code does not know is carried, not rejected.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `status.phase` values.
pub mod phase {
    pub const PENDING: &str = "pending";
    pub const PROCESSING: &str = "processing";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
}

/// `status.reason` values.
pub mod reason {
    pub const COMPLETED: &str = "Completed";
    pub const RUNTIME_ERROR: &str = "RuntimeError";
    pub const TIMEOUT: &str = "Timeout";
    pub const PARSE_ERROR: &str = "ParseError";
    pub const ROUTE_MISMATCH: &str = "RouteMismatch";
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub route: Route,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Map<String, Value>>,
    #[serde(default)]
    pub payload: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Route {
    #[serde(default)]
    pub prev: Vec<String>,
    #[serde(default)]
    pub curr: String,
    #[serde(default)]
    pub next: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What a handler raised: the `details` of a 500 answer and
/// `status.error` of a failed envelope.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    #[serde(default)]
    pub message: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mro: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ErrorInfo {
    /// An error of `kind` with a message and nothing else.
    pub fn new(kind: &str, message: impl Into<String>) -> ErrorInfo {
        ErrorInfo {
            message: message.into(),
            kind: Some(kind.to_owned()),
            ..ErrorInfo::default()
        }
    }
}

/// One result of a handler, as the runtime answers it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    #[serde(default)]
    pub payload: Value,
    pub route: Route,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Route {
    /// The route after the current actor: `prev += [curr]`,
    /// `curr = next[0]` (or `""`), `next = rest`.
    pub fn shifted(&self) -> Route {
        let mut prev = self.prev.clone();
        if !self.curr.is_empty() {
            prev.push(self.curr.clone());
        }
        let mut next = self.next.iter().cloned();
        let curr = next.next().unwrap_or_default();
        Route {
            prev,
            curr,
            next: next.collect(),
            extra: self.extra.clone(),
        }
    }

    /// No actor left: the route is finished.
    pub fn is_finished(&self) -> bool {
        self.curr.is_empty() && self.next.is_empty()
    }
}

/// Why bytes are not an envelope.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a valid envelope: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a valid envelope: `id` is empty")]
    MissingId,
}

impl Envelope {
    /// Parses and checks what every actor relies on (a non-empty id).
    pub fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let envelope: Envelope = serde_json::from_slice(bytes)?;
        if envelope.id.is_empty() {
            return Err(EnvelopeError::MissingId);
        }
        Ok(envelope)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serializes")
    }

    /// `status.phase`, if any.
    pub fn phase(&self) -> Option<&str> {
        self.status.as_ref().and_then(|s| s.phase.as_deref())
    }

    /// The status, created empty when absent.
    pub fn status_mut(&mut self) -> &mut Status {
        self.status.get_or_insert_with(Status::default)
    }

    /// Sets phase, reason and actor, and `updated_at` to `now`.
    pub fn stamp(&mut self, phase: &str, reason: Option<&str>, actor: &str, now: &str) {
        let status = self.status_mut();
        status.phase = Some(phase.to_owned());
        if let Some(reason) = reason {
            status.reason = Some(reason.to_owned());
        }
        status.actor = Some(actor.to_owned());
        status.updated_at = Some(now.to_owned());
    }
}

/// Now, as RFC 3339 UTC with milliseconds (`2026-01-01T00:00:00.000Z`).
pub fn now_rfc3339() -> String {
    rfc3339(chrono::Utc::now())
}

pub fn rfc3339(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Whether an RFC 3339 time lies before `now`. An unparseable time is
/// not a deadline (it is carried on unchanged).
pub fn has_passed(time: &str, now: chrono::DateTime<chrono::Utc>) -> bool {
    chrono::DateTime::parse_from_rfc3339(time).is_ok_and(|t| t < now)
}

/// A fresh envelope id (a task's first envelope, made by the gateway).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An id derived from what an envelope is made from (a UUID v5 over
/// `parts`): the sidecar gives a fan-out child or a carrier of a broken
/// body the same id every time the same message is delivered, so a
/// redelivery stores its checkpoints under the same names instead of a
/// second copy under new ones.
pub fn derived_id(parts: &[&[u8]]) -> String {
    let mut name = Vec::new();
    for part in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        name.extend_from_slice(&(part.len() as u64).to_be_bytes());
        name.extend_from_slice(part);
    }
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn derived_ids_depend_on_the_parts_and_their_boundaries_only() {
        let first = derived_id(&[b"task", b"1"]);
        assert_eq!(first, derived_id(&[b"task", b"1"]));
        assert_ne!(first, derived_id(&[b"task", b"2"]));
        assert_ne!(first, derived_id(&[b"tas", b"k1"]));
        assert!(uuid::Uuid::parse_str(&first).is_ok());
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let text = json!({
            "id": "a",
            "route": {"prev": [], "curr": "x", "next": ["y"], "route_extra": 1},
            "payload": {"k": "v"},
            "status": {"phase": "weird-phase", "status_extra": [1, 2],
                       "error": {"message": "m", "type": "T", "error_extra": true}},
            "top_extra": {"nested": null}
        });
        let envelope = Envelope::parse(text.to_string().as_bytes()).unwrap();
        assert_eq!(envelope.phase(), Some("weird-phase"));
        assert_eq!(serde_json::to_value(&envelope).unwrap(), text);
    }

    #[test]
    fn an_envelope_needs_an_id_and_a_route() {
        assert!(matches!(
            Envelope::parse(br#"{"id":"","route":{}}"#),
            Err(EnvelopeError::MissingId)
        ));
        assert!(Envelope::parse(br#"{"id":"a"}"#).is_err());
        assert!(Envelope::parse(b"not json").is_err());
        let minimal = Envelope::parse(br#"{"id":"a","route":{}}"#).unwrap();
        assert_eq!(minimal.payload, Value::Null);
        assert!(minimal.route.is_finished());
    }

    #[test]
    fn the_shift_moves_curr_to_prev_and_takes_the_next_actor() {
        let route = Route {
            prev: vec!["a".into()],
            curr: "b".into(),
            next: vec!["c".into(), "d".into()],
            ..Route::default()
        };
        let once = route.shifted();
        assert_eq!(once.prev, ["a", "b"]);
        assert_eq!(once.curr, "c");
        assert_eq!(once.next, ["d"]);
        let done = once.shifted().shifted();
        assert_eq!(done.prev, ["a", "b", "c", "d"]);
        assert!(done.is_finished());
        // Shifting a finished route adds nothing.
        assert_eq!(done.shifted(), done);
    }

    #[test]
    fn deadlines_compare_with_now() {
        let now = chrono::Utc::now();
        let past = rfc3339(now - chrono::Duration::seconds(1));
        let future = rfc3339(now + chrono::Duration::seconds(60));
        assert!(has_passed(&past, now));
        assert!(!has_passed(&future, now));
        assert!(!has_passed("not a time", now));
    }
}
