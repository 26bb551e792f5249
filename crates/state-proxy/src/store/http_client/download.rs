//! A successful download as an object: streamed when its size is known
//! (buffered modes collect it, passthrough passes it on as it arrives),
//! read whole within the deadline otherwise.

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::Response;
use tokio::time::Instant;

use super::HttpClient;
use super::idle_timeout::IdleTimeout;
use crate::error::Result;
use crate::store::{Body, Object, ObjectMeta, Version};

impl HttpClient {
    /// The object a successful download answered with, at `version`.
    pub async fn downloaded(
        &self,
        response: Response,
        version: Version,
        deadline: Instant,
    ) -> Result<Object> {
        match response.content_length() {
            Some(size) => Ok(Object {
                meta: ObjectMeta { size, version },
                body: Body::Stream {
                    stream: self.download_stream(response),
                    size: Some(size),
                },
            }),
            None => {
                let data = self.body(response, deadline, "download").await?;
                Ok(Object {
                    meta: ObjectMeta {
                        size: data.len() as u64,
                        version,
                    },
                    body: Body::Full(data),
                })
            }
        }
    }

    /// The body of a download, passed on as it arrives: a failure midway
    /// is a transport error; a backend that stops sending for the backend
    /// timeout while the reader waits is a timeout (a slow reader is not).
    fn download_stream(&self, response: Response) -> BoxStream<'static, Result<Bytes>> {
        let backend = self.backend;
        let chunks = response
            .bytes_stream()
            .map_err(move |e| backend.transport_error(e, "download"))
            .boxed();
        IdleTimeout::new(chunks, backend.timeout, move |_| {
            backend.timed_out("download")
        })
        .boxed()
    }
}
