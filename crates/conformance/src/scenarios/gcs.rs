//! GCS scenarios: what the protocol suite cannot see from the socket
//! alone. Listings over more than one backend page, object names that
//! need escaping, and generations, all checked against the emulator's own
//! JSON API.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use state_client::{Client, Condition};

use super::buckets::{delete_all, listing_across_pages, put_all};
use crate::backend::{Backend, GcsBackend};
use crate::component::Proxy;

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
    match listing_across_pages(&client, &backend, "gcs", &format!("{namespace}/pages")).await {
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
