//! Objects read straight from an S3 emulator (moto) through the S3 REST
//! API, bypassing the proxy. Requests are signed with `object_store`'s
//! SigV4 signer and the profile's credentials (moto refuses unsigned
//! writes; it does not check the signature itself).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::Method;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::{HttpRequest, HttpRequestBody};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{Backend, BackendFuture};

/// Everything but RFC 3986's unreserved characters.
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
const OBJECT_PATH: &AsciiSet = &STRICT.remove(b'/');

/// The `s3` store: object `STATE_PREFIX/key` in `STATE_BUCKET` (or just
/// `key` without a prefix), addressed path-style on `AWS_ENDPOINT_URL`.
pub struct S3Backend {
    pub endpoint: String,
    pub bucket: String,
    pub prefix: String,
    region: String,
    credential: Arc<AwsCredential>,
    http: reqwest::Client,
}

/// An answer of the emulator.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// One page of a `ListObjectsV2` answer.
#[derive(Debug, Default)]
pub struct Page {
    pub keys: Vec<String>,
    pub next_token: Option<String>,
}

impl S3Backend {
    /// From a profile's environment (AWS_ENDPOINT_URL, STATE_BUCKET, ...).
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<S3Backend, String> {
        let get = |name: &str| {
            env.get(name)
                .cloned()
                .ok_or_else(|| format!("the s3 profile must set {name}"))
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(S3Backend {
            endpoint: get("AWS_ENDPOINT_URL")?.trim_end_matches('/').to_owned(),
            bucket: get("STATE_BUCKET")?,
            prefix: env.get("STATE_PREFIX").cloned().unwrap_or_default(),
            region: env
                .get("AWS_REGION")
                .cloned()
                .unwrap_or_else(|| "us-east-1".into()),
            credential: Arc::new(AwsCredential {
                key_id: get("AWS_ACCESS_KEY_ID")?,
                secret_key: get("AWS_SECRET_ACCESS_KEY")?,
                token: None,
            }),
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
            "{}/{}/{}",
            self.endpoint,
            self.bucket,
            utf8_percent_encode(name, OBJECT_PATH)
        )
    }

    /// Sends a signed request and returns the whole answer.
    pub async fn call(&self, method: Method, url: &str) -> Result<Answer, String> {
        let mut request: HttpRequest = http::Request::builder()
            .method(method.clone())
            .uri(url)
            .body(HttpRequestBody::empty())
            .map_err(|e| e.to_string())?;
        AwsAuthorizer::new(&self.credential, "s3", &self.region)
            .with_sign_payload(false)
            .try_authorize(&mut request, None)
            .map_err(|e| e.to_string())?;
        let response = self
            .http
            .request(method.clone(), url)
            .headers(request.headers().clone())
            .send()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        Ok(Answer {
            status,
            headers,
            body: body.to_vec(),
        })
    }

    /// The headers of a `HEAD` of the key's object, `None` when absent.
    pub async fn head(&self, key: &str) -> Result<Option<reqwest::header::HeaderMap>, String> {
        let url = self.object_url(&self.name(key));
        let answer = self.call(Method::HEAD, &url).await?;
        match answer.status {
            404 => Ok(None),
            200 => Ok(Some(answer.headers)),
            status => Err(format!("HEAD {url}: status {status}")),
        }
    }

    /// One `ListObjectsV2` page of object names under a full name prefix.
    pub async fn list_page(
        &self,
        name_prefix: &str,
        max_keys: u32,
        token: Option<&str>,
    ) -> Result<Page, String> {
        let mut url = format!(
            "{}/{}?list-type=2&max-keys={max_keys}&prefix={}",
            self.endpoint,
            self.bucket,
            utf8_percent_encode(name_prefix, STRICT)
        );
        if let Some(token) = token {
            url.push_str(&format!(
                "&continuation-token={}",
                utf8_percent_encode(token, STRICT)
            ));
        }
        let answer = self.call(Method::GET, &url).await?;
        if answer.status != 200 {
            return Err(format!("GET {url}: status {}", answer.status));
        }
        let text = String::from_utf8_lossy(&answer.body);
        Ok(Page {
            keys: elements(&text, "Key"),
            next_token: elements(&text, "NextContinuationToken").into_iter().next(),
        })
    }

    /// Every object name under a full name prefix, with the number of
    /// pages the emulator needed at `max_keys` a page.
    pub async fn all_names(
        &self,
        name_prefix: &str,
        max_keys: u32,
    ) -> Result<(Vec<String>, usize), String> {
        let (mut names, mut pages, mut token) = (Vec::new(), 0, None::<String>);
        loop {
            let page = self
                .list_page(name_prefix, max_keys, token.as_deref())
                .await?;
            pages += 1;
            names.extend(page.keys);
            match page.next_token {
                Some(next) => token = Some(next),
                None => return Ok((names, pages)),
            }
        }
    }

    /// Multipart uploads still open under a full name prefix.
    pub async fn open_uploads(&self, name_prefix: &str) -> Result<Vec<String>, String> {
        let url = format!(
            "{}/{}?prefix={}&uploads=",
            self.endpoint,
            self.bucket,
            utf8_percent_encode(name_prefix, STRICT)
        );
        let answer = self.call(Method::GET, &url).await?;
        if answer.status != 200 {
            return Err(format!("GET {url}: status {}", answer.status));
        }
        Ok(elements(&String::from_utf8_lossy(&answer.body), "UploadId"))
    }
}

/// The texts of every `<tag>…</tag>` in an XML document, unescaped. Enough
/// for the flat answers of S3 listings.
fn elements(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        found.push(
            after[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[end + close.len()..];
    }
    found
}

impl Backend for S3Backend {
    fn describe(&self) -> String {
        format!("s3://{}/{} at {}", self.bucket, self.prefix, self.endpoint)
    }

    fn read(&self, key: &str) -> BackendFuture<'_, Option<Vec<u8>>> {
        let url = self.object_url(&self.name(key));
        Box::pin(async move {
            let answer = self.call(Method::GET, &url).await?;
            match answer.status {
                404 => Ok(None),
                200 => Ok(Some(answer.body)),
                status => Err(format!("GET {url}: status {status}")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_found_and_unescaped() {
        let xml = "<R><Contents><Key>a&amp;b</Key></Contents><Contents><Key>c</Key></Contents>\
                   <NextContinuationToken>t+1</NextContinuationToken></R>";
        assert_eq!(elements(xml, "Key"), ["a&b", "c"]);
        assert_eq!(elements(xml, "NextContinuationToken"), ["t+1"]);
        assert!(elements(xml, "Missing").is_empty());
    }
}
