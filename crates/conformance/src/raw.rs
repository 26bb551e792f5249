//! Raw HTTP/1.1 over the socket, byte for byte, for what a well-behaved
//! client library will not send: broken framing, unnormalised paths,
//! pipelining, HTTP/1.0, a body cut into chosen chunks.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// How long to wait for an answer before calling the proxy hung.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// One parsed response.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "status {} body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A connection driven by hand.
pub struct RawConnection {
    stream: UnixStream,
    buffer: Vec<u8>,
}

impl RawConnection {
    pub async fn open(socket: &Path) -> Result<RawConnection, String> {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
        Ok(RawConnection {
            stream,
            buffer: Vec::new(),
        })
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("writing to the socket: {e}"))
    }

    /// Closes our sending side (the proxy sees the end of the request
    /// stream) while answers can still be read.
    pub async fn shutdown_write(&mut self) -> Result<(), String> {
        self.stream
            .shutdown()
            .await
            .map_err(|e| format!("shutting down the socket: {e}"))
    }

    /// Reads more bytes; `false` at end of stream.
    async fn fill(&mut self) -> Result<bool, String> {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(ANSWER_TIMEOUT, self.stream.read(&mut chunk)).await {
            Err(_) => Err(format!("no answer within {ANSWER_TIMEOUT:?}")),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(false),
            Ok(Err(e)) => Err(format!("reading from the socket: {e}")),
            Ok(Ok(0)) => Ok(false),
            Ok(Ok(n)) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
        }
    }

    /// Reads one response. `head` says the request was a HEAD (no body
    /// follows whatever Content-Length says).
    pub async fn answer(&mut self, head: bool) -> Result<RawAnswer, String> {
        let header_end = loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at;
            }
            if !self.fill().await? {
                return Err(format!(
                    "connection closed before a complete answer; got {:?}",
                    String::from_utf8_lossy(&self.buffer)
                ));
            }
        };
        let head_text = String::from_utf8_lossy(&self.buffer[..header_end]).into_owned();
        self.buffer.drain(..header_end + 4);
        let mut lines = head_text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_owned();
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut answer = RawAnswer {
            version,
            status,
            headers,
            body: Vec::new(),
        };
        if head || status == 204 || status == 304 {
            return Ok(answer);
        }
        if answer
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            answer.body = self.read_chunked().await?;
        } else if let Some(length) = answer.header("content-length") {
            let length: usize = length
                .parse()
                .map_err(|_| format!("bad Content-Length {length:?}"))?;
            answer.body = self.read_exact(length).await?;
        } else {
            // Delimited by the end of the connection.
            while self.fill().await? {}
            answer.body = std::mem::take(&mut self.buffer);
        }
        Ok(answer)
    }

    async fn read_exact(&mut self, length: usize) -> Result<Vec<u8>, String> {
        while self.buffer.len() < length {
            if !self.fill().await? {
                return Err(format!(
                    "connection closed after {} of {length} body bytes",
                    self.buffer.len()
                ));
            }
        }
        Ok(self.buffer.drain(..length).collect())
    }

    async fn read_line(&mut self) -> Result<String, String> {
        loop {
            if let Some(at) = find(&self.buffer, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffer[..at]).into_owned();
                self.buffer.drain(..at + 2);
                return Ok(line);
            }
            if !self.fill().await? {
                return Err("connection closed inside a chunked body".into());
            }
        }
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size line {line:?}"))?;
            if size == 0 {
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.read_exact(size).await?);
            self.read_line().await?;
        }
    }

    /// Reads until the proxy closes the connection; the bytes read, the
    /// unparsed rest of earlier reads included.
    pub async fn read_to_end(&mut self) -> Result<usize, String> {
        while self.fill().await? {}
        Ok(std::mem::take(&mut self.buffer).len())
    }

    /// True when the proxy closed the connection (after what was read).
    pub async fn is_closed(&mut self) -> Result<bool, String> {
        if !self.buffer.is_empty() {
            return Ok(false);
        }
        Ok(!self.fill().await?)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends `request` on a new connection and reads one answer.
pub async fn exchange(socket: &Path, request: &[u8]) -> Result<RawAnswer, String> {
    let mut connection = RawConnection::open(socket).await?;
    connection.send(request).await?;
    let head = request.starts_with(b"HEAD ");
    connection.answer(head).await
}
