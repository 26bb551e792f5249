//! The outcome of a run, case by case.

use std::fmt;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed(String),
    /// The case does not apply to this connector (e.g. compare-and-swap
    /// cases on a last-write-wins connector). Never counted as a pass.
    NotApplicable,
}

#[derive(Debug, Default)]
pub struct Report {
    pub entries: Vec<(&'static str, Verdict, Duration)>,
}

impl Report {
    pub fn push(&mut self, name: &'static str, verdict: Verdict, took: Duration) {
        self.entries.push((name, verdict, took));
    }

    pub fn passed(&self) -> usize {
        self.count(|v| *v == Verdict::Passed)
    }

    pub fn not_applicable(&self) -> usize {
        self.count(|v| *v == Verdict::NotApplicable)
    }

    pub fn failures(&self) -> Vec<(&'static str, &str)> {
        self.entries
            .iter()
            .filter_map(|(name, verdict, _)| match verdict {
                Verdict::Failed(message) => Some((*name, message.as_str())),
                _ => None,
            })
            .collect()
    }

    /// True when something ran and nothing failed.
    pub fn is_success(&self) -> bool {
        self.passed() > 0 && self.failures().is_empty()
    }

    fn count(&self, which: impl Fn(&Verdict) -> bool) -> usize {
        self.entries.iter().filter(|(_, v, _)| which(v)).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, verdict, took) in &self.entries {
            let millis = took.as_millis();
            match verdict {
                Verdict::Passed => writeln!(f, "  ok    {name} ({millis} ms)")?,
                Verdict::NotApplicable => writeln!(f, "  n/a   {name}")?,
                Verdict::Failed(message) => writeln!(f, "  FAIL  {name} ({millis} ms): {message}")?,
            }
        }
        writeln!(
            f,
            "{} passed, {} failed, {} not applicable",
            self.passed(),
            self.failures().len(),
            self.not_applicable()
        )
    }
}
