//! A decorator for any [`Store`]: times each call, records it in the
//! backend histogram and adds it to the request's backend clock
//! ([`crate::timing`]). Behaviour is the wrapped store's, unchanged.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{BackendOperation, Metrics};
use crate::error::Result;
use crate::key::Key;
use crate::store::{
    Body, ByteStream, Condition, Listing, Object, ObjectMeta, Store, StoreInfo, Version,
};
use crate::timing;

pub struct InstrumentedStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl InstrumentedStore {
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> InstrumentedStore {
        InstrumentedStore { inner, metrics }
    }

    async fn timed<T>(
        &self,
        operation: BackendOperation,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let interval = timing::BackendInterval::open(started);
        let result = call.await;
        let elapsed = started.elapsed();
        interval.close(started + elapsed);
        self.metrics.record_backend(operation, &result, elapsed);
        result
    }
}

#[async_trait]
impl Store for InstrumentedStore {
    fn info(&self) -> &StoreInfo {
        self.inner.info()
    }

    /// The histogram covers the call (until the body can be read); the
    /// request's backend clock also gets the time spent reading a
    /// streamed body, when that happens while the request is served.
    async fn get(&self, key: &Key) -> Result<Object> {
        let mut object = self
            .timed(BackendOperation::Get, self.inner.get(key))
            .await?;
        if let Body::Stream { stream, size } = object.body {
            object.body = Body::Stream {
                stream: BackendClockStream::wrap(stream),
                size,
            };
        }
        Ok(object)
    }

    async fn head(&self, key: &Key) -> Result<ObjectMeta> {
        self.timed(BackendOperation::Head, self.inner.head(key))
            .await
    }

    async fn put(&self, key: &Key, body: Body, condition: Condition) -> Result<Version> {
        self.timed(BackendOperation::Put, self.inner.put(key, body, condition))
            .await
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<()> {
        self.timed(BackendOperation::Delete, self.inner.delete(key, condition))
            .await
    }

    async fn list(&self, prefix: &str, delimiter: Option<&str>) -> Result<Listing> {
        self.timed(BackendOperation::List, self.inner.list(prefix, delimiter))
            .await
    }

    /// Not timed: no backend call (GCS may load credentials, once).
    async fn readable_attributes(&self) -> Vec<&'static str> {
        self.inner.readable_attributes().await
    }

    async fn get_attr(&self, key: &Key, name: &str) -> Result<String> {
        self.timed(BackendOperation::GetAttr, self.inner.get_attr(key, name))
            .await
    }

    async fn set_attr(&self, key: &Key, name: &str, value: &str) -> Result<()> {
        self.timed(
            BackendOperation::SetAttr,
            self.inner.set_attr(key, name, value),
        )
        .await
    }

    async fn probe(&self) -> Result<()> {
        self.timed(BackendOperation::Probe, self.inner.probe())
            .await
    }
}

/// A body read from the backend: the time from its first poll to its end
/// (or its drop) is backend time of the request that reads it.
struct BackendClockStream {
    inner: ByteStream,
    reading: Option<timing::BackendInterval>,
}

impl BackendClockStream {
    fn wrap(inner: ByteStream) -> ByteStream {
        BackendClockStream {
            inner,
            reading: None,
        }
        .boxed()
    }
}

impl Stream for BackendClockStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.reading.is_none() {
            this.reading = Some(timing::BackendInterval::open(Instant::now()));
        }
        let next = this.inner.poll_next_unpin(cx);
        if matches!(next, Poll::Ready(None | Some(Err(_))))
            && let Some(reading) = this.reading.take()
        {
            reading.close(Instant::now());
        }
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::error::ErrorKind;
    use crate::error::kind_of;
    use crate::store::memory::MemoryStore;

    fn key(k: &str) -> Key {
        Key::parse(k).unwrap()
    }

    #[tokio::test]
    async fn calls_are_timed_and_behave_as_the_inner_store() {
        let metrics = Arc::new(Metrics::new(None));
        let store = InstrumentedStore::new(Arc::new(MemoryStore::new("")), Arc::clone(&metrics));
        let ((), backend) = timing::with_backend_clock(async {
            store
                .put(
                    &key("a"),
                    Body::Full(Bytes::from_static(b"1")),
                    Condition::None,
                )
                .await
                .unwrap();
            let again = store
                .put(
                    &key("a"),
                    Body::Full(Bytes::from_static(b"2")),
                    Condition::IfAbsent,
                )
                .await;
            assert_eq!(kind_of(&again), Some(ErrorKind::PreconditionFailed));
            store.head(&key("a")).await.unwrap();
            store.probe().await.unwrap();
        })
        .await;
        assert!(backend > Duration::ZERO);
        let text = metrics.encode();
        for series in [
            r#"operation="put",outcome="ok""#,
            r#"operation="put",outcome="precondition_failed""#,
            r#"operation="head",outcome="ok""#,
            r#"operation="probe",outcome="ok""#,
        ] {
            let line = format!("state_proxy_backend_duration_seconds_count{{{series}}} 1");
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
    }

    #[tokio::test]
    async fn reading_a_streamed_body_counts_as_backend_time() {
        let slow = futures_util::stream::once(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Bytes::from_static(b"data"))
        })
        .boxed();
        let (chunks, backend) = timing::with_backend_clock(async {
            BackendClockStream::wrap(slow).collect::<Vec<_>>().await
        })
        .await;
        assert_eq!(chunks.len(), 1);
        assert!(backend >= Duration::from_millis(20), "{backend:?}");
    }
}
