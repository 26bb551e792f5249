//! The `memory` store: objects in a sorted map, gone when the process
//! exits. Useful for tests, benchmarks and throwaway local runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;
use parking_lot::RwLock;

use super::listing::ListingBuilder;
use super::{
    AttrSpec, Body, Condition, Listing, Object, ObjectMeta, ObjectNames, Store, StoreInfo, Version,
    WriteMemory,
};
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;

const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

static INFO: StoreInfo = StoreInfo {
    name: "memory",
    attributes: &[
        AttrSpec {
            name: "etag",
            settable: false,
        },
        AttrSpec {
            name: "content_type",
            settable: true,
        },
    ],
    conditional_delete: true,
    nested_keys: true,
    ttl: false,
    streamed_write: WriteMemory::Whole,
    // Reads share the stored bytes: nothing is held for the reader.
    whole_reads: false,
};

struct Entry {
    data: Bytes,
    version: u64,
    content_type: Option<String>,
}

impl Entry {
    fn meta(&self) -> ObjectMeta {
        ObjectMeta {
            size: self.data.len() as u64,
            version: version_token(self.version),
        }
    }
}

/// Versions are a process-wide counter, so they never repeat for a key.
fn version_token(counter: u64) -> Version {
    Version::new(format!("{counter:x}"))
}

fn check(current: Option<&Entry>, condition: &Condition) -> Result<()> {
    let holds = match condition {
        Condition::None => true,
        Condition::IfAbsent => current.is_none(),
        Condition::IfMatch(expected) => {
            current.is_some_and(|entry| version_token(entry.version) == *expected)
        }
    };
    if holds {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::PreconditionFailed,
            match condition {
                Condition::IfAbsent => "the key already exists".to_owned(),
                _ => "the key does not have the expected version".to_owned(),
            },
        ))
    }
}

#[derive(Default)]
pub struct MemoryStore {
    names: ObjectNames,
    objects: RwLock<BTreeMap<String, Entry>>,
    versions: AtomicU64,
}

impl MemoryStore {
    pub fn new(prefix: &str) -> Self {
        MemoryStore {
            names: ObjectNames::new(prefix),
            objects: RwLock::default(),
            versions: AtomicU64::new(1),
        }
    }

    fn with_entry<T>(&self, key: &Key, read: impl FnOnce(&Entry) -> T) -> Result<T> {
        let objects = self.objects.read();
        match objects.get(&self.names.name(key.as_str())) {
            Some(entry) => Ok(read(entry)),
            None => Err(Error::key_not_found(key)),
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn info(&self) -> &StoreInfo {
        &INFO
    }

    async fn get(&self, key: &Key) -> Result<Object> {
        self.with_entry(key, |entry| Object {
            meta: entry.meta(),
            body: Body::Full(entry.data.clone()),
        })
    }

    async fn head(&self, key: &Key) -> Result<ObjectMeta> {
        self.with_entry(key, Entry::meta)
    }

    async fn put(&self, key: &Key, body: Body, condition: Condition) -> Result<Version> {
        let data = match body {
            Body::Full(bytes) => bytes,
            Body::Stream { stream, .. } => {
                let chunks: Vec<Bytes> = stream.try_collect().await?;
                Bytes::from(chunks.concat())
            }
        };
        let name = self.names.name(key.as_str());
        let mut objects = self.objects.write();
        check(objects.get(&name), &condition)?;
        let version = self.versions.fetch_add(1, Ordering::Relaxed);
        objects.insert(
            name,
            Entry {
                data,
                version,
                content_type: None,
            },
        );
        Ok(version_token(version))
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<()> {
        let name = self.names.name(key.as_str());
        let mut objects = self.objects.write();
        let current = objects.get(&name);
        if current.is_none() && condition == Condition::None {
            return Err(Error::key_not_found(key));
        }
        check(current, &condition)?;
        objects.remove(&name);
        Ok(())
    }

    async fn list(&self, prefix: &str, delimiter: Option<&str>) -> Result<Listing> {
        let start = self.names.name(prefix);
        let objects = self.objects.read();
        let mut builder = ListingBuilder::new(prefix, delimiter);
        for name in objects.range(start.clone()..).map(|(name, _)| name) {
            if !name.starts_with(&start) {
                break;
            }
            if let Some(key) = self.names.key(name) {
                builder.push(key);
            }
        }
        Ok(builder.finish())
    }

    async fn get_attr(&self, key: &Key, name: &str) -> Result<String> {
        self.with_entry(key, |entry| match name {
            "etag" => Ok(version_token(entry.version).to_string()),
            "content_type" => Ok(entry
                .content_type
                .clone()
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned())),
            _ => Err(Error::unsupported_attribute(name)),
        })?
    }

    async fn set_attr(&self, key: &Key, name: &str, value: &str) -> Result<()> {
        if name != "content_type" {
            return Err(Error::unsupported_attribute(name));
        }
        let mut objects = self.objects.write();
        match objects.get_mut(&self.names.name(key.as_str())) {
            Some(entry) => {
                entry.content_type = Some(value.to_owned());
                Ok(())
            }
            None => Err(Error::key_not_found(key)),
        }
    }

    async fn probe(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::kind_of;

    fn key(k: &str) -> Key {
        Key::parse(k).unwrap()
    }

    fn full(data: &'static str) -> Body {
        Body::Full(Bytes::from_static(data.as_bytes()))
    }

    async fn read(store: &MemoryStore, k: &str) -> Bytes {
        match store.get(&key(k)).await.unwrap().body {
            Body::Full(bytes) => bytes,
            other => panic!("memory store streams: {other:?}"),
        }
    }

    #[tokio::test]
    async fn versions_change_on_every_write() {
        let store = MemoryStore::new("");
        let first = store
            .put(&key("a"), full("x"), Condition::None)
            .await
            .unwrap();
        let second = store
            .put(&key("a"), full("x"), Condition::None)
            .await
            .unwrap();
        assert_ne!(first, second);
        assert_eq!(store.head(&key("a")).await.unwrap().version, second);
    }

    #[tokio::test]
    async fn conditions_are_checked_under_the_write_lock() {
        let store = MemoryStore::new("");
        let v1 = store
            .put(&key("a"), full("1"), Condition::IfAbsent)
            .await
            .unwrap();
        let err = store.put(&key("a"), full("2"), Condition::IfAbsent).await;
        assert_eq!(kind_of(&err), Some(ErrorKind::PreconditionFailed));
        let v2 = store
            .put(&key("a"), full("2"), Condition::IfMatch(v1.clone()))
            .await
            .unwrap();
        let stale = store
            .put(&key("a"), full("3"), Condition::IfMatch(v1))
            .await;
        assert_eq!(kind_of(&stale), Some(ErrorKind::PreconditionFailed));
        let missing = store
            .put(&key("b"), full("3"), Condition::IfMatch(v2.clone()))
            .await;
        assert_eq!(kind_of(&missing), Some(ErrorKind::PreconditionFailed));
        assert_eq!(read(&store, "a").await, "2");
    }

    #[tokio::test]
    async fn prefix_isolates_stores_sharing_nothing_but_names() {
        let store = MemoryStore::new("tenant");
        store
            .put(&key("a/b"), full("1"), Condition::None)
            .await
            .unwrap();
        let listing = store.list("", Some("/")).await.unwrap();
        assert_eq!(listing.prefixes, ["a/"]);
        assert!(store.objects.read().contains_key("tenant/a/b"));
    }

    #[tokio::test]
    async fn delete_checks_existence_and_version() {
        let store = MemoryStore::new("");
        assert_eq!(
            kind_of(&store.delete(&key("a"), Condition::None).await),
            Some(ErrorKind::KeyNotFound)
        );
        let v1 = store
            .put(&key("a"), full("1"), Condition::None)
            .await
            .unwrap();
        store
            .put(&key("a"), full("2"), Condition::None)
            .await
            .unwrap();
        assert_eq!(
            kind_of(&store.delete(&key("a"), Condition::IfMatch(v1)).await),
            Some(ErrorKind::PreconditionFailed)
        );
        store.delete(&key("a"), Condition::None).await.unwrap();
        assert_eq!(
            kind_of(&store.head(&key("a")).await),
            Some(ErrorKind::KeyNotFound)
        );
    }
}
