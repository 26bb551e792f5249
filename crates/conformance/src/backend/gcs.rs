//! Objects read straight from a GCS emulator (fake-gcs-server) through
//! its own JSON API, bypassing the proxy.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::{Backend, BackendFuture};

/// Everything but RFC 3986's unreserved characters, so an object name
/// is one path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The `gcs` store: object `STATE_PREFIX/key` in `STATE_BUCKET` (or just
/// `key` without a prefix).
pub struct GcsBackend {
    /// The emulator's base URL (`STORAGE_EMULATOR_HOST`).
    pub endpoint: String,
    pub bucket: String,
    pub prefix: String,
    http: reqwest::Client,
}

/// A page of the emulator's listing.
#[derive(Debug, Default)]
pub struct Page {
    pub names: Vec<String>,
    pub prefixes: Vec<String>,
    pub next_page_token: Option<String>,
}

impl GcsBackend {
    pub fn new(endpoint: &str, bucket: &str, prefix: &str) -> Result<GcsBackend, String> {
        let endpoint = if endpoint.contains("://") {
            endpoint.to_owned()
        } else {
            format!("http://{endpoint}")
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(GcsBackend {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            http,
        })
    }

    /// The object name of a key, by the protocol's rule.
    pub fn name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn object_url(&self, name: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.endpoint,
            utf8_percent_encode(&self.bucket, SEGMENT),
            utf8_percent_encode(name, SEGMENT)
        )
    }

    /// The object resource (JSON) of a key, `None` when absent.
    pub async fn metadata(&self, key: &str) -> Result<Option<Value>, String> {
        let url = self.object_url(&self.name(key));
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        match response.status().as_u16() {
            404 => Ok(None),
            200 => response
                .json()
                .await
                .map(Some)
                .map_err(|e| format!("GET {url}: {e}")),
            status => Err(format!("GET {url}: status {status}")),
        }
    }

    /// Every object name under a full name prefix, page by page, with the
    /// number of pages the emulator needed at `page_size`.
    pub async fn all_names(
        &self,
        name_prefix: &str,
        page_size: u32,
    ) -> Result<(Vec<String>, usize), String> {
        let (mut names, mut pages, mut token) = (Vec::new(), 0, None::<String>);
        loop {
            let page = self
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

    /// One page of the emulator's listing of object names under
    /// `name_prefix` (a full object name prefix).
    pub async fn list_page(
        &self,
        name_prefix: &str,
        delimiter: Option<&str>,
        max_results: u32,
        page_token: Option<&str>,
    ) -> Result<Page, String> {
        let url = format!(
            "{}/storage/v1/b/{}/o",
            self.endpoint,
            utf8_percent_encode(&self.bucket, SEGMENT)
        );
        let mut query = vec![
            ("prefix", name_prefix.to_owned()),
            ("maxResults", max_results.to_string()),
        ];
        if let Some(delimiter) = delimiter {
            query.push(("delimiter", delimiter.to_owned()));
        }
        if let Some(token) = page_token {
            query.push(("pageToken", token.to_owned()));
        }
        let response = self
            .http
            .get(&url)
            .query(&query)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: status {}", response.status()));
        }
        let page: Value = response
            .json()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let strings = |value: &Value| -> Vec<String> {
            value
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| item.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let names = page["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Page {
            names,
            prefixes: strings(&page["prefixes"]),
            next_page_token: page["nextPageToken"].as_str().map(str::to_owned),
        })
    }
}

impl Backend for GcsBackend {
    fn describe(&self) -> String {
        format!("gs://{}/{} at {}", self.bucket, self.prefix, self.endpoint)
    }

    fn read(&self, key: &str) -> BackendFuture<'_, Option<Vec<u8>>> {
        let url = self.object_url(&self.name(key));
        Box::pin(async move {
            let response = self
                .http
                .get(&url)
                .query(&[("alt", "media")])
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            match response.status().as_u16() {
                404 => Ok(None),
                200 => response
                    .bytes()
                    .await
                    .map(|bytes| Some(bytes.to_vec()))
                    .map_err(|e| format!("GET {url}: {e}")),
                status => Err(format!("GET {url}: status {status}")),
            }
        })
    }
}
