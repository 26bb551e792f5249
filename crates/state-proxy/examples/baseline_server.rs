//! The yardstick of docs/performance.md: the smallest hyper server that
//! answers GET/PUT/HEAD of `/keys/...` from a HashMap on a Unix socket,
//! with none of the proxy's work. `state-proxy bench` against it shows
//! what the machine and the client can do; the proxy is compared to it.
//!
//!   cargo run --release --example baseline_server -- /tmp/baseline.sock

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::RwLock;

type Map = Arc<RwLock<HashMap<String, Bytes>>>;

async fn answer(map: Map, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let key = request.uri().path().to_owned();
    let mut response = Response::new(Full::new(Bytes::new()));
    match *request.method() {
        Method::GET | Method::HEAD => match map.read().get(&key) {
            Some(value) => *response.body_mut() = Full::new(value.clone()),
            None => *response.status_mut() = StatusCode::NOT_FOUND,
        },
        Method::PUT => {
            let value = request
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            map.write().insert(key, value);
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
                .headers_mut()
                .insert("etag", "\"1\"".parse().unwrap());
        }
        _ => *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED,
    }
    response
}

#[tokio::main]
async fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/baseline.sock".into());
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    let map: Map = Arc::default();
    eprintln!("baseline server on {path}");
    loop {
        let (stream, _) = listener.accept().await.expect("accept");
        let map = Arc::clone(&map);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let map = Arc::clone(&map);
                async move { Ok::<_, Infallible>(answer(map, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
