//! What is GCS's own in talking to the GCS JSON API, over the shared
//! client ([`HttpClient`], which sends, retries and turns statuses into
//! errors): URLs, bearer tokens ([`Auth`]), GCS's error bodies and JSON
//! answers.
//!
//! What is retried: reads, listings and setting an attribute again, when
//! GCS asks for it (429, 5xx); uploads and deletes are never repeated once
//! sent (see `store::http_client`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use percent_encoding::utf8_percent_encode;
use serde::Deserialize;

use super::auth::Auth;
use crate::error::{Error, ErrorKind, Result};
use crate::store::http_client::{
    self, Authorize, Backend, BackendError, Call, Dialect, HttpClient, Retry, UNRESERVED,
};

/// The HTTP side of the store.
pub(crate) struct Api {
    pub http: HttpClient,
    /// `https://storage.googleapis.com` or the emulator's address.
    pub base: String,
    pub bucket: String,
    pub auth: Arc<Auth>,
}

impl Api {
    pub fn new(base: String, bucket: String, auth: Auth, timeout: Duration) -> Result<Api> {
        let auth = Arc::new(auth);
        let backend = Backend {
            name: "GCS",
            timeout,
        };
        Ok(Api {
            http: HttpClient::new(backend, auth.clone(), Box::new(GcsDialect))?,
            base: base.trim_end_matches('/').to_owned(),
            bucket,
            auth,
        })
    }

    /// `…/storage/v1/b/BUCKET/o/NAME?query`, the name escaped as one
    /// segment.
    pub fn object_url(&self, name: &str, query: &[(&str, &str)]) -> String {
        let url = format!(
            "{}/{}",
            self.objects_url(&[]),
            utf8_percent_encode(name, UNRESERVED)
        );
        http_client::with_query(url, query)
    }

    /// `…/storage/v1/b/BUCKET/o?query`, for listings.
    pub fn objects_url(&self, query: &[(&str, &str)]) -> String {
        let url = format!(
            "{}/storage/v1/b/{}/o",
            self.base,
            utf8_percent_encode(&self.bucket, UNRESERVED)
        );
        http_client::with_query(url, query)
    }

    /// `…/upload/storage/v1/b/BUCKET/o?query`, for multipart uploads.
    pub fn upload_url(&self, query: &[(&str, &str)]) -> String {
        let url = format!(
            "{}/upload/storage/v1/b/{}/o",
            self.base,
            utf8_percent_encode(&self.bucket, UNRESERVED)
        );
        http_client::with_query(url, query)
    }

    /// Sends a call and reads its JSON answer, within one deadline; an
    /// unsuccessful answer becomes the error it stands for, `missing`
    /// saying what a 404 means here.
    pub async fn json_call<T: for<'de> Deserialize<'de>>(
        &self,
        call: Call,
        retry: Retry,
        what: &str,
        missing: impl FnOnce(&str, String) -> Error,
    ) -> Result<T> {
        let deadline = self.http.deadline();
        let response = self
            .http
            .send_ok(call, retry, deadline, what, missing)
            .await?;
        let body = self.http.body(response, deadline, what).await?;
        self.http
            .decoded(&body, what, |body| serde_json::from_slice::<T>(body))
    }
}

/// A bearer token on every attempt; none for an emulator.
#[async_trait]
impl Authorize for Auth {
    async fn authorize(&self, _: &Method, _: &str, headers: &mut HeaderMap) -> Result<()> {
        if let Some(token) = self.bearer().await? {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                Error::new(
                    ErrorKind::Internal,
                    "the Google access token is not a valid header value",
                )
            })?;
            headers.insert(http::header::AUTHORIZATION, value);
        }
        Ok(())
    }
}

/// GCS's error bodies: `{"error": {"message": ...}}` in JSON, plain text
/// elsewhere (the emulator's media 404s). GCS has no error codes that say
/// more than the status.
struct GcsDialect;

impl Dialect for GcsDialect {
    fn decode_error(&self, body: &[u8]) -> BackendError {
        #[derive(Deserialize)]
        struct Envelope {
            error: Detail,
        }
        #[derive(Deserialize)]
        struct Detail {
            message: String,
        }
        let message = match serde_json::from_slice::<Envelope>(body) {
            Ok(envelope) => envelope.error.message,
            Err(_) => http_client::excerpt(body),
        };
        BackendError {
            code: String::new(),
            message,
        }
    }

    fn classify(&self, _: StatusCode, _: &str) -> Option<(ErrorKind, Option<String>)> {
        None
    }
}
