//! Readiness and the TCP metrics listener, in process on real sockets,
//! with a store whose probe can be made to fail (`store::faulty`).

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method};
use state_client::{Client, Readiness};
use state_proxy::connector::{self, AppSettings};
use state_proxy::http::metrics_listener::MetricsListener;
use state_proxy::http::{App, Server, ServerOptions};
use state_proxy::mode::{Consistency, ModeOptions};
use state_proxy::store::faulty::{FaultyStore, PROBE_FAILURE};
use state_proxy::store::memory::MemoryStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// A memory store whose probe fails until told otherwise.
fn flaky() -> Arc<FaultyStore> {
    let store = FaultyStore::new(Arc::new(MemoryStore::new("")));
    store.fail_probes(true);
    Arc::new(store)
}

struct Running {
    socket: PathBuf,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

fn serve(store: Arc<FaultyStore>, readiness_max_age: Duration) -> (Running, Arc<App>) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("proxy.sock");
    let settings = AppSettings {
        readiness_max_age,
        ..AppSettings::new(ModeOptions {
            consistency: Consistency::BufferedLww,
            max_body_bytes: 1 << 20,
            remembered_versions: NonZeroUsize::new(16).unwrap(),
        })
    };
    let app = connector::assemble(store, &settings, None);
    let options = ServerOptions::new(0o600, Duration::from_secs(5));
    let server = Server::bind(&socket, &options, Arc::clone(&app)).unwrap();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    let running = Running {
        socket,
        stop,
        task,
        _dir: dir,
    };
    (running, app)
}

#[tokio::test]
async fn a_store_that_fails_its_probe_is_not_ready() {
    let store = flaky();
    let (running, _) = serve(Arc::clone(&store), Duration::ZERO);
    let client = Client::new(&running.socket);

    let answer = client
        .raw(Method::GET, "/readyz", HeaderMap::new(), "")
        .await
        .unwrap();
    assert_eq!(answer.status, 503);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let json = answer.json().unwrap();
    assert_eq!(json["status"], "not_ready");
    let reason = json["reason"].as_str().unwrap();
    assert!(reason.contains(PROBE_FAILURE), "{reason}");
    // Liveness never touches the backend.
    client.healthz().await.unwrap();

    store.fail_probes(false);
    assert_eq!(client.readyz().await.unwrap(), Readiness::Ready);
    store.fail_probes(true);
    assert!(matches!(
        client.readyz().await.unwrap(),
        Readiness::NotReady(_)
    ));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_checks_share_a_recent_probe() {
    let store = flaky();
    let (running, _) = serve(Arc::clone(&store), Duration::from_secs(600));
    let checks = (0..10).map(|_| {
        let socket = running.socket.clone();
        tokio::spawn(async move { Client::new(&socket).readyz().await.unwrap() })
    });
    for check in checks {
        assert!(matches!(check.await.unwrap(), Readiness::NotReady(_)));
    }
    assert_eq!(store.probes(), 1);
    // The failure is remembered for the interval: the backend recovering
    // shows only after it.
    store.fail_probes(false);
    let client = Client::new(&running.socket);
    assert!(matches!(
        client.readyz().await.unwrap(),
        Readiness::NotReady(_)
    ));
    assert_eq!(store.probes(), 1);
    running.stop().await;
}

/// One HTTP/1.1 request over TCP, answered with `Connection: close`.
async fn tcp_request(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn metrics_are_served_over_tcp_until_shutdown() {
    let store = flaky();
    store.fail_probes(false);
    let (running, app) = serve(store, Duration::ZERO);
    let client = Client::new(&running.socket);
    client
        .put("a", "1", state_client::Condition::None)
        .await
        .unwrap();

    let listener = MetricsListener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(listener.serve(Arc::clone(app.metrics()), async {
        let _ = stopped.await;
    }));

    let scrape = tcp_request(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
    assert!(
        scrape.contains(r#"state_proxy_requests_total{route="key",method="PUT",status="204"} 1"#),
        "{scrape}"
    );
    let other = tcp_request(
        addr,
        "GET /keys/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");

    drop(stop);
    task.await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    running.stop().await;
}

/// `state-proxy healthcheck`, the exec probe of images without a shell:
/// the real binary against a served socket.
async fn healthcheck(socket: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_state-proxy"));
    command
        .arg("healthcheck")
        .arg("--socket")
        .arg(socket)
        .args(extra);
    // The server under test runs on this runtime: wait off its threads.
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_zero_only_for_what_it_was_asked() {
    let store = flaky();
    let (running, _) = serve(Arc::clone(&store), Duration::ZERO);

    assert!(healthcheck(&running.socket, &[]).await.status.success());
    let not_ready = healthcheck(&running.socket, &["--ready"]).await;
    assert!(!not_ready.status.success());
    let message = String::from_utf8_lossy(&not_ready.stderr);
    assert!(message.contains(PROBE_FAILURE), "{message}");

    store.fail_probes(false);
    assert!(
        healthcheck(&running.socket, &["--ready"])
            .await
            .status
            .success()
    );

    let socket = running.socket.clone();
    running.stop().await;
    let gone = healthcheck(&socket, &[]).await;
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("cannot connect"));
}

/// Reads what the proxy sends until it closes the connection: the head
/// (`None` when nothing came) and the number of body bytes after it.
async fn read_until_closed(stream: &mut tokio::net::UnixStream) -> (Option<String>, usize) {
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the proxy kept the connection open")
        .unwrap();
    match answer.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => (
            Some(String::from_utf8_lossy(&answer[..end]).into_owned()),
            answer.len() - end - 4,
        ),
        None => (None, 0),
    }
}

#[tokio::test]
async fn a_read_that_breaks_off_midway_is_not_a_complete_answer() {
    let store = flaky();
    store.fail_probes(false);
    let (running, _) = serve(Arc::clone(&store), Duration::ZERO);
    let size = 100_000;
    Client::new(&running.socket)
        .put("big", vec![b'b'; size], state_client::Condition::None)
        .await
        .unwrap();
    store.break_reads_after(40_000);

    let mut stream = tokio::net::UnixStream::connect(&running.socket)
        .await
        .unwrap();
    stream
        .write_all(b"GET /keys/big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // A buffered mode too answers before it has the whole object: the
    // break must show as a connection closed before Content-Length bytes,
    // never as a complete (short) answer on a live connection.
    let (head, received) = read_until_closed(&mut stream).await;
    let head = head.expect("the head was sent before the break");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {size}")),
        "{head}"
    );
    assert!(received < size, "{received} of {size} bytes");
    running.stop().await;
}

/// The real binary, serving the memory store on `socket`, started by `sh`
/// with `umask` (so the test sees what an operator's environment does).
fn spawn_proxy(
    socket: &std::path::Path,
    umask: &str,
    env: &[(&str, &str)],
) -> tokio::process::Child {
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "umask {umask} && exec \"$0\" serve --connector memory --socket \"$1\""
        ))
        .arg(env!("CARGO_BIN_EXE_state-proxy"))
        .arg(socket)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().unwrap()
}

/// Waits until `/healthz` answers on `socket`.
async fn until_served(socket: &std::path::Path) {
    let client = Client::new(socket);
    for _ in 0..500 {
        if client.healthz().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the proxy never served {}", socket.display());
}

fn terminate(child: &tokio::process::Child) {
    let pid = child.id().expect("the proxy is running") as libc::pid_t;
    // SAFETY: kill has no memory effects; the pid is our own child's.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_and_half_open_connections_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("proxy.sock");
    // A grace period far above what the test allows for the exit: idle
    // connections must not make the proxy wait for it.
    let mut proxy = spawn_proxy(&socket, "077", &[("STATE_SHUTDOWN_GRACE_SECS", "60")]);
    until_served(&socket).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        idle.push(stream);
    }
    let mut half_open = tokio::net::UnixStream::connect(&socket).await.unwrap();
    half_open
        .write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .unwrap();

    let signalled = std::time::Instant::now();
    terminate(&proxy);
    let status = tokio::time::timeout(Duration::from_secs(5), proxy.wait())
        .await
        .expect("the proxy did not exit within 5 s of SIGTERM (grace 60 s)")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert!(!socket.exists(), "the socket file outlived the proxy");
    // Closed without an answer: an end of stream, or a reset when the
    // proxy closed before reading what was sent.
    let mut rest = Vec::new();
    match half_open.read_to_end(&mut rest).await {
        Ok(_) => assert!(rest.is_empty(), "answered a head that never ended"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_has_its_mode_from_the_first_moment_under_umask_000() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("proxy.sock");
    let mut proxy = spawn_proxy(&socket, "000", &[("STATE_SOCKET_MODE", "660")]);
    // Look as fast as possible: the first time the path exists, its mode
    // must already be the final one, never world-connectable.
    let started = std::time::Instant::now();
    let first = loop {
        if let Ok(meta) = std::fs::symlink_metadata(&socket) {
            break meta;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no socket at {}",
            socket.display()
        );
        tokio::task::yield_now().await;
    };
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    assert!(first.file_type().is_socket());
    assert_eq!(first.permissions().mode() & 0o777, 0o660);
    until_served(&socket).await;
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("proxy.sock")]);
    terminate(&proxy);
    assert!(proxy.wait().await.unwrap().success());
}
