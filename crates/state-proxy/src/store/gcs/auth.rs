//! Credentials of the `gcs` store.
//!
//! With `STORAGE_EMULATOR_HOST` set there are none, and no code path can
//! look any up: Google's credential builder reads files and contacts the
//! metadata server as soon as it is built, and test machines must never
//! try to reach a metadata address.
//!
//! Otherwise Application Default Credentials, the way Google's own clients
//! find them (`GOOGLE_APPLICATION_CREDENTIALS`, the gcloud ADC file, the
//! metadata server: GKE workload identity, GCE, Cloud Run), through
//! `google-cloud-auth`, which caches tokens and refreshes them before they
//! expire. They are built on the first request that needs them, never at
//! start-up, so a proxy starts (and answers `/healthz`) without touching
//! the network.

use google_cloud_auth::credentials::{AccessTokenCredentials, Builder};
use google_cloud_auth::signer::{Signer, SigningError};
use tokio::sync::OnceCell;

use crate::error::{Error, ErrorKind, Result};

/// Read and write objects; nothing else is needed.
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

pub(crate) enum Auth {
    /// An emulator: requests go out without credentials.
    Anonymous,
    /// Application Default Credentials, built lazily.
    Google {
        tokens: OnceCell<AccessTokenCredentials>,
        signer: OnceCell<Signer>,
    },
    /// Fixed credentials for the unit tests' fake GCS.
    #[cfg(test)]
    Fixed {
        token: String,
        signer: Option<Signer>,
    },
}

impl Auth {
    pub(crate) fn google() -> Auth {
        Auth::Google {
            tokens: OnceCell::new(),
            signer: OnceCell::new(),
        }
    }

    /// The bearer token of the next request; `None` for an emulator.
    pub(crate) async fn bearer(&self) -> Result<Option<String>> {
        let credentials = match self {
            Auth::Anonymous => return Ok(None),
            #[cfg(test)]
            Auth::Fixed { token, .. } => return Ok(Some(token.clone())),
            Auth::Google { tokens, .. } => {
                // A failed build is not cached: the next request tries again
                // (a credentials file may appear, a metadata server may
                // come up).
                tokens
                    .get_or_try_init(|| async {
                        Builder::default()
                            .with_scopes([SCOPE])
                            .build_access_token_credentials()
                            .map_err(|e| {
                                Error::new(
                                    ErrorKind::Internal,
                                    format!("cannot load Google credentials: {e}"),
                                )
                            })
                    })
                    .await?
            }
        };
        match credentials.access_token().await {
            Ok(token) => Ok(Some(token.token)),
            Err(e) if e.is_transient() => Err(Error::new(
                ErrorKind::Unavailable,
                format!("cannot get a Google access token (transient): {e}"),
            )),
            Err(e) => Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("cannot get a Google access token: {e}"),
            )),
        }
    }

    /// What signs V4 URLs: a service account key locally, or the IAM
    /// signBlob API for credentials without a key (metadata server,
    /// impersonation). Not available for an emulator or for credentials
    /// that cannot sign (a gcloud user login).
    pub(crate) async fn signer(&self) -> Result<&Signer> {
        match self {
            Auth::Anonymous => Err(Error::new(ErrorKind::NotImplemented,
                "signed_url needs Google credentials that can sign; with STORAGE_EMULATOR_HOST \
                 set the proxy loads no credentials, so it cannot sign URLs"
                    .to_owned(),
            )),
            #[cfg(test)]
            Auth::Fixed { signer, .. } => signer.as_ref().ok_or_else(|| {
                Error::new(ErrorKind::NotImplemented, "the test credentials cannot sign".to_owned())
            }),
            Auth::Google { signer, .. } => {
                signer
                    .get_or_try_init(|| async {
                        Builder::default().build_signer().map_err(|e| {
                            Error::new(ErrorKind::NotImplemented, format!(
                                "signed_url needs credentials that can sign (a service account \
                                 key, or a service account with roles/iam.serviceAccountTokenCreator \
                                 on itself through the metadata server): {e}"
                            ))
                        })
                    })
                    .await
            }
        }
    }
}

/// A failed signature: the signBlob API refused (no permission), or the
/// key is unusable, or the IAM API is unreachable.
pub(crate) fn signing_error(error: SigningError) -> Error {
    let text = error.to_string();
    if error.is_transport() && !(text.contains("PERMISSION_DENIED") || text.contains("403")) {
        Error::new(
            ErrorKind::Unavailable,
            format!("cannot sign the URL: {text}"),
        )
    } else {
        Error::new(
            ErrorKind::PermissionDenied,
            format!("cannot sign the URL with the current credentials: {text}"),
        )
    }
}
