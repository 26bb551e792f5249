//! A test double: a decorator that injects faults into any store, so that
//! tests see what the proxy does over a dishonest or failing backend. It
//! serves the self-test's unit tests (a backend that ignores conditions,
//! as some emulators do) and the operations tests (a backend whose
//! readiness probe fails, a read that breaks off halfway). The proxy
//! itself never builds one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use async_trait::async_trait;
use futures_util::StreamExt;

use super::{Body, Condition, Listing, Object, ObjectMeta, Store, StoreInfo, Version};
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;

/// What a failing probe answers.
pub const PROBE_FAILURE: &str = "injected: bucket unreachable";
/// The error a read that breaks off ends with.
pub const READ_FAILURE: &str = "injected: the backend connection broke";

/// `inner`, honest until told otherwise.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    ignore_write_conditions: AtomicBool,
    fail_probes: AtomicBool,
    probes: AtomicUsize,
    /// Reads fail after this many bytes (`u64::MAX`: never).
    break_reads_after: AtomicU64,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> FaultyStore {
        FaultyStore {
            inner,
            ignore_write_conditions: AtomicBool::new(false),
            fail_probes: AtomicBool::new(false),
            probes: AtomicUsize::new(0),
            break_reads_after: AtomicU64::new(u64::MAX),
        }
    }

    /// Writes drop their condition (deletes keep theirs).
    pub fn ignore_write_conditions(&self, ignore: bool) {
        self.ignore_write_conditions.store(ignore, Ordering::SeqCst);
    }

    /// Probes answer `unavailable` with [`PROBE_FAILURE`].
    pub fn fail_probes(&self, fail: bool) {
        self.fail_probes.store(fail, Ordering::SeqCst);
    }

    /// Reads stream the first `bytes` of the object, then fail with
    /// [`READ_FAILURE`] (the object's size is announced as usual).
    pub fn break_reads_after(&self, bytes: u64) {
        self.break_reads_after.store(bytes, Ordering::SeqCst);
    }

    /// How many probes reached the store.
    pub fn probes(&self) -> usize {
        self.probes.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Store for FaultyStore {
    fn info(&self) -> &StoreInfo {
        self.inner.info()
    }

    async fn get(&self, key: &Key) -> Result<Object> {
        let mut object = self.inner.get(key).await?;
        let after = self.break_reads_after.load(Ordering::SeqCst);
        if after < object.meta.size {
            let whole = match object.body {
                Body::Full(bytes) => bytes,
                Body::Stream { stream, .. } => {
                    let chunks: Vec<_> = stream.collect().await;
                    let chunks: Result<Vec<_>> = chunks.into_iter().collect();
                    chunks?.concat().into()
                }
            };
            let head = whole.slice(..after as usize);
            // The break comes a moment later, as it would from a network,
            // so that what came before it is already on its way.
            let broken = futures_util::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Err(Error::new(ErrorKind::Unavailable, READ_FAILURE))
            });
            object.body = Body::Stream {
                stream: futures_util::stream::iter([Ok(head)]).chain(broken).boxed(),
                size: Some(object.meta.size),
            };
        }
        Ok(object)
    }

    async fn head(&self, key: &Key) -> Result<ObjectMeta> {
        self.inner.head(key).await
    }

    async fn put(&self, key: &Key, body: Body, condition: Condition) -> Result<Version> {
        let condition = if self.ignore_write_conditions.load(Ordering::SeqCst) {
            Condition::None
        } else {
            condition
        };
        self.inner.put(key, body, condition).await
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<()> {
        self.inner.delete(key, condition).await
    }

    async fn list(&self, prefix: &str, delimiter: Option<&str>) -> Result<Listing> {
        self.inner.list(prefix, delimiter).await
    }

    async fn readable_attributes(&self) -> Vec<&'static str> {
        self.inner.readable_attributes().await
    }

    async fn get_attr(&self, key: &Key, name: &str) -> Result<String> {
        self.inner.get_attr(key, name).await
    }

    async fn set_attr(&self, key: &Key, name: &str, value: &str) -> Result<()> {
        self.inner.set_attr(key, name, value).await
    }

    async fn probe(&self) -> Result<()> {
        self.probes.fetch_add(1, Ordering::SeqCst);
        if self.fail_probes.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Unavailable, PROBE_FAILURE));
        }
        self.inner.probe().await
    }
}
