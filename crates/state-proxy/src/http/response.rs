//! Building answers: empty, JSON, the metrics exposition, and the `ETag`
//! of a version. Error answers are in `errors`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use super::body::ResponseBody;
use crate::error::{Error, Result};
use crate::metrics::{self, Metrics};
use crate::store::Version;

pub fn empty(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Empty);
    *response.status_mut() = status;
    response
}

pub fn json(status: StatusCode, value: &impl Serialize) -> Result<Response<ResponseBody>> {
    let body = serde_json::to_vec(value).map_err(Error::internal)?;
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The strong `ETag` of a version. On nearly every answer, so the
/// version's text becomes the header value as it is, rather than being
/// copied again (with the quoting built by hand, about 450 instructions
/// less a GET under callgrind).
pub fn etag(version: &Version) -> Result<HeaderValue> {
    HeaderValue::from_maybe_shared(Bytes::from(version.etag()))
        .map_err(|_| Error::internal(format!("version {version:?} cannot be an ETag")))
}

/// The text exposition of `metrics`, as the socket and the TCP listener
/// serve it.
pub fn metrics_response(metrics: &Metrics) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(metrics.encode()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_etag_is_the_version_quoted() {
        assert_eq!(etag(&Version::new("3-a9f")).unwrap(), "\"3-a9f\"");
        // S3's quotes are dropped by the version and put back once.
        assert_eq!(etag(&Version::new("\"d41d8\"")).unwrap(), "\"d41d8\"");
        assert!(etag(&Version::new("bad\nline")).is_err());
    }
}
