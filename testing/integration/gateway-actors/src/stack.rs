//! Everything a profile runs besides the emulators: one `state-proxy` per
//! crew mount, a runtime and a sidecar per actor, the gateway, after the
//! queue setup step. Started in the order readiness needs (proxies,
//! runtimes, gateway, sidecars), each waited for by its own signal
//! (socket `/healthz`, `runtime-ready`, `/health`, `sidecar-ready`), and
//! stopped in reverse by SIGTERM, which must end each with status 0.
//!
//! Sockets live in a short temporary directory (a Unix socket path has
//! at most 107 bytes); logs in the run directory.
//!
//! With the outage forwarders, storage and the transport each sit behind
//! one (outage.rs), so a test can cut either off; x-sink's sidecar and
//! state proxy can be killed or stopped and started again
//! (resilience.rs).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use conformance::component::Proxy;
use tokio::sync::Mutex;

use crate::cases::{self, Ctx, Outage};
use crate::client::Gateway;
use crate::outage::Forwarder;
use crate::process::{Process, wait_until};
use crate::profile::{Crew, Env, Profile};
use crate::storage::{self, Storage};

/// The test actors and their handlers; the flows file routes through
/// them.
pub const ACTORS: &[(&str, &str)] = &[
    ("test-echo", "echo"),
    ("test-doubler", "doubler"),
    ("test-incrementer", "incrementer"),
    ("test-error", "error"),
    ("test-large-payload", "large-payload"),
];

/// How long one process may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a process may take to stop after SIGTERM: longer than the
/// sidecars' own grace for messages in work (`ASYA_SHUTDOWN_GRACE`, 30 s
/// by default), so that a sidecar using all of it still stops in time.
const STOP_WITHIN: Duration = Duration::from_secs(45);

pub struct Options {
    pub mesh_bin: PathBuf,
    pub proxy_bin: PathBuf,
    pub flows: PathBuf,
    pub run_dir: PathBuf,
    /// Put outage forwarders between the crew proxies and storage, and
    /// between the mesh and the transport.
    pub outage_forwarder: bool,
    pub sidecar_concurrency: usize,
    /// Another connector for both crew proxies (the benchmark runs the
    /// crew on `memory` to take storage out of the numbers).
    pub crew_connector: Option<String>,
}

pub struct Stack {
    pub gateway: Gateway,
    pub results: Arc<dyn Storage>,
    pub errors: Arc<dyn Storage>,
    /// Cut storage off from the crew proxies (when started with them).
    outage: Vec<Forwarder>,
    /// Cut the transport off from the mesh (when started with it).
    transport_outage: Option<Forwarder>,
    /// The profile's commands to stop the transport and start it again.
    pub transport_restart: Option<(String, String)>,
    pub mesh_env: Env,
    /// Socket directory of each actor.
    pub socket_dirs: BTreeMap<String, PathBuf>,
    /// Each crew proxy: its settings, and the process while it runs.
    proxies: Vec<CrewProxy>,
    runtimes: Vec<Process>,
    gateway_process: Option<Process>,
    /// Locked only to kill one and start it again.
    sidecars: Mutex<Vec<Process>>,
    _sockets: tempfile::TempDir,
}

/// A crew actor's state proxy and how to start it again.
struct CrewProxy {
    crew: Crew,
    binary: PathBuf,
    env: Env,
    socket: PathBuf,
    logs: PathBuf,
    running: Mutex<Option<Proxy>>,
    /// How many times it was started, for its log file's name.
    starts: std::sync::atomic::AtomicU32,
}

/// The socket of a crew actor's state proxy.
pub fn proxy_socket(socket_dir: &Path, crew: Crew) -> PathBuf {
    socket_dir
        .join("state")
        .join(format!("{}.sock", crew.mount()))
}

impl Stack {
    pub async fn start(profile: &Profile, options: &Options) -> Result<Stack, String> {
        let logs = options.run_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        let sockets = tempfile::Builder::new()
            .prefix("asya-it-")
            .tempdir()
            .map_err(|e| format!("socket directory: {e}"))?;
        let storage_kind = profile.storage()?.to_owned();
        let mut mesh_env = profile.mesh_env();
        mesh_env
            .entry("ASYA_LOG_LEVEL".into())
            .or_insert_with(|| "info".into());
        let transport_outage = if options.outage_forwarder {
            let var = transport_endpoint_var(mesh_env.get("ASYA_TRANSPORT").map_or("", |t| t))?;
            let endpoint = mesh_env
                .get(var)
                .ok_or_else(|| format!("the mesh needs {var}"))?
                .clone();
            let forwarder = Forwarder::start(socket_addr(&endpoint)?).await?;
            mesh_env.insert(var.into(), replace_authority(&endpoint, forwarder.addr)?);
            Some(forwarder)
        } else {
            None
        };

        let mut setup = Process::spawn(
            "setup",
            &options.mesh_bin,
            &["setup", "--flows", &options.flows.display().to_string()],
            &mesh_env,
            logs.join("setup.log"),
        )?;
        wait_until("queue setup", Duration::from_secs(90), &mut [], || {
            let done = setup.exited();
            async move { done.is_some() }
        })
        .await?;
        match setup.exited() {
            Some(status) if status.success() => {}
            status => {
                return Err(format!(
                    "queue setup failed ({status:?}):\n{}",
                    setup.log_tail()
                ));
            }
        }

        let mut socket_dirs = BTreeMap::new();
        let all_actors = ACTORS
            .iter()
            .copied()
            .chain(Crew::BOTH.iter().map(|c| (c.actor(), c.actor())));
        for (actor, _) in all_actors.clone() {
            let dir = sockets.path().join(actor);
            std::fs::create_dir_all(dir.join("state")).map_err(|e| e.to_string())?;
            socket_dirs.insert(actor.to_owned(), dir);
        }

        // Crew proxies, optionally behind the outage forwarder.
        let endpoint_var = storage::endpoint_var(&storage_kind)?;
        let mut forwarders: BTreeMap<String, Forwarder> = BTreeMap::new();
        let mut proxies = Vec::new();
        let mut crew_storage = Vec::new();
        for crew in Crew::BOTH {
            let mut env = profile.proxy_env(crew);
            crew_storage.push(storage::for_proxy(&storage_kind, &env)?);
            if crew == Crew::Sink {
                // The limit `checkpoint_refused` goes over.
                let limit = cases::sink_max_body_kb(profile.large_payload_kb()?);
                env.entry("STATE_MAX_BODY_BYTES".into())
                    .or_insert_with(|| format!("{limit}KiB"));
            }
            if let Some(connector) = &options.crew_connector {
                env.insert("ASYA_CONNECTOR".into(), connector.clone());
            }
            if options.outage_forwarder {
                let endpoint = env
                    .get(endpoint_var)
                    .ok_or_else(|| format!("the crew proxies need {endpoint_var}"))?
                    .clone();
                if !forwarders.contains_key(&endpoint) {
                    let target = socket_addr(&endpoint)?;
                    forwarders.insert(endpoint.clone(), Forwarder::start(target).await?);
                }
                let forwarded = replace_authority(&endpoint, forwarders[&endpoint].addr)?;
                env.insert(endpoint_var.into(), forwarded);
            }
            let proxy = CrewProxy {
                crew,
                binary: options.proxy_bin.clone(),
                env,
                socket: proxy_socket(&socket_dirs[crew.actor()], crew),
                logs: logs.clone(),
                running: Mutex::new(None),
                starts: std::sync::atomic::AtomicU32::new(0),
            };
            proxy.start().await?;
            proxies.push(proxy);
        }

        let mut runtimes = Vec::new();
        for (actor, handler) in all_actors.clone() {
            let dir = &socket_dirs[actor];
            let mut env = Env::new();
            env.insert("ASYA_LOG_LEVEL".into(), mesh_env["ASYA_LOG_LEVEL"].clone());
            env.insert("ASYA_HANDLER".into(), handler.into());
            env.insert("ASYA_SOCKET_DIR".into(), dir.display().to_string());
            if let Some(crew) = Crew::BOTH.into_iter().find(|c| c.actor() == actor) {
                let mount = format!("/state/{}", crew.mount());
                env.insert(
                    "ASYA_STATE_PROXY_MOUNTS".into(),
                    format!("{}:{mount}:{}", crew.mount(), profile.mount_options(crew)),
                );
                env.insert(
                    "ASYA_STATE_SOCKET_DIR".into(),
                    dir.join("state").display().to_string(),
                );
                env.insert("ASYA_PERSISTENCE_MOUNT".into(), mount);
            }
            runtimes.push(Process::spawn(
                &format!("{actor} runtime"),
                &options.mesh_bin,
                &["runtime"],
                &env,
                logs.join(format!("{actor}-runtime.log")),
            )?);
        }
        for (runtime, (actor, _)) in runtimes.iter_mut().zip(all_actors.clone()) {
            let ready = socket_dirs[actor].join(asya_mesh::runtime::READY_FILE);
            wait_for_file(&ready, runtime).await?;
        }

        let port = free_port()?;
        let gateway_url = format!("http://127.0.0.1:{port}");
        let mut env = mesh_env.clone();
        env.insert("ASYA_GATEWAY_ADDR".into(), format!("127.0.0.1:{port}"));
        env.insert(
            "ASYA_FLOWS_FILE".into(),
            options.flows.display().to_string(),
        );
        let mut gateway_process = Process::spawn(
            "gateway",
            &options.mesh_bin,
            &["gateway"],
            &env,
            logs.join("gateway.log"),
        )?;
        let gateway = Gateway::new(&gateway_url);
        wait_until(
            "gateway /health",
            READY_WITHIN,
            &mut [&mut gateway_process],
            || {
                let gateway = gateway.clone();
                async move { matches!(gateway.get("/health").await, Ok((200, _))) }
            },
        )
        .await?;

        let mut sidecars = Vec::new();
        for (actor, _) in all_actors.clone() {
            let mut env = mesh_env.clone();
            env.insert("ASYA_ACTOR_NAME".into(), actor.into());
            env.insert(
                "ASYA_SOCKET_DIR".into(),
                socket_dirs[actor].display().to_string(),
            );
            env.insert(
                "ASYA_SIDECAR_CONCURRENCY".into(),
                options.sidecar_concurrency.to_string(),
            );
            env.entry("ASYA_SIDECAR_RETRY_DELAY".into())
                .or_insert_with(|| "200ms".into());
            if Crew::BOTH.iter().any(|c| c.actor() == actor) {
                env.insert("ASYA_IS_END_ACTOR".into(), "true".into());
                env.insert("ASYA_GATEWAY_URL".into(), gateway_url.clone());
            }
            sidecars.push(Process::spawn(
                &format!("{actor} sidecar"),
                &options.mesh_bin,
                &["sidecar"],
                &env,
                logs.join(format!("{actor}-sidecar.log")),
            )?);
        }
        for (sidecar, (actor, _)) in sidecars.iter_mut().zip(all_actors) {
            let ready = socket_dirs[actor].join(asya_mesh::sidecar::SIDECAR_READY_FILE);
            wait_for_file(&ready, sidecar).await?;
        }

        let errors = crew_storage.pop().expect("two crew actors");
        let results = crew_storage.pop().expect("two crew actors");
        Ok(Stack {
            gateway,
            results,
            errors,
            outage: forwarders.into_values().collect(),
            transport_outage,
            transport_restart: profile.transport_restart(),
            mesh_env,
            socket_dirs,
            proxies,
            runtimes,
            gateway_process: Some(gateway_process),
            sidecars: Mutex::new(sidecars),
            _sockets: sockets,
        })
    }

    /// Empties both crew buckets.
    pub async fn clean(&self) -> Result<(), String> {
        cases::clean(&*self.results, &*self.errors).await
    }

    /// What the tests see of this stack.
    pub fn context(&self, large_payload_kb: u64) -> Ctx<'_> {
        Ctx {
            gateway: &self.gateway,
            results: &*self.results,
            errors: &*self.errors,
            outage: (!self.outage.is_empty()).then_some(self as &dyn Outage),
            large_payload_kb,
        }
    }

    /// Every process of the stack by its part (`gateway`, `sidecars`,
    /// `runtimes`, `crew state proxies`), for measurements.
    pub async fn pids(&self) -> Vec<(&'static str, u32)> {
        let mut pids = Vec::new();
        let part = |name, processes: &[Process], pids: &mut Vec<_>| {
            pids.extend(processes.iter().filter_map(|p| Some((name, p.pid()?))));
        };
        part("sidecars", &self.sidecars.lock().await, &mut pids);
        part("runtimes", &self.runtimes, &mut pids);
        part("gateway", self.gateway_process.as_slice(), &mut pids);
        for proxy in &self.proxies {
            if let Some(pid) = proxy.running.lock().await.as_ref().and_then(Proxy::pid) {
                pids.push(("crew state proxies", pid));
            }
        }
        pids
    }

    /// The forwarder between the mesh and the transport, if any.
    pub fn transport_outage(&self) -> Option<&Forwarder> {
        self.transport_outage.as_ref()
    }

    /// Kills `actor`'s sidecar with SIGKILL.
    pub async fn kill_sidecar(&self, actor: &str) -> Result<(), String> {
        let mut sidecars = self.sidecars.lock().await;
        sidecar_of(&mut sidecars, actor)?.kill().await
    }

    /// Starts `actor`'s killed sidecar again and waits until it consumes.
    pub async fn start_sidecar_again(&self, actor: &str) -> Result<(), String> {
        let mut sidecars = self.sidecars.lock().await;
        let sidecar = sidecar_of(&mut sidecars, actor)?;
        // A killed sidecar leaves its readiness file behind.
        let ready = self.socket_dirs[actor].join(asya_mesh::sidecar::SIDECAR_READY_FILE);
        let _ = std::fs::remove_file(&ready);
        sidecar.start_again()?;
        wait_for_file(&ready, sidecar).await
    }

    /// Stops `crew`'s state proxy (SIGTERM, a clean exit).
    pub async fn stop_proxy(&self, crew: Crew) -> Result<(), String> {
        let proxy = self.crew_proxy(crew)?;
        let running = proxy.running.lock().await.take();
        match running {
            Some(running) => running.stop().await,
            None => Err(format!("{}'s state proxy is not running", crew.actor())),
        }
    }

    /// Starts `crew`'s stopped state proxy again on its socket and waits
    /// until it answers.
    pub async fn start_proxy_again(&self, crew: Crew) -> Result<(), String> {
        self.crew_proxy(crew)?.start().await
    }

    fn crew_proxy(&self, crew: Crew) -> Result<&CrewProxy, String> {
        self.proxies
            .iter()
            .find(|p| p.crew == crew)
            .ok_or_else(|| format!("no state proxy for {}", crew.actor()))
    }

    /// What `actor`'s runtime has logged so far.
    pub fn runtime_log(&self, actor: &str) -> Result<String, String> {
        let name = format!("{actor} runtime");
        let runtime = self
            .runtimes
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| format!("no {name}"))?;
        std::fs::read_to_string(&runtime.log).map_err(|e| format!("{}: {e}", runtime.log.display()))
    }

    /// Any process that exited while it should be running.
    pub fn exited(&mut self) -> Vec<String> {
        let processes = self
            .sidecars
            .get_mut()
            .iter_mut()
            .chain(self.runtimes.iter_mut())
            .chain(self.gateway_process.iter_mut());
        processes
            .filter_map(|p| {
                p.exited()
                    .map(|status| format!("{} exited ({status}):\n{}", p.name, p.log_tail()))
            })
            .collect()
    }

    /// Stops everything (sidecars first, so no message is in work when
    /// its runtime goes); returns what did not stop cleanly.
    pub async fn stop(mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let stops = self
            .sidecars
            .get_mut()
            .drain(..)
            .map(|p| p.stop(STOP_WITHIN))
            .collect::<Vec<_>>();
        for result in futures_util::future::join_all(stops).await {
            problems.extend(result.err());
        }
        if let Some(gateway) = self.gateway_process.take() {
            problems.extend(gateway.stop(STOP_WITHIN).await.err());
        }
        let stops = self
            .runtimes
            .drain(..)
            .map(|p| p.stop(STOP_WITHIN))
            .collect::<Vec<_>>();
        for result in futures_util::future::join_all(stops).await {
            problems.extend(result.err());
        }
        for proxy in self.proxies.drain(..) {
            let actor = proxy.crew.actor();
            match proxy.running.into_inner() {
                Some(running) => {
                    if let Err(e) = running.stop().await {
                        problems.push(format!("{actor} state proxy: {e}"));
                    }
                }
                None => problems.push(format!("{actor} state proxy was not running")),
            }
        }
        problems
    }
}

impl Outage for Stack {
    fn cut(&self) {
        self.outage.iter().for_each(Forwarder::cut);
    }

    fn restore(&self) {
        self.outage.iter().for_each(Forwarder::restore);
    }

    fn refused(&self) -> u64 {
        self.outage.iter().map(Forwarder::refused).sum()
    }
}

impl CrewProxy {
    /// Starts it and waits until it answers; each start logs to a file of
    /// its own.
    async fn start(&self) -> Result<(), String> {
        let mut running = self.running.lock().await;
        if running.is_some() {
            return Err(format!("{}'s state proxy is running", self.crew.actor()));
        }
        let starts = self
            .starts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = match starts {
            0 => format!("{}-state-proxy.log", self.crew.actor()),
            n => format!("{}-state-proxy.{}.log", self.crew.actor(), n + 1),
        };
        let proxy = Proxy::start(
            &self.binary,
            &self.env,
            self.socket.clone(),
            &self.logs.join(name),
        )
        .await?;
        *running = Some(proxy);
        Ok(())
    }
}

fn sidecar_of<'a>(sidecars: &'a mut [Process], actor: &str) -> Result<&'a mut Process, String> {
    let name = format!("{actor} sidecar");
    sidecars
        .iter_mut()
        .find(|p| p.name == name)
        .ok_or_else(|| format!("no {name}"))
}

/// The mesh setting that says where a transport is.
fn transport_endpoint_var(transport: &str) -> Result<&'static str, String> {
    Ok(match transport {
        "sqs" => "ASYA_SQS_ENDPOINT",
        "rabbitmq" => "ASYA_RABBITMQ_URL",
        "pubsub" => "ASYA_PUBSUB_ENDPOINT",
        "nats" => "ASYA_NATS_URL",
        other => return Err(format!("no outage forwarder for transport {other:?}")),
    })
}

/// Waits until `process` has written its readiness file.
async fn wait_for_file(file: &Path, process: &mut Process) -> Result<(), String> {
    let what = format!("{} writing {}", process.name, file.display());
    wait_until(&what, READY_WITHIN, &mut [process], || {
        let exists = file.exists();
        async move { exists }
    })
    .await
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// `host:port` of a URL such as `http://127.0.0.1:4566/...` (without the
/// user information of `amqp://user:pass@host:port/vhost`).
fn authority(url: &str) -> Result<&str, String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok(authority)
}

fn socket_addr(url: &str) -> Result<SocketAddr, String> {
    let authority = authority(url)?;
    authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))
}

/// The same URL with another `host:port`.
fn replace_authority(url: &str, addr: SocketAddr) -> Result<String, String> {
    let old = authority(url)?;
    Ok(url.replacen(old, &addr.to_string(), 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_the_forwarder_address() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(
            replace_authority("http://127.0.0.1:4566", addr).unwrap(),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            replace_authority("redis://127.0.0.1:6390/0", addr).unwrap(),
            "redis://127.0.0.1:9/0"
        );
        assert_eq!(
            socket_addr("http://127.0.0.1:4566/x").unwrap(),
            "127.0.0.1:4566".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            replace_authority("amqp://u:p@127.0.0.1:5672/vhost", addr).unwrap(),
            "amqp://u:p@127.0.0.1:9/vhost"
        );
        assert!(authority("http://").is_err());
    }
}
