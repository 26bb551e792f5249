//! The consistency policy, written once for every store.
//!
//! - `buffered-lww`: last write wins; bodies are held whole (up to the
//!   configured limit). Explicit `If-Match` / `If-None-Match: *` apply.
//! - `buffered-cas`: as above, plus the version this process last read or
//!   wrote per key is remembered (bounded, least recently used first out),
//!   and a plain write is conditional on it: a change by another writer
//!   in between answers `409 conflict`.
//! - `passthrough`: last write wins, bodies stream through in both
//!   directions and are never held whole.

use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lru::LruCache;
use parking_lot::Mutex;

use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::store::{Body, Condition, Listing, Object, ObjectMeta, Store, StoreInfo, Version};

/// The mode part of a connector name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    BufferedLww,
    BufferedCas,
    Passthrough,
}

impl Consistency {
    pub const ALL: [Consistency; 3] = [
        Consistency::BufferedLww,
        Consistency::BufferedCas,
        Consistency::Passthrough,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Consistency::BufferedLww => "buffered-lww",
            Consistency::BufferedCas => "buffered-cas",
            Consistency::Passthrough => "passthrough",
        }
    }
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Consistency {
    type Err = String;

    /// Accepts `-` and `_` spellings alike.
    fn from_str(name: &str) -> Result<Self, String> {
        let normalized = name.replace('_', "-");
        Consistency::ALL
            .into_iter()
            .find(|mode| mode.name() == normalized)
            .ok_or_else(|| {
                format!(
                    "unknown mode '{name}'; known modes: buffered-lww, buffered-cas, passthrough"
                )
            })
    }
}

/// Settings of the mode layer.
#[derive(Clone, Debug)]
pub struct ModeOptions {
    pub consistency: Consistency,
    /// Largest body held in memory by the buffered modes.
    pub max_body_bytes: u64,
    /// How many keys' versions a compare-and-swap proxy remembers.
    pub remembered_versions: NonZeroUsize,
}

/// A store wrapped in a consistency policy.
pub struct Mode {
    store: Arc<dyn Store>,
    consistency: Consistency,
    max_body_bytes: u64,
    remembered: Option<Arc<RememberedVersions>>,
}

impl Mode {
    pub fn new(store: Arc<dyn Store>, options: &ModeOptions) -> Mode {
        let remembered = (options.consistency == Consistency::BufferedCas)
            .then(|| Arc::new(RememberedVersions::new(options.remembered_versions)));
        Mode {
            store,
            consistency: options.consistency,
            max_body_bytes: options.max_body_bytes,
            remembered,
        }
    }

    pub fn consistency(&self) -> Consistency {
        self.consistency
    }

    pub fn store_info(&self) -> &StoreInfo {
        self.store.info()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The same policy over a decorated store (e.g. one that is timed).
    pub fn wrap_store(mut self, wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>) -> Mode {
        self.store = wrap(self.store);
        self
    }

    /// The body limit of buffered modes; `None` when bodies stream.
    pub fn body_limit(&self) -> Option<u64> {
        (self.consistency != Consistency::Passthrough).then_some(self.max_body_bytes)
    }

    /// The remembered versions, for compare-and-swap modes.
    pub fn remembered(&self) -> Option<&RememberedVersions> {
        self.remembered.as_deref()
    }

    /// The remembered versions, shared (for metrics read at scrape time).
    pub fn remembered_shared(&self) -> Option<Arc<RememberedVersions>> {
        self.remembered.clone()
    }

    /// Reads; in compare-and-swap mode the version read is remembered,
    /// and so is a key found missing (a later plain write then creates
    /// it only if it is still absent).
    pub async fn get(&self, key: &Key) -> Result<Object> {
        let read = self.store.get(key).await;
        if let Some(remembered) = &self.remembered {
            match &read {
                Ok(object) => remembered.remember(key, object.meta.version.clone()),
                Err(e) if e.kind() == ErrorKind::KeyNotFound => remembered.remember_absent(key),
                Err(_) => {}
            }
        }
        // Every mode streams what the store streams: a buffered mode holds
        // request bodies whole, never objects read, so a reader that
        // stops reading holds one chunk, not the object.
        read
    }

    /// A stat; it does not refresh the remembered version, since the
    /// caller has not seen the content.
    pub async fn head(&self, key: &Key) -> Result<ObjectMeta> {
        self.store.head(key).await
    }

    /// Writes under the explicit condition the client sent, or, in
    /// compare-and-swap mode without one, the remembered version.
    pub async fn put(&self, key: &Key, body: Body, explicit: Condition) -> Result<Version> {
        let implicit = match (&explicit, &self.remembered) {
            (Condition::None, Some(remembered)) => remembered.recall(key),
            _ => None,
        };
        let condition = implicit.clone().unwrap_or(explicit);
        match self.store.put(key, body, condition).await {
            Ok(version) => {
                if let Some(remembered) = &self.remembered {
                    remembered.remember(key, version.clone());
                }
                Ok(version)
            }
            Err(e) if e.kind() == ErrorKind::PreconditionFailed && implicit.is_some() => {
                if let Some(remembered) = &self.remembered {
                    remembered.count_conflict();
                }
                Err(Error::new(
                    ErrorKind::VersionConflict,
                    format!(
                        "'{key}' was changed by another writer since this proxy last read it; \
                     read it again, then write"
                    ),
                ))
            }
            Err(other) => Err(other),
        }
    }

    /// Deletes; a plain delete is unconditional in every mode.
    pub async fn delete(&self, key: &Key, explicit: Condition) -> Result<()> {
        if explicit != Condition::None && !self.store.info().conditional_delete {
            return Err(Error::new(
                ErrorKind::NotImplemented,
                format!(
                    "the {} store cannot delete conditionally",
                    self.store.info().name
                ),
            ));
        }
        self.store.delete(key, explicit).await?;
        if let Some(remembered) = &self.remembered {
            remembered.forget(key);
        }
        Ok(())
    }

    pub async fn list(&self, prefix: &str, delimiter: Option<&str>) -> Result<Listing> {
        self.store.list(prefix, delimiter).await
    }

    /// The attribute names of an existing key.
    pub async fn attributes(&self, key: &Key) -> Result<Vec<&'static str>> {
        self.store.head(key).await?;
        Ok(self.store.readable_attributes().await)
    }

    pub async fn get_attr(&self, key: &Key, name: &str) -> Result<String> {
        self.attribute_spec(name)?;
        self.store.get_attr(key, name).await
    }

    pub async fn set_attr(&self, key: &Key, name: &str, value: &str) -> Result<()> {
        if !self.attribute_spec(name)?.settable {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("attribute '{name}' is read-only"),
            ));
        }
        self.store.set_attr(key, name, value).await
    }

    fn attribute_spec(&self, name: &str) -> Result<&crate::store::AttrSpec> {
        self.store
            .info()
            .attribute(name)
            .ok_or_else(|| Error::unsupported_attribute(name))
    }
}

/// What a compare-and-swap proxy last saw of each key it read or wrote,
/// as the condition its next plain write needs: the version (`IfMatch`),
/// or that the key was missing (`IfAbsent`). Bounded: the least recently
/// used key is forgotten first (a forgotten key is written
/// unconditionally, as if never read).
pub struct RememberedVersions {
    versions: Mutex<LruCache<Key, Condition>>,
    evictions: AtomicU64,
    conflicts: AtomicU64,
}

impl RememberedVersions {
    pub fn new(capacity: NonZeroUsize) -> Self {
        RememberedVersions {
            versions: Mutex::new(LruCache::new(capacity)),
            evictions: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
        }
    }

    pub fn remember(&self, key: &Key, version: Version) {
        self.store(key, Condition::IfMatch(version));
    }

    pub fn remember_absent(&self, key: &Key) {
        self.store(key, Condition::IfAbsent);
    }

    fn store(&self, key: &Key, seen: Condition) {
        let pushed_out = self.versions.lock().push(key.clone(), seen);
        if pushed_out.is_some_and(|(old, _)| old != *key) {
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The condition of the next plain write of `key`, if any.
    pub fn recall(&self, key: &Key) -> Option<Condition> {
        self.versions.lock().get(key).cloned()
    }

    pub fn forget(&self, key: &Key) {
        self.versions.lock().pop(key);
    }

    fn count_conflict(&self) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn len(&self) -> usize {
        self.versions.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many keys are remembered at most.
    pub fn capacity(&self) -> usize {
        self.versions.lock().cap().get()
    }

    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::error::kind_of;
    use crate::store::memory::MemoryStore;

    fn key(k: &str) -> Key {
        Key::parse(k).unwrap()
    }

    fn body(data: &str) -> Body {
        Body::Full(Bytes::from(data.to_owned()))
    }

    fn mode_over(store: &Arc<MemoryStore>, consistency: Consistency, remembered: usize) -> Mode {
        Mode::new(
            store.clone(),
            &ModeOptions {
                consistency,
                max_body_bytes: 1 << 20,
                remembered_versions: NonZeroUsize::new(remembered).unwrap(),
            },
        )
    }

    async fn content(mode: &Mode, k: &str) -> String {
        match mode.get(&key(k)).await.unwrap().body {
            Body::Full(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
            Body::Stream { .. } => panic!("memory objects are whole"),
        }
    }

    #[test]
    fn mode_names_accept_both_spellings() {
        assert_eq!("buffered_cas".parse(), Ok(Consistency::BufferedCas));
        assert_eq!("buffered-lww".parse(), Ok(Consistency::BufferedLww));
        assert_eq!("passthrough".parse(), Ok(Consistency::Passthrough));
        assert!(
            "buffered"
                .parse::<Consistency>()
                .unwrap_err()
                .contains("known modes")
        );
    }

    #[tokio::test]
    async fn cas_write_after_foreign_change_is_a_conflict() {
        let store = Arc::new(MemoryStore::new(""));
        let (ours, theirs) = (
            mode_over(&store, Consistency::BufferedCas, 16),
            mode_over(&store, Consistency::BufferedCas, 16),
        );
        ours.put(&key("k"), body("1"), Condition::None)
            .await
            .unwrap();
        theirs.get(&key("k")).await.unwrap();
        theirs
            .put(&key("k"), body("theirs"), Condition::None)
            .await
            .unwrap();
        let result = ours.put(&key("k"), body("ours"), Condition::None).await;
        assert_eq!(
            kind_of(&result),
            Some(ErrorKind::VersionConflict),
            "{result:?}"
        );
        assert_eq!(content(&ours, "k").await, "theirs");
        // Having read again, the write goes through.
        ours.put(&key("k"), body("ours"), Condition::None)
            .await
            .unwrap();
        assert_eq!(content(&theirs, "k").await, "ours");
        assert_eq!(ours.remembered().unwrap().conflicts(), 1);
    }

    #[tokio::test]
    async fn blind_retry_after_conflict_still_conflicts() {
        let store = Arc::new(MemoryStore::new(""));
        let (ours, theirs) = (
            mode_over(&store, Consistency::BufferedCas, 16),
            mode_over(&store, Consistency::BufferedCas, 16),
        );
        ours.put(&key("k"), body("1"), Condition::None)
            .await
            .unwrap();
        theirs
            .put(&key("k"), body("2"), Condition::None)
            .await
            .unwrap();
        for _ in 0..2 {
            let retry = ours.put(&key("k"), body("3"), Condition::None).await;
            assert_eq!(kind_of(&retry), Some(ErrorKind::VersionConflict));
        }
    }

    #[tokio::test]
    async fn cas_write_of_a_key_deleted_elsewhere_is_a_conflict() {
        let store = Arc::new(MemoryStore::new(""));
        let (ours, theirs) = (
            mode_over(&store, Consistency::BufferedCas, 16),
            mode_over(&store, Consistency::BufferedCas, 16),
        );
        ours.put(&key("k"), body("1"), Condition::None)
            .await
            .unwrap();
        theirs.delete(&key("k"), Condition::None).await.unwrap();
        let result = ours.put(&key("k"), body("2"), Condition::None).await;
        assert_eq!(
            kind_of(&result),
            Some(ErrorKind::VersionConflict),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn unknown_and_forgotten_keys_are_written_unconditionally() {
        let store = Arc::new(MemoryStore::new(""));
        let (ours, theirs) = (
            mode_over(&store, Consistency::BufferedCas, 16),
            mode_over(&store, Consistency::BufferedLww, 16),
        );
        theirs
            .put(&key("k"), body("theirs"), Condition::None)
            .await
            .unwrap();
        ours.put(&key("k"), body("ours"), Condition::None)
            .await
            .unwrap();
        // A delete forgets: the next write does not depend on the old version.
        ours.delete(&key("k"), Condition::None).await.unwrap();
        theirs
            .put(&key("k"), body("theirs again"), Condition::None)
            .await
            .unwrap();
        ours.put(&key("k"), body("ours again"), Condition::None)
            .await
            .unwrap();
        assert_eq!(content(&ours, "k").await, "ours again");
    }

    #[tokio::test]
    async fn a_key_read_as_missing_is_created_only_if_still_absent() {
        let store = Arc::new(MemoryStore::new(""));
        let (ours, theirs) = (
            mode_over(&store, Consistency::BufferedCas, 16),
            mode_over(&store, Consistency::BufferedLww, 16),
        );
        ours.put(&key("k"), body("1"), Condition::None)
            .await
            .unwrap();
        theirs.delete(&key("k"), Condition::None).await.unwrap();
        // Having read that it is gone, we may create it again...
        assert_eq!(
            kind_of(&ours.get(&key("k")).await),
            Some(ErrorKind::KeyNotFound)
        );
        ours.put(&key("k"), body("2"), Condition::None)
            .await
            .unwrap();
        // ...but not over someone who created it after our read.
        theirs.delete(&key("k"), Condition::None).await.unwrap();
        assert!(ours.get(&key("k")).await.is_err());
        theirs
            .put(&key("k"), body("theirs"), Condition::None)
            .await
            .unwrap();
        let result = ours.put(&key("k"), body("ours"), Condition::None).await;
        assert_eq!(
            kind_of(&result),
            Some(ErrorKind::VersionConflict),
            "{result:?}"
        );
        assert_eq!(content(&theirs, "k").await, "theirs");
    }

    #[tokio::test]
    async fn remembered_versions_are_bounded() {
        let store = Arc::new(MemoryStore::new(""));
        let (ours, theirs) = (
            mode_over(&store, Consistency::BufferedCas, 2),
            mode_over(&store, Consistency::BufferedCas, 2),
        );
        for k in ["a", "b", "c"] {
            ours.put(&key(k), body("1"), Condition::None).await.unwrap();
        }
        let remembered = ours.remembered().unwrap();
        assert_eq!((remembered.len(), remembered.evictions()), (2, 1));
        // "a" was pushed out, so a foreign change to it goes unnoticed...
        theirs
            .put(&key("a"), body("2"), Condition::None)
            .await
            .unwrap();
        ours.put(&key("a"), body("3"), Condition::None)
            .await
            .unwrap();
        // ...while "c" is still protected.
        theirs
            .put(&key("c"), body("2"), Condition::None)
            .await
            .unwrap();
        let result = ours.put(&key("c"), body("3"), Condition::None).await;
        assert_eq!(kind_of(&result), Some(ErrorKind::VersionConflict));
    }

    #[tokio::test]
    async fn head_does_not_refresh_the_remembered_version() {
        let store = Arc::new(MemoryStore::new(""));
        let (ours, theirs) = (
            mode_over(&store, Consistency::BufferedCas, 16),
            mode_over(&store, Consistency::BufferedCas, 16),
        );
        ours.put(&key("k"), body("1"), Condition::None)
            .await
            .unwrap();
        theirs
            .put(&key("k"), body("2"), Condition::None)
            .await
            .unwrap();
        ours.head(&key("k")).await.unwrap();
        let result = ours.put(&key("k"), body("3"), Condition::None).await;
        assert_eq!(kind_of(&result), Some(ErrorKind::VersionConflict));
    }

    #[tokio::test]
    async fn explicit_conditions_fail_with_precondition_in_every_mode() {
        for consistency in Consistency::ALL {
            let store = Arc::new(MemoryStore::new(""));
            let mode = mode_over(&store, consistency, 16);
            let v1 = mode
                .put(&key("k"), body("1"), Condition::IfAbsent)
                .await
                .unwrap();
            let again = mode.put(&key("k"), body("1"), Condition::IfAbsent).await;
            assert_eq!(
                kind_of(&again),
                Some(ErrorKind::PreconditionFailed),
                "{consistency}"
            );
            let v2 = mode
                .put(&key("k"), body("2"), Condition::IfMatch(v1.clone()))
                .await
                .unwrap();
            let stale = mode.put(&key("k"), body("3"), Condition::IfMatch(v1)).await;
            assert_eq!(
                kind_of(&stale),
                Some(ErrorKind::PreconditionFailed),
                "{consistency}"
            );
            mode.delete(&key("k"), Condition::IfMatch(v2))
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn lww_ignores_foreign_changes() {
        let store = Arc::new(MemoryStore::new(""));
        let (ours, theirs) = (
            mode_over(&store, Consistency::BufferedLww, 16),
            mode_over(&store, Consistency::BufferedLww, 16),
        );
        ours.put(&key("k"), body("1"), Condition::None)
            .await
            .unwrap();
        ours.get(&key("k")).await.unwrap();
        theirs
            .put(&key("k"), body("2"), Condition::None)
            .await
            .unwrap();
        ours.put(&key("k"), body("3"), Condition::None)
            .await
            .unwrap();
        assert_eq!(content(&theirs, "k").await, "3");
        assert!(ours.remembered().is_none());
    }

    #[tokio::test]
    async fn attribute_checks_come_before_the_store() {
        let store = Arc::new(MemoryStore::new(""));
        let mode = mode_over(&store, Consistency::BufferedLww, 16);
        assert_eq!(
            kind_of(&mode.get_attr(&key("missing"), "nope").await),
            Some(ErrorKind::UnsupportedAttribute)
        );
        assert_eq!(
            kind_of(&mode.set_attr(&key("missing"), "etag", "x").await),
            Some(ErrorKind::PermissionDenied)
        );
        assert_eq!(
            kind_of(
                &mode
                    .set_attr(&key("missing"), "content_type", "text/plain")
                    .await
            ),
            Some(ErrorKind::KeyNotFound)
        );
        assert_eq!(
            kind_of(&mode.attributes(&key("missing")).await),
            Some(ErrorKind::KeyNotFound)
        );
    }
}
