//! Where the messages a sidecar produces go, as pure functions of what
//! came in and what the runtime answered:
//!
//! | What came back | Where it goes |
//! |---|---|
//! | a frame with `route.curr` set | that actor; phase `pending` |
//! | a frame with `route.curr == ""` | x-sink; `succeeded`, `Completed` |
//! | several frames | the first keeps the id, the others get ids derived from it and their index, with `parent_id` |
//! | nothing (204) | x-sink, the envelope as it came, stamped `succeeded` |
//! | a handler error | x-sump; `failed`, `RuntimeError`, the error in the payload |
//! | an unparseable body, no id, `route.curr` not this actor | x-sump, with the reason |
//! | `deadline_at` passed | x-sink; `failed`, `Timeout` |
//! | a message that can never go where it was meant to | x-sump, a small stand-in without the payload |
//!
//! No id is random: a redelivered message must produce the same messages
//! (same ids, so the same checkpoint keys), never duplicates.

use serde_json::{Value, json};

use super::invoke::Answer;
use crate::envelope::{Envelope, ErrorInfo, Frame, Route, derived_id, phase, reason};

/// Reason of a message the transport can never take.
pub const TRANSPORT_ERROR: &str = "TransportError";
/// Reason of an envelope whose checkpoint storage refuses for good.
pub const CHECKPOINT_ERROR: &str = "CheckpointError";

/// A message to send.
#[derive(Debug, PartialEq)]
pub struct Outgoing {
    pub actor: String,
    pub envelope: Envelope,
}

/// The names a sidecar routes by.
#[derive(Clone, Debug)]
pub struct Router {
    pub actor: String,
    pub sink: String,
    pub sump: String,
}

impl Router {
    /// The messages an answer of the runtime produces.
    pub fn route(&self, input: &Envelope, answer: Answer, now: &str) -> Vec<Outgoing> {
        match answer {
            Answer::Frames(frames) => frames
                .into_iter()
                .enumerate()
                .map(|(index, frame)| self.frame(input, index, frame, now))
                .collect(),
            Answer::Empty => {
                let mut envelope = input.clone();
                envelope.stamp(phase::SUCCEEDED, Some(reason::COMPLETED), &self.actor, now);
                vec![self.to(&self.sink, envelope)]
            }
            Answer::Failed(body) => {
                let details = body.get("details").cloned().unwrap_or(Value::Null);
                let error: ErrorInfo =
                    serde_json::from_value(details.clone()).unwrap_or_else(|_| {
                        ErrorInfo::new("RuntimeError", "the runtime reported an error")
                    });
                vec![self.failure(
                    input,
                    reason::RUNTIME_ERROR,
                    "processing_error",
                    details,
                    error,
                    now,
                )]
            }
            Answer::Refused(body) => {
                let details = body.get("details").cloned().unwrap_or(Value::Null);
                let error = serde_json::from_value(details.clone()).unwrap_or_else(|_| {
                    ErrorInfo::new("ValidationError", "the runtime refused the envelope")
                });
                vec![self.failure(
                    input,
                    reason::PARSE_ERROR,
                    "msg_parsing_error",
                    details,
                    error,
                    now,
                )]
            }
        }
    }

    fn frame(&self, input: &Envelope, index: usize, frame: Frame, now: &str) -> Outgoing {
        let Frame {
            payload,
            route,
            headers,
            status,
            extra,
        } = frame;
        let (id, parent_id) = if index == 0 {
            (input.id.clone(), input.parent_id.clone())
        } else {
            let index = index.to_string();
            let id = derived_id(&[input.id.as_bytes(), self.actor.as_bytes(), index.as_bytes()]);
            (id, Some(input.id.clone()))
        };
        let mut extra_fields = input.extra.clone();
        extra_fields.extend(extra);
        let mut envelope = Envelope {
            id,
            parent_id,
            route,
            headers: headers.or_else(|| input.headers.clone()),
            payload,
            status: status.or_else(|| input.status.clone()),
            extra: extra_fields,
        };
        if envelope.route.curr.is_empty() {
            envelope.stamp(phase::SUCCEEDED, Some(reason::COMPLETED), &self.actor, now);
            self.to(&self.sink, envelope)
        } else {
            let next = envelope.route.curr.clone();
            envelope.stamp(phase::PENDING, None, &next, now);
            self.to(&next, envelope)
        }
    }

    /// To x-sump: phase `failed` with `reason`; the payload becomes
    /// `{"error": code, "details", "original_payload"}`.
    pub fn failure(
        &self,
        input: &Envelope,
        why: &str,
        code: &str,
        details: Value,
        error: ErrorInfo,
        now: &str,
    ) -> Outgoing {
        let mut envelope = input.clone();
        envelope.payload = json!({
            "error": code,
            "details": details,
            "original_payload": input.payload,
        });
        envelope.stamp(phase::FAILED, Some(why), &self.actor, now);
        envelope.status_mut().error = Some(error);
        self.to(&self.sump, envelope)
    }

    /// A failure that is not the handler's (timeout, wrong route, ...).
    pub fn failure_of(&self, input: &Envelope, why: &str, error: ErrorInfo, now: &str) -> Outgoing {
        let details = serde_json::to_value(&error).unwrap_or(Value::Null);
        self.failure(input, why, "processing_error", details, error, now)
    }

    /// A body that is not an envelope: a fresh one carries it to x-sump.
    pub fn unparseable(&self, body: &[u8], problem: &str, now: &str) -> Outgoing {
        let error = ErrorInfo::new("ValidationError", problem);
        let carrier = Envelope {
            id: derived_id(&[self.actor.as_bytes(), body]),
            route: Route {
                curr: self.actor.clone(),
                ..Route::default()
            },
            payload: Value::String(String::from_utf8_lossy(body).into_owned()),
            ..Envelope::default()
        };
        let details = serde_json::to_value(&error).unwrap_or(Value::Null);
        self.failure(
            &carrier,
            reason::PARSE_ERROR,
            "msg_parsing_error",
            details,
            error,
            now,
        )
    }

    /// A message whose `route.curr` names another actor.
    pub fn mismatch(&self, input: &Envelope, now: &str) -> Outgoing {
        let error = ErrorInfo::new(
            "RouteMismatch",
            format!(
                "route.curr is {:?}, this actor is {:?}",
                input.route.curr, self.actor
            ),
        );
        self.failure_of(input, reason::ROUTE_MISMATCH, error, now)
    }

    /// A message past its `deadline_at`: to x-sink as failed.
    pub fn expired(&self, input: &Envelope, now: &str) -> Outgoing {
        let mut envelope = input.clone();
        envelope.stamp(phase::FAILED, Some(reason::TIMEOUT), &self.actor, now);
        let deadline = envelope
            .status_mut()
            .deadline_at
            .clone()
            .unwrap_or_default();
        envelope.status_mut().error = Some(ErrorInfo::new(
            "TimeoutError",
            format!("deadline {deadline} passed before {} ran", self.actor),
        ));
        self.to(&self.sink, envelope)
    }

    /// A small stand-in for a message that can never go where it was
    /// meant to (too large for the transport, refused by storage): to
    /// x-sump, `failed` with `why`, without the payload (which may be
    /// what made it impossible). The error it carried, if any, leads
    /// `status.error.message`, so the task still says what went wrong
    /// first.
    pub fn undeliverable(
        &self,
        envelope: &Envelope,
        why: &str,
        problem: &str,
        now: &str,
    ) -> Outgoing {
        let carried = envelope
            .status
            .as_ref()
            .and_then(|s| s.error.as_ref())
            .map(|e| e.message.as_str())
            .filter(|m| !m.is_empty());
        let message = match carried {
            Some(first) => format!("{first} ({problem})"),
            None => problem.to_owned(),
        };
        let slim = Envelope {
            payload: Value::Null,
            ..envelope.clone()
        };
        self.failure_of(&slim, why, ErrorInfo::new(why, message), now)
    }

    fn to(&self, actor: &str, envelope: Envelope) -> Outgoing {
        Outgoing {
            actor: actor.to_owned(),
            envelope,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Status;

    const NOW: &str = "2026-01-01T00:00:00.000Z";

    fn router() -> Router {
        Router {
            actor: "a".into(),
            sink: "x-sink".into(),
            sump: "x-sump".into(),
        }
    }

    fn input() -> Envelope {
        Envelope {
            id: "task".into(),
            route: Route {
                curr: "a".into(),
                next: vec!["b".into()],
                ..Route::default()
            },
            payload: json!({"value": 1}),
            status: Some(Status {
                phase: Some("pending".into()),
                deadline_at: Some("2030-01-01T00:00:00Z".into()),
                ..Status::default()
            }),
            ..Envelope::default()
        }
    }

    fn frame(curr: &str, payload: Value) -> Frame {
        Frame {
            payload,
            route: Route {
                prev: vec!["a".into()],
                curr: curr.into(),
                ..Route::default()
            },
            ..Frame::default()
        }
    }

    #[test]
    fn a_frame_with_an_actor_goes_there_pending() {
        let out = router().route(&input(), Answer::Frames(vec![frame("b", json!(2))]), NOW);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].actor, "b");
        let envelope = &out[0].envelope;
        assert_eq!(envelope.id, "task");
        assert_eq!(envelope.payload, json!(2));
        assert_eq!(envelope.phase(), Some("pending"));
        let status = envelope.status.as_ref().unwrap();
        assert_eq!(status.actor.as_deref(), Some("b"));
        assert_eq!(status.updated_at.as_deref(), Some(NOW));
        // What the status carried (the deadline) is kept.
        assert_eq!(status.deadline_at.as_deref(), Some("2030-01-01T00:00:00Z"));
    }

    #[test]
    fn a_finished_route_goes_to_the_sink_succeeded() {
        let out = router().route(&input(), Answer::Frames(vec![frame("", json!(3))]), NOW);
        assert_eq!(out[0].actor, "x-sink");
        let status = out[0].envelope.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("succeeded"));
        assert_eq!(status.reason.as_deref(), Some("Completed"));
    }

    #[test]
    fn fan_out_gives_new_ids_with_the_parent() {
        let frames = vec![
            frame("b", json!(1)),
            frame("b", json!(2)),
            frame("", json!(3)),
        ];
        let out = router().route(&input(), Answer::Frames(frames), NOW);
        assert_eq!(out[0].envelope.id, "task");
        assert_eq!(out[0].envelope.parent_id, None);
        for child in &out[1..] {
            assert_ne!(child.envelope.id, "task");
            assert_eq!(child.envelope.parent_id.as_deref(), Some("task"));
        }
        assert_ne!(out[1].envelope.id, out[2].envelope.id);
        assert_eq!(out[2].actor, "x-sink");
    }

    #[test]
    fn a_redelivered_message_fans_out_under_the_same_ids() {
        let frames = || vec![frame("b", json!(1)), frame("", json!(2))];
        let first = router().route(&input(), Answer::Frames(frames()), NOW);
        let again = router().route(&input(), Answer::Frames(frames()), NOW);
        let ids = |out: &[Outgoing]| {
            out.iter()
                .map(|o| o.envelope.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&first), ids(&again));
        let broken = router().unparseable(b"not json", "bad", NOW);
        let broken_again = router().unparseable(b"not json", "bad", NOW);
        assert_eq!(broken.envelope.id, broken_again.envelope.id);
        assert_ne!(
            broken.envelope.id,
            router().unparseable(b"other", "bad", NOW).envelope.id
        );
    }

    #[test]
    fn nothing_back_sends_the_envelope_as_it_came_to_the_sink() {
        let out = router().route(&input(), Answer::Empty, NOW);
        assert_eq!(out[0].actor, "x-sink");
        assert_eq!(out[0].envelope.route, input().route);
        assert_eq!(out[0].envelope.payload, input().payload);
        assert_eq!(out[0].envelope.phase(), Some("succeeded"));
    }

    #[test]
    fn a_handler_error_goes_to_the_sump_with_the_original_payload() {
        let body = json!({"error": "processing_error",
                          "details": {"message": "Intentional test failure", "type": "ValueError"}});
        let out = router().route(&input(), Answer::Failed(body), NOW);
        assert_eq!(out[0].actor, "x-sump");
        let envelope = &out[0].envelope;
        assert_eq!(envelope.payload["error"], "processing_error");
        assert_eq!(envelope.payload["details"]["type"], "ValueError");
        assert_eq!(envelope.payload["original_payload"], json!({"value": 1}));
        let status = envelope.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("failed"));
        assert_eq!(status.reason.as_deref(), Some("RuntimeError"));
        assert_eq!(
            status.error.as_ref().unwrap().message,
            "Intentional test failure"
        );
    }

    #[test]
    fn bad_input_goes_to_the_sump_with_its_reason() {
        let refused = router().route(
            &input(),
            Answer::Refused(json!({"error": "msg_parsing_error", "details": {"message": "m"}})),
            NOW,
        );
        assert_eq!(refused[0].envelope.payload["error"], "msg_parsing_error");
        let garbage = router().unparseable(b"{not json", "expected value", NOW);
        assert_eq!(garbage.actor, "x-sump");
        assert_eq!(garbage.envelope.payload["original_payload"], "{not json");
        assert_eq!(
            garbage.envelope.status.unwrap().reason.as_deref(),
            Some("ParseError")
        );
        let mut elsewhere = input();
        elsewhere.route.curr = "b".into();
        let mismatch = router().mismatch(&elsewhere, NOW);
        assert_eq!(mismatch.actor, "x-sump");
        assert_eq!(
            mismatch.envelope.status.unwrap().reason.as_deref(),
            Some("RouteMismatch")
        );
    }

    #[test]
    fn an_expired_message_goes_to_the_sink_failed() {
        let out = router().expired(&input(), NOW);
        assert_eq!(out.actor, "x-sink");
        assert_eq!(out.envelope.payload, input().payload);
        let status = out.envelope.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("failed"));
        assert_eq!(status.reason.as_deref(), Some("Timeout"));
    }

    #[test]
    fn an_undeliverable_message_becomes_a_small_failure_naming_both_errors() {
        let big = json!({"data": "x".repeat(300 * 1024)});
        let failed = router().route(
            &Envelope {
                payload: big,
                ..input()
            },
            Answer::Failed(json!({"error": "processing_error",
                                  "details": {"message": "Intentional test failure"}})),
            NOW,
        );
        let stand_in = router().undeliverable(
            &failed[0].envelope,
            TRANSPORT_ERROR,
            "sending to x-sump: too long",
            NOW,
        );
        assert_eq!(stand_in.actor, "x-sump");
        assert_eq!(stand_in.envelope.id, "task");
        assert!(stand_in.envelope.to_bytes().len() < 2048, "small");
        assert_eq!(stand_in.envelope.payload["original_payload"], Value::Null);
        let status = stand_in.envelope.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("failed"));
        assert_eq!(status.reason.as_deref(), Some(TRANSPORT_ERROR));
        assert_eq!(
            status.error.unwrap().message,
            "Intentional test failure (sending to x-sump: too long)"
        );
        let plain = router().undeliverable(&input(), CHECKPOINT_ERROR, "refused", NOW);
        assert_eq!(
            plain.envelope.status.unwrap().error.unwrap().message,
            "refused"
        );
    }
}
