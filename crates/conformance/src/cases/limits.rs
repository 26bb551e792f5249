//! Bounds on what clients can hold: transfer codings the proxy does not
//! apply, the memory budget of bodies held whole, the header, idle, body
//! and write timeouts, the connection cap, and values read whole (Redis)
//! counting against the budget until they were sent. All but the first run
//! against the limited proxy ([`crate::limited_env`]), whose limits are
//! small enough to reach in a second or two.

use std::path::Path;

use state_client::key_path;

use super::{Case, Outcome, case, ensure, ensure_eq, expect_raw_error, request};
use crate::raw::{RawAnswer, RawConnection};
use crate::{Ctx, LIMITED_MAX_BUFFERED_BYTES, LIMITED_MAX_CONNECTIONS, LIMITED_WRITE_TIMEOUT};
use http::Method;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(other_transfer_codings_are_501),
        case!(an_unfinished_head_is_closed),
        case!(an_idle_connection_is_closed),
        case!(a_stalled_body_is_408),
        case!(an_unread_answer_is_dropped, |t| t
            .profile
            .body_limit
            .is_none_or(|l| l >= UNREAD_SIZE as u64)),
        case!(the_connection_cap_sheds_the_longest_idle),
        case!(a_full_memory_budget_is_503_with_retry_after, |t| t
            .profile
            .holds_bodies()),
        case!(a_body_larger_than_the_budget_is_413, |t| t
            .profile
            .holds_bodies()),
        case!(a_stalled_read_of_a_whole_value_holds_its_share, |t| t
            .profile
            .whole_reads()),
    ]
}

/// The limited proxy's socket, or why the case cannot run.
fn limited<'a>(cx: &'a Ctx<'_>) -> Result<&'a Path, String> {
    cx.target.limited.as_deref().ok_or_else(|| {
        "needs the limited proxy (conformance::limited_env); pass it with --limited-socket"
            .to_owned()
    })
}

fn put_head(path: &str, length: usize) -> String {
    format!("PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {length}\r\n\r\n")
}

async fn other_transfer_codings_are_501(cx: &Ctx<'_>) -> Outcome {
    let key = cx.key("gzipped");
    let path = key_path("keys", &key);
    let mut connection = RawConnection::open(&cx.target.socket).await?;
    let message = format!(
        "PUT {path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\n"
    );
    connection.send(message.as_bytes()).await?;
    let answer = connection.answer(false).await?;
    expect_raw_error("PUT with gzip, chunked", &answer, 501, "not_implemented")?;
    let read = request(cx, Method::GET, &path, &[], "").await?;
    ensure_eq!(read.status.as_u16(), 404, "nothing was stored under {key}");
    Ok(())
}

async fn an_unfinished_head_is_closed(cx: &Ctx<'_>) -> Outcome {
    let mut connection = RawConnection::open(limited(cx)?).await?;
    connection
        .send(b"GET /healthz HTTP/1.1\r\nHost: loc")
        .await?;
    // Nothing more is sent: the proxy must give up on the head.
    let rest = connection.read_to_end().await?;
    ensure_eq!(rest, 0, "bytes answered to a head that never ended");
    Ok(())
}

async fn an_idle_connection_is_closed(cx: &Ctx<'_>) -> Outcome {
    let mut connection = RawConnection::open(limited(cx)?).await?;
    connection
        .send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    ensure_eq!(connection.answer(false).await?.status, 200, "/healthz");
    ensure!(
        connection.is_closed().await?,
        "an idle kept-alive connection was never closed"
    );
    Ok(())
}

async fn a_stalled_body_is_408(cx: &Ctx<'_>) -> Outcome {
    let path = key_path("keys", &cx.key("stalled"));
    let mut connection = RawConnection::open(limited(cx)?).await?;
    connection.send(put_head(&path, 1000).as_bytes()).await?;
    connection.send(b"only a few bytes").await?;
    let answer = connection.answer(false).await?;
    expect_raw_error("PUT whose body stalls", &answer, 408, "request_timeout")?;
    ensure!(
        connection.is_closed().await?,
        "the connection of a stalled body stays open"
    );
    let read = request(cx, Method::GET, &path, &[], "").await?;
    ensure_eq!(read.status.as_u16(), 404, "a stalled body was stored");
    Ok(())
}

const UNREAD_SIZE: usize = 3 << 20;

async fn an_unread_answer_is_dropped(cx: &Ctx<'_>) -> Outcome {
    let key = cx.key("unread");
    let put = cx
        .client
        .put(&key, vec![b'u'; UNREAD_SIZE], state_client::Condition::None)
        .await;
    put.map_err(|e| format!("PUT {key}: {e}"))?;
    let mut connection = RawConnection::open(limited(cx)?).await?;
    let path = key_path("keys", &key);
    connection
        .send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    // The client reads nothing for a while: no event tells when the
    // proxy gave up, so time has to pass (a few write timeouts).
    tokio::time::sleep(LIMITED_WRITE_TIMEOUT * 4).await;
    let received = connection.read_to_end().await?;
    ensure!(
        received < UNREAD_SIZE,
        "the whole answer ({received} bytes) waited for a client that did not read"
    );
    Ok(())
}

/// One `/healthz` exchange on `connection`; `Err` when it was closed.
async fn healthz_on(connection: &mut RawConnection) -> Result<u16, String> {
    connection
        .send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    Ok(connection.answer(false).await?.status)
}

async fn the_connection_cap_sheds_the_longest_idle(cx: &Ctx<'_>) -> Outcome {
    let socket = limited(cx)?;
    let mut idle = Vec::new();
    for _ in 0..LIMITED_MAX_CONNECTIONS + 8 {
        let mut connection = RawConnection::open(socket).await?;
        ensure_eq!(
            healthz_on(&mut connection).await?,
            200,
            "/healthz on a new connection"
        );
        idle.push(connection);
    }
    // The newest are served; the oldest were closed to make room.
    let newest = idle.last_mut().ok_or("no connection")?;
    ensure_eq!(
        healthz_on(newest).await?,
        200,
        "/healthz again on the newest connection"
    );
    let oldest = idle.first_mut().ok_or("no connection")?;
    ensure!(
        healthz_on(oldest).await.is_err(),
        "the connection idle the longest still answers past the cap of {LIMITED_MAX_CONNECTIONS}"
    );
    Ok(())
}

async fn a_full_memory_budget_is_503_with_retry_after(cx: &Ctx<'_>) -> Outcome {
    let socket = limited(cx)?;
    let budget = LIMITED_MAX_BUFFERED_BYTES as usize;
    let holder_path = key_path("keys", &cx.key("holder"));
    let other_path = key_path("keys", &cx.key("other"));
    // Announces three quarters of the budget and sends a little of it:
    // the proxy reserves the whole announced length (a streaming one what
    // its store holds of it, here the same).
    let mut holder = RawConnection::open(socket).await?;
    let held = budget / 4 * 3;
    holder.send(put_head(&holder_path, held).as_bytes()).await?;
    holder.send(&vec![b'h'; 1024]).await?;
    let other = budget / 2;
    let refused = put_until_refused(socket, &other_path, other).await?;
    expect_raw_error("PUT beyond the free budget", &refused, 503, "unavailable")?;
    ensure!(
        refused.header("retry-after").is_some(),
        "503 for a full budget without Retry-After"
    );
    // Nothing in flight failed for it: the holder finishes.
    holder.send(&vec![b'h'; held - 1024]).await?;
    ensure_eq!(holder.answer(false).await?.status, 204, "the admitted PUT");
    ensure_eq!(
        put_of(socket, &other_path, other).await?.status,
        204,
        "PUT once the budget is free"
    );
    Ok(())
}

async fn a_body_larger_than_the_budget_is_413(cx: &Ctx<'_>) -> Outcome {
    let path = key_path("keys", &cx.key("huge"));
    let size = LIMITED_MAX_BUFFERED_BYTES as usize * 2;
    let mut connection = RawConnection::open(limited(cx)?).await?;
    let mut message = put_head(&path, size).into_bytes();
    message.extend(vec![b'x'; size]);
    // Refused before the body is read; a write failing after the answer
    // is fine.
    let _ = connection.send(&message).await;
    let answer = connection.answer(false).await?;
    expect_raw_error(
        "PUT above the whole budget",
        &answer,
        413,
        "payload_too_large",
    )?;
    Ok(())
}

/// One PUT of `size` bytes on a new connection.
async fn put_of(socket: &Path, path: &str, size: usize) -> Result<RawAnswer, String> {
    let mut message = put_head(path, size).into_bytes();
    message.extend(vec![b'p'; size]);
    let mut connection = RawConnection::open(socket).await?;
    connection.send(&message).await?;
    connection.answer(false).await
}

/// Sends a PUT of `size` bytes until one is refused (the share that
/// should make it fail may not be taken yet when the first arrives, on a
/// busy machine not for a while); each accepted one returns its share at
/// once. Gives up after 10 s.
async fn put_until_refused(socket: &Path, path: &str, size: usize) -> Result<RawAnswer, String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let answer = put_of(socket, path, size).await?;
        if answer.status != 204 {
            return Ok(answer);
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Err(format!(
        "a PUT of {size} bytes beyond the free budget was always accepted"
    ))
}

async fn a_stalled_read_of_a_whole_value_holds_its_share(cx: &Ctx<'_>) -> Outcome {
    let socket = limited(cx)?;
    let budget = LIMITED_MAX_BUFFERED_BYTES as usize;
    let key = cx.key("whole");
    let size = budget / 4 * 3;
    cx.client
        .put(&key, vec![b'w'; size], state_client::Condition::None)
        .await
        .map_err(|e| format!("PUT {key}: {e}"))?;
    // A reader that asks and then reads nothing: the value stays in the
    // proxy (more than the socket takes), and so does its share.
    let mut reader = RawConnection::open(socket).await?;
    let path = key_path("keys", &key);
    reader
        .send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let other = key_path("keys", &cx.key("beside-whole"));
    let refused = put_until_refused(socket, &other, budget / 2).await?;
    expect_raw_error("PUT beside a stalled read", &refused, 503, "unavailable")?;
    ensure!(
        refused.header("retry-after").is_some(),
        "503 for a full budget without Retry-After"
    );
    // The read itself is whole, and once it was sent the budget is free.
    let answer = reader.answer(false).await?;
    ensure_eq!(answer.status, 200, "the stalled GET");
    ensure_eq!(answer.body.len(), size, "bytes of the stalled GET");
    ensure_eq!(
        put_of(socket, &other, budget / 2).await?.status,
        204,
        "PUT once the read was sent"
    );
    Ok(())
}
