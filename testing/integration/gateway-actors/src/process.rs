//! The processes a run starts: spawned with exactly the environment they
//! are given (plus `PATH`), stderr to their own log file, killed by pid
//! when dropped (a failed or panicking run leaves nothing behind), and
//! stopped with SIGTERM, which must end them with status 0. A process
//! remembers how it was started, so a test can kill it (SIGKILL, a crash)
//! and start it again the same way.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::profile::Env;

pub struct Process {
    pub name: String,
    child: Child,
    pub log: PathBuf,
    launch: Launch,
}

/// How a process was started.
struct Launch {
    program: PathBuf,
    args: Vec<String>,
    env: Env,
}

impl Process {
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[&str],
        env: &Env,
        log: PathBuf,
    ) -> Result<Process, String> {
        let launch = Launch {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: env.clone(),
        };
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = launch.spawn(name, log_file)?;
        Ok(Process {
            name: name.to_owned(),
            child,
            log,
            launch,
        })
    }

    /// Kills it with SIGKILL (no chance to clean up, as in a crash) and
    /// waits until it is gone.
    pub async fn kill(&mut self) -> Result<(), String> {
        self.child
            .kill()
            .await
            .map_err(|e| format!("killing {}: {e}", self.name))
    }

    /// Starts it again as it was started the first time; its log goes on
    /// in the same file.
    pub fn start_again(&mut self) -> Result<(), String> {
        if self.exited().is_none() {
            return Err(format!("{} is still running", self.name));
        }
        let log_file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        self.child = self.launch.spawn(&self.name, log_file)?;
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The exit status, if it exited already.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of its log, for messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// SIGTERM, then waits `grace` for an exit with status 0 (else
    /// SIGKILL and an error).
    pub async fn stop(mut self, grace: Duration) -> Result<(), String> {
        let Some(pid) = self.child.id() else {
            let status = self.child.wait().await.map_err(|e| e.to_string())?;
            return Err(format!("{} had exited already ({status})", self.name));
        };
        terminate(pid);
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!(
                "{} exited with {status} after SIGTERM:\n{}",
                self.name,
                self.log_tail()
            )),
            Ok(Err(e)) => Err(format!("{}: {e}", self.name)),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!(
                    "{} did not exit within {grace:?} of SIGTERM",
                    self.name
                ))
            }
        }
    }
}

impl Launch {
    fn spawn(&self, name: &str, log: std::fs::File) -> Result<Child, String> {
        Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {name} ({}): {e}", self.program.display()))
    }
}

/// Sends SIGTERM to one process by pid.
pub fn terminate(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory effects; the pid is a child of
        // ours that has not been reaped, so it names no other process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Polls `ready` until it holds; fails at `deadline`, or as soon as one
/// of `watched` exits (its log says why).
pub async fn wait_until<F, Fut>(
    what: &str,
    within: Duration,
    watched: &mut [&mut Process],
    mut ready: F,
) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if ready().await {
            return Ok(());
        }
        for process in watched.iter_mut() {
            if let Some(status) = process.exited() {
                return Err(format!(
                    "{} exited ({status}) while waiting for {what}:\n{}",
                    process.name,
                    process.log_tail()
                ));
            }
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = watched
                .iter()
                .map(|p| format!("--- {}:\n{}", p.name, p.log_tail()))
                .collect();
            return Err(format!(
                "{what}: not ready within {within:?}\n{}",
                logs.join("\n")
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
