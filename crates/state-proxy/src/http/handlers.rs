//! The handlers: one per route and method, from the parsed request to a
//! mode call and back to an answer. What every request shares (routing,
//! reading the body to its end, timing, metrics) is in `app`.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use super::app::App;
use super::body::{IncomingBody, RequestBody, ResponseBody};
use super::conditions::write_condition;
use super::naming::Naming;
use super::response::{empty, etag, json};
use crate::error::{Error, Result};
use crate::key::{Key, validate_list_prefix};
use crate::query::{self, Query};
use crate::store::{Body, WriteMemory};

/// Largest `/meta` request body (`{"value": ...}`).
const META_BODY_MAX: u64 = 64 * 1024;
/// Largest `/query` request body.
pub const QUERY_BODY_MAX: u64 = 1 << 20;

type Answer = Result<Response<ResponseBody>>;

impl App {
    /// 200 when the backend answered a probe recently, 503 with the
    /// reason otherwise.
    pub(super) async fn readyz(&self) -> Answer {
        match self.readiness.check().await {
            Ok(()) => json(StatusCode::OK, &serde_json::json!({ "status": "ready" })),
            Err(reason) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({ "status": "not_ready", "reason": reason }),
            ),
        }
    }

    pub(super) async fn get(&self, key: &Key) -> Answer {
        let object = self.mode.get(key).await?;
        let body = match object.body {
            // The value is in memory already (the store cannot stream
            // it): it waits for its share like a request body, so many
            // slow readers of large values cannot hold more than the
            // budget; without a share in time it is dropped, and 503.
            Body::Full(bytes) if self.mode.store_info().whole_reads => ResponseBody::Counted {
                _share: self.budget.take(bytes.len() as u64).await?,
                bytes: Some(bytes),
            },
            Body::Full(bytes) => ResponseBody::Full(Some(bytes)),
            Body::Stream { stream, size } => ResponseBody::Stream {
                stream,
                size: size.or(Some(object.meta.size)),
            },
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(object.meta.size));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(header::ETAG, etag(&object.meta.version)?);
        Ok(response)
    }

    pub(super) async fn head(&self, key: &Key) -> Answer {
        let meta = self.mode.head(key).await?;
        let mut response = empty(StatusCode::OK);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size));
        headers.insert("x-is-file", HeaderValue::from_static("true"));
        headers.insert(header::ETAG, etag(&meta.version)?);
        Ok(response)
    }

    pub(super) async fn put<B: IncomingBody>(
        &self,
        key: &Key,
        headers: &HeaderMap,
        body: &mut RequestBody<'_, B>,
    ) -> Answer {
        let condition = write_condition(headers)?;
        let content = match (
            self.mode.body_limit(),
            self.mode.store_info().streamed_write,
        ) {
            (Some(limit), _) => Body::Full(body.read_all(limit).await?),
            // A store that takes values whole holds a streamed body whole
            // too: read it like a buffered one, bounded by the budget.
            (None, WriteMemory::Whole) => Body::Full(body.read_all(self.budget.bytes()).await?),
            (None, held) => {
                if let WriteMemory::AtMost(bytes) = held {
                    body.reserve(bytes).await?;
                }
                Body::Stream {
                    size: body.announced_len(),
                    stream: body.into_stream(),
                }
            }
        };
        let version = self.mode.put(key, content, condition).await?;
        let mut response = empty(StatusCode::NO_CONTENT);
        response.headers_mut().insert(header::ETAG, etag(&version)?);
        Ok(response)
    }

    pub(super) async fn delete(&self, key: &Key, headers: &HeaderMap) -> Answer {
        if headers.contains_key(header::IF_NONE_MATCH) {
            return Err(Error::bad_request(
                "If-None-Match is not supported on DELETE",
            ));
        }
        self.mode.delete(key, write_condition(headers)?).await?;
        Ok(empty(StatusCode::NO_CONTENT))
    }

    pub(super) async fn list(&self, naming: Naming, query: Option<&str>) -> Answer {
        let prefix = naming.param(query, "prefix")?.unwrap_or_default();
        // No delimiter means '/'; an empty one lists recursively.
        let delimiter = match naming.param(query, "delimiter")? {
            None => Some("/".to_owned()),
            Some(delimiter) => Some(delimiter).filter(|d| !d.is_empty()),
        };
        validate_list_prefix(&prefix)?;
        let listing = self.mode.list(&prefix, delimiter.as_deref()).await?;
        #[derive(Serialize)]
        struct Listing<'a> {
            keys: &'a [String],
            prefixes: &'a [String],
        }
        json(
            StatusCode::OK,
            &Listing {
                keys: &listing.keys,
                prefixes: &listing.prefixes,
            },
        )
    }

    pub(super) async fn query<B: IncomingBody>(&self, body: &mut RequestBody<'_, B>) -> Answer {
        let request = body.read_all(QUERY_BODY_MAX).await?;
        let query = Query::parse(&request, &self.query_limits)?;
        let started = std::time::Instant::now();
        // Straight to the store, past the mode: see `query::run` for why.
        let answer = query::run(self.mode.store().as_ref(), &query, &self.query_limits).await?;
        tracing::debug!(
            prefix = %query.prefix,
            total = answer.total,
            truncated = answer.truncated,
            skipped = answer.skipped,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "query answered"
        );
        json(StatusCode::OK, &answer)
    }

    pub(super) async fn get_meta(&self, naming: Naming, key: &Key, query: Option<&str>) -> Answer {
        match naming.param(query, "attr")? {
            None => {
                let attrs = self.mode.attributes(key).await?;
                json(StatusCode::OK, &serde_json::json!({ "attrs": attrs }))
            }
            Some(attr) => {
                let value = self.mode.get_attr(key, &attr).await?;
                json(
                    StatusCode::OK,
                    &serde_json::json!({ "attr": attr, "value": value }),
                )
            }
        }
    }

    pub(super) async fn put_meta<B: IncomingBody>(
        &self,
        naming: Naming,
        key: &Key,
        query: Option<&str>,
        body: &mut RequestBody<'_, B>,
    ) -> Answer {
        let attr = naming
            .param(query, "attr")?
            .ok_or_else(|| Error::bad_request("missing the attr query parameter"))?;
        let value = meta_value(&body.read_all(META_BODY_MAX).await?)?;
        self.mode.set_attr(key, &attr, &value).await?;
        Ok(empty(StatusCode::NO_CONTENT))
    }
}

/// The value of a `/meta` PUT body, `{"value": "..."}`; numbers are
/// accepted as their decimal text.
fn meta_value(body: &Bytes) -> Result<String> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Error::bad_request(format!("body is not valid JSON: {e}")))?;
    match json.get("value") {
        Some(serde_json::Value::String(text)) => Ok(text.clone()),
        Some(serde_json::Value::Number(number)) => Ok(number.to_string()),
        Some(_) => Err(Error::bad_request("\"value\" must be a string")),
        None => Err(Error::bad_request(
            "body must be a JSON object with a \"value\" field",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::error::kind_of;

    #[test]
    fn meta_values() {
        assert_eq!(
            meta_value(&Bytes::from(r#"{"value":"text/plain"}"#)).unwrap(),
            "text/plain"
        );
        assert_eq!(meta_value(&Bytes::from(r#"{"value":60}"#)).unwrap(), "60");
        for bad in [
            r#"{"value":null}"#,
            "{}",
            "[]",
            "not json",
            r#"{"value":[1]}"#,
        ] {
            assert_eq!(
                kind_of(&meta_value(&Bytes::from(bad))),
                Some(ErrorKind::BadRequest),
                "{bad}"
            );
        }
    }
}
