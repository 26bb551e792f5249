//! A storage outage on demand: a TCP forwarder between the crew's state
//! proxies and the storage emulator. While it is cut, live connections
//! are closed and new ones are accepted and closed at once, so the
//! proxies find storage unreachable (and answer 503) while the emulator
//! itself, and the transport, stay up. Restoring it lets traffic through
//! again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Forwarder {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

struct Shared {
    up: AtomicBool,
    /// Connections closed because of the outage, or because the server
    /// behind it was not there.
    refused: AtomicU64,
    /// Bumped on every cut; connections end when it changes.
    cuts: watch::Sender<u64>,
}

impl Forwarder {
    /// Listens on a free port of 127.0.0.1 and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Result<Forwarder, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("forwarder: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared {
            up: AtomicBool::new(true),
            refused: AtomicU64::new(0),
            cuts: watch::channel(0).0,
        });
        let accept = tokio::spawn(accept_loop(listener, target, Arc::clone(&shared)));
        Ok(Forwarder {
            addr,
            shared,
            accept,
        })
    }

    /// Storage becomes unreachable.
    pub fn cut(&self) {
        self.shared.up.store(false, Ordering::SeqCst);
        self.shared.cuts.send_modify(|cuts| *cuts += 1);
    }

    /// Storage is reachable again.
    pub fn restore(&self) {
        self.shared.up.store(true, Ordering::SeqCst);
    }

    /// Connections refused or cut since the start.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if !shared.up.load(Ordering::SeqCst) {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut cuts = shared.cuts.subscribe();
            let Ok(upstream) = TcpStream::connect(target).await else {
                // The server itself is down: refused all the same.
                shared.refused.fetch_add(1, Ordering::SeqCst);
                return;
            };
            let (mut client, mut upstream) = (client, upstream);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                _ = cuts.changed() => {
                    shared.refused.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn traffic_passes_until_cut_and_again_after_restore() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = echo.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let forwarder = Forwarder::start(target).await.unwrap();
        let round_trip = |addr| async move {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            stream.write_all(b"ping").await.ok()?;
            let mut buf = [0u8; 4];
            stream.read_exact(&mut buf).await.ok()?;
            Some(buf)
        };
        assert_eq!(round_trip(forwarder.addr).await, Some(*b"ping"));
        let mut live = TcpStream::connect(forwarder.addr).await.unwrap();
        live.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        live.read_exact(&mut one).await.unwrap();
        forwarder.cut();
        // The live connection is closed, a new one gets nothing back.
        assert_eq!(live.read(&mut one).await.unwrap_or(0), 0);
        assert_eq!(round_trip(forwarder.addr).await, None);
        assert!(forwarder.refused() >= 2);
        forwarder.restore();
        assert_eq!(round_trip(forwarder.addr).await, Some(*b"ping"));
    }
}
