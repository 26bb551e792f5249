//! The backend honesty check: does the configured backend really enforce
//! the conditions the connector relies on? Some emulators and
//! S3-compatible servers accept a conditional write and ignore the
//! condition, which silently turns compare-and-swap into last write wins.
//!
//! Every check works on its own key under a scratch prefix unique to the
//! run (`_selftest/<time>-<pid>/`), through the store exactly as the proxy
//! calls it; what the run wrote is deleted at the end. The checks see
//! only a [`Store`]: `state-proxy selftest` (`crate::commands::selftest`)
//! and `serve --selftest` (`crate::connector`) hand them the store they
//! opened.

use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;

use crate::error::ErrorKind;
use crate::key::Key;
use crate::store::{Body, Condition, Store, Version};

/// Writers in the create race.
const RACERS: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    /// The connector does not claim the guarantee.
    Skipped,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Skipped => "skipped",
        })
    }
}

/// One line of the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub name: &'static str,
    /// A failure makes the run fail (cleanup is reported, not relied on).
    pub relied_on: bool,
    pub outcome: Outcome,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SelftestReport {
    pub connector: String,
    pub scratch_prefix: String,
    /// Every relied-on guarantee held.
    pub passed: bool,
    pub checks: Vec<CheckResult>,
}

impl SelftestReport {
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks
            .iter()
            .filter(|check| check.relied_on && check.outcome == Outcome::Fail)
    }
}

impl fmt::Display for SelftestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "selftest of {} (scratch prefix {})",
            self.connector, self.scratch_prefix
        )?;
        let width = self
            .checks
            .iter()
            .map(|check| check.name.len())
            .max()
            .unwrap_or(0)
            .max("check".len());
        writeln!(f, "{:width$}  {:7}  detail", "check", "result")?;
        for check in &self.checks {
            writeln!(
                f,
                "{:width$}  {:7}  {}",
                check.name,
                check.outcome.to_string(),
                check.detail
            )?;
        }
        let failed = self.failures().count();
        if failed == 0 {
            write!(
                f,
                "selftest passed: the backend enforces what the connector relies on"
            )
        } else {
            write!(
                f,
                "selftest FAILED: {failed} guarantee(s) the connector relies on are not enforced by the backend"
            )
        }
    }
}

/// Runs every check against `store` under a fresh scratch prefix.
pub async fn run(store: &dyn Store, connector: &str) -> SelftestReport {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let scratch = format!("_selftest/{nanos:x}-{}", std::process::id());
    let checker = Checker {
        store,
        scratch: &scratch,
    };
    let mut checks = Vec::new();
    checks.push(checker.create_if_absent().await);
    let (stale, version_sample) = checker.stale_if_match().await;
    checks.push(stale);
    checks.push(checker.if_match_on_missing_key(version_sample).await);
    checks.push(checker.conditional_delete().await);
    checks.push(checker.create_race().await);
    checks.push(checker.clean_up().await);
    let passed = !checks
        .iter()
        .any(|check| check.relied_on && check.outcome == Outcome::Fail);
    SelftestReport {
        connector: connector.to_owned(),
        scratch_prefix: format!("{scratch}/"),
        passed,
        checks,
    }
}

struct Checker<'a> {
    store: &'a dyn Store,
    scratch: &'a str,
}

fn pass(name: &'static str, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name,
        relied_on: true,
        outcome: Outcome::Pass,
        detail: detail.into(),
    }
}

fn fail(name: &'static str, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name,
        relied_on: true,
        outcome: Outcome::Fail,
        detail: detail.into(),
    }
}

fn body(text: &'static str) -> Body {
    Body::Full(Bytes::from_static(text.as_bytes()))
}

impl Checker<'_> {
    fn key(&self, name: &str) -> Key {
        Key::parse(format!("{}/{name}", self.scratch)).expect("scratch keys are valid")
    }

    /// A second create-only write of the same key must be refused.
    async fn create_if_absent(&self) -> CheckResult {
        const NAME: &str = "create_if_absent";
        let key = self.key("create");
        if let Err(e) = self
            .store
            .put(&key, body("first"), Condition::IfAbsent)
            .await
        {
            return fail(NAME, format!("the first create-only write failed: {e}"));
        }
        match self
            .store
            .put(&key, body("second"), Condition::IfAbsent)
            .await
        {
            Err(e) if e.kind() == ErrorKind::PreconditionFailed => {
                pass(NAME, "a second create-only write was refused")
            }
            Ok(_) => fail(
                NAME,
                "a second create-only write of an existing key SUCCEEDED: the backend ignores \
                 create-if-absent, so If-None-Match: * and first writes of compare-and-swap \
                 can overwrite data",
            ),
            Err(e) => fail(NAME, format!("the second create-only write answered: {e}")),
        }
    }

    /// A write conditional on a version that is no longer current must be
    /// refused. Also returns a real version token of this backend, for
    /// the next check.
    async fn stale_if_match(&self) -> (CheckResult, Option<Version>) {
        const NAME: &str = "stale_if_match";
        let key = self.key("stale");
        let (old, new) = match self.two_versions(&key).await {
            Ok(versions) => versions,
            Err(detail) => return (fail(NAME, detail), None),
        };
        let check = match self
            .store
            .put(&key, body("3"), Condition::IfMatch(old))
            .await
        {
            Err(e) if e.kind() == ErrorKind::PreconditionFailed => {
                pass(NAME, "a write with an outdated If-Match was refused")
            }
            Ok(_) => fail(
                NAME,
                "a write with an outdated If-Match SUCCEEDED: the backend ignores version \
                 conditions, so compare-and-swap silently loses concurrent updates",
            ),
            Err(e) => fail(
                NAME,
                format!("the write with an outdated If-Match answered: {e}"),
            ),
        };
        (check, Some(new))
    }

    /// A write conditional on a version of a key that does not exist must
    /// be refused, and must not create the key.
    async fn if_match_on_missing_key(&self, sample: Option<Version>) -> CheckResult {
        const NAME: &str = "if_match_missing_key";
        let key = self.key("missing");
        // A token of the form this backend uses, so the condition reaches
        // the backend instead of being refused as malformed.
        let version = sample.unwrap_or_else(|| Version::new("1"));
        match self
            .store
            .put(&key, body("1"), Condition::IfMatch(version))
            .await
        {
            Err(e) if e.kind() == ErrorKind::PreconditionFailed => {
                match self.store.head(&key).await {
                    Err(e) if e.kind() == ErrorKind::KeyNotFound => {
                        pass(NAME, "If-Match on a missing key was refused")
                    }
                    Ok(_) => fail(
                        NAME,
                        "If-Match on a missing key was refused, yet the key now exists",
                    ),
                    Err(e) => fail(NAME, format!("checking that the key is still missing: {e}")),
                }
            }
            Ok(_) => fail(
                NAME,
                "a write with If-Match on a missing key SUCCEEDED and created it: the backend \
                 ignores version conditions on missing objects",
            ),
            Err(e) => fail(NAME, format!("the write answered: {e}")),
        }
    }

    /// A delete conditional on an outdated version must be refused.
    async fn conditional_delete(&self) -> CheckResult {
        const NAME: &str = "conditional_delete";
        if !self.store.info().conditional_delete {
            return CheckResult {
                name: NAME,
                relied_on: false,
                outcome: Outcome::Skipped,
                detail: format!(
                    "the {} store does not claim conditional deletes (DELETE with If-Match answers 501)",
                    self.store.info().name
                ),
            };
        }
        let key = self.key("delete");
        let (old, _) = match self.two_versions(&key).await {
            Ok(versions) => versions,
            Err(detail) => return fail(NAME, detail),
        };
        match self.store.delete(&key, Condition::IfMatch(old)).await {
            Err(e) if e.kind() == ErrorKind::PreconditionFailed => {
                match self.store.head(&key).await {
                    Ok(_) => pass(NAME, "a delete with an outdated If-Match was refused"),
                    Err(e) => fail(
                        NAME,
                        format!(
                            "a delete with an outdated If-Match was refused, but the key is gone: {e}"
                        ),
                    ),
                }
            }
            Ok(()) => fail(
                NAME,
                "a delete with an outdated If-Match SUCCEEDED: the backend ignores delete conditions",
            ),
            Err(e) => fail(NAME, format!("the delete answered: {e}")),
        }
    }

    /// Concurrent create-only writes of one new key: exactly one wins.
    async fn create_race(&self) -> CheckResult {
        const NAME: &str = "create_race";
        let key = self.key("race");
        let writes = (0..RACERS).map(|_| self.store.put(&key, body("racer"), Condition::IfAbsent));
        let results = futures_util::future::join_all(writes).await;
        let winners = results.iter().filter(|r| r.is_ok()).count();
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(e) if e.kind() == ErrorKind::PreconditionFailed))
            .count();
        let errors: Vec<String> = results
            .iter()
            .filter_map(|r| match r {
                Ok(_) => None,
                Err(e) if e.kind() == ErrorKind::PreconditionFailed => None,
                Err(e) => Some(e.to_string()),
            })
            .collect();
        if winners == 1 && refused == RACERS - 1 {
            pass(
                NAME,
                format!("1 of {RACERS} concurrent create-only writes won, the others were refused"),
            )
        } else if !errors.is_empty() {
            fail(
                NAME,
                format!(
                    "{winners} of {RACERS} concurrent create-only writes won; errors: {}",
                    errors.join("; ")
                ),
            )
        } else {
            fail(
                NAME,
                format!(
                    "{winners} of {RACERS} concurrent create-only writes won (exactly 1 must): \
                     the backend does not make create-if-absent atomic"
                ),
            )
        }
    }

    /// Deletes every key under the scratch prefix.
    async fn clean_up(&self) -> CheckResult {
        const NAME: &str = "cleanup";
        let outcome = async {
            let listing = self
                .store
                .list(&format!("{}/", self.scratch), None)
                .await
                .map_err(|e| format!("listing the scratch keys: {e}"))?;
            for name in &listing.keys {
                let key = Key::parse(name.as_str()).map_err(|e| format!("{name}: {e}"))?;
                match self.store.delete(&key, Condition::None).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::KeyNotFound => {}
                    Err(e) => return Err(format!("deleting {name}: {e}")),
                }
            }
            Ok(listing.keys.len())
        }
        .await;
        let (outcome, detail) = match outcome {
            Ok(count) => (Outcome::Pass, format!("{count} scratch key(s) deleted")),
            Err(detail) => (Outcome::Fail, detail),
        };
        CheckResult {
            name: NAME,
            relied_on: false,
            outcome,
            detail,
        }
    }

    /// Writes a key twice; the two versions must differ.
    async fn two_versions(&self, key: &Key) -> Result<(Version, Version), String> {
        let first = self
            .store
            .put(key, body("1"), Condition::None)
            .await
            .map_err(|e| format!("writing {key}: {e}"))?;
        let second = self
            .store
            .put(key, body("2"), Condition::None)
            .await
            .map_err(|e| format!("writing {key} again: {e}"))?;
        if first == second {
            return Err(format!(
                "two writes of {key} returned the same version {first}: versions do not \
                 identify content, so no condition can work"
            ));
        }
        Ok((first, second))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::Listing;
    use crate::store::faulty::FaultyStore;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn an_honest_store_passes_and_is_cleaned_up() {
        let store = MemoryStore::new("");
        let report = run(&store, "memory-buffered-cas").await;
        assert!(report.passed, "{report}");
        assert!(
            report
                .checks
                .iter()
                .all(|check| check.outcome == Outcome::Pass),
            "{report}"
        );
        let left = store.list("_selftest/", None).await.unwrap();
        assert_eq!(left, Listing::default());
        let table = report.to_string();
        assert!(table.contains("create_race"), "{table}");
        assert!(table.ends_with("relies on"), "{table}");
    }

    #[tokio::test]
    async fn a_store_that_ignores_conditions_fails_each_write_check() {
        // Some emulators drop every condition on writes.
        let store = FaultyStore::new(Arc::new(MemoryStore::new("")));
        store.ignore_write_conditions(true);
        let report = run(&store, "memory-buffered-cas").await;
        assert!(!report.passed);
        let outcome = |name: &str| {
            report
                .checks
                .iter()
                .find(|check| check.name == name)
                .map(|check| check.outcome.clone())
        };
        for name in [
            "create_if_absent",
            "stale_if_match",
            "if_match_missing_key",
            "create_race",
        ] {
            assert_eq!(outcome(name), Some(Outcome::Fail), "{name}\n{report}");
        }
        // Deletes are still honest here, and cleanup still works.
        assert_eq!(outcome("conditional_delete"), Some(Outcome::Pass));
        assert_eq!(outcome("cleanup"), Some(Outcome::Pass));
        assert!(
            report
                .to_string()
                .contains("selftest FAILED: 4 guarantee(s)")
        );
    }
}
