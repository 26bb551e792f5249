//! Component runs: the real `state-proxy` binary, started as the profile
//! says (its environment), on fresh sockets, against whatever backend the
//! profile names (an emulator started beforehand by the Makefile).
//!
//! A run starts four proxy processes on the same backend (the suite's
//! compare-and-swap cases need peers), runs the suite and the connector's
//! scenarios, then stops every process with SIGTERM and checks that each
//! exits 0 and removes its socket.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use state_client::Client;
use tokio::process::{Child, Command};

use crate::backend::{Backend, FsBackend, GcsBackend, RedisBackend, S3Backend};
use crate::profile::Profile;

/// Environment of a profile: `KEY=VALUE` lines, `#` comments, `${NAME}`
/// expanded from earlier lines, then from `base`.
pub fn parse_env(
    text: &str,
    base: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected NAME=VALUE, got {line:?}", number + 1))?;
        let value = expand(value.trim(), |var| {
            env.get(var).or_else(|| base.get(var)).cloned()
        })
        .map_err(|e| format!("line {}: {e}", number + 1))?;
        env.insert(name.trim().to_owned(), value);
    }
    Ok(env)
}

fn expand(value: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {value:?}"))?;
        let name = &rest[start + 2..start + end];
        out.push_str(
            &lookup(name).ok_or_else(|| format!("{name} is not set (needed by {value:?})"))?,
        );
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One proxy process.
pub struct Proxy {
    pub socket: PathBuf,
    child: Child,
    /// Time from spawn to the first answered `/healthz`.
    pub ready_after: Duration,
}

impl Proxy {
    /// Starts the binary with `env` on `socket` and waits until it answers.
    pub async fn start(
        binary: &Path,
        env: &BTreeMap<String, String>,
        socket: PathBuf,
        log: &Path,
    ) -> Result<Proxy, String> {
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let started = Instant::now();
        let mut child = Command::new(binary)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .env("CONNECTOR_SOCKET", &socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let client = Client::new_connection_per_request(&socket);
        // Readiness: the socket answers /healthz. Polled briefly; the
        // process exiting instead (bad configuration) ends the wait.
        let deadline = started + Duration::from_secs(20);
        loop {
            if client.healthz().await.is_ok() {
                break;
            }
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                let log_text = std::fs::read_to_string(log).unwrap_or_default();
                return Err(format!(
                    "the proxy exited with {status} before serving:\n{log_text}"
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the proxy did not answer on {} within 20 s",
                    socket.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(Proxy {
            socket,
            child,
            ready_after: started.elapsed(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Resident and peak resident memory, in KiB, from /proc.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// SIGTERM, then checks for exit status 0 and a removed socket file.
    pub async fn stop(mut self) -> Result<(), String> {
        let pid = self.pid().ok_or("the proxy already exited")?;
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .map_err(|e| format!("kill: {e}"))?;
        if !killed.success() {
            return Err(format!("kill -TERM {pid} failed"));
        }
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .map_err(|_| "the proxy did not exit within 30 s of SIGTERM".to_owned())?
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("the proxy exited with {status} after SIGTERM"));
        }
        if self.socket.exists() {
            return Err(format!(
                "{} was left behind after shutdown",
                self.socket.display()
            ));
        }
        Ok(())
    }
}

/// Direct access to the backend a profile's environment names.
pub fn backend_for(
    profile: &Profile,
    env: &BTreeMap<String, String>,
) -> Result<Option<Arc<dyn Backend>>, String> {
    let prefix = env.get("STATE_PREFIX").cloned().unwrap_or_default();
    Ok(match profile.store.as_str() {
        "fs" => Some(Arc::new(FsBackend {
            dir: PathBuf::from(
                env.get("STATE_DIR")
                    .ok_or("the fs profile must set STATE_DIR")?,
            ),
            prefix,
        })),
        "redis" => Some(Arc::new(RedisBackend {
            url: env
                .get("REDIS_URL")
                .ok_or("the redis profile must set REDIS_URL")?
                .clone(),
            prefix,
        })),
        "gcs" => Some(Arc::new(GcsBackend::new(
            env.get("STORAGE_EMULATOR_HOST")
                .ok_or("the gcs profile must set STORAGE_EMULATOR_HOST (an emulator)")?,
            env.get("STATE_BUCKET")
                .ok_or("the gcs profile must set STATE_BUCKET")?,
            &prefix,
        )?)),
        "s3" => Some(Arc::new(S3Backend::from_env(env)?)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_expand_earlier_lines_and_the_base() {
        let base = BTreeMap::from([("RUN_DIR".to_owned(), "/tmp/run".to_owned())]);
        let env = parse_env(
            "# comment\nASYA_CONNECTOR=fs-buffered-lww\nSTATE_DIR=${RUN_DIR}/data\nCOPY=${STATE_DIR}/x\n",
            &base,
        )
        .unwrap();
        assert_eq!(env["STATE_DIR"], "/tmp/run/data");
        assert_eq!(env["COPY"], "/tmp/run/data/x");
        assert!(
            parse_env("X=${MISSING}", &base)
                .unwrap_err()
                .contains("MISSING is not set")
        );
        assert!(parse_env("no equals sign", &base).is_err());
    }
}
