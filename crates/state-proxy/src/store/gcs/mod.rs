//! The `gcs` store: Google Cloud Storage through its JSON API.
//!
//! - Writes are `uploadType=multipart` uploads (object resource and bytes
//!   in one request) carrying `ifGenerationMatch`: `0` for create-only,
//!   the expected generation for `If-Match` and compare-and-swap. GCS
//!   checks it atomically with the write. (fake-gcs-server 1.54 enforces
//!   it on this upload type only, which is one more reason to use it.)
//! - The version of an object is its generation. Reads take it from the
//!   `x-goog-generation` header of the very answer that carried the bytes,
//!   writes from the object resource the upload answered with: never from
//!   a second call, which could see another writer's generation.
//! - `DELETE` with `If-Match` first compares the current generation (a
//!   stale tag answers 412 even where the backend would not check), then
//!   deletes with `ifGenerationMatch`, which GCS enforces atomically.
//!   fake-gcs-server 1.54 ignores that parameter, so against it a change
//!   landing between the two calls is deleted anyway.
//! - Listings send `maxResults` and follow `nextPageToken` to the end.
//! - Object names are `STATE_PREFIX/key` (compat), escaped as one path
//!   segment (`/`, spaces, `%`, `?`, `#`, non-ASCII all encoded).

mod api;
mod auth;
mod sign;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use self::api::Api;
use self::auth::{Auth, signing_error};
use self::sign::UrlToSign;
use super::http_client::{Call, Retry, header};
use super::listing::{self, Page};
use super::{
    AttrSpec, Body, Condition, Listing, Object, ObjectMeta, ObjectNames, Store, StoreInfo, Version,
    WriteMemory,
};
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;

/// Where production requests go (also the host of signed URLs).
const GOOGLE_HOST: &str = "storage.googleapis.com";
/// Listing page size: the largest GCS allows.
const PAGE_SIZE: u32 = 1000;
/// Content type of uploaded objects: the protocol carries none.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

static INFO: StoreInfo = StoreInfo {
    name: "gcs",
    attributes: &[
        AttrSpec {
            name: "url",
            settable: false,
        },
        AttrSpec {
            name: "signed_url",
            settable: false,
        },
        AttrSpec {
            name: "generation",
            settable: false,
        },
        AttrSpec {
            name: "content_type",
            settable: true,
        },
        AttrSpec {
            name: "storage_class",
            settable: false,
        },
        AttrSpec {
            name: "metageneration",
            settable: false,
        },
    ],
    conditional_delete: true,
    nested_keys: true,
    ttl: false,
    streamed_write: WriteMemory::Chunks,
    whole_reads: false,
};

/// Longest validity of a signed URL V4 signatures allow: seven days.
pub const MAX_SIGNED_URL_SECS: u64 = sign::MAX_EXPIRES_SECS;

/// Settings of the `gcs` store.
#[derive(Clone, Debug)]
pub struct GcsOptions {
    /// `STATE_BUCKET`.
    pub bucket: String,
    /// `STATE_PREFIX`.
    pub prefix: String,
    /// `GCS_PROJECT`: not needed by object calls on a named bucket; kept
    /// for the log, since the original proxy required it.
    pub project: Option<String>,
    /// `STORAGE_EMULATOR_HOST`, normalized to a base URL: no credentials.
    pub emulator: Option<String>,
    /// `STATE_PRESIGN_TTL`, at most seven days.
    pub presign_ttl: Duration,
    /// `STATE_BACKEND_TIMEOUT_SECS`.
    pub timeout: Duration,
}

pub struct GcsStore {
    api: Api,
    names: ObjectNames,
    presign_ttl: Duration,
}

/// The parts of a GCS object resource the store reads; GCS sends 64-bit
/// numbers as JSON strings, and fields may be absent (partial answers,
/// the emulator's answers), so everything is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ObjectResource {
    generation: Option<String>,
    metageneration: Option<String>,
    size: Option<String>,
    content_type: Option<String>,
    storage_class: Option<String>,
}

impl ObjectResource {
    fn version(&self, what: &str) -> Result<Version> {
        match &self.generation {
            Some(generation) if parse_generation(generation).is_some() => {
                Ok(Version::new(generation.clone()))
            }
            other => Err(Error::new(
                ErrorKind::Internal,
                format!("GCS {what}: the object resource has no valid generation ({other:?})"),
            )),
        }
    }

    fn meta(&self, what: &str) -> Result<ObjectMeta> {
        let size = self
            .size
            .as_deref()
            .and_then(|size| size.parse().ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Internal,
                    format!(
                        "GCS {what}: the object resource has no valid size ({:?})",
                        self.size
                    ),
                )
            })?;
        Ok(ObjectMeta {
            size,
            version: self.version(what)?,
        })
    }
}

/// One page of a listing.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ObjectPage {
    items: Vec<ListedObject>,
    prefixes: Vec<String>,
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ListedObject {
    name: String,
}

/// A generation as GCS compares it: a positive integer. Tags that are not
/// one can match no object.
fn parse_generation(token: &str) -> Option<u64> {
    token
        .parse::<u64>()
        .ok()
        .filter(|generation| *generation > 0)
}

/// The `ifGenerationMatch` value a condition needs, `None` for none.
fn generation_match(key: &Key, condition: &Condition) -> Result<Option<u64>> {
    match condition {
        Condition::None => Ok(None),
        Condition::IfAbsent => Ok(Some(0)),
        // `0` would mean "absent" to GCS, the opposite of If-Match.
        Condition::IfMatch(version) => match parse_generation(version.as_str()) {
            Some(generation) => Ok(Some(generation)),
            None => Err(Error::new(
                ErrorKind::PreconditionFailed,
                format!("'{key}' has no generation {version}"),
            )),
        },
    }
}

/// A `multipart/related` upload body: the object resource as JSON, then
/// the bytes. The boundary is 128 random bits, so it cannot be guessed
/// into the content.
fn multipart_head_and_tail(name: &str) -> Result<(String, Bytes, Bytes)> {
    let mut random = [0u8; 16];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| {
        Error::new(
            ErrorKind::Internal,
            "no randomness for a multipart boundary".to_owned(),
        )
    })?;
    let boundary: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let resource = serde_json::json!({ "name": name, "contentType": DEFAULT_CONTENT_TYPE });
    let head = format!(
        "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{resource}\r\n\
         --{boundary}\r\nContent-Type: {DEFAULT_CONTENT_TYPE}\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    Ok((
        format!("multipart/related; boundary={boundary}"),
        Bytes::from(head),
        Bytes::from(tail),
    ))
}

impl GcsStore {
    /// The store a configuration describes. No request is sent and no
    /// credential is looked up here: those wait for the first call.
    pub fn new(options: GcsOptions) -> Result<GcsStore> {
        let (base, auth) = match &options.emulator {
            Some(base) => (base.clone(), Auth::Anonymous),
            None => (format!("https://{GOOGLE_HOST}"), Auth::google()),
        };
        tracing::debug!(
            bucket = %options.bucket,
            project = ?options.project,
            endpoint = %base,
            "gcs store configured"
        );
        Self::with_api(
            Api::new(base, options.bucket, auth, options.timeout)?,
            &options.prefix,
            options.presign_ttl,
        )
    }

    fn with_api(api: Api, prefix: &str, presign_ttl: Duration) -> Result<GcsStore> {
        Ok(GcsStore {
            api,
            names: ObjectNames::new(prefix),
            presign_ttl,
        })
    }

    fn name(&self, key: &Key) -> String {
        self.names.name(key.as_str())
    }

    /// A 404 from a bucket-level call: the configured bucket is missing.
    fn missing_bucket(&self) -> impl FnOnce(&str, String) -> Error + '_ {
        move |_, text| {
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "{text} (is STATE_BUCKET={} an existing bucket?)",
                    self.api.bucket
                ),
            )
        }
    }

    /// The object resource of a key.
    async fn resource(&self, key: &Key) -> Result<ObjectResource> {
        let what = "metadata read";
        let call = Call::new(Method::GET, self.api.object_url(&self.name(key), &[]));
        self.api
            .json_call(call, Retry::Idempotent, what, |_, _| {
                Error::key_not_found(key)
            })
            .await
    }

    /// One page of object names under `name_prefix`.
    async fn list_page(
        &self,
        name_prefix: &str,
        delimiter: Option<&str>,
        token: Option<String>,
    ) -> Result<Page> {
        let what = "listing";
        let page_size = PAGE_SIZE.to_string();
        let mut query = vec![
            ("prefix", name_prefix),
            ("maxResults", page_size.as_str()),
            ("fields", "items(name),prefixes,nextPageToken"),
        ];
        if let Some(delimiter) = delimiter {
            query.push(("delimiter", delimiter));
        }
        if let Some(token) = &token {
            query.push(("pageToken", token.as_str()));
        }
        let call = Call::new(Method::GET, self.api.objects_url(&query));
        // Each page has its own deadline: a long listing is many calls.
        let page: ObjectPage = self
            .api
            .json_call(call, Retry::Idempotent, what, self.missing_bucket())
            .await?;
        let names = page
            .items
            .into_iter()
            .map(|item| item.name)
            .chain(page.prefixes)
            .collect();
        Ok(Page {
            names,
            next: page.next_page_token,
        })
    }

    async fn signed_url(&self, key: &Key) -> Result<String> {
        let signer = self.api.auth.signer().await?;
        let client_email = signer.client_email().await.map_err(signing_error)?;
        let timestamp = sign::timestamp(SystemTime::now());
        let unsigned = sign::prepare(&UrlToSign {
            method: "GET",
            scheme: "https",
            host: GOOGLE_HOST,
            bucket: &self.api.bucket,
            object: &self.name(key),
            client_email: &client_email,
            timestamp: &timestamp,
            expires_secs: self.presign_ttl.as_secs(),
        });
        // What GCS compares when it reports a signature mismatch.
        tracing::trace!(canonical_request = %unsigned.canonical_request, "signing a URL");
        let deadline = self.api.http.deadline();
        let signature =
            match tokio::time::timeout_at(deadline, signer.sign(&unsigned.string_to_sign)).await {
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        "signing the URL took longer than the backend timeout".to_owned(),
                    ));
                }
                Ok(signed) => signed.map_err(signing_error)?,
            };
        Ok(unsigned.with_signature(&signature))
    }
}

#[async_trait]
impl Store for GcsStore {
    fn info(&self) -> &StoreInfo {
        &INFO
    }

    async fn get(&self, key: &Key) -> Result<Object> {
        let what = "download";
        let deadline = self.api.http.deadline();
        let url = self.api.object_url(&self.name(key), &[("alt", "media")]);
        let response = self
            .api
            .http
            .send_ok(
                Call::new(Method::GET, url),
                Retry::Idempotent,
                deadline,
                what,
                |_, _| Error::key_not_found(key),
            )
            .await?;
        // The generation of exactly these bytes, from the same answer.
        let version = header(response.headers(), "x-goog-generation")
            .filter(|generation| parse_generation(generation).is_some())
            .map(Version::new)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Internal,
                    format!(
                        "GCS {what} of '{key}' answered without a valid x-goog-generation header"
                    ),
                )
            })?;
        self.api.http.downloaded(response, version, deadline).await
    }

    async fn head(&self, key: &Key) -> Result<ObjectMeta> {
        self.resource(key).await?.meta("metadata read")
    }

    async fn put(&self, key: &Key, body: Body, condition: Condition) -> Result<Version> {
        let what = "upload";
        let if_generation = generation_match(key, &condition)?;
        let name = self.name(key);
        let (content_type, head, tail) = multipart_head_and_tail(&name)?;
        let generation = if_generation.map(|generation| generation.to_string());
        let mut query = vec![("uploadType", "multipart")];
        if let Some(generation) = &generation {
            query.push(("ifGenerationMatch", generation));
        }
        let call = Call::new(Method::POST, self.api.upload_url(&query))
            .header("content-type", &content_type)?;
        let call = match body {
            // Sent as three parts, without copying the content.
            Body::Full(data) => call.body_parts(vec![head, data, tail]),
            Body::Stream { stream, .. } => {
                let framed = futures_util::stream::once(async move { Ok(head) })
                    .chain(stream)
                    .chain(futures_util::stream::once(async move { Ok(tail) }));
                call.stream(reqwest::Body::wrap_stream(framed))
            }
        };
        let resource: ObjectResource = self
            .api
            .json_call(call, Retry::UnlessSent, what, self.missing_bucket())
            .await?;
        resource.version(what)
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<()> {
        let what = "delete";
        let name = self.name(key);
        let expected = generation_match(key, &condition)?;
        if let Some(expected) = expected {
            // Checked here too, so that a stale tag is refused even by a
            // backend that ignores `ifGenerationMatch` on deletes.
            let current = match self.resource(key).await {
                Ok(resource) => parse_generation(resource.generation.as_deref().unwrap_or("")),
                Err(e) if e.kind() == ErrorKind::KeyNotFound => None,
                Err(other) => return Err(other),
            };
            if current != Some(expected) {
                return Err(Error::new(
                    ErrorKind::PreconditionFailed,
                    format!("'{key}' does not have generation {expected}"),
                ));
            }
        }
        let generation = expected.map(|expected| expected.to_string());
        let query: Vec<(&str, &str)> = generation
            .iter()
            .map(|generation| ("ifGenerationMatch", generation.as_str()))
            .collect();
        let call = Call::new(Method::DELETE, self.api.object_url(&name, &query));
        let deadline = self.api.http.deadline();
        let conditional = expected.is_some();
        self.api
            .http
            .send_ok(call, Retry::UnlessSent, deadline, what, |_, text| {
                if conditional {
                    // Gone since the check: If-Match on a missing key fails.
                    Error::new(ErrorKind::PreconditionFailed, text)
                } else {
                    Error::key_not_found(key)
                }
            })
            .await?;
        Ok(())
    }

    async fn list(&self, prefix: &str, delimiter: Option<&str>) -> Result<Listing> {
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let name_prefix = self.names.name(prefix);
        listing::follow_pages(&self.names, prefix, delimiter, |token| {
            self.list_page(&name_prefix, delimiter, token)
        })
        .await
    }

    /// `signed_url` only when the credentials give a signer (never for an
    /// emulator): reading it would answer 501 otherwise.
    async fn readable_attributes(&self) -> Vec<&'static str> {
        let can_sign = self.api.auth.signer().await.is_ok();
        INFO.attributes
            .iter()
            .map(|spec| spec.name)
            .filter(|name| can_sign || *name != "signed_url")
            .collect()
    }

    async fn get_attr(&self, key: &Key, name: &str) -> Result<String> {
        let resource = self.resource(key).await?;
        let missing = |field: &str| {
            Error::new(
                ErrorKind::Internal,
                format!("GCS metadata read of '{key}': the object resource has no {field}"),
            )
        };
        match name {
            "url" => Ok(format!("gs://{}/{}", self.api.bucket, self.name(key))),
            "signed_url" => self.signed_url(key).await,
            "generation" => Ok(resource.version("metadata read")?.to_string()),
            "content_type" => Ok(resource
                .content_type
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned())),
            "storage_class" => resource
                .storage_class
                .ok_or_else(|| missing("storageClass")),
            "metageneration" => resource
                .metageneration
                .ok_or_else(|| missing("metageneration")),
            _ => Err(Error::unsupported_attribute(name)),
        }
    }

    async fn set_attr(&self, key: &Key, name: &str, value: &str) -> Result<()> {
        if name != "content_type" {
            return Err(Error::unsupported_attribute(name));
        }
        if value.trim().is_empty() {
            return Err(Error::bad_request("content_type cannot be empty"));
        }
        let what = "metadata update";
        let deadline = self.api.http.deadline();
        let url = self
            .api
            .object_url(&self.name(key), &[("fields", "generation")]);
        let update = serde_json::json!({ "contentType": value }).to_string();
        let call = Call::new(Method::PATCH, url)
            .header("content-type", "application/json")?
            .body(Bytes::from(update));
        // Setting the same value twice is harmless, so GCS may be asked again.
        // The answer is not read: the emulator's differs from GCS's.
        self.api
            .http
            .send_ok(call, Retry::Idempotent, deadline, what, |_, _| {
                Error::key_not_found(key)
            })
            .await?;
        Ok(())
    }

    /// Lists at most one object under the prefix: it needs only the
    /// permission the proxy needs anyway (`storage.objects.list`), where a
    /// bucket metadata read would need `storage.buckets.get`, which
    /// object-level roles lack.
    async fn probe(&self) -> Result<()> {
        let what = "probe";
        let deadline = self.api.http.deadline();
        let url = self.api.objects_url(&[
            ("prefix", self.names.name("").as_str()),
            ("maxResults", "1"),
            ("fields", "nextPageToken"),
        ]);
        let response = self
            .api
            .http
            .send(
                Call::new(Method::GET, url),
                Retry::Idempotent,
                deadline,
                what,
            )
            .await?;
        if response.status() == StatusCode::OK {
            return Ok(());
        }
        Err(self
            .api
            .http
            .failure(response, deadline, what, self.missing_bucket())
            .await)
    }
}
