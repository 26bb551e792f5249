//! The in-process fake backend of the S3 and GCS unit tests: a small
//! hyper server on 127.0.0.1 that records every request and answers what
//! each test scripts, including a backend that never answers and one that
//! stalls midway through a body. No other process, no other network.
//! Also the few helpers both stores' tests share.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpListener;

use crate::error::Result;
use crate::key::Key;
use crate::store::Body;

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The path exactly as sent, still percent-encoded.
    pub raw_path: String,
    /// Query parameters, decoded.
    pub query: BTreeMap<String, String>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the fake answers.
pub enum Reply {
    Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// Never answers: a hung backend.
    Hang,
    /// Answers 200 with these headers, sends `first`, then nothing more:
    /// a backend that stalls midway through a download.
    Stall {
        headers: Vec<(&'static str, String)>,
        first: Vec<u8>,
    },
}

impl Reply {
    /// An answer without a body.
    pub fn empty(status: u16, headers: Vec<(&'static str, String)>) -> Reply {
        Reply::Answer {
            status,
            headers,
            body: Vec::new(),
        }
    }

    /// An answer with a body of `content_type`.
    pub fn with_body(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Answer {
            status,
            headers: vec![("content-type", content_type.to_owned())],
            body: body.into(),
        }
    }
}

type Handler = Arc<dyn Fn(&Recorded, usize) -> Reply + Send + Sync>;

pub struct FakeServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeServer {
    /// Serves `handler(request, index of the request)` until the test ends.
    pub async fn start(
        handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let seen = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (handler, seen) = (handler.clone(), seen.clone());
                tokio::spawn(async move {
                    let service = service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let (handler, seen) = (handler.clone(), seen.clone());
                            async move { Ok::<_, Infallible>(answer(request, &handler, &seen).await) }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeServer { addr, requests }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().clone()
    }
}

async fn answer(
    request: http::Request<hyper::body::Incoming>,
    handler: &Handler,
    seen: &Mutex<Vec<Recorded>>,
) -> http::Response<BoxBody<Bytes, Infallible>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        raw_path: parts.uri.path().to_owned(),
        query,
        headers: parts.headers,
        body,
    };
    let index = {
        let mut seen = seen.lock();
        seen.push(recorded.clone());
        seen.len() - 1
    };
    let (status, headers, body) = match handler(&recorded, index) {
        Reply::Hang => std::future::pending().await,
        Reply::Answer {
            status,
            headers,
            body,
        } => (status, headers, Full::new(Bytes::from(body)).boxed()),
        Reply::Stall { headers, first } => {
            let frames =
                futures_util::stream::iter([Ok(hyper::body::Frame::data(Bytes::from(first)))])
                    .chain(futures_util::stream::pending());
            (200, headers, BodyExt::boxed(StreamBody::new(frames)))
        }
    };
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// `http://127.0.0.1:PORT` of a port that was free a moment ago: nothing
/// listens there.
pub fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

pub fn key(k: &str) -> Key {
    Key::parse(k).unwrap()
}

pub fn full(data: &'static str) -> Body {
    Body::Full(Bytes::from_static(data.as_bytes()))
}

/// The whole content of a body, streamed or not.
pub async fn bytes_of(body: Body) -> Bytes {
    match body {
        Body::Full(bytes) => bytes,
        Body::Stream { stream, .. } => {
            let chunks: Vec<Bytes> = stream.try_collect::<Vec<Bytes>>().await.unwrap();
            Bytes::from(chunks.concat())
        }
    }
}

/// Reads a sized download that stalls after its first chunk: the stall
/// must end the body with a timeout, soon after the backend timeout.
pub async fn assert_stall_times_out(body: Body, first: &str) -> Result<()> {
    let Body::Stream { mut stream, .. } = body else {
        panic!("a sized download streams");
    };
    assert_eq!(stream.next().await.unwrap().unwrap(), first);
    let started = std::time::Instant::now();
    let stalled = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .expect("the stalled download must end with an error, not hang")
        .unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    stalled.map(drop)
}
