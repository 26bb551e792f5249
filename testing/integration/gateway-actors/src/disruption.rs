//! Tasks through a disruption of a running mesh: every task ends, stored
//! exactly once under its own name. A disruption begins, is felt by the
//! mesh (polled, with the tasks' ids), and ends; [`Disrupt`] is those
//! three steps. `run` causes its own (resilience.rs: the transport cut
//! off, a sidecar killed, a proxy restarted); `check` runs those someone
//! else causes (the E2E level's: the storage emulator stopped and started
//! again, x-sink's pod removed and played again) as commands. Each is a
//! test of its own, `disruption:NAME`.
//!
//! A command disruption is run through `sh -c` with one of:
//!
//! - `begin`: returns once the disruption is in effect;
//! - `felt ID...`: exits 0 once the mesh has felt it with these tasks in
//!   flight (e.g. their checkpoints failed), anything else while not yet;
//!   polled;
//! - `end`: returns once it is over (whatever it disrupted serves again).
//!
//! What every disruption does is take away x-sink's way to storage (its
//! pod, its proxy, its sidecar, or storage itself) or the transport, so no
//! echo task may become final while it lasts.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::process::Command;

use crate::cases::{CaseResult, Ctx, InFlight, brief, is_final};

/// How long a disruption may take to be felt.
const FELT_WITHIN: Duration = Duration::from_secs(60);
/// How long an echo handler takes when a disruption takes no tasks.
const SLOW_MS: u64 = 1000;
/// How often `felt` is asked.
const FELT_EVERY: Duration = Duration::from_millis(200);

/// One way to disrupt a running mesh.
#[async_trait]
pub trait Disrupt: Sync {
    fn name(&self) -> &str;
    /// Objects stored before it began are still there after it (false for
    /// an in-memory emulator stopped and started again: then only tasks
    /// submitted during it are checked).
    fn keeps_storage(&self) -> bool {
        true
    }
    /// The gateway takes tasks while it lasts (false when the transport
    /// itself is gone: then the tasks on their way when it began are the
    /// ones that must get through; their echo handler takes a second, so
    /// that they are in work when it begins, and at least one must still
    /// be on its way then).
    fn takes_tasks(&self) -> bool {
        true
    }
    /// Returns once the disruption is in effect.
    async fn begin(&self) -> CaseResult;
    /// `Ok(None)` once the mesh has felt it with these tasks on their
    /// way, `Ok(Some(what is missing))` while not yet.
    async fn felt(&self, tasks: &InFlight) -> Result<Option<String>, String>;
    /// Returns once it is over.
    async fn end(&self) -> CaseResult;
}

#[async_trait]
impl Disrupt for Disruption {
    fn name(&self) -> &str {
        &self.name
    }

    fn keeps_storage(&self) -> bool {
        self.keeps_storage
    }

    async fn begin(&self) -> CaseResult {
        self.must("begin").await
    }

    async fn felt(&self, tasks: &InFlight) -> Result<Option<String>, String> {
        let ids: Vec<&String> = tasks.ids().collect();
        let (felt, said) = self.call("felt", &ids).await?;
        Ok((!felt).then_some(said))
    }

    async fn end(&self) -> CaseResult {
        self.must("end").await
    }
}

/// The test name of a disruption.
pub fn case_name(disruption: &dyn Disrupt) -> String {
    format!("disruption:{}", disruption.name())
}

#[derive(Clone, Debug)]
pub struct Disruption {
    pub name: String,
    command: String,
    /// Objects stored before it began are still there after it. An
    /// emulator that keeps storage in memory forgets them when it is
    /// stopped, so only tasks submitted during such a disruption are
    /// checked.
    keeps_storage: bool,
}

impl Disruption {
    /// `NAME=COMMAND`.
    pub fn parse(spec: &str, keeps_storage: bool) -> Result<Disruption, String> {
        match spec.split_once('=') {
            Some((name, command)) if !name.is_empty() && !command.trim().is_empty() => {
                Ok(Disruption {
                    name: name.to_owned(),
                    command: command.to_owned(),
                    keeps_storage,
                })
            }
            _ => Err(format!("a disruption is NAME=COMMAND, not {spec:?}")),
        }
    }

    /// Runs `COMMAND step args...`; its exit status and what it printed.
    async fn call(&self, step: &str, args: &[&String]) -> Result<(bool, String), String> {
        let args: Vec<&str> = [self.name.as_str(), step]
            .into_iter()
            .chain(args.iter().map(|a| a.as_str()))
            .collect();
        shell(&format!("{} \"$@\"", self.command), &args)
            .await
            .map_err(|e| format!("{} {step}: {e}", self.command))
    }

    async fn must(&self, step: &str) -> CaseResult {
        match self.call(step, &[]).await? {
            (true, _) => Ok(()),
            (false, said) => Err(format!("{} {step} failed: {said}", self.command)),
        }
    }
}

/// Runs `script` through `sh -c`, `args` as its `$0 $1 ...`; whether it
/// succeeded, and what it printed (stdout, then stderr).
pub async fn shell(script: &str, args: &[&str]) -> std::io::Result<(bool, String)> {
    let output = Command::new("sh")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .await?;
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    Ok((output.status.success(), said.trim().to_owned()))
}

/// Polls `felt` with the tasks' ids; meanwhile no echo task may be final.
async fn felt(cx: &Ctx<'_>, disruption: &dyn Disrupt, tasks: &InFlight) -> CaseResult {
    let deadline = Instant::now() + FELT_WITHIN;
    loop {
        for id in &tasks.echo_ids {
            let task = cx.gateway.task(id).await?;
            if is_final(&task) {
                return Err(format!(
                    "final during {}: {}",
                    disruption.name(),
                    brief(&task)
                ));
            }
        }
        let Some(missing) = disruption.felt(tasks).await? else {
            return Ok(());
        };
        if Instant::now() > deadline {
            return Err(format!(
                "{} not felt within {FELT_WITHIN:?}: {missing}",
                disruption.name()
            ));
        }
        tokio::time::sleep(FELT_EVERY).await;
    }
}

/// How many of `tasks` are not final yet.
async fn on_their_way(cx: &Ctx<'_>, tasks: &InFlight) -> Result<usize, String> {
    let mut count = 0;
    for id in tasks.ids() {
        let task = cx.gateway.task(id).await?;
        if !is_final(&task) {
            count += 1;
        }
    }
    Ok(count)
}

/// Tasks on their way when the disruption begins (where storage keeps
/// them) and tasks submitted during it (where the gateway takes them):
/// every one ends, stored exactly once under its own name.
pub async fn run(cx: &Ctx<'_>, disruption: &dyn Disrupt) -> CaseResult {
    let before = if disruption.keeps_storage() {
        // Slow when they are all there is to see it through.
        let sleep_ms = if disruption.takes_tasks() { 0 } else { SLOW_MS };
        InFlight::submit_slow(cx.gateway, "before", 10, 2, sleep_ms).await?
    } else {
        InFlight::default()
    };
    disruption.begin().await?;
    let during = async {
        if !disruption.takes_tasks() {
            let on_way = on_their_way(cx, &before).await?;
            if on_way == 0 {
                return Err("every task had ended before the disruption began".to_owned());
            }
            felt(cx, disruption, &InFlight::default()).await?;
            return Ok(InFlight::default());
        }
        let tasks = InFlight::submit(cx.gateway, "during", 6, 2).await?;
        felt(cx, disruption, &tasks).await?;
        Ok::<_, String>(tasks)
    }
    .await;
    // Whatever happened, the disruption ends before the next test.
    let ended = disruption.end().await;
    let during = during?;
    ended?;
    before.and(during).all_stored(cx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disruption_is_a_name_and_a_command() {
        let parsed = Disruption::parse("pod-restart=disrupt.sh x-sink", true).unwrap();
        assert_eq!(parsed.name, "pod-restart");
        assert_eq!(parsed.command, "disrupt.sh x-sink");
        assert_eq!(case_name(&parsed), "disruption:pod-restart");
        for bad in ["no-command", "=cmd", "name=", "name=  "] {
            assert!(Disruption::parse(bad, true).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_command_gets_the_step_and_each_id_as_its_own_argument() {
        let printing = Disruption::parse("p=printf '[%s]'", true).unwrap();
        let ids = ["a".to_owned(), "b c".to_owned()];
        let (ok, said) = printing.call("felt", &[&ids[0], &ids[1]]).await.unwrap();
        assert!(ok);
        assert_eq!(said, "[felt][a][b c]");
        let failing = Disruption::parse("f=echo not yet; false", true).unwrap();
        let (ok, said) = failing.call("felt", &[]).await.unwrap();
        assert!(!ok);
        assert_eq!(said, "not yet");
        assert!(failing.must("begin").await.is_err());
    }
}
