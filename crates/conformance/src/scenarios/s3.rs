//! S3 scenarios: what the protocol suite cannot see from the socket
//! alone, checked against moto through the S3 API itself. Listings over
//! more than one backend page, object names that need escaping, ETags,
//! content types, presigned URLs that really download the object, and for
//! passthrough the multipart uploads: several parts, a condition on the
//! completion, and no object nor open upload left by one cut off midway.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{Value, json};
use state_client::{Client, Condition, KEY_ENCODING, PERCENT, key_path};

use super::buckets::{delete_all, listing_across_pages, put_all};
use crate::Profile;
use crate::backend::{Backend, S3Backend};
use crate::component::Proxy;
use crate::raw::RawConnection;

/// A streamed body of several multipart parts (the proxy cuts 8 MiB parts).
const MULTIPART_BYTES: usize = 20 << 20;
/// How long an aborted upload may take to disappear from the emulator.
const ABORT_LIMIT: Duration = Duration::from_secs(10);

/// Runs every S3 scenario that applies; returns measurements and failures.
pub async fn run(
    profile: &Profile,
    env: &BTreeMap<String, String>,
    proxies: &[Proxy],
    namespace: &str,
) -> (Value, Vec<String>) {
    let mut measures = json!({});
    let mut failures = Vec::new();
    let backend = match S3Backend::from_env(env) {
        Ok(backend) => backend,
        Err(e) => return (measures, vec![format!("s3 scenarios: {e}")]),
    };
    let client = Client::new(&proxies[0].socket);
    match listing_across_pages(&client, &backend, "s3", &format!("{namespace}/pages")).await {
        Ok(measure) => measures["paged_listing"] = measure,
        Err(e) => failures.push(format!("s3 paged listing: {e}")),
    }
    if let Err(e) = names_in_the_emulator(&client, &backend, &format!("{namespace}/names")).await {
        failures.push(format!("s3 object names: {e}"));
    }
    if let Err(e) = versions_are_etags(&client, &backend, &format!("{namespace}/etag")).await {
        failures.push(format!("s3 etags: {e}"));
    }
    if let Err(e) = metadata_in_the_emulator(&client, &backend, &format!("{namespace}/meta")).await
    {
        failures.push(format!("s3 metadata: {e}"));
    }
    if profile.streams() {
        let dir = format!("{namespace}/multipart");
        if let Err(e) = multipart_uploads(&client, &backend, &dir).await {
            failures.push(format!("s3 multipart uploads: {e}"));
        }
        if let Err(e) = cut_off_multipart_upload(proxies, &client, &backend, &dir).await {
            failures.push(format!("s3 cut-off multipart upload: {e}"));
        }
    }
    (measures, failures)
}

/// A proxy on a bucket that does not exist answers 503 to every keyed
/// call, HEAD, `/meta` and DELETE (with and without `If-Match`) included:
/// their 404s are told from a missing key by a `HeadBucket`.
pub async fn missing_bucket(proxy: &Proxy) -> Result<(), String> {
    let client = Client::new(&proxy.socket);
    let key = "missing-bucket/k";
    let path = key_path("keys", key);
    let meta = key_path("meta", key);
    let percent = |extra: &[(&'static str, &'static str)]| {
        let mut headers = HeaderMap::new();
        headers.insert(KEY_ENCODING, HeaderValue::from_static(PERCENT));
        for (name, value) in extra {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    };
    let calls = [
        (Method::GET, path.clone(), percent(&[])),
        (Method::HEAD, path.clone(), percent(&[])),
        (Method::PUT, path.clone(), percent(&[])),
        (Method::DELETE, path.clone(), percent(&[])),
        (
            Method::DELETE,
            path.clone(),
            percent(&[("if-match", "\"0\"")]),
        ),
        (Method::PUT, path.clone(), percent(&[("if-match", "\"0\"")])),
        (Method::GET, meta.clone(), percent(&[])),
        (Method::GET, format!("{meta}?attr=etag"), percent(&[])),
        (
            Method::GET,
            "/keys/?prefix=missing-bucket/".to_owned(),
            percent(&[]),
        ),
    ];
    let count = calls.len();
    for (method, path, headers) in calls {
        let what = format!("{method} {path} ({headers:?})");
        let answer = client
            .raw(method, &path, headers, "x")
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        if answer.status.as_u16() != 503 {
            return Err(format!(
                "{what} on a missing bucket answered {}, not 503: {:?}",
                answer.status, answer.body
            ));
        }
    }
    println!("missing bucket: {count} calls (HEAD, /meta, DELETE, If-Match, ...) answered 503");
    Ok(())
}

/// Keys whose object names need escaping land under exactly that name,
/// and are found again by listing (also with a delimiter other than `/`)
/// and deleting.
async fn names_in_the_emulator(
    client: &Client,
    backend: &S3Backend,
    dir: &str,
) -> Result<(), String> {
    let relative = [
        "sp ace/file name.txt",
        "naïve/日本語/ключ",
        "pct%/100%25",
        "what?/hash#/plus+semi;eq=amp&",
        "xml<&>'\"/x",
        "deep/a/b/c/d",
    ];
    let keys: Vec<String> = relative.iter().map(|r| format!("{dir}/{r}")).collect();
    put_all(client, &keys).await?;
    for key in &keys {
        let stored = backend.read(key).await?;
        if stored.as_deref() != Some(key.as_bytes()) {
            return Err(format!(
                "object {:?} in the emulator holds {stored:?}",
                backend.name(key)
            ));
        }
    }
    let (mut names, _) = backend
        .all_names(&backend.name(&format!("{dir}/")), 1000)
        .await?;
    names.sort();
    let mut expected: Vec<String> = keys.iter().map(|k| backend.name(k)).collect();
    expected.sort();
    if names != expected {
        return Err(format!(
            "the emulator holds {names:?}; expected {expected:?}"
        ));
    }
    let listing = client
        .list(&format!("{dir}/"), Some("/"))
        .await
        .map_err(|e| format!("listing: {e}"))?;
    let expected_prefixes: Vec<String> = [
        "deep/",
        "naïve/",
        "pct%/",
        "sp ace/",
        "what?/",
        "xml<&>'\"/",
    ]
    .iter()
    .map(|p| format!("{dir}/{p}"))
    .collect();
    if !listing.keys.is_empty() || listing.prefixes != expected_prefixes {
        return Err(format!(
            "listing by directory gave {listing:?}; expected prefixes {expected_prefixes:?}"
        ));
    }
    let by_space = client
        .list(&format!("{dir}/sp"), Some(" "))
        .await
        .map_err(|e| format!("listing with delimiter ' ': {e}"))?;
    if !by_space.keys.is_empty() || by_space.prefixes != [format!("{dir}/sp ")] {
        return Err(format!(
            "listing with delimiter ' ' gave {by_space:?}; expected the prefix '{dir}/sp '"
        ));
    }
    delete_all(client, &keys).await?;
    for key in &keys {
        if backend.read(key).await?.is_some() {
            return Err(format!(
                "{:?} is still in the emulator after DELETE",
                backend.name(key)
            ));
        }
    }
    Ok(())
}

/// The ETag of a write and of a read is the object's ETag in the
/// emulator, and `/meta` says the same.
async fn versions_are_etags(client: &Client, backend: &S3Backend, dir: &str) -> Result<(), String> {
    let key = format!("{dir}/object");
    let written = client
        .put(&key, "v1", Condition::None)
        .await
        .map_err(|e| format!("PUT: {e}"))?;
    let etag = |headers: Option<reqwest::header::HeaderMap>| {
        headers
            .and_then(|h| {
                h.get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .ok_or_else(|| format!("no ETag for {key} in the emulator"))
    };
    let stored = etag(backend.head(&key).await?)?;
    if written != stored {
        return Err(format!(
            "PUT answered ETag {written}; the emulator has {stored}"
        ));
    }
    let read = client.get(&key).await.map_err(|e| format!("GET: {e}"))?;
    if read.etag.as_deref() != Some(stored.as_str()) {
        return Err(format!(
            "GET answered ETag {:?}; the emulator has {stored}",
            read.etag
        ));
    }
    let attr = client
        .get_attr(&key, "etag")
        .await
        .map_err(|e| format!("GET /meta etag: {e}"))?;
    if attr != stored {
        return Err(format!("/meta etag is {attr}; the emulator has {stored}"));
    }
    let rewritten = client
        .put(&key, "v2", Condition::IfMatch(written.clone()))
        .await
        .map_err(|e| format!("PUT If-Match: {e}"))?;
    let after = etag(backend.head(&key).await?)?;
    if rewritten != after || after == stored {
        return Err(format!(
            "after a conditional write the ETag is {rewritten} and the emulator's {after} (was {stored})"
        ));
    }
    client
        .delete(&key, Condition::None)
        .await
        .map_err(|e| format!("DELETE: {e}"))
}

/// `content_type` set through `/meta` is the object's type in the
/// emulator, the content stays, and the presigned URL downloads the object
/// without any credentials.
async fn metadata_in_the_emulator(
    client: &Client,
    backend: &S3Backend,
    dir: &str,
) -> Result<(), String> {
    let key = format!("{dir}/doc.json");
    client
        .put(&key, "{\"a\":1}", Condition::None)
        .await
        .map_err(|e| format!("PUT: {e}"))?;
    client
        .set_attr(&key, "content_type", "application/json")
        .await
        .map_err(|e| format!("PUT /meta content_type: {e}"))?;
    let headers = backend
        .head(&key)
        .await?
        .ok_or("the object is gone after setting its content type")?;
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    if content_type != Some("application/json") {
        return Err(format!("the emulator has content type {content_type:?}"));
    }
    if backend.read(&key).await?.as_deref() != Some(b"{\"a\":1}".as_slice()) {
        return Err("setting the content type changed the content".into());
    }
    let url = client
        .get_attr(&key, "presigned_url")
        .await
        .map_err(|e| format!("GET /meta presigned_url: {e}"))?;
    if !url.starts_with(&backend.endpoint) || !url.contains("X-Amz-Signature=") {
        return Err(format!(
            "presigned URL {url} is not a signed URL of the emulator"
        ));
    }
    let download = reqwest::get(&url)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = download.status();
    let body = download.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() || body.as_ref() != b"{\"a\":1}" {
        return Err(format!("the presigned URL answered {status} with {body:?}"));
    }
    client
        .delete(&key, Condition::None)
        .await
        .map_err(|e| format!("DELETE: {e}"))
}

/// A body made of `length` bytes of `fill`, sent in 64 KiB chunks.
fn filled(
    fill: u8,
    length: usize,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunk = Bytes::from(vec![fill; 64 << 10]);
    futures_util::stream::iter((0..length).step_by(chunk.len()))
        .map(move |offset| Ok(chunk.slice(..chunk.len().min(length - offset))))
}

/// A streamed body of several parts becomes one multipart object (its
/// ETag says how many parts); create-if-absent onto an existing key fails
/// with 412 and leaves the object and no open upload behind.
async fn multipart_uploads(client: &Client, backend: &S3Backend, dir: &str) -> Result<(), String> {
    let key = format!("{dir}/parts");
    let etag = client
        .put_stream(
            &key,
            filled(b'a', MULTIPART_BYTES),
            None,
            Condition::IfAbsent,
        )
        .await
        .map_err(|e| format!("streamed create-if-absent: {e}"))?;
    if !etag.trim_matches('"').ends_with("-3") {
        return Err(format!(
            "a streamed {MULTIPART_BYTES}-byte body has ETag {etag}; expected a multipart ETag of 3 parts"
        ));
    }
    let refused = client
        .put_stream(
            &key,
            filled(b'b', MULTIPART_BYTES),
            None,
            Condition::IfAbsent,
        )
        .await;
    match refused {
        Err(e) if e.status() == Some(412) => {}
        other => {
            return Err(format!(
                "a second streamed create answered {other:?}, expected 412"
            ));
        }
    }
    let stored = backend.read(&key).await?.ok_or("the object is gone")?;
    if stored.len() != MULTIPART_BYTES || stored.iter().any(|b| *b != b'a') {
        return Err("the refused create changed the object".into());
    }
    let replaced = client
        .put_stream(
            &key,
            filled(b'c', MULTIPART_BYTES),
            Some(MULTIPART_BYTES as u64),
            Condition::IfMatch(etag.clone()),
        )
        .await
        .map_err(|e| format!("streamed write with If-Match: {e}"))?;
    let stale = client
        .put_stream(
            &key,
            filled(b'd', MULTIPART_BYTES),
            None,
            Condition::IfMatch(etag),
        )
        .await;
    match stale {
        Err(e) if e.status() == Some(412) => {}
        other => {
            return Err(format!(
                "a streamed write with a stale If-Match answered {other:?}, expected 412"
            ));
        }
    }
    let head = backend.head(&key).await?.ok_or("the object is gone")?;
    if head.get("etag").and_then(|v| v.to_str().ok()) != Some(replaced.as_str()) {
        return Err(format!(
            "the emulator's ETag is {:?}, the proxy answered {replaced}",
            head.get("etag")
        ));
    }
    wait_for_no_uploads(backend, &key).await?;
    client
        .delete(&key, Condition::None)
        .await
        .map_err(|e| format!("DELETE: {e}"))
}

/// Waits (bounded) until no multipart upload is open for `key`.
async fn wait_for_no_uploads(backend: &S3Backend, key: &str) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let open = backend.open_uploads(&backend.name(key)).await?;
        if open.is_empty() {
            return Ok(());
        }
        if started.elapsed() > ABORT_LIMIT {
            return Err(format!(
                "multipart uploads {open:?} of {key} are still open"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client that goes away after 20 MiB of a 40 MiB upload: the proxy
/// has started a multipart upload by then; it must abort it, leaving the
/// old object and no open upload.
async fn cut_off_multipart_upload(
    proxies: &[Proxy],
    client: &Client,
    backend: &S3Backend,
    dir: &str,
) -> Result<(), String> {
    let key = format!("{dir}/cut");
    client
        .put(&key, "old", Condition::None)
        .await
        .map_err(|e| format!("PUT the old value: {e}"))?;
    let path = state_client::key_path("keys", &key);
    let mut connection = RawConnection::open(&proxies[0].socket).await?;
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        2 * MULTIPART_BYTES
    );
    connection.send(head.as_bytes()).await?;
    let chunk = vec![b'n'; 1 << 20];
    for _ in 0..MULTIPART_BYTES >> 20 {
        connection.send(&chunk).await?;
    }
    connection.shutdown_write().await?;
    match connection.answer(false).await {
        Ok(answer) if answer.status >= 400 => {}
        Ok(answer) => return Err(format!("a cut-off upload answered {}", answer.status)),
        Err(e) if e.starts_with("connection closed") => {}
        Err(e) => return Err(e),
    }
    let object = client
        .get(&key)
        .await
        .map_err(|e| format!("GET after the cut-off upload: {e}"))?;
    if object.data != "old" {
        return Err(format!(
            "after a cut-off upload the value has {} bytes",
            object.data.len()
        ));
    }
    wait_for_no_uploads(backend, &key).await?;
    client
        .delete(&key, Condition::None)
        .await
        .map_err(|e| format!("DELETE: {e}"))
}
