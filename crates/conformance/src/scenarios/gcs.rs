//! GCS scenarios: what the protocol suite cannot see from the socket
//! alone. Listings over more than one backend page, object names that
//! need escaping, and generations, all checked against the emulator's own
//! JSON API.

use std::collections::BTreeMap;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use state_client::{Client, Condition};

use crate::backend::{Backend, GcsBackend};
use crate::component::Proxy;

/// More objects than one GCS page (1000) holds.
const PAGED_OBJECTS: usize = 1100;
/// Objects in sub-"directories" of the paged listing.
const NESTED_OBJECTS: usize = 3;
/// Requests in flight while filling and emptying the bucket.
const PARALLEL: usize = 16;

/// Runs every GCS scenario; returns measurements and failures.
pub async fn run(
    env: &BTreeMap<String, String>,
    proxies: &[Proxy],
    namespace: &str,
) -> (Value, Vec<String>) {
    let mut measures = json!({});
    let mut failures = Vec::new();
    let backend = match backend(env) {
        Ok(backend) => backend,
        Err(e) => return (measures, vec![format!("gcs scenarios: {e}")]),
    };
    let client = Client::new(&proxies[0].socket);
    match listing_across_pages(&client, &backend, &format!("{namespace}/pages")).await {
        Ok(measure) => measures["paged_listing"] = measure,
        Err(e) => failures.push(format!("gcs paged listing: {e}")),
    }
    if let Err(e) = names_in_the_emulator(&client, &backend, &format!("{namespace}/names")).await {
        failures.push(format!("gcs object names: {e}"));
    }
    if let Err(e) = versions_are_generations(&client, &backend, &format!("{namespace}/gen")).await {
        failures.push(format!("gcs generations: {e}"));
    }
    (measures, failures)
}

fn backend(env: &BTreeMap<String, String>) -> Result<GcsBackend, String> {
    let get = |name: &str| {
        env.get(name)
            .map(String::as_str)
            .ok_or(format!("{name} is not set"))
    };
    GcsBackend::new(
        get("STORAGE_EMULATOR_HOST")?,
        get("STATE_BUCKET")?,
        env.get("STATE_PREFIX").map_or("", String::as_str),
    )
}

async fn put_all(client: &Client, keys: &[String]) -> Result<(), String> {
    futures_util::stream::iter(keys)
        .map(|key| async move {
            client
                .put(key, key.clone(), Condition::None)
                .await
                .map(|_| ())
                .map_err(|e| format!("PUT {key}: {e}"))
        })
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await
}

async fn delete_all(client: &Client, keys: &[String]) -> Result<(), String> {
    futures_util::stream::iter(keys)
        .map(|key| async move {
            client
                .delete(key, Condition::None)
                .await
                .map_err(|e| format!("DELETE {key}: {e}"))
        })
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await
}

/// Every object name under a full name prefix, page by page, with the
/// number of pages the emulator needed at `page_size`.
async fn emulator_names(
    backend: &GcsBackend,
    name_prefix: &str,
    page_size: u32,
) -> Result<(Vec<String>, usize), String> {
    let (mut names, mut pages, mut token) = (Vec::new(), 0, None::<String>);
    loop {
        let page = backend
            .list_page(name_prefix, None, page_size, token.as_deref())
            .await?;
        pages += 1;
        names.extend(page.names);
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => return Ok((names, pages)),
        }
    }
}

/// 1100 objects and a few nested ones: the emulator itself needs two
/// pages for them, and the proxy must list every one, recursively and by
/// directory.
async fn listing_across_pages(
    client: &Client,
    backend: &GcsBackend,
    dir: &str,
) -> Result<Value, String> {
    let mut keys: Vec<String> = (0..PAGED_OBJECTS)
        .map(|i| format!("{dir}/{i:05}"))
        .collect();
    let nested: Vec<String> = (0..NESTED_OBJECTS)
        .map(|i| format!("{dir}/sub{i}/x"))
        .collect();
    keys.extend(nested.iter().cloned());
    keys.sort();
    let started = Instant::now();
    put_all(client, &keys).await?;
    let fill_seconds = started.elapsed().as_secs_f64();

    let (names, pages) = emulator_names(backend, &backend.name(&format!("{dir}/")), 1000).await?;
    if names.len() != keys.len() || pages < 2 {
        return Err(format!(
            "the emulator lists {} objects in {pages} page(s); expected {} over at least 2",
            names.len(),
            keys.len()
        ));
    }

    let started = Instant::now();
    let recursive = client
        .list(&format!("{dir}/"), Some(""))
        .await
        .map_err(|e| format!("recursive listing: {e}"))?;
    let list_seconds = started.elapsed().as_secs_f64();
    if recursive.keys != keys || !recursive.prefixes.is_empty() {
        return Err(format!(
            "recursive listing has {} keys and {} prefixes; expected all {} keys in byte order",
            recursive.keys.len(),
            recursive.prefixes.len(),
            keys.len()
        ));
    }
    let by_directory = client
        .list(&format!("{dir}/"), Some("/"))
        .await
        .map_err(|e| format!("listing with delimiter: {e}"))?;
    let flat: Vec<String> = keys
        .iter()
        .filter(|k| !nested.contains(k))
        .cloned()
        .collect();
    let prefixes: Vec<String> = (0..NESTED_OBJECTS)
        .map(|i| format!("{dir}/sub{i}/"))
        .collect();
    if by_directory.keys != flat || by_directory.prefixes != prefixes {
        return Err(format!(
            "listing with '/' has {} keys and prefixes {:?}; expected {} keys and {prefixes:?}",
            by_directory.keys.len(),
            by_directory.prefixes,
            flat.len()
        ));
    }

    delete_all(client, &keys).await?;
    let left = client
        .list(&format!("{dir}/"), Some(""))
        .await
        .map_err(|e| format!("listing after deleting: {e}"))?;
    let (in_emulator, _) = emulator_names(backend, &backend.name(&format!("{dir}/")), 1000).await?;
    if !left.keys.is_empty() || !in_emulator.is_empty() {
        return Err(format!(
            "{} keys listed and {} objects in the emulator after deleting them all",
            left.keys.len(),
            in_emulator.len()
        ));
    }
    println!(
        "gcs: {} objects written in {fill_seconds:.1} s, listed over {pages} emulator pages in {list_seconds:.2} s",
        keys.len()
    );
    Ok(json!({
        "objects": keys.len(),
        "emulator_pages": pages,
        "fill_seconds": fill_seconds,
        "list_seconds": list_seconds,
    }))
}

/// Keys whose object names need escaping land under exactly that name,
/// and are found again by listing and deleting.
async fn names_in_the_emulator(
    client: &Client,
    backend: &GcsBackend,
    dir: &str,
) -> Result<(), String> {
    let relative = [
        "sp ace/file name.txt",
        "naïve/日本語/ключ",
        "pct%/100%25",
        "what?/hash#/plus+semi;eq=amp&",
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
        let metadata = backend
            .metadata(key)
            .await?
            .ok_or_else(|| format!("no metadata for {:?}", backend.name(key)))?;
        if metadata["name"].as_str() != Some(backend.name(key).as_str()) {
            return Err(format!(
                "object of {key:?} is named {} in the emulator",
                metadata["name"]
            ));
        }
    }
    let (mut names, _) = emulator_names(backend, &backend.name(&format!("{dir}/")), 1000).await?;
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
    let expected_prefixes: Vec<String> = ["deep/", "naïve/", "pct%/", "sp ace/", "what?/"]
        .iter()
        .map(|p| format!("{dir}/{p}"))
        .collect();
    if !listing.keys.is_empty() || listing.prefixes != expected_prefixes {
        return Err(format!(
            "listing by directory gave {listing:?}; expected prefixes {expected_prefixes:?}"
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

/// The ETag of a write and of a read is the object's generation in the
/// emulator, and `/meta` says the same.
async fn versions_are_generations(
    client: &Client,
    backend: &GcsBackend,
    dir: &str,
) -> Result<(), String> {
    let key = format!("{dir}/object");
    let written = client
        .put(&key, "v1", Condition::None)
        .await
        .map_err(|e| format!("PUT: {e}"))?;
    let generation = |metadata: Option<Value>| {
        metadata
            .and_then(|m| m["generation"].as_str().map(str::to_owned))
            .ok_or_else(|| format!("no generation for {key} in the emulator"))
    };
    let stored = generation(backend.metadata(&key).await?)?;
    if written.trim_matches('"') != stored {
        return Err(format!(
            "PUT answered ETag {written}; the emulator has generation {stored}"
        ));
    }
    let read = client.get(&key).await.map_err(|e| format!("GET: {e}"))?;
    if read.etag.as_deref().map(|e| e.trim_matches('"')) != Some(stored.as_str()) {
        return Err(format!(
            "GET answered ETag {:?}; generation is {stored}",
            read.etag
        ));
    }
    let attr = client
        .get_attr(&key, "generation")
        .await
        .map_err(|e| format!("GET /meta generation: {e}"))?;
    if attr != stored {
        return Err(format!(
            "/meta generation is {attr}; the emulator has {stored}"
        ));
    }
    let rewritten = client
        .put(&key, "v2", Condition::IfMatch(written.clone()))
        .await
        .map_err(|e| format!("PUT If-Match: {e}"))?;
    let after = generation(backend.metadata(&key).await?)?;
    if rewritten.trim_matches('"') != after || after == stored {
        return Err(format!(
            "after a conditional write the ETag is {rewritten} and the generation {after} (was {stored})"
        ));
    }
    client
        .delete(&key, Condition::None)
        .await
        .map_err(|e| format!("DELETE: {e}"))
}
