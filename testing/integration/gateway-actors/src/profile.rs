//! An integration profile (`profiles/<transport>-<storage>.env`):
//! `KEY=VALUE` lines that may refer to `${NAME}` from the emulator
//! scripts' env files. Who gets what:
//!
//! - `ASYA_*` and `AWS_*`: the mesh processes (gateway, sidecars, setup);
//! - `PROXY_*` (prefix dropped): both crew state proxies, then
//!   `SINK_PROXY_*` / `SUMP_PROXY_*` for one of them;
//! - `SINK_MOUNT_OPTIONS` / `SUMP_MOUNT_OPTIONS`: the crew runtime's mount
//!   options (`write=buffered` by default);
//! - `STORAGE` (`s3`, ...): how tests read objects from the emulator;
//! - `LARGE_PAYLOAD_KB`: the size of the large-payload test;
//! - `TRANSPORT_STOP` / `TRANSPORT_START` (optional): shell commands that
//!   stop the transport's server and start it again where it was, keeping
//!   what it holds (a server of the run's own, such as NATS); the
//!   `transport-restart` test runs them.

use std::collections::BTreeMap;
use std::path::Path;

use conformance::component::parse_env;

pub type Env = BTreeMap<String, String>;

/// The two crew actors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crew {
    Sink,
    Sump,
}

impl Crew {
    pub const BOTH: [Crew; 2] = [Crew::Sink, Crew::Sump];

    pub fn actor(self) -> &'static str {
        match self {
            Crew::Sink => "x-sink",
            Crew::Sump => "x-sump",
        }
    }

    /// Name of the crew runtime's state mount (and of its proxy socket).
    pub fn mount(self) -> &'static str {
        match self {
            Crew::Sink => "results",
            Crew::Sump => "errors",
        }
    }

    fn key_prefix(self) -> &'static str {
        match self {
            Crew::Sink => "SINK_",
            Crew::Sump => "SUMP_",
        }
    }
}

pub struct Profile {
    pub name: String,
    pub vars: Env,
}

impl Profile {
    /// Reads a profile; `${NAME}` expands from `env_files` (in order) and
    /// `RUN_DIR`.
    pub fn read(
        path: &Path,
        env_files: &[impl AsRef<Path>],
        run_dir: &Path,
    ) -> Result<Profile, String> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
        };
        let mut base = Env::new();
        base.insert("RUN_DIR".into(), run_dir.display().to_string());
        for file in env_files {
            let file = file.as_ref();
            let vars =
                parse_env(&read(file)?, &base).map_err(|e| format!("{}: {e}", file.display()))?;
            base.extend(vars);
        }
        let vars =
            parse_env(&read(path)?, &base).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Profile { name, vars })
    }

    pub fn get(&self, key: &str) -> Result<&str, String> {
        self.vars
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("profile {} must set {key}", self.name))
    }

    /// Environment of the mesh processes.
    pub fn mesh_env(&self) -> Env {
        self.vars
            .iter()
            .filter(|(key, _)| key.starts_with("ASYA_") || key.starts_with("AWS_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Environment of a crew actor's state proxy.
    pub fn proxy_env(&self, crew: Crew) -> Env {
        let own = format!("{}PROXY_", crew.key_prefix());
        let mut env = strip(&self.vars, "PROXY_");
        env.extend(strip(&self.vars, &own));
        env
    }

    pub fn mount_options(&self, crew: Crew) -> String {
        let key = format!("{}MOUNT_OPTIONS", crew.key_prefix());
        self.vars
            .get(&key)
            .cloned()
            .unwrap_or_else(|| "write=buffered".into())
    }

    pub fn storage(&self) -> Result<&str, String> {
        self.get("STORAGE")
    }

    /// How to stop the transport's server and start it again, when the
    /// profile says.
    pub fn transport_restart(&self) -> Option<(String, String)> {
        Some((
            self.vars.get("TRANSPORT_STOP")?.clone(),
            self.vars.get("TRANSPORT_START")?.clone(),
        ))
    }

    pub fn large_payload_kb(&self) -> Result<u64, String> {
        self.get("LARGE_PAYLOAD_KB")?
            .parse()
            .map_err(|_| format!("profile {}: LARGE_PAYLOAD_KB is not a number", self.name))
    }
}

fn strip(vars: &Env, prefix: &str) -> Env {
    vars.iter()
        .filter_map(|(key, value)| Some((key.strip_prefix(prefix)?.to_owned(), value.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_process_gets_its_share() {
        let profile = Profile {
            name: "p".into(),
            vars: [
                ("ASYA_TRANSPORT", "sqs"),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("PROXY_AWS_REGION", "us-east-1"),
                ("PROXY_ASYA_CONNECTOR", "s3-buffered-lww"),
                ("SUMP_PROXY_ASYA_CONNECTOR", "s3-passthrough"),
                ("SINK_PROXY_STATE_BUCKET", "asya-results"),
                ("SUMP_MOUNT_OPTIONS", "write=passthrough"),
                ("STORAGE", "s3"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        };
        let mesh = profile.mesh_env();
        assert_eq!(mesh.len(), 2);
        let sink = profile.proxy_env(Crew::Sink);
        assert_eq!(sink["ASYA_CONNECTOR"], "s3-buffered-lww");
        assert_eq!(sink["STATE_BUCKET"], "asya-results");
        assert_eq!(sink["AWS_REGION"], "us-east-1");
        let sump = profile.proxy_env(Crew::Sump);
        assert_eq!(sump["ASYA_CONNECTOR"], "s3-passthrough");
        assert!(!sump.contains_key("STATE_BUCKET"));
        assert_eq!(profile.mount_options(Crew::Sink), "write=buffered");
        assert_eq!(profile.mount_options(Crew::Sump), "write=passthrough");
    }
}
