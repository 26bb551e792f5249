//! Passthrough: bodies larger than anything worth buffering, streamed
//! both ways.

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use state_client::{Client, Condition};

use super::{Case, Outcome, Pattern, case, doing, ensure, ensure_eq};
use crate::Ctx;
use crate::raw::RawConnection;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(passthrough_streams_large_bodies, |t| t.profile.streams()),
        case!(cut_off_upload_stores_nothing),
    ]
}

const STREAMED: usize = 64 << 20;
const CHUNK: usize = 256 * 1024;

/// `length` bytes of the pattern `seed`, in chunks.
pub(crate) fn pattern_stream(
    seed: u64,
    length: usize,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let mut pattern = Pattern::new(seed);
    stream::iter((0..length).step_by(CHUNK)).map(move |offset| {
        let mut chunk = vec![0; CHUNK.min(length - offset)];
        pattern.fill(&mut chunk);
        Ok(Bytes::from(chunk))
    })
}

/// Reads an object as a stream and compares it with the pattern.
async fn verify_stream(cx: &Ctx<'_>, key: &str, seed: u64, length: usize) -> Outcome {
    verify_with(&cx.client, key, seed, length).await
}

/// Reads an object as a stream through `client` and compares it with
/// the pattern, never holding more than a chunk or two.
pub(crate) async fn verify_with(client: &Client, key: &str, seed: u64, length: usize) -> Outcome {
    let (stat, mut chunks) = doing("GET (streamed)", client.get_stream(key).await)?;
    ensure_eq!(stat.size, length as u64, "Content-Length of the download");
    let mut expected = Pattern::new(seed);
    let mut pending: Vec<u8> = Vec::new();
    let mut received = 0usize;
    while let Some(chunk) = chunks.next().await {
        let chunk = doing("download", chunk)?;
        // Compare in pattern-sized steps whatever the chunking on the wire.
        pending.extend_from_slice(&chunk);
        while pending.len() >= CHUNK || (received + pending.len() == length && !pending.is_empty())
        {
            let take = CHUNK.min(pending.len());
            let mut want = vec![0; take];
            expected.fill(&mut want);
            ensure!(
                pending[..take] == want[..],
                "content differs near byte {received}"
            );
            pending.drain(..take);
            received += take;
        }
    }
    ensure_eq!(received + pending.len(), length, "bytes downloaded");
    Ok(())
}

async fn passthrough_streams_large_bodies(cx: &Ctx<'_>) -> Outcome {
    let chunked = cx.key("chunked.bin");
    doing(
        "chunked upload",
        cx.client
            .put_stream(
                &chunked,
                pattern_stream(11, STREAMED),
                None,
                Condition::None,
            )
            .await,
    )?;
    verify_stream(cx, &chunked, 11, STREAMED).await?;
    let sized = cx.key("sized.bin");
    let length = STREAMED / 2 + 12345;
    doing(
        "upload with Content-Length",
        cx.client
            .put_stream(
                &sized,
                pattern_stream(12, length),
                Some(length as u64),
                Condition::None,
            )
            .await,
    )?;
    verify_stream(cx, &sized, 12, length).await?;
    // Create-if-absent holds for streamed bodies too.
    let again = cx
        .client
        .put_stream(&sized, pattern_stream(13, 1024), None, Condition::IfAbsent)
        .await;
    ensure_eq!(
        again.as_ref().err().and_then(|e| e.status()),
        Some(412),
        "streamed create over an existing key"
    );
    verify_stream(cx, &sized, 12, length).await
}

async fn cut_off_upload_stores_nothing(cx: &Ctx<'_>) -> Outcome {
    let key = cx.key("cut");
    doing(
        "PUT the old value",
        cx.client.put(&key, "old", Condition::None).await,
    )?;
    let path = state_client::key_path("keys", &key);
    for head in [
        format!("PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n"),
        format!("PUT {path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ] {
        let chunked = head.contains("chunked");
        let mut connection = RawConnection::open(&cx.target.socket).await?;
        connection.send(head.as_bytes()).await?;
        let part = vec![b'n'; 50_000];
        if chunked {
            connection
                .send(format!("{:x}\r\n", part.len()).as_bytes())
                .await?;
        }
        connection.send(&part).await?;
        // The client goes away mid-body: the proxy sees the stream end.
        connection.shutdown_write().await?;
        match connection.answer(false).await {
            Ok(answer) => ensure!(
                answer.status >= 400,
                "a cut-off upload answered {}",
                answer.status
            ),
            Err(e) if e.starts_with("connection closed") => {}
            Err(e) => return Err(e),
        }
        let object = doing("GET after the cut-off upload", cx.client.get(&key).await)?;
        ensure_eq!(
            &object.data[..],
            b"old",
            "content after a cut-off upload (chunked: {chunked})"
        );
    }
    Ok(())
}
