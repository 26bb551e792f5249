//! `asya-mesh healthcheck`: an exit-code probe for images without a
//! shell: a Unix socket answering `GET /healthz`, a URL answering 2xx,
//! or a file that exists (`runtime-ready`, `sidecar-ready`).

use std::path::Path;
use std::time::Duration;

/// What to probe.
pub enum Probe<'a> {
    Socket(&'a Path),
    Url(&'a str),
    File(&'a Path),
}

/// `Ok` when healthy, else why not.
pub async fn check(probe: Probe<'_>, timeout: Duration) -> Result<(), String> {
    let checked = tokio::time::timeout(timeout, async {
        match probe {
            Probe::Socket(path) => state_client::Client::new_connection_per_request(path)
                .healthz()
                .await
                .map_err(|e| format!("{}: {e}", path.display())),
            Probe::Url(url) => {
                let response = reqwest::get(url).await.map_err(|e| format!("{url}: {e}"))?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("{url}: {}", response.status()))
                }
            }
            Probe::File(path) if path.exists() => Ok(()),
            Probe::File(path) => Err(format!("{} does not exist", path.display())),
        }
    })
    .await;
    checked.unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}
