//! The disruptions `run` causes itself, each a test of its own through
//! [`disruption::run`](crate::disruption::run):
//!
//! - `transport-outage`: the transport cut off from every mesh process
//!   (the forwarder between them closes live connections and refuses new
//!   ones) while tasks are on their way; the sidecars connect again with
//!   back-off once it is back.
//! - `transport-restart`, where the profile says how
//!   (`TRANSPORT_STOP`/`TRANSPORT_START`): the transport's server itself
//!   stopped and started again while tasks are on their way.
//! - `sidecar-crash`: x-sink's sidecar killed with SIGKILL mid-run and
//!   started again; what it had in work is delivered again and its
//!   checkpoints are written again under the same names.
//! - `proxy-restart`: x-sink's state proxy stopped mid-run and started
//!   again on its socket; the checkpoints that failed meanwhile are
//!   retried by redelivery and land.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::cases::{CaseResult, InFlight};
use crate::disruption::{Disrupt, shell};
use crate::outage::Forwarder;
use crate::profile::Crew;
use crate::stack::Stack;

/// Every disruption of `run` on `stack`.
pub fn all(stack: &Stack) -> Vec<Box<dyn Disrupt + '_>> {
    let mut all: Vec<Box<dyn Disrupt + '_>> = Vec::new();
    if let Some(forwarder) = stack.transport_outage() {
        let outage = |restart| TransportOutage {
            forwarder,
            restart,
            sidecars: stack.socket_dirs.len() as u64,
            refused_at_begin: AtomicU64::new(0),
        };
        all.push(Box::new(outage(None)));
        if let Some(restart) = &stack.transport_restart {
            all.push(Box::new(outage(Some(restart))));
        }
    }
    all.push(Box::new(SidecarCrash {
        stack,
        actor: Crew::Sink.actor(),
    }));
    all.push(Box::new(ProxyRestart {
        stack,
        crew: Crew::Sink,
    }));
    all
}

/// The transport gone: cut off by the forwarder, or its server stopped
/// (`restart`: the commands that stop it and start it again).
struct TransportOutage<'a> {
    forwarder: &'a Forwarder,
    restart: Option<&'a (String, String)>,
    sidecars: u64,
    refused_at_begin: AtomicU64,
}

#[async_trait]
impl Disrupt for TransportOutage<'_> {
    fn name(&self) -> &str {
        if self.restart.is_some() {
            "transport-restart"
        } else {
            "transport-outage"
        }
    }

    fn takes_tasks(&self) -> bool {
        false
    }

    async fn begin(&self) -> CaseResult {
        self.refused_at_begin
            .store(self.forwarder.refused(), Ordering::SeqCst);
        match self.restart {
            Some((stop, _)) => must_succeed(stop).await,
            None => {
                self.forwarder.cut();
                Ok(())
            }
        }
    }

    /// Felt once the mesh has tried to reach the transport twice per
    /// sidecar since the cut (connections closed or refused).
    async fn felt(&self, _: &InFlight) -> Result<Option<String>, String> {
        let since = self.forwarder.refused() - self.refused_at_begin.load(Ordering::SeqCst);
        Ok((since < 2 * self.sidecars).then(|| {
            format!(
                "{since} connections to the transport refused since the cut, {} expected",
                2 * self.sidecars
            )
        }))
    }

    async fn end(&self) -> CaseResult {
        match self.restart {
            Some((_, start)) => must_succeed(start).await,
            None => {
                self.forwarder.restore();
                Ok(())
            }
        }
    }
}

/// Runs `command` through `sh -c`; `Err` with what it said unless it
/// succeeds.
async fn must_succeed(command: &str) -> CaseResult {
    match shell(command, &[])
        .await
        .map_err(|e| format!("{command}: {e}"))?
    {
        (true, _) => Ok(()),
        (false, said) => Err(format!("{command} failed: {said}")),
    }
}

struct SidecarCrash<'a> {
    stack: &'a Stack,
    actor: &'static str,
}

#[async_trait]
impl Disrupt for SidecarCrash<'_> {
    fn name(&self) -> &str {
        "sidecar-crash"
    }

    async fn begin(&self) -> CaseResult {
        self.stack.kill_sidecar(self.actor).await
    }

    /// Felt at once: a killed sidecar takes nothing more.
    async fn felt(&self, _: &InFlight) -> Result<Option<String>, String> {
        Ok(None)
    }

    async fn end(&self) -> CaseResult {
        self.stack.start_sidecar_again(self.actor).await
    }
}

struct ProxyRestart<'a> {
    stack: &'a Stack,
    crew: Crew,
}

#[async_trait]
impl Disrupt for ProxyRestart<'_> {
    fn name(&self) -> &str {
        "proxy-restart"
    }

    async fn begin(&self) -> CaseResult {
        self.stack.stop_proxy(self.crew).await
    }

    /// Felt once the crew runtime has failed a checkpoint of every echo
    /// task submitted meanwhile.
    async fn felt(&self, tasks: &InFlight) -> Result<Option<String>, String> {
        let log = self.stack.runtime_log(self.crew.actor())?;
        let missing = tasks
            .echo_ids
            .iter()
            .filter(|id| !log.contains(&format!("checkpoint failed id={id}")))
            .count();
        Ok((missing > 0).then(|| format!("{missing} tasks have not failed a checkpoint yet")))
    }

    async fn end(&self) -> CaseResult {
        self.stack.start_proxy_again(self.crew).await
    }
}
