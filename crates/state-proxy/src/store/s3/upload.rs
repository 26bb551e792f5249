//! Streamed writes: the body is cut into parts as it arrives and sent as
//! an S3 multipart upload, with at most [`PARTS_IN_FLIGHT`] parts being
//! sent while the next one fills, so memory stays bounded whatever the
//! object size (about `(PARTS_IN_FLIGHT + 1) × part size`).
//!
//! - A body that fits in one part is one `PutObject`, conditional as usual.
//! - A larger one checks its condition first (so 1 GiB is not sent for a
//!   write that is bound to fail), then puts the condition on
//!   `CompleteMultipartUpload`, where S3 checks it atomically: of racing
//!   creators exactly one completes.
//! - An upload that fails or is cut off midway (the client goes away, a
//!   part fails) is aborted: no object appears and S3 frees the parts.
//!   Dropping an unfinished upload (the request itself was cancelled)
//!   aborts it in the background.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http::Method;
use serde::Deserialize;

use super::api::Api;
use super::{S3Store, condition_headers, missing_for, precondition_of};
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::store::http_client::{Call, Retry, header};
use crate::store::{ByteStream, Condition, Version};

/// Size of every part but the last (S3 wants at least 5 MiB).
pub(crate) const PART_SIZE: usize = 8 << 20;
/// Most parts an upload may have.
const MAX_PARTS: u64 = 10_000;
/// Parts sent at once while the next one fills.
pub(crate) const PARTS_IN_FLIGHT: usize = 2;

/// The part size for a body of `size` bytes: [`PART_SIZE`], or larger
/// when that many parts would not hold it.
fn part_size(size: Option<u64>) -> usize {
    let needed = size.map_or(0, |size| size.div_ceil(MAX_PARTS));
    let mib = 1 << 20;
    (needed.div_ceil(mib) * mib).max(PART_SIZE as u64) as usize
}

/// Cuts a stream of chunks into parts of one size (the last one shorter).
struct Parts {
    stream: ByteStream,
    part_size: usize,
    /// Announced body size, to size the first buffer of a small body.
    remaining_hint: Option<u64>,
    leftover: Bytes,
    ended: bool,
}

impl Parts {
    /// The next part; `None` once the body is over.
    async fn next(&mut self) -> Result<Option<Bytes>> {
        let capacity = self
            .remaining_hint
            .map_or(self.part_size, |hint| (hint as usize).min(self.part_size));
        let mut part = BytesMut::with_capacity(capacity);
        loop {
            if !self.leftover.is_empty() {
                let take = (self.part_size - part.len()).min(self.leftover.len());
                part.extend_from_slice(&self.leftover.split_to(take));
            }
            if part.len() == self.part_size || self.ended {
                break;
            }
            match self.stream.next().await {
                Some(chunk) => self.leftover = chunk?,
                None => self.ended = true,
            }
        }
        if let Some(hint) = &mut self.remaining_hint {
            *hint = hint.saturating_sub(part.len() as u64);
        }
        Ok((!part.is_empty()).then(|| part.freeze()))
    }
}

/// Writes a streamed body under `condition`.
pub(super) async fn streamed(
    store: &S3Store,
    key: &Key,
    name: String,
    stream: ByteStream,
    size: Option<u64>,
    condition: Condition,
) -> Result<Version> {
    let mut parts = Parts {
        stream,
        part_size: part_size(size),
        remaining_hint: size,
        leftover: Bytes::new(),
        ended: false,
    };
    let first = parts.next().await?.unwrap_or_default();
    let Some(second) = parts.next().await? else {
        return store.put_object(&name, key, first, &condition).await;
    };
    store.check(key, &condition).await?;
    let upload = MultipartUpload::create(store.api.clone(), name).await?;
    let sent = send_parts(&upload, [first, second], &mut parts).await;
    let outcome = match sent {
        Ok(etags) => upload.complete(key, &etags, &condition).await,
        Err(error) => Err(error),
    };
    if outcome.is_err() {
        upload.abort().await;
    }
    outcome
}

/// Sends every part, at most [`PARTS_IN_FLIGHT`] at a time; returns the
/// ETags in part order.
async fn send_parts(
    upload: &MultipartUpload,
    first: [Bytes; 2],
    parts: &mut Parts,
) -> Result<Vec<String>> {
    let mut etags: Vec<String> = Vec::new();
    let mut in_flight = FuturesUnordered::new();
    let mut number: u32 = 0;
    let mut ready: Vec<Bytes> = first.into_iter().rev().collect();
    loop {
        let part = match ready.pop() {
            Some(part) => part,
            None => match parts.next().await? {
                Some(part) => part,
                None => break,
            },
        };
        number += 1;
        if u64::from(number) > MAX_PARTS {
            return Err(Error::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "the body needs more than {MAX_PARTS} parts of {} bytes",
                    parts.part_size
                ),
            ));
        }
        if in_flight.len() >= PARTS_IN_FLIGHT
            && let Some(done) = in_flight.next().await
        {
            record(&mut etags, done?);
        }
        in_flight.push(upload.part(number, part));
    }
    while let Some(done) = in_flight.next().await {
        record(&mut etags, done?);
    }
    Ok(etags)
}

fn record(etags: &mut Vec<String>, (number, etag): (u32, String)) {
    let index = number as usize - 1;
    if etags.len() <= index {
        etags.resize(index + 1, String::new());
    }
    etags[index] = etag;
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InitiateMultipartUploadResult {
    upload_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CompleteMultipartUploadResult {
    #[serde(rename = "ETag")]
    etag: String,
}

/// One multipart upload in progress; aborted in the background if dropped
/// before it completed or was aborted.
struct MultipartUpload {
    api: Arc<Api>,
    name: String,
    upload_id: String,
    finished: AtomicBool,
}

impl MultipartUpload {
    async fn create(api: Arc<Api>, name: String) -> Result<MultipartUpload> {
        let what = "multipart upload start";
        let call = Call::new(
            Method::POST,
            api.url_with_query(Some(&name), &[("uploads", "")]),
        )
        .header("content-type", super::CONTENT_TYPE)?;
        let missing = |_: &str, text| Error::new(ErrorKind::Internal, text);
        // Not repeated once sent: a second start would leave an orphan.
        let started: InitiateMultipartUploadResult =
            api.xml_call(call, Retry::UnlessSent, what, missing).await?;
        tracing::debug!(name, upload_id = %started.upload_id, "multipart upload started");
        Ok(MultipartUpload {
            api,
            name,
            upload_id: started.upload_id,
            finished: AtomicBool::new(false),
        })
    }

    /// Sends part `number` (from 1); returns its number and ETag.
    async fn part(&self, number: u32, data: Bytes) -> Result<(u32, String)> {
        let what = "multipart upload part";
        let number_text = number.to_string();
        let url = self.api.url_with_query(
            Some(&self.name),
            &[("partNumber", &number_text), ("uploadId", &self.upload_id)],
        );
        let call = Call::new(Method::PUT, url).body(data);
        let deadline = self.api.http.deadline();
        // A part sent again replaces itself.
        let response = self
            .api
            .http
            .send(call, Retry::Idempotent, deadline, what)
            .await?;
        if !response.status().is_success() {
            let missing = |_: &str, text| Error::new(ErrorKind::Internal, text);
            return Err(self
                .api
                .http
                .failure(response, deadline, what, missing)
                .await);
        }
        let etag = header(response.headers(), "etag").ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                format!("S3 {what} answered without an ETag"),
            )
        })?;
        Ok((number, etag.to_owned()))
    }

    /// Completes the upload under `condition`; the object appears now.
    async fn complete(
        &self,
        key: &Key,
        etags: &[String],
        condition: &Condition,
    ) -> Result<Version> {
        let what = "multipart upload completion";
        let mut document = String::from("<CompleteMultipartUpload>");
        for (index, etag) in etags.iter().enumerate() {
            document.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                index + 1,
                quick_xml::escape::escape(etag.as_str())
            ));
        }
        document.push_str("</CompleteMultipartUpload>");
        let call = condition_headers(
            Call::new(
                Method::POST,
                self.api
                    .url_with_query(Some(&self.name), &[("uploadId", &self.upload_id)]),
            )
            .header("content-type", "application/xml")?
            .body(Bytes::from(document)),
            condition,
        )?;
        let result = self
            .api
            .xml_call::<CompleteMultipartUploadResult>(
                call,
                Retry::UnlessSent,
                what,
                missing_for(key, condition),
            )
            .await;
        match result {
            Ok(done) => {
                self.finished.store(true, Ordering::Relaxed);
                Ok(Version::new(done.etag))
            }
            Err(error) => Err(precondition_of(condition, error)),
        }
    }

    /// Abandons the upload; S3 frees its parts. Failures are only logged:
    /// the caller already has an error to answer with.
    async fn abort(&self) {
        self.finished.store(true, Ordering::Relaxed);
        abort(&self.api, &self.name, &self.upload_id).await;
    }
}

async fn abort(api: &Api, name: &str, upload_id: &str) {
    let what = "multipart upload abort";
    let call = Call::new(
        Method::DELETE,
        api.url_with_query(Some(name), &[("uploadId", upload_id)]),
    );
    let deadline = api.http.deadline();
    match api.http.send(call, Retry::Idempotent, deadline, what).await {
        Ok(response) if response.status().is_success() => {
            tracing::debug!(name, upload_id, "multipart upload aborted");
        }
        Ok(response) => {
            let missing = |_: &str, text| Error::new(ErrorKind::Internal, text);
            let error = api.http.failure(response, deadline, what, missing).await;
            tracing::warn!(name, upload_id, error = %error, "cannot abort a multipart upload");
        }
        Err(error) => {
            tracing::warn!(name, upload_id, error = %error, "cannot abort a multipart upload");
        }
    }
}

impl Drop for MultipartUpload {
    fn drop(&mut self) {
        if self.finished.load(Ordering::Relaxed) {
            return;
        }
        // The request was cancelled midway: abort without blocking.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (api, name, upload_id) = (
                self.api.clone(),
                std::mem::take(&mut self.name),
                std::mem::take(&mut self.upload_id),
            );
            runtime.spawn(async move { abort(&api, &name, &upload_id).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_only_when_ten_thousand_would_not_hold_the_body() {
        assert_eq!(part_size(None), PART_SIZE);
        assert_eq!(part_size(Some(1 << 30)), PART_SIZE);
        assert_eq!(part_size(Some(PART_SIZE as u64 * MAX_PARTS)), PART_SIZE);
        let huge = 200u64 << 30;
        let size = part_size(Some(huge));
        assert!(size as u64 * MAX_PARTS >= huge);
        assert_eq!(size % (1 << 20), 0);
    }

    #[tokio::test]
    async fn parts_are_cut_at_the_part_size_whatever_the_chunks() {
        let chunks: Vec<Result<Bytes>> = [3usize, 10, 1, 7]
            .iter()
            .map(|n| Ok(Bytes::from(vec![b'x'; *n])))
            .collect();
        let mut parts = Parts {
            stream: futures_util::stream::iter(chunks).boxed(),
            part_size: 4,
            remaining_hint: None,
            leftover: Bytes::new(),
            ended: false,
        };
        let mut sizes = Vec::new();
        while let Some(part) = parts.next().await.unwrap() {
            sizes.push(part.len());
        }
        assert_eq!(sizes, [4, 4, 4, 4, 4, 1]);
    }
}
