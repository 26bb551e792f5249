//! The crew handlers' checkpoint (x-sink and x-sump): the envelope is
//! written as a file `{succeeded|failed|checkpoint}/{basename(id)}.json`
//! under the persistence mount, which makes it a `PUT` on that mount's
//! state proxy.
//!
//! Unlike the original checkpointer, which logs and swallows storage
//! errors, a write the proxy refuses or cannot take fails the
//! invocation: the sidecar then leaves the message unacknowledged and the
//! transport delivers it again once storage is back.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::mounts::{MountError, Mounts};
use crate::envelope::{Envelope, ErrorInfo, phase};

/// Field of a checkpoint error's details holding the proxy's HTTP status
/// (the sidecar tells storage outages from refusals by it).
pub const PROXY_STATUS: &str = "proxy_status";

/// The key of an envelope's checkpoint, by its phase.
pub fn key(envelope: &Envelope) -> String {
    let folder = match envelope.phase() {
        Some(phase::SUCCEEDED) => "succeeded",
        Some(phase::FAILED) => "failed",
        _ => "checkpoint",
    };
    let basename = envelope.id.rsplit('/').next().unwrap_or(&envelope.id);
    format!("{folder}/{basename}.json")
}

/// What is stored: `{"id", "route": {"prev", "curr"}, "payload",
/// "parent_id"?, "status": {"phase"}}`.
pub fn document(envelope: &Envelope) -> Value {
    let mut document = Map::new();
    document.insert("id".into(), json!(envelope.id));
    document.insert(
        "route".into(),
        json!({"prev": envelope.route.prev, "curr": envelope.route.curr}),
    );
    document.insert("payload".into(), envelope.payload.clone());
    if let Some(parent) = &envelope.parent_id {
        document.insert("parent_id".into(), json!(parent));
    }
    document.insert("status".into(), json!({"phase": envelope.phase()}));
    Value::Object(document)
}

/// Writes the checkpoint of `envelope` under `mount_path`; returns its
/// key.
pub async fn write(
    mounts: &Mounts,
    mount_path: &Path,
    envelope: &Envelope,
) -> Result<String, ErrorInfo> {
    let key = key(envelope);
    let path: PathBuf = mount_path.join(&key);
    let body = bytes::Bytes::from(document(envelope).to_string());
    match mounts.write(&path, body.clone()).await {
        Ok(()) => Ok(key),
        // A compare-and-swap proxy refuses a plain write when the object
        // changed since it last saw it (another replica checkpointed the
        // same id, or an earlier attempt landed but its answer was lost).
        // The checkpoint of an id is its final envelope, so the newest
        // one may replace it: read (the proxy remembers the current
        // version) and write once more.
        Err(e) if e.status() == Some(409) => {
            tracing::info!(key, "checkpoint conflicted; re-reading and writing again");
            mounts.read(&path).await.map_err(checkpoint_error)?;
            mounts
                .write(&path, body)
                .await
                .map(|()| key)
                .map_err(checkpoint_error)
        }
        Err(e) => Err(checkpoint_error(e)),
    }
}

fn checkpoint_error(error: MountError) -> ErrorInfo {
    let mut info = ErrorInfo::new(
        "CheckpointError",
        format!("checkpoint not written: {error}"),
    );
    info.mro = Some(
        [
            "CheckpointError",
            "OSError",
            "Exception",
            "BaseException",
            "object",
        ]
        .map(str::to_owned)
        .to_vec(),
    );
    if let Some(status) = error.status() {
        info.extra.insert(PROXY_STATUS.into(), json!(status));
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Status;

    fn envelope(id: &str, phase: Option<&str>) -> Envelope {
        Envelope {
            id: id.into(),
            payload: json!({"echoed": "hi"}),
            status: phase.map(|p| Status {
                phase: Some(p.into()),
                ..Status::default()
            }),
            ..Envelope::default()
        }
    }

    #[test]
    fn keys_follow_the_phase_and_the_basename() {
        assert_eq!(key(&envelope("a", Some("succeeded"))), "succeeded/a.json");
        assert_eq!(key(&envelope("x/y/b", Some("failed"))), "failed/b.json");
        assert_eq!(key(&envelope("c", Some("pending"))), "checkpoint/c.json");
        assert_eq!(key(&envelope("d", None)), "checkpoint/d.json");
    }

    #[test]
    fn the_document_holds_what_the_contract_lists() {
        let mut env = envelope("a", Some("succeeded"));
        env.route.prev = vec!["test-echo".into()];
        env.route.next = vec!["ignored".into()];
        assert_eq!(
            document(&env),
            json!({"id": "a", "route": {"prev": ["test-echo"], "curr": ""},
                   "payload": {"echoed": "hi"}, "status": {"phase": "succeeded"}})
        );
        env.parent_id = Some("p".into());
        assert_eq!(document(&env)["parent_id"], "p");
    }
}
