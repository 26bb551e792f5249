//! Tasks through a disruption that someone else causes to a running mesh
//! (the E2E level's: the storage emulator stopped and started again,
//! x-sink's pod removed and played again). `check` runs one test per
//! disruption, `disruption:NAME`.
//!
//! A disruption is a command, run through `sh -c` with one of:
//!
//! - `begin`: returns once the disruption is in effect;
//! - `felt ID...`: exits 0 once the mesh has felt it with these tasks in
//!   flight (e.g. their checkpoints failed), anything else while not yet;
//!   polled;
//! - `end`: returns once it is over (whatever it disrupted serves again).
//!
//! What every disruption here does is take away x-sink's way to storage
//! (its pod, or storage itself), so no echo task may become final while
//! it lasts.

use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::cases::{CaseResult, Ctx, InFlight, brief, status_of};

/// How long a disruption may take to be felt.
const FELT_WITHIN: Duration = Duration::from_secs(60);
/// How often `felt` is asked.
const FELT_EVERY: Duration = Duration::from_millis(200);

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

    pub fn case_name(&self) -> String {
        format!("disruption:{}", self.name)
    }

    /// Runs `COMMAND step args...`; its exit status and what it printed.
    async fn call(&self, step: &str, args: &[&String]) -> Result<(bool, String), String> {
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!("{} \"$@\"", self.command))
            .arg(&self.name)
            .arg(step)
            .args(args)
            .output()
            .await
            .map_err(|e| format!("{} {step}: {e}", self.command))?;
        let said = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        Ok((output.status.success(), said.trim().to_owned()))
    }

    async fn must(&self, step: &str) -> CaseResult {
        match self.call(step, &[]).await? {
            (true, _) => Ok(()),
            (false, said) => Err(format!("{} {step} failed: {said}", self.command)),
        }
    }

    /// Polls `felt` with the tasks' ids; meanwhile no echo task may be
    /// final.
    async fn felt(&self, cx: &Ctx<'_>, tasks: &InFlight) -> CaseResult {
        let ids: Vec<&String> = tasks.ids().collect();
        let deadline = Instant::now() + FELT_WITHIN;
        loop {
            for id in &tasks.echo_ids {
                let task = cx.gateway.task(id).await?;
                if status_of(&task) == "succeeded" || status_of(&task) == "failed" {
                    return Err(format!("final during {}: {}", self.name, brief(&task)));
                }
            }
            let (felt, said) = self.call("felt", &ids).await?;
            if felt {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not felt within {FELT_WITHIN:?}: {said}",
                    self.name
                ));
            }
            tokio::time::sleep(FELT_EVERY).await;
        }
    }
}

/// Tasks on their way when the disruption begins (where storage keeps
/// them) and tasks submitted during it: every one ends, stored exactly
/// once under its own name.
pub async fn run(cx: &Ctx<'_>, disruption: &Disruption) -> CaseResult {
    let before = if disruption.keeps_storage {
        InFlight::submit(cx.gateway, "before", 10, 2).await?
    } else {
        InFlight::default()
    };
    disruption.must("begin").await?;
    let during = async {
        let tasks = InFlight::submit(cx.gateway, "during", 6, 2).await?;
        disruption.felt(cx, &tasks).await?;
        Ok::<_, String>(tasks)
    }
    .await;
    // Whatever happened, the disruption ends before the next test.
    let ended = disruption.must("end").await;
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
        assert_eq!(parsed.case_name(), "disruption:pod-restart");
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
