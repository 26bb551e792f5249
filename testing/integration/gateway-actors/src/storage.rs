//! Reading what the crew stored, straight from the storage emulator's own
//! API, never through a state proxy: one small helper per storage kind,
//! bound to one crew actor's bucket and prefix: S3 (moto), GCS
//! (fake-gcs-server's JSON API) and Redis (keys `STATE_PREFIX:key`, the
//! profile's stand-in for a bucket).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use conformance::Backend;
use conformance::backend::{GcsBackend, RedisBackend, S3Backend};
use futures_util::StreamExt;
use http::Method;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::profile::Env;

/// Keys and the pages the emulator needed to list them.
pub struct Listing {
    pub keys: Vec<String>,
    pub pages: usize,
}

/// One crew actor's storage, in keys relative to its prefix.
#[async_trait]
pub trait Storage: Send + Sync {
    /// Where, for messages (`s3://bucket/prefix`).
    fn describe(&self) -> String;
    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, String>;
    /// Every key, following every page.
    async fn list(&self) -> Result<Listing, String>;
    async fn delete(&self, key: &str) -> Result<(), String>;
    /// Stores an empty object (to fill a bucket for the paging test).
    async fn put_empty(&self, key: &str) -> Result<(), String>;
}

/// Objects written or deleted at once.
const IN_FLIGHT: usize = 16;

type Call<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Runs calls, [`IN_FLIGHT`] at a time; the first error ends it.
async fn bounded(calls: Vec<Call<'_>>) -> Result<(), String> {
    let mut running = futures_util::stream::iter(calls).buffer_unordered(IN_FLIGHT);
    while let Some(done) = running.next().await {
        done?;
    }
    Ok(())
}

/// Deletes every key; returns how many and over how many pages they were
/// listed.
pub async fn empty(storage: &dyn Storage) -> Result<Listing, String> {
    let listing = storage.list().await?;
    let mut calls = Vec::with_capacity(listing.keys.len());
    for key in &listing.keys {
        calls.push(storage.delete(key));
    }
    bounded(calls).await?;
    Ok(listing)
}

/// Stores `count` empty objects under `prefix`.
pub async fn fill(storage: &dyn Storage, prefix: &str, count: usize) -> Result<(), String> {
    let keys: Vec<String> = (0..count).map(|i| format!("{prefix}{i:05}")).collect();
    let mut calls = Vec::with_capacity(keys.len());
    for key in &keys {
        calls.push(storage.put_empty(key));
    }
    bounded(calls).await
}

/// The helper for a storage kind, from a crew proxy's environment (the
/// emulator's address as it really is, not through the outage
/// forwarder).
pub fn for_proxy(kind: &str, env: &Env) -> Result<Arc<dyn Storage>, String> {
    match kind {
        "s3" => Ok(Arc::new(S3 {
            backend: S3Backend::from_env(env)?,
        })),
        "gcs" => Ok(Arc::new(Gcs::from_env(env)?)),
        "redis" => Ok(Arc::new(Redis::from_env(env)?)),
        other => Err(format!("no storage helper for {other:?} (s3, gcs, redis)")),
    }
}

/// The variable of a crew proxy's environment that holds the storage
/// address, which the outage forwarder takes over.
pub fn endpoint_var(kind: &str) -> Result<&'static str, String> {
    match kind {
        "s3" => Ok("AWS_ENDPOINT_URL"),
        "gcs" => Ok("STORAGE_EMULATOR_HOST"),
        "redis" => Ok("REDIS_URL"),
        other => Err(format!("no storage helper for {other:?} (s3, gcs, redis)")),
    }
}

/// Everything but RFC 3986's unreserved characters and `/`: an object
/// name in a path-style URL.
const OBJECT_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

struct S3 {
    backend: S3Backend,
}

impl S3 {
    fn url(&self, key: &str) -> String {
        let name = self.backend.name(key);
        format!(
            "{}/{}/{}",
            self.backend.endpoint,
            self.backend.bucket,
            utf8_percent_encode(&name, OBJECT_PATH)
        )
    }

    async fn expect(&self, method: Method, key: &str, ok: &[u16]) -> Result<(), String> {
        let url = self.url(key);
        let answer = self.backend.call(method.clone(), &url).await?;
        if ok.contains(&answer.status) {
            Ok(())
        } else {
            Err(format!("{method} {url}: status {}", answer.status))
        }
    }
}

#[async_trait]
impl Storage for S3 {
    fn describe(&self) -> String {
        self.backend.describe()
    }

    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.backend.read(key).await
    }

    async fn list(&self) -> Result<Listing, String> {
        let prefix = match self.backend.prefix.as_str() {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        };
        let (names, pages) = self.backend.all_names(&prefix, 1000).await?;
        let keys = names
            .into_iter()
            .map(|name| name[prefix.len()..].to_owned())
            .collect();
        Ok(Listing { keys, pages })
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        self.expect(Method::DELETE, key, &[200, 204, 404]).await
    }

    async fn put_empty(&self, key: &str) -> Result<(), String> {
        self.expect(Method::PUT, key, &[200]).await
    }
}

fn setting<'a>(env: &'a Env, key: &str) -> Result<&'a str, String> {
    env.get(key)
        .map(String::as_str)
        .ok_or_else(|| format!("the crew proxy's environment has no {key}"))
}

/// Objects of a fake-gcs-server bucket, through its JSON API.
struct Gcs {
    backend: GcsBackend,
    http: reqwest::Client,
}

impl Gcs {
    fn from_env(env: &Env) -> Result<Gcs, String> {
        let backend = GcsBackend::new(
            setting(env, "STORAGE_EMULATOR_HOST")?,
            setting(env, "STATE_BUCKET")?,
            env.get("STATE_PREFIX").map_or("", String::as_str),
        )?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Gcs { backend, http })
    }

    /// What the full name of each of this helper's keys starts with.
    fn name_prefix(&self) -> String {
        match self.backend.prefix.as_str() {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        }
    }

    async fn expect(&self, request: reqwest::RequestBuilder, ok: &[u16]) -> Result<(), String> {
        let answer = request.send().await.map_err(|e| e.to_string())?;
        let status = answer.status().as_u16();
        if ok.contains(&status) {
            Ok(())
        } else {
            Err(format!("{}: status {status}", answer.url()))
        }
    }
}

#[async_trait]
impl Storage for Gcs {
    fn describe(&self) -> String {
        self.backend.describe()
    }

    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.backend.read(key).await
    }

    async fn list(&self) -> Result<Listing, String> {
        let prefix = self.name_prefix();
        let (names, pages) = self.backend.all_names(&prefix, 1000).await?;
        let keys = names
            .into_iter()
            .map(|name| name[prefix.len()..].to_owned())
            .collect();
        Ok(Listing { keys, pages })
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}",
            self.backend.endpoint,
            utf8_percent_encode(&self.backend.bucket, NON_ALPHANUMERIC),
            utf8_percent_encode(&self.backend.name(key), NON_ALPHANUMERIC)
        );
        self.expect(self.http.delete(url), &[200, 204, 404]).await
    }

    async fn put_empty(&self, key: &str) -> Result<(), String> {
        let url = format!(
            "{}/upload/storage/v1/b/{}/o",
            self.backend.endpoint,
            utf8_percent_encode(&self.backend.bucket, NON_ALPHANUMERIC),
        );
        let request = self
            .http
            .post(url)
            .query(&[("uploadType", "media"), ("name", &self.backend.name(key))])
            .body(Vec::new());
        self.expect(request, &[200]).await
    }
}

/// Keys of a private redis-server, `STATE_PREFIX:key`.
struct Redis {
    backend: RedisBackend,
    client: redis::Client,
}

impl Redis {
    fn from_env(env: &Env) -> Result<Redis, String> {
        let url = setting(env, "REDIS_URL")?.to_owned();
        let client = redis::Client::open(url.as_str()).map_err(|e| format!("{url}: {e}"))?;
        let prefix = env.get("STATE_PREFIX").cloned().unwrap_or_default();
        Ok(Redis {
            backend: RedisBackend { url, prefix },
            client,
        })
    }

    fn name(&self, key: &str) -> String {
        match self.backend.prefix.as_str() {
            "" => key.to_owned(),
            prefix => format!("{prefix}:{key}"),
        }
    }

    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, String> {
        self.client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.backend.url))
    }
}

#[async_trait]
impl Storage for Redis {
    fn describe(&self) -> String {
        self.backend.describe()
    }

    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.backend.read(key).await
    }

    /// `SCAN` with `MATCH` and `COUNT`, following the cursor: a page is
    /// one `SCAN` call.
    async fn list(&self) -> Result<Listing, String> {
        let mut connection = self.connection().await?;
        let prefix = self.name("");
        // Glob characters in the prefix match themselves.
        let mut pattern = String::new();
        for c in prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        let (mut keys, mut pages, mut cursor) = (Vec::new(), 0, 0u64);
        loop {
            let (next, names): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await
                .map_err(|e| format!("SCAN {pattern}: {e}"))?;
            pages += 1;
            keys.extend(
                names
                    .into_iter()
                    .map(|name| name[prefix.len()..].to_owned()),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may return a key twice.
        keys.sort();
        keys.dedup();
        Ok(Listing { keys, pages })
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        let mut connection = self.connection().await?;
        redis::cmd("DEL")
            .arg(self.name(key))
            .query_async::<()>(&mut connection)
            .await
            .map_err(|e| format!("DEL {}: {e}", self.name(key)))
    }

    async fn put_empty(&self, key: &str) -> Result<(), String> {
        let mut connection = self.connection().await?;
        redis::cmd("SET")
            .arg(self.name(key))
            .arg("")
            .query_async::<()>(&mut connection)
            .await
            .map_err(|e| format!("SET {}: {e}", self.name(key)))
    }
}
