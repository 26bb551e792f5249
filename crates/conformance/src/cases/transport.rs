//! The wire: routes, methods, framing, limits, connections.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::Method;
use state_client::{Client, Condition, key_path};

use super::{
    Case, Outcome, case, doing, ensure, ensure_eq, expect_error_body, expect_raw_error, request,
};
use crate::Ctx;
use crate::raw::{self, RawConnection};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(unknown_routes_are_404),
        case!(wrong_methods_are_405_with_allow),
        case!(query_body_above_1mib_is_413),
        case!(body_above_the_limit_is_413, |t| !t.profile.streams()
            && t.profile.body_limit.is_some()),
        case!(bad_framing_is_400),
        case!(error_answers_keep_the_connection_usable),
        case!(http_1_0_is_answered),
        case!(keep_alive_and_pipelining),
        case!(compat_client_sequence),
        case!(slow_upload_does_not_block_others),
        case!(many_concurrent_connections),
    ]
}

async fn unknown_routes_are_404(cx: &Ctx<'_>) -> Outcome {
    for path in ["/", "/nope", "/keysx", "/healthz/more", "/metaa/x"] {
        let answer = request(cx, Method::GET, path, &[], "").await?;
        expect_error_body(&format!("GET {path}"), &answer, 404, "not_found")?;
    }
    Ok(())
}

async fn wrong_methods_are_405_with_allow(cx: &Ctx<'_>) -> Outcome {
    let key = key_path("keys", &cx.key("k"));
    let meta = key_path("meta", &cx.key("k"));
    let cases = [
        (Method::POST, key.as_str()),
        (Method::PATCH, key.as_str()),
        (Method::DELETE, "/healthz"),
        (Method::POST, "/keys/"),
        (Method::DELETE, meta.as_str()),
        (Method::GET, "/query"),
    ];
    for (method, path) in cases {
        let answer = request(cx, method.clone(), path, &[], "").await?;
        expect_error_body(
            &format!("{method} {path}"),
            &answer,
            405,
            "method_not_allowed",
        )?;
        let allow = answer.header("allow").unwrap_or_default();
        ensure!(
            !allow.is_empty() && !allow.contains(method.as_str()),
            "{method} {path}: Allow is {allow:?}"
        );
    }
    Ok(())
}

async fn query_body_above_1mib_is_413(cx: &Ctx<'_>) -> Outcome {
    let body = format!("{{\"prefix\": \"{}\"}}", "x".repeat(1 << 20));
    let answer = request(cx, Method::POST, "/query", &[], body).await?;
    expect_error_body("POST /query above 1 MiB", &answer, 413, "payload_too_large")
}

/// After an early answer, the connection is either closed or still
/// serving requests correctly: both are clean. Answers whether it was
/// closed.
async fn closed_or_usable(connection: &mut RawConnection, what: &str) -> Result<bool, String> {
    if connection
        .send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .is_err()
    {
        return Ok(true);
    }
    match connection.answer(false).await {
        Ok(next) => {
            ensure_eq!(
                next.status,
                200,
                "{what}: next request on the same connection"
            );
            Ok(false)
        }
        Err(e) if e.starts_with("connection closed") => Ok(true),
        Err(e) => Err(format!("{what}: after the answer, {e}")),
    }
}

async fn body_above_the_limit_is_413(cx: &Ctx<'_>) -> Outcome {
    let limit = cx.profile().body_limit.ok_or("no body limit")? as usize;
    let key = cx.key("big");
    let path = key_path("keys", &key);
    let at_limit = doing(
        "PUT at the limit",
        cx.client
            .put(&key, vec![b'a'; limit], Condition::None)
            .await,
    );
    at_limit?;
    // Announced with Content-Length.
    let over = vec![b'b'; limit + 1];
    let mut connection = RawConnection::open(&cx.target.socket).await?;
    let mut message = format!(
        "PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        over.len()
    )
    .into_bytes();
    message.extend_from_slice(&over);
    // The proxy may answer before reading everything and close: a failed
    // write after its answer is fine.
    let _ = connection.send(&message).await;
    let answer = connection.answer(false).await?;
    expect_raw_error("PUT above the limit", &answer, 413, "payload_too_large")?;
    closed_or_usable(&mut connection, "after 413 with Content-Length").await?;
    // Chunked, so the size is only known while reading.
    let mut connection = RawConnection::open(&cx.target.socket).await?;
    let chunk = vec![b'c'; 64 * 1024];
    let mut message =
        format!("PUT {path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for _ in 0..=(limit / chunk.len()) {
        message.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        message.extend_from_slice(&chunk);
        message.extend_from_slice(b"\r\n");
    }
    message.extend_from_slice(b"0\r\n\r\n");
    let _ = connection.send(&message).await;
    let answer = connection.answer(false).await?;
    expect_raw_error(
        "chunked PUT above the limit",
        &answer,
        413,
        "payload_too_large",
    )?;
    closed_or_usable(&mut connection, "after 413 of a chunked body").await?;
    let stored = doing("GET", cx.client.get(&key).await)?;
    ensure!(
        stored.data.len() == limit && stored.data[0] == b'a',
        "the refused bodies changed the object"
    );
    Ok(())
}

async fn bad_framing_is_400(cx: &Ctx<'_>) -> Outcome {
    let path = key_path("keys", &cx.key("framing"));
    let requests = [
        format!("PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\nabc"),
        format!("PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n"),
        format!(
            "PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
        ),
        format!(
            "PUT {path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n"
        ),
        "GARBAGE\r\n\r\n".to_owned(),
        format!("GET {path} HTTP/1.1\r\nBad Header Line\r\n\r\n"),
    ];
    for message in &requests {
        let mut connection = RawConnection::open(&cx.target.socket).await?;
        connection.send(message.as_bytes()).await?;
        let answer = connection.answer(false).await?;
        ensure_eq!(answer.status, 400, "answer to {message:?}");
        // Framing errors may answer an empty 400; any body must be JSON. A
        // bad chunk size is met while the body is read, by the
        // application: its 400 is JSON (docs/protocol.md, "Errors").
        let in_the_body = message.contains("chunked");
        if in_the_body || !answer.body.is_empty() {
            expect_raw_error(
                &format!("answer to {message:?}"),
                &answer,
                400,
                "bad_request",
            )?;
        }
        ensure!(
            connection.is_closed().await?,
            "connection left open after {message:?}"
        );
    }
    ensure_eq!(
        doing("HEAD", cx.client.head(&cx.key("framing")).await)?,
        None,
        "nothing stored by bad framing"
    );
    Ok(())
}

async fn error_answers_keep_the_connection_usable(cx: &Ctx<'_>) -> Outcome {
    // Each request is refused before its body is needed; the body must
    // still be consumed so the next request on the connection is parsed
    // from its first byte.
    let ns = cx.key("");
    let refused = [
        (
            format!(
                "PUT /keys/{ns}a/../b HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"
            ),
            400,
        ),
        (
            "PUT /nowhere HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello".to_owned(),
            404,
        ),
        (
            format!(
                "POST /keys/{ns}x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"
            ),
            405,
        ),
        (
            format!(
                "PUT /keys/{ns}x HTTP/1.1\r\nHost: localhost\r\nIf-Match: *\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            ),
            400,
        ),
    ];
    let mut connection = RawConnection::open(&cx.target.socket).await?;
    for (message, status) in &refused {
        connection.send(message.as_bytes()).await?;
        let answer = connection.answer(false).await?;
        ensure_eq!(answer.status, *status, "answer to {message:?}");
        ensure!(
            answer.json().is_ok(),
            "error answer without a JSON body: {answer:?}"
        );
        if closed_or_usable(&mut connection, &format!("after {message:?}")).await? {
            connection = RawConnection::open(&cx.target.socket).await?;
        }
    }
    Ok(())
}

async fn http_1_0_is_answered(cx: &Ctx<'_>) -> Outcome {
    let mut connection = RawConnection::open(&cx.target.socket).await?;
    connection.send(b"GET /healthz HTTP/1.0\r\n\r\n").await?;
    let answer = connection.answer(false).await?;
    ensure_eq!(answer.status, 200, "HTTP/1.0 GET /healthz");
    ensure!(
        answer.version.starts_with("HTTP/1."),
        "version {}",
        answer.version
    );
    ensure!(
        connection.is_closed().await?,
        "HTTP/1.0 connection without keep-alive left open"
    );
    let key = cx.key("ten");
    let path = key_path("keys", &key);
    let put = raw::exchange(
        &cx.target.socket,
        format!("PUT {path} HTTP/1.0\r\nContent-Length: 3\r\n\r\nold").as_bytes(),
    )
    .await?;
    ensure_eq!(put.status, 204, "HTTP/1.0 PUT");
    ensure_eq!(
        &doing("GET", cx.client.get(&key).await)?.data[..],
        b"old",
        "content"
    );
    Ok(())
}

async fn keep_alive_and_pipelining(cx: &Ctx<'_>) -> Outcome {
    let key = cx.key("piped");
    let path = key_path("keys", &key);
    let mut connection = RawConnection::open(&cx.target.socket).await?;
    // Three requests in one write; three answers in order.
    connection
        .send(
            format!(
                "PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\npipe\
                 GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n\
                 GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    ensure_eq!(connection.answer(false).await?.status, 204, "pipelined PUT");
    let get = connection.answer(false).await?;
    ensure_eq!(
        (get.status, &get.body[..]),
        (200, &b"pipe"[..]),
        "pipelined GET"
    );
    ensure_eq!(
        connection.answer(false).await?.status,
        200,
        "pipelined healthz"
    );
    // And many requests one after the other on the same connection.
    for i in 0..100 {
        connection
            .send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await?;
        ensure_eq!(
            connection.answer(false).await?.status,
            200,
            "request {i} on a kept-alive connection"
        );
    }
    Ok(())
}

async fn compat_client_sequence(cx: &Ctx<'_>) -> Outcome {
    // The compat runtime: HTTP/1.1, Host: localhost, a new connection per
    // request, closed after the answer; writes stream one chunk per write.
    let client = Client::new_connection_per_request(&cx.target.socket);
    let key = cx.key("dir/file.txt");
    let chunks: Vec<Result<Bytes, std::io::Error>> = ["line 1\n", "line 2\n", "line 3\n"]
        .into_iter()
        .map(|c| Ok(Bytes::from(c)))
        .collect();
    doing(
        "open(w) + write + close",
        client
            .put_stream(&key, stream::iter(chunks), None, Condition::None)
            .await,
    )?;
    let stat = doing("os.stat", client.head(&key).await)?.ok_or("os.stat: missing")?;
    ensure_eq!(stat.size, 21, "size");
    ensure_eq!(
        &doing("open(r).read()", client.get(&key).await)?.data[..],
        b"line 1\nline 2\nline 3\n",
        "content"
    );
    let listing = doing("os.listdir", client.list(&cx.key("dir/"), Some("/")).await)?;
    ensure_eq!(listing.keys, vec![key.clone()], "directory listing");
    expect_error_body(
        "open(x) of an existing file",
        &raw_compat_put(cx, &key, true).await?,
        412,
        "precondition_failed",
    )?;
    doing("os.remove", client.delete(&key, Condition::None).await)?;
    let exclusive = raw_compat_put(cx, &key, true).await?;
    ensure_eq!(exclusive.status.as_u16(), 204, "open(x) of a new file");
    Ok(())
}

/// A PUT shaped like Python's http.client: Content-Length, identity
/// encoding, a new connection.
async fn raw_compat_put(
    cx: &Ctx<'_>,
    key: &str,
    exclusive: bool,
) -> Result<state_client::RawResponse, String> {
    let client = Client::new_connection_per_request(&cx.target.socket);
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "accept-encoding",
        http::HeaderValue::from_static("identity"),
    );
    if exclusive {
        headers.insert("if-none-match", http::HeaderValue::from_static("*"));
    }
    doing(
        "compat PUT",
        client
            .raw(Method::PUT, &key_path("keys", key), headers, "x")
            .await,
    )
}

async fn slow_upload_does_not_block_others(cx: &Ctx<'_>) -> Outcome {
    let key = cx.key("slow");
    let mut upload = RawConnection::open(&cx.target.socket).await?;
    upload
        .send(
            format!(
                "PUT {} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n",
                key_path("keys", &key)
            )
            .as_bytes(),
        )
        .await?;
    // The upload is open and incomplete; other requests are served.
    let other = Client::new(&cx.target.socket);
    tokio::time::timeout(Duration::from_secs(10), other.healthz())
        .await
        .map_err(|_| "healthz was not answered while an upload was in progress".to_owned())?
        .map_err(|e| format!("healthz during an upload: {e}"))?;
    doing(
        "another key during the upload",
        other.put(&cx.key("other"), "x", Condition::None).await,
    )?;
    upload.send(b"4\r\nlast\r\n0\r\n\r\n").await?;
    ensure_eq!(
        upload.answer(false).await?.status,
        204,
        "the slow upload completes"
    );
    ensure_eq!(
        &doing("GET", cx.client.get(&key).await)?.data[..],
        b"firstlast",
        "content"
    );
    Ok(())
}

async fn many_concurrent_connections(cx: &Ctx<'_>) -> Outcome {
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let socket = cx.target.socket.clone();
            let key = cx.key(&format!("c{i}"));
            tokio::spawn(async move {
                let client = Client::new_connection_per_request(&socket);
                let value = format!("value {i}");
                client
                    .put(&key, value.clone(), Condition::None)
                    .await
                    .map_err(|e| e.to_string())?;
                let object = client.get(&key).await.map_err(|e| e.to_string())?;
                if object.data != value.as_bytes() {
                    return Err(format!("{key} holds {:?}", object.data));
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let listing = doing("list", cx.client.list(&cx.dir(), Some("")).await)?;
    ensure_eq!(listing.keys.len(), 64, "keys written concurrently");
    Ok(())
}
