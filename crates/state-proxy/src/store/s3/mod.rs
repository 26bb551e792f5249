//! The `s3` store: Amazon S3 (or an S3-compatible server) through its REST
//! API.
//!
//! - Credentials, SigV4 signing and presigned URLs come from `object_store`
//!   (its AWS credential chain: environment keys, web identity for
//!   Kubernetes service accounts, container and instance metadata). The
//!   requests themselves are sent here ([`api`], over the client the gcs
//!   store shares, `store::http_client`), because the store needs
//!   what `object_store` does not offer: a condition on
//!   `CompleteMultipartUpload` and on `DeleteObject`, listings with any
//!   delimiter, the storage class, `CopyObject` with new metadata, S3's
//!   error codes for the error mapping, and no blind retry of conditional
//!   writes.
//! - The version of an object is its ETag. Reads take it from the very
//!   answer that carried the bytes, writes from the answer to the write.
//! - Whole bodies are one `PutObject` with `If-None-Match: *` or
//!   `If-Match: "etag"`, which S3 checks atomically with the write.
//!   Streamed bodies are multipart uploads ([`upload`]) with the condition
//!   on the completing request.
//! - `DELETE` first reads the object: S3 answers 204 for a missing key,
//!   the protocol 404. With `If-Match` a stale tag fails without a call,
//!   and the delete itself carries `If-Match`, which S3 enforces.
//! - Listings are `ListObjectsV2` pages of 1000 followed to the end
//!   through continuation tokens, with any delimiter.
//! - Object names are `STATE_PREFIX/key` (compat).

mod api;
#[cfg(test)]
mod tests;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::signer::Signer;
use object_store::{ClientOptions, RetryConfig};
use reqwest::Response;
use serde::Deserialize;

use self::api::Api;
use super::http_client::{Call, Retry, header};
use super::listing::{self, Page};
use super::{
    AttrSpec, Body, Condition, Listing, Object, ObjectMeta, ObjectNames, Store, StoreInfo, Version,
    WriteMemory,
};
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;

/// Listing page size: the largest S3 allows.
const PAGE_SIZE: &str = "1000";
/// Content type of uploaded objects: the protocol carries none.
const CONTENT_TYPE: &str = "application/octet-stream";
/// Longest validity of a presigned URL SigV4 allows: seven days.
pub const MAX_PRESIGN_SECS: u64 = 7 * 24 * 3600;

static INFO: StoreInfo = StoreInfo {
    name: "s3",
    attributes: &[
        AttrSpec {
            name: "url",
            settable: false,
        },
        AttrSpec {
            name: "presigned_url",
            settable: false,
        },
        AttrSpec {
            name: "etag",
            settable: false,
        },
        AttrSpec {
            name: "content_type",
            settable: true,
        },
        AttrSpec {
            name: "version",
            settable: false,
        },
        AttrSpec {
            name: "storage_class",
            settable: false,
        },
    ],
    conditional_delete: true,
    nested_keys: true,
    ttl: false,
    // The parts in flight and the one filling (larger parts only for
    // bodies above 80 GB).
    streamed_write: WriteMemory::AtMost(((upload::PARTS_IN_FLIGHT + 1) * upload::PART_SIZE) as u64),
    whole_reads: false,
};

/// Settings of the `s3` store.
#[derive(Clone, Debug)]
pub struct S3Options {
    /// `STATE_BUCKET`.
    pub bucket: String,
    /// `STATE_PREFIX`.
    pub prefix: String,
    /// `AWS_REGION`.
    pub region: String,
    /// `AWS_ENDPOINT_URL`: an emulator or S3-compatible server, addressed
    /// path-style, plain HTTP allowed.
    pub endpoint: Option<String>,
    /// `STATE_PRESIGN_TTL`, at most seven days.
    pub presign_ttl: Duration,
    /// `STATE_BACKEND_TIMEOUT_SECS`.
    pub timeout: Duration,
}

impl S3Options {
    /// The `object_store` client that holds the credential chain and
    /// signs presigned URLs. Building it contacts nothing. It sends no
    /// request of its own, so its retries are switched off.
    fn signer(&self, builder: AmazonS3Builder) -> Result<AmazonS3, String> {
        let mut builder = builder
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_retry(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false)
                .with_client_options(ClientOptions::new().with_allow_http(true));
        }
        builder
            .build()
            .map_err(|e| format!("the s3 store cannot be configured: {e}"))
    }
}

pub struct S3Store {
    api: Arc<Api>,
    signer: AmazonS3,
    names: ObjectNames,
    presign_ttl: Duration,
}

/// One page of a `ListObjectsV2` answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ListPage {
    contents: Vec<ListedObject>,
    common_prefixes: Vec<CommonPrefix>,
    is_truncated: bool,
    next_continuation_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedObject {
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CommonPrefix {
    prefix: String,
}

/// What a `HEAD` tells about an object.
#[derive(Debug)]
struct Head {
    size: u64,
    version: Version,
    content_type: Option<String>,
    version_id: Option<String>,
    storage_class: Option<String>,
}

/// The headers of a write condition: `If-None-Match: *` or
/// `If-Match: "etag"` (S3 compares quoted ETags).
fn condition_headers(call: Call, condition: &Condition) -> Result<Call> {
    match condition {
        Condition::None => Ok(call),
        Condition::IfAbsent => call.header("if-none-match", "*"),
        Condition::IfMatch(version) => call.header("if-match", &version.etag()),
    }
}

/// What a 404 means for a write under `condition`: the object is gone,
/// which fails `If-Match` (S3 answers 404 `NoSuchKey` there).
fn missing_for(key: &Key, condition: &Condition) -> impl Fn(&str, String) -> Error {
    let conditional = matches!(condition, Condition::IfMatch(_));
    let key = key.to_string();
    move |code, text| {
        if conditional && code != "NoSuchUpload" {
            Error::new(ErrorKind::PreconditionFailed, text)
        } else if code == "NoSuchKey" {
            Error::key_not_found(&key)
        } else {
            Error::new(ErrorKind::Internal, text)
        }
    }
}

/// A write refused because of its condition. S3 answers 412, and 409
/// `ConditionalRequestConflict` when conditional writers race: either way
/// this write did not happen and the writer must read again.
fn precondition_of(condition: &Condition, error: Error) -> Error {
    match condition {
        Condition::None => error,
        _ if error.kind() == ErrorKind::KeyConflict => {
            error.into_kind(ErrorKind::PreconditionFailed)
        }
        _ => error,
    }
}

/// The version an answer carries in its `ETag` header.
fn etag_of(response: &Response, what: &str) -> Result<Version> {
    header(response.headers(), "etag")
        .filter(|etag| !etag.trim_matches('"').is_empty())
        .map(Version::new)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                format!("S3 {what} answered without an ETag"),
            )
        })
}

impl S3Store {
    /// The store a configuration describes, with the standard AWS
    /// credential chain. No request is sent and no credential is looked
    /// up here: those wait for the first call.
    pub fn new(options: S3Options) -> Result<S3Store, String> {
        let signer = options.signer(AmazonS3Builder::from_env())?;
        tracing::debug!(
            bucket = %options.bucket,
            region = %options.region,
            endpoint = ?options.endpoint,
            "s3 store configured"
        );
        Self::with_signer(options, signer)
    }

    /// The store with the credentials of an `object_store` builder (unit
    /// tests give fixed ones).
    fn with_signer(options: S3Options, signer: AmazonS3) -> Result<S3Store, String> {
        let api = Api::new(
            options.endpoint.as_deref(),
            options.bucket.clone(),
            options.region.clone(),
            signer.credentials().clone(),
            options.timeout,
        )
        .map_err(|e| e.to_string())?;
        Ok(S3Store {
            api: Arc::new(api),
            signer,
            names: ObjectNames::new(&options.prefix),
            presign_ttl: options.presign_ttl,
        })
    }

    fn name(&self, key: &Key) -> String {
        self.names.name(key.as_str())
    }

    /// Size, version and metadata of an object.
    async fn head_object(&self, key: &Key) -> Result<Head> {
        let what = "metadata read";
        let deadline = self.api.http.deadline();
        let call = Call::new(Method::HEAD, self.api.object_url(&self.name(key)));
        // A HEAD answer has no body, so a missing bucket looks like a
        // missing key here (`head_found` tells them apart).
        let response = self
            .api
            .http
            .send_ok(call, Retry::Idempotent, deadline, what, |_, _| {
                Error::key_not_found(key)
            })
            .await?;
        let headers = response.headers();
        let size = header(headers, "content-length")
            .and_then(|size| size.parse().ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Internal,
                    format!("S3 {what} answered without a size"),
                )
            })?;
        Ok(Head {
            size,
            version: etag_of(&response, what)?,
            content_type: header(headers, "content-type").map(str::to_owned),
            version_id: header(headers, "x-amz-version-id").map(str::to_owned),
            storage_class: header(headers, "x-amz-storage-class").map(str::to_owned),
        })
    }

    /// [`S3Store::head_object`] where a missing key goes back to the
    /// client (HEAD, `/meta`, DELETE, a failed `If-Match`): a 404 to a HEAD
    /// does not say whether the key or the bucket is missing, so a
    /// `HeadBucket` is asked. A missing bucket is 503, as for every other
    /// call; when the bucket cannot be checked the 404 stands.
    async fn head_found(&self, key: &Key) -> Result<Head> {
        match self.head_object(key).await {
            Err(e) if e.kind() == ErrorKind::KeyNotFound => {
                Err(self.key_or_bucket_missing(key).await)
            }
            other => other,
        }
    }

    async fn key_or_bucket_missing(&self, key: &Key) -> Error {
        let what = "bucket check";
        let deadline = self.api.http.deadline();
        let call = Call::new(Method::HEAD, self.api.url_with_query(None, &[]));
        match self
            .api
            .http
            .send(call, Retry::Idempotent, deadline, what)
            .await
        {
            Ok(answer) if answer.status() == http::StatusCode::NOT_FOUND => Error::new(
                ErrorKind::Unavailable,
                format!(
                    "S3 answered 404 for '{key}' and for its bucket \
                     (is STATE_BUCKET={} an existing bucket?)",
                    self.api.bucket
                ),
            ),
            _ => Error::key_not_found(key),
        }
    }

    /// One `PutObject` of a whole body under a condition.
    async fn put_object(
        &self,
        name: &str,
        key: &Key,
        data: Bytes,
        condition: &Condition,
    ) -> Result<Version> {
        let what = "upload";
        let call = condition_headers(
            Call::new(Method::PUT, self.api.object_url(name))
                .header("content-type", CONTENT_TYPE)?
                .body(data),
            condition,
        )?;
        let deadline = self.api.http.deadline();
        let retry = Retry::for_write(condition);
        let response = self.api.http.send(call, retry, deadline, what).await?;
        if !response.status().is_success() {
            let error = self
                .api
                .http
                .failure(response, deadline, what, missing_for(key, condition))
                .await;
            return Err(precondition_of(condition, error));
        }
        etag_of(&response, what)
    }

    /// Checks a condition by reading the object, before work that would
    /// be wasted if it fails (a large upload, a delete).
    async fn check(&self, key: &Key, condition: &Condition) -> Result<()> {
        if *condition == Condition::None {
            return Ok(());
        }
        // Under `IfAbsent` the upload itself meets a missing bucket (503);
        // a failed `If-Match` must not hide one behind a 412.
        let found = match condition {
            Condition::IfAbsent => self.head_object(key).await,
            _ => self.head_found(key).await,
        };
        let current = match found {
            Ok(head) => Some(head.version),
            Err(e) if e.kind() == ErrorKind::KeyNotFound => None,
            Err(other) => return Err(other),
        };
        match (condition, current) {
            (Condition::IfAbsent, Some(_)) => Err(Error::new(
                ErrorKind::PreconditionFailed,
                format!("'{key}' already exists"),
            )),
            (Condition::IfMatch(expected), current) if current.as_ref() != Some(expected) => {
                Err(Error::new(
                    ErrorKind::PreconditionFailed,
                    format!("'{key}' does not have ETag {}", expected.etag()),
                ))
            }
            _ => Ok(()),
        }
    }

    /// One `ListObjectsV2` page of names under `name_prefix`.
    async fn list_page(
        &self,
        name_prefix: &str,
        delimiter: Option<&str>,
        token: Option<String>,
    ) -> Result<Page> {
        let what = "listing";
        let mut query = vec![
            ("list-type", "2"),
            ("max-keys", PAGE_SIZE),
            ("prefix", name_prefix),
        ];
        if let Some(delimiter) = delimiter {
            query.push(("delimiter", delimiter));
        }
        if let Some(token) = &token {
            query.push(("continuation-token", token.as_str()));
        }
        // SigV4 wants the parameters sorted; S3 accepts any order.
        query.sort_unstable();
        let call = Call::new(Method::GET, self.api.url_with_query(None, &query));
        // Each page has its own deadline: a long listing is many calls.
        let missing = |_: &str, text| Error::new(ErrorKind::Internal, text);
        let page: ListPage = self
            .api
            .xml_call(call, Retry::Idempotent, what, missing)
            .await?;
        let names = page
            .contents
            .into_iter()
            .map(|object| object.key)
            .chain(page.common_prefixes.into_iter().map(|p| p.prefix))
            .collect();
        Ok(Page {
            names,
            next: page.next_continuation_token.filter(|_| page.is_truncated),
        })
    }

    async fn presigned_url(&self, key: &Key) -> Result<String> {
        let path = object_store::path::Path::parse(self.name(key))
            .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot presign '{key}': {e}")))?;
        let deadline = self.api.http.deadline();
        // Loading credentials may call out (web identity, metadata).
        match tokio::time::timeout_at(
            deadline,
            self.signer.signed_url(Method::GET, &path, self.presign_ttl),
        )
        .await
        {
            Err(_) => Err(self.api.http.timed_out("presigning")),
            Ok(Err(e)) => Err(Error::new(
                ErrorKind::Unavailable,
                format!("S3 presigning: {e}"),
            )),
            Ok(Ok(url)) => Ok(url.to_string()),
        }
    }
}

#[async_trait]
impl Store for S3Store {
    fn info(&self) -> &StoreInfo {
        &INFO
    }

    async fn get(&self, key: &Key) -> Result<Object> {
        let what = "download";
        let deadline = self.api.http.deadline();
        let call = Call::new(Method::GET, self.api.object_url(&self.name(key)));
        let response = self
            .api
            .http
            .send_ok(
                call,
                Retry::Idempotent,
                deadline,
                what,
                |code, text| match code {
                    "NoSuchKey" | "" => Error::key_not_found(key),
                    _ => Error::new(ErrorKind::Internal, text),
                },
            )
            .await?;
        // The ETag of exactly these bytes, from the same answer.
        let version = etag_of(&response, what)?;
        self.api.http.downloaded(response, version, deadline).await
    }

    async fn head(&self, key: &Key) -> Result<ObjectMeta> {
        let head = self.head_found(key).await?;
        Ok(ObjectMeta {
            size: head.size,
            version: head.version,
        })
    }

    async fn put(&self, key: &Key, body: Body, condition: Condition) -> Result<Version> {
        let name = self.name(key);
        match body {
            Body::Full(data) => self.put_object(&name, key, data, &condition).await,
            Body::Stream { stream, size } => {
                upload::streamed(self, key, name, stream, size, condition).await
            }
        }
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<()> {
        let what = "delete";
        // S3 deletes a missing key "successfully"; the protocol answers 404
        // (or 412 under If-Match), so look first.
        match &condition {
            Condition::None => {
                self.head_found(key).await?;
            }
            conditional => self.check(key, conditional).await?,
        }
        let call = condition_headers(
            Call::new(Method::DELETE, self.api.object_url(&self.name(key))),
            &condition,
        )?;
        let deadline = self.api.http.deadline();
        let retry = Retry::for_write(&condition);
        let response = self.api.http.send(call, retry, deadline, what).await?;
        if response.status().is_success() {
            return Ok(());
        }
        let error = self
            .api
            .http
            .failure(response, deadline, what, missing_for(key, &condition))
            .await;
        Err(precondition_of(&condition, error))
    }

    async fn list(&self, prefix: &str, delimiter: Option<&str>) -> Result<Listing> {
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let name_prefix = self.names.name(prefix);
        listing::follow_pages(&self.names, prefix, delimiter, |token| {
            self.list_page(&name_prefix, delimiter, token)
        })
        .await
    }

    async fn get_attr(&self, key: &Key, name: &str) -> Result<String> {
        let head = self.head_found(key).await?;
        match name {
            "url" => Ok(format!("s3://{}/{}", self.api.bucket, self.name(key))),
            "presigned_url" => self.presigned_url(key).await,
            "etag" => Ok(head.version.etag()),
            "content_type" => Ok(head
                .content_type
                .unwrap_or_else(|| "binary/octet-stream".to_owned())),
            // S3 calls the version of an object in an unversioned bucket
            // "null".
            "version" => Ok(head.version_id.unwrap_or_else(|| "null".to_owned())),
            // S3 leaves the header out for the standard class.
            "storage_class" => Ok(head.storage_class.unwrap_or_else(|| "STANDARD".to_owned())),
            _ => Err(Error::unsupported_attribute(name)),
        }
    }

    /// S3 metadata cannot change in place: the object is copied onto
    /// itself with the new content type (`MetadataDirective: REPLACE`).
    async fn set_attr(&self, key: &Key, name: &str, value: &str) -> Result<()> {
        if name != "content_type" {
            return Err(Error::unsupported_attribute(name));
        }
        if value.trim().is_empty() {
            return Err(Error::bad_request("content_type cannot be empty"));
        }
        let what = "metadata update";
        let object = self.name(key);
        let call = Call::new(Method::PUT, self.api.object_url(&object))
            .header("x-amz-copy-source", &self.api.copy_source(&object))?
            .header("x-amz-metadata-directive", "REPLACE")?
            .header("content-type", value)?;
        let missing = |code: &str, text| match code {
            "NoSuchKey" | "" => Error::key_not_found(key),
            _ => Error::new(ErrorKind::Internal, text),
        };
        #[derive(Deserialize)]
        struct CopyObjectResult {}
        // Copying the current object with the same type twice is harmless.
        self.api
            .xml_call::<CopyObjectResult>(call, Retry::Idempotent, what, missing)
            .await
            .map(|_| ())
    }

    /// Lists at most one object under the prefix: it needs only the
    /// permission the proxy needs anyway (`s3:ListBucket`).
    async fn probe(&self) -> Result<()> {
        let what = "probe";
        let prefix = self.names.name("");
        let query = [
            ("list-type", "2"),
            ("max-keys", "1"),
            ("prefix", prefix.as_str()),
        ];
        let call = Call::new(Method::GET, self.api.url_with_query(None, &query));
        let deadline = self.api.http.deadline();
        let response = self
            .api
            .http
            .send(call, Retry::Idempotent, deadline, what)
            .await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(self
            .api
            .http
            .failure(response, deadline, what, |_, text| {
                Error::new(ErrorKind::Internal, text)
            })
            .await)
    }
}
