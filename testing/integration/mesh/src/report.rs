//! The outcome an end actor reports to the gateway
//! (`POST /mesh/{id}/final`): written by the x-sink and x-sump sidecars,
//! read by the gateway.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::{Envelope, phase};

/// `status` of a final report.
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinalReport {
    pub id: String,
    /// `succeeded` or `failed`.
    pub status: String,
    #[serde(default)]
    pub result: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The end actor that reported.
    #[serde(default)]
    pub actor: String,
}

impl FinalReport {
    /// x-sink reports success unless the phase says failed (a timeout);
    /// x-sump always reports failure. The error message is the
    /// envelope's `status.error.message`.
    pub fn of(envelope: &Envelope, actor: &str, is_sump: bool) -> FinalReport {
        let failed = is_sump || envelope.phase() == Some(phase::FAILED);
        let error = failed.then(|| {
            envelope
                .status
                .as_ref()
                .and_then(|s| s.error.as_ref())
                .map(|e| e.message.clone())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| format!("failed ({actor})"))
        });
        FinalReport {
            id: envelope.id.clone(),
            status: if failed { FAILED } else { SUCCEEDED }.to_owned(),
            result: envelope.payload.clone(),
            error,
            actor: actor.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{ErrorInfo, Status};
    use serde_json::json;

    fn envelope(phase: &str, error: Option<&str>) -> Envelope {
        Envelope {
            id: "t".into(),
            payload: json!({"echoed": 1}),
            status: Some(Status {
                phase: Some(phase.into()),
                error: error.map(|m| ErrorInfo::new("ValueError", m)),
                ..Status::default()
            }),
            ..Envelope::default()
        }
    }

    #[test]
    fn the_sink_reports_success_and_the_sump_failure() {
        let ok = FinalReport::of(&envelope("succeeded", None), "x-sink", false);
        assert_eq!(
            (ok.status.as_str(), ok.error.as_deref()),
            ("succeeded", None)
        );
        assert_eq!(ok.result, json!({"echoed": 1}));
        let late = FinalReport::of(&envelope("failed", Some("deadline")), "x-sink", false);
        assert_eq!(
            (late.status.as_str(), late.error.as_deref()),
            ("failed", Some("deadline"))
        );
        let raised = FinalReport::of(&envelope("failed", Some("boom")), "x-sump", true);
        assert_eq!(raised.error.as_deref(), Some("boom"));
        let bare = FinalReport::of(&envelope("succeeded", None), "x-sump", true);
        assert_eq!(bare.status, "failed");
        assert!(bare.error.is_some());
    }
}
