//! `GET /capabilities`: what the running connector supports, built from
//! what the store declares ([`StoreInfo`](crate::store::StoreInfo)) and
//! the mode, so clients can decide instead of guessing.

use serde::Serialize;

use crate::mode::{Consistency, Mode};
use crate::selftest::SelftestReport;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Xattr {
    pub name: &'static str,
    pub settable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// `<store>-<mode>`.
    pub connector: String,
    pub store: &'static str,
    pub mode: &'static str,
    /// `If-None-Match: *` on writes (every store: the protocol requires it).
    pub create_if_absent: bool,
    /// `If-Match` on writes (every store: the protocol requires it).
    pub if_match_writes: bool,
    /// `If-Match` on deletes; without it such a delete answers 501.
    pub conditional_delete: bool,
    /// How many keys' versions a compare-and-swap connector remembers;
    /// `null` when plain writes are not made conditional.
    pub remembered_versions: Option<usize>,
    /// Bodies are streamed both ways, never held whole.
    pub streaming: bool,
    /// `POST /query` is served (by the proxy itself, over any store).
    pub query: bool,
    /// Objects can expire (a settable `ttl` attribute).
    pub ttl: bool,
    /// `a` and `a/b` can both exist.
    pub nested_keys: bool,
    /// The attributes of `/meta`.
    pub xattrs: Vec<Xattr>,
    /// Largest request body in bytes; `null` when bodies stream.
    pub max_body_bytes: Option<u64>,
    /// The backend honesty check run at start (`serve --selftest`).
    pub selftest: Option<SelftestReport>,
}

impl Capabilities {
    pub fn of(mode: &Mode, selftest: Option<&SelftestReport>) -> Capabilities {
        let info = mode.store_info();
        let consistency = mode.consistency();
        Capabilities {
            connector: format!("{}-{}", info.name, consistency),
            store: info.name,
            mode: consistency.name(),
            create_if_absent: true,
            if_match_writes: true,
            conditional_delete: info.conditional_delete,
            remembered_versions: mode.remembered().map(|r| r.capacity()),
            streaming: consistency == Consistency::Passthrough,
            query: true,
            ttl: info.ttl,
            nested_keys: info.nested_keys,
            xattrs: info
                .attributes
                .iter()
                .map(|spec| Xattr {
                    name: spec.name,
                    settable: spec.settable,
                })
                .collect(),
            max_body_bytes: mode.body_limit(),
            selftest: selftest.cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;
    use std::sync::Arc;

    use super::*;
    use crate::mode::ModeOptions;
    use crate::store::memory::MemoryStore;

    fn mode(consistency: Consistency) -> Mode {
        Mode::new(
            Arc::new(MemoryStore::new("")),
            &ModeOptions {
                consistency,
                max_body_bytes: 1024,
                remembered_versions: NonZeroUsize::new(50).unwrap(),
            },
        )
    }

    #[test]
    fn a_cas_connector_reports_its_cache_and_limit() {
        let capabilities = Capabilities::of(&mode(Consistency::BufferedCas), None);
        let json = serde_json::to_value(&capabilities).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "connector": "memory-buffered-cas",
                "store": "memory",
                "mode": "buffered-cas",
                "create_if_absent": true,
                "if_match_writes": true,
                "conditional_delete": true,
                "remembered_versions": 50,
                "streaming": false,
                "query": true,
                "ttl": false,
                "nested_keys": true,
                "xattrs": [
                    {"name": "etag", "settable": false},
                    {"name": "content_type", "settable": true}
                ],
                "max_body_bytes": 1024,
                "selftest": null
            })
        );
    }

    #[test]
    fn passthrough_streams_without_a_limit_or_cache() {
        let capabilities = Capabilities::of(&mode(Consistency::Passthrough), None);
        assert!(capabilities.streaming);
        assert_eq!(capabilities.max_body_bytes, None);
        assert_eq!(capabilities.remembered_versions, None);
        let lww = Capabilities::of(&mode(Consistency::BufferedLww), None);
        assert!(!lww.streaming);
        assert_eq!(lww.remembered_versions, None);
    }

    #[tokio::test]
    async fn the_selftest_result_is_reported() {
        let report = crate::selftest::run(&MemoryStore::new(""), "memory-buffered-lww").await;
        let capabilities = Capabilities::of(&mode(Consistency::BufferedLww), Some(&report));
        let json = serde_json::to_value(&capabilities).unwrap();
        assert_eq!(json["selftest"]["passed"], true);
        assert_eq!(json["selftest"]["checks"][0]["name"], "create_if_absent");
        assert_eq!(json["selftest"]["checks"][0]["outcome"], "pass");
    }
}
