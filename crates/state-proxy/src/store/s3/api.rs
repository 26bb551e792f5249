//! What is S3's own in talking to S3, over the shared client
//! ([`HttpClient`], which sends, retries and turns statuses into errors):
//! URLs, SigV4 signing (object_store's [`AwsAuthorizer`] with its
//! credential chain), S3's error documents and codes, and XML answers
//! that may be errors in disguise.
//!
//! What is retried: reads, listings, unconditional writes of the same
//! bytes, parts and aborts, when S3 asks for it (408, 429, 5xx such as
//! `503 SlowDown`); conditional writes and deletes are never repeated once
//! sent (see `store::http_client`).

use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderMap, Method, StatusCode};
use object_store::aws::{AwsAuthorizer, AwsCredentialProvider};
use object_store::client::{HttpRequest, HttpRequestBody};
use percent_encoding::utf8_percent_encode;
use reqwest::Response;
use serde::Deserialize;
use tokio::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::store::http_client::{
    self, Authorize, Backend, BackendError, Call, Dialect, HttpClient, Retry, UNRESERVED,
    UNRESERVED_PATH,
};

/// The HTTP side of the store.
pub(crate) struct Api {
    pub http: HttpClient,
    /// `{endpoint}/{bucket}` (path style, emulators) or
    /// `https://{bucket}.s3.{region}.amazonaws.com` (virtual hosted).
    root: String,
    pub bucket: String,
}

impl Api {
    pub fn new(
        endpoint: Option<&str>,
        bucket: String,
        region: String,
        credentials: AwsCredentialProvider,
        timeout: std::time::Duration,
    ) -> Result<Api> {
        let root = match endpoint {
            Some(endpoint) => format!(
                "{}/{}",
                endpoint.trim_end_matches('/'),
                utf8_percent_encode(&bucket, UNRESERVED)
            ),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        let backend = Backend {
            name: "S3",
            timeout,
        };
        let signer = Arc::new(SigV4 {
            credentials,
            region: region.clone(),
        });
        let dialect = Box::new(S3Dialect {
            bucket: bucket.clone(),
            region,
        });
        Ok(Api {
            http: HttpClient::new(backend, signer, dialect)?,
            root,
            bucket,
        })
    }

    /// The URL of an object, its name encoded segment by segment.
    pub fn object_url(&self, name: &str) -> String {
        format!(
            "{}/{}",
            self.root,
            utf8_percent_encode(name, UNRESERVED_PATH)
        )
    }

    /// The URL of an object or of the bucket (`name` empty) with query
    /// parameters, encoded the way SigV4 canonicalizes them.
    pub fn url_with_query(&self, name: Option<&str>, query: &[(&str, &str)]) -> String {
        let url = match name {
            Some(name) => self.object_url(name),
            None => format!("{}/", self.root),
        };
        http_client::with_query(url, query)
    }

    /// `/bucket/name`, as `x-amz-copy-source` wants it.
    pub fn copy_source(&self, name: &str) -> String {
        format!(
            "/{}/{}",
            utf8_percent_encode(&self.bucket, UNRESERVED),
            utf8_percent_encode(name, UNRESERVED_PATH)
        )
    }

    /// Sends a call and reads its XML answer, within one deadline. An
    /// unsuccessful answer becomes the error it stands for, `missing`
    /// saying what a 404 means here, and so does an error document in a
    /// successful one (CompleteMultipartUpload and CopyObject may answer
    /// 200 and still fail).
    pub async fn xml_call<T: for<'de> Deserialize<'de>>(
        &self,
        call: Call,
        retry: Retry,
        what: &str,
        missing: impl Fn(&str, String) -> Error,
    ) -> Result<T> {
        let deadline = self.http.deadline();
        let response = self
            .http
            .send_ok(call, retry, deadline, what, &missing)
            .await?;
        self.xml(response, deadline, what, missing).await
    }

    async fn xml<T: for<'de> Deserialize<'de>>(
        &self,
        response: Response,
        deadline: Instant,
        what: &str,
        missing: impl FnOnce(&str, String) -> Error,
    ) -> Result<T> {
        let body = self.http.body(response, deadline, what).await?;
        if is_error_document(&body) {
            let error = parse_error(&body);
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            return Err(self.http.status_error(status, &error, None, what, missing));
        }
        self.http
            .decoded(&body, what, |body| quick_xml::de::from_reader::<_, T>(body))
    }
}

/// Signs every attempt with SigV4, with the credentials of the chain.
struct SigV4 {
    credentials: AwsCredentialProvider,
    region: String,
}

#[async_trait]
impl Authorize for SigV4 {
    async fn authorize(&self, method: &Method, url: &str, headers: &mut HeaderMap) -> Result<()> {
        let credential = self.credentials.get_credential().await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot load AWS credentials: {e}"),
            )
        })?;
        let mut request: HttpRequest = http::Request::builder()
            .method(method.clone())
            .uri(url)
            .body(HttpRequestBody::empty())
            .map_err(|e| Error::internal(format!("bad S3 request: {e}")))?;
        *request.headers_mut() = std::mem::take(headers);
        // The payload is not hashed into the signature: TLS protects it,
        // and hashing would cost a pass over every body.
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .with_sign_payload(false)
            .try_authorize(&mut request, None)
            .map_err(|e| Error::internal(format!("cannot sign: {e}")))?;
        *headers = request.into_parts().0.headers;
        Ok(())
    }
}

/// S3's error documents, and the codes that say more than the status.
struct S3Dialect {
    bucket: String,
    region: String,
}

impl Dialect for S3Dialect {
    fn decode_error(&self, body: &[u8]) -> BackendError {
        parse_error(body)
    }

    fn classify(&self, status: StatusCode, code: &str) -> Option<(ErrorKind, Option<String>)> {
        Some(match (status.as_u16(), code) {
            (_, "NoSuchBucket") => (
                ErrorKind::Unavailable,
                Some(format!(
                    "(is STATE_BUCKET={} an existing bucket?)",
                    self.bucket
                )),
            ),
            (_, "SlowDown" | "ServiceUnavailable" | "Throttling" | "ThrottlingException") => {
                (ErrorKind::Unavailable, None)
            }
            (_, "RequestTimeout") => (ErrorKind::Timeout, None),
            (_, "EntityTooLarge") => (ErrorKind::PayloadTooLarge, None),
            (301 | 307, _) | (_, "AuthorizationHeaderMalformed" | "PermanentRedirect") => (
                ErrorKind::Internal,
                Some(format!(
                    "(is AWS_REGION={} the region of the bucket?)",
                    self.region
                )),
            ),
            _ => return None,
        })
    }
}

/// An S3 error document: `<Error><Code>…</Code><Message>…</Message></Error>`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename = "Error", rename_all = "PascalCase", default)]
struct ErrorDocument {
    code: String,
    message: String,
}

/// The error document of a body, or its text when it is none (HEAD
/// answers have no body at all).
fn parse_error(body: &[u8]) -> BackendError {
    match quick_xml::de::from_reader::<_, ErrorDocument>(body) {
        Ok(error) if !error.code.is_empty() => BackendError {
            code: error.code,
            message: error.message,
        },
        _ => BackendError {
            code: String::new(),
            message: http_client::excerpt(body),
        },
    }
}

/// Whether a 200 answer is in fact an error document: its root element
/// (after an optional XML declaration) is `<Error>`.
fn is_error_document(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&body[..body.len().min(256)]);
    let text = text.trim_start();
    let text = match text.strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map_or("", |(_, after)| after.trim_start()),
        None => text,
    };
    text.starts_with("<Error>")
}
