//! `state-proxy selftest`: the backend honesty check (`crate::selftest`)
//! against the backend the serve flags name, printed as a table.

use crate::config::ServeArgs;
use crate::{connector, selftest};

/// Runs every check; `Err` when a guarantee fails (the table is printed
/// either way).
pub async fn run(args: &ServeArgs) -> Result<(), String> {
    let settings = args.connector_settings()?;
    let store = connector::open_store(&settings.store)?;
    let report = selftest::run(store.as_ref(), &settings.name).await;
    println!("{report}");
    if report.passed {
        Ok(())
    } else {
        Err(format!(
            "selftest failed: {}",
            report
                .failures()
                .map(|check| check.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}
