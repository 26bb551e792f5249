//! A minimal HTTP/1.1 client for load generation: prepared request bytes
//! out, one answer in (status line, Content-Length, body), nothing else.
//! It only needs to understand the proxy's own answers.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::Operation;

/// The bytes of one request, built once per worker. The key is sent
/// percent-encoded, as `state_client` sends it (the header only when the
/// path holds an escape).
pub fn request(op: Operation, key: &str, value: &Bytes) -> Vec<u8> {
    let path = state_client::key_path("keys", key);
    let mut headers = "Host: localhost\r\n".to_owned();
    if state_client::needs_key_encoding(&path) {
        headers.push_str(&format!(
            "{}: {}\r\n",
            state_client::KEY_ENCODING,
            state_client::PERCENT
        ));
    }
    match op {
        Operation::Get => format!("GET {path} HTTP/1.1\r\n{headers}\r\n").into_bytes(),
        Operation::Head => format!("HEAD {path} HTTP/1.1\r\n{headers}\r\n").into_bytes(),
        Operation::Put => {
            let mut bytes = format!(
                "PUT {path} HTTP/1.1\r\n{headers}Content-Length: {}\r\n\r\n",
                value.len()
            )
            .into_bytes();
            bytes.extend_from_slice(value);
            bytes
        }
    }
}

/// One connection, kept alive or opened anew for every request.
pub struct Connection {
    socket: PathBuf,
    keep_alive: bool,
    stream: Option<UnixStream>,
    buffer: Vec<u8>,
}

impl Connection {
    pub fn new(socket: &Path, keep_alive: bool) -> Self {
        Connection {
            socket: socket.to_owned(),
            keep_alive,
            stream: None,
            buffer: Vec::with_capacity(64 * 1024),
        }
    }

    /// Sends the request and reads the whole answer; an error status is
    /// an error.
    pub async fn exchange(&mut self, request: &[u8], head: bool) -> Result<(), String> {
        let outcome = self.try_exchange(request, head).await;
        if outcome.is_err() || !self.keep_alive {
            self.stream = None;
            self.buffer.clear();
        }
        outcome
    }

    async fn try_exchange(&mut self, request: &[u8], head: bool) -> Result<(), String> {
        if self.stream.is_none() {
            let stream = UnixStream::connect(&self.socket)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected above");
        stream
            .write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let (status, header_len, body_len) = loop {
            if let Some(parsed) = parse_head(&self.buffer)? {
                break parsed;
            }
            read_more(stream, &mut self.buffer).await?;
        };
        let body_len = if head || status == 204 { 0 } else { body_len };
        let total = header_len + body_len;
        while self.buffer.len() < total {
            read_more(stream, &mut self.buffer).await?;
        }
        self.buffer.drain(..total);
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    }
}

async fn read_more(stream: &mut UnixStream, buffer: &mut Vec<u8>) -> Result<(), String> {
    if buffer.capacity() - buffer.len() < 16 * 1024 {
        buffer.reserve(64 * 1024);
    }
    match stream.read_buf(buffer).await {
        Ok(0) => Err("connection closed".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("read: {e}")),
    }
}

/// Status, length of the head (with its blank line) and Content-Length,
/// once the whole head is buffered.
fn parse_head(buffer: &[u8]) -> Result<Option<(u16, usize, usize)>, String> {
    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buffer[..end]).map_err(|_| "answer head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or("bad status line")?;
    let length = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map_or(Ok(0), |(_, value)| {
            value.trim().parse().map_err(|_| "bad Content-Length")
        })?;
    Ok(Some((status, end + 4, length)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_once_complete() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-len"), Ok(None));
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nETag: \"1\"\r\n\r\nabc";
        assert_eq!(parse_head(answer), Ok(Some((200, answer.len() - 3, 3))));
        assert_eq!(
            parse_head(b"HTTP/1.1 204 No Content\r\n\r\n"),
            Ok(Some((204, 27, 0)))
        );
    }
}
