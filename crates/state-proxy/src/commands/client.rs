//! The client commands: poke a running proxy over its socket without
//! curl (`get`, `put`, `stat`, `ls`, `rm`, `meta`, `query`,
//! `healthcheck`).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use futures_util::StreamExt;
use state_client::{Client, ClientError, Condition, Readiness};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

/// The subcommands that talk to a running proxy.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Print an object to stdout (or a file).
    Get {
        #[command(flatten)]
        target: Target,
        key: String,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Store stdin (or a file) under a key; prints the new ETag.
    Put {
        #[command(flatten)]
        target: Target,
        key: String,
        /// File to upload; stdin when absent or `-`.
        file: Option<PathBuf>,
        #[command(flatten)]
        condition: ConditionArgs,
    },
    /// Print size and ETag of a key.
    Stat {
        #[command(flatten)]
        target: Target,
        key: String,
    },
    /// List keys (and common prefixes, ending in the delimiter).
    Ls {
        #[command(flatten)]
        target: Target,
        /// Key prefix, e.g. `results/`.
        #[arg(default_value = "")]
        prefix: String,
        /// List every key under the prefix, not just one level.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Delete a key.
    Rm {
        #[command(flatten)]
        target: Target,
        key: String,
        /// Delete only if the current ETag is this one.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// List a key's attributes, print one, or set one with --set.
    Meta {
        #[command(flatten)]
        target: Target,
        key: String,
        attr: Option<String>,
        /// New value of the attribute.
        #[arg(long, requires = "attr")]
        set: Option<String>,
    },
    /// Find JSON documents by filter, sort and page; prints the answer.
    Query(QueryArgs),
    /// Exit 0 when a proxy serves on the socket (`/healthz`), or with
    /// `--ready` when its backend answers too (`/readyz`); for exec
    /// probes in images that have no shell.
    Healthcheck {
        #[command(flatten)]
        target: Target,
        /// Ask `/readyz` (the backend answered a probe recently) instead
        /// of `/healthz` (the process serves).
        #[arg(long)]
        ready: bool,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 2)]
        timeout: u64,
    },
}

/// `state-proxy query`: the fields of a `POST /query` request.
#[derive(Args, Debug, Clone)]
pub struct QueryArgs {
    #[command(flatten)]
    pub target: Target,
    /// Recursive key prefix, e.g. `results/`.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Filter as a JSON object, e.g. '{"status":"failed"}' or
    /// '{"attempts":{"$gte":3}}'.
    #[arg(long)]
    pub filter: Option<String>,
    /// Sort field, `-field` for descending; repeat it or separate fields
    /// with commas.
    #[arg(long, allow_hyphen_values = true, value_delimiter = ',')]
    pub sort: Vec<String>,
    /// Rows to answer at most (0: the proxy's maximum).
    #[arg(long)]
    pub limit: Option<u64>,
    /// Rows to leave out first.
    #[arg(long)]
    pub offset: Option<u64>,
    /// Also answer the key of each row.
    #[arg(long)]
    pub keys: bool,
}

impl QueryArgs {
    /// The request body; only a filter that is not JSON is refused here,
    /// everything else is the proxy's to judge.
    pub fn request(&self) -> Result<serde_json::Value, String> {
        let mut request = serde_json::Map::new();
        request.insert("prefix".into(), self.prefix.clone().into());
        if let Some(filter) = &self.filter {
            let filter: serde_json::Value = serde_json::from_str(filter)
                .map_err(|e| format!("--filter is not valid JSON: {e}"))?;
            request.insert("filter".into(), filter);
        }
        if !self.sort.is_empty() {
            request.insert("sort".into(), self.sort.clone().into());
        }
        if let Some(limit) = self.limit {
            request.insert("limit".into(), limit.into());
        }
        if let Some(offset) = self.offset {
            request.insert("offset".into(), offset.into());
        }
        if self.keys {
            request.insert("keys".into(), true.into());
        }
        Ok(request.into())
    }
}

/// The socket of the proxy to talk to.
#[derive(Args, Debug, Clone)]
pub struct Target {
    #[arg(long, env = "CONNECTOR_SOCKET", default_value = "./state.sock")]
    pub socket: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct ConditionArgs {
    /// Write only if the current ETag is this one.
    #[arg(long, conflicts_with = "create")]
    if_match: Option<String>,
    /// Write only if the key does not exist yet.
    #[arg(long)]
    create: bool,
}

impl ConditionArgs {
    fn condition(&self) -> Condition {
        match (&self.if_match, self.create) {
            (Some(etag), _) => Condition::IfMatch(etag.clone()),
            (None, true) => Condition::IfAbsent,
            (None, false) => Condition::None,
        }
    }
}

/// Runs a client subcommand; `Err` is the message to print.
pub async fn run(command: ClientCommand) -> Result<(), String> {
    run_command(command).await.map_err(|e| e.to_string())
}

async fn run_command(command: ClientCommand) -> Result<(), ClientError> {
    match command {
        ClientCommand::Get {
            target,
            key,
            output,
        } => get(&target, &key, output).await,
        ClientCommand::Put {
            target,
            key,
            file,
            condition,
        } => put(&target, &key, file, condition.condition()).await,
        ClientCommand::Stat { target, key } => {
            let client = Client::new(&target.socket);
            match client.head(&key).await? {
                Some(stat) => {
                    println!("size: {}", stat.size);
                    println!("etag: {}", stat.etag.unwrap_or_default());
                    Ok(())
                }
                None => Err(ClientError::Local(format!("{key}: not found"))),
            }
        }
        ClientCommand::Ls {
            target,
            prefix,
            recursive,
        } => {
            let client = Client::new(&target.socket);
            let listing = client
                .list(&prefix, Some(if recursive { "" } else { "/" }))
                .await?;
            let mut out = std::io::stdout().lock();
            listing
                .prefixes
                .iter()
                .chain(&listing.keys)
                .try_for_each(|line| writeln!(out, "{line}"))
                .map_err(|e| ClientError::Local(format!("writing output: {e}")))
        }
        ClientCommand::Rm {
            target,
            key,
            if_match,
        } => {
            let condition = if_match.map_or(Condition::None, Condition::IfMatch);
            Client::new(&target.socket).delete(&key, condition).await
        }
        ClientCommand::Healthcheck {
            target,
            ready,
            timeout,
        } => healthcheck(&target, ready, timeout).await,
        ClientCommand::Query(args) => {
            let request = args.request().map_err(ClientError::Local)?;
            let answer = Client::new(&args.target.socket).query(&request).await?;
            let text = serde_json::to_string_pretty(&answer)
                .map_err(|e| ClientError::Local(format!("printing the answer: {e}")))?;
            println!("{text}");
            Ok(())
        }
        ClientCommand::Meta {
            target,
            key,
            attr,
            set,
        } => {
            let client = Client::new(&target.socket);
            match (attr, set) {
                (None, _) => {
                    for name in client.attrs(&key).await? {
                        println!("{name}");
                    }
                    Ok(())
                }
                (Some(attr), None) => {
                    println!("{}", client.get_attr(&key, &attr).await?);
                    Ok(())
                }
                (Some(attr), Some(value)) => client.set_attr(&key, &attr, &value).await,
            }
        }
    }
}

async fn healthcheck(target: &Target, ready: bool, timeout: u64) -> Result<(), ClientError> {
    let client = Client::new_connection_per_request(&target.socket);
    let probe = async {
        if !ready {
            return client.healthz().await;
        }
        match client.readyz().await? {
            Readiness::Ready => Ok(()),
            Readiness::NotReady(reason) => Err(ClientError::Local(format!("not ready: {reason}"))),
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(timeout), probe)
        .await
        .unwrap_or_else(|_| {
            Err(ClientError::Local(format!(
                "{}: no answer within {timeout}s",
                target.socket.display()
            )))
        })
}

async fn get(target: &Target, key: &str, output: Option<PathBuf>) -> Result<(), ClientError> {
    let client = Client::new(&target.socket);
    let (_, mut chunks) = client.get_stream(key).await?;
    let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match output {
        Some(path) => Box::new(
            tokio::fs::File::create(&path)
                .await
                .map_err(|e| local(&path, e))?,
        ),
        None => Box::new(tokio::io::stdout()),
    };
    while let Some(chunk) = chunks.next().await {
        sink.write_all(&chunk?)
            .await
            .map_err(|e| ClientError::Local(format!("writing output: {e}")))?;
    }
    sink.flush()
        .await
        .map_err(|e| ClientError::Local(format!("writing output: {e}")))
}

async fn put(
    target: &Target,
    key: &str,
    file: Option<PathBuf>,
    condition: Condition,
) -> Result<(), ClientError> {
    let client = Client::new(&target.socket);
    let etag = match file.filter(|path| path.as_os_str() != "-") {
        Some(path) => {
            let opened = tokio::fs::File::open(&path)
                .await
                .map_err(|e| local(&path, e))?;
            let size = opened.metadata().await.map_err(|e| local(&path, e))?.len();
            let chunks = ReaderStream::new(opened);
            client
                .put_stream(key, chunks, Some(size), condition)
                .await?
        }
        None => {
            let chunks = ReaderStream::new(tokio::io::stdin());
            client.put_stream(key, chunks, None, condition).await?
        }
    };
    println!("{etag}");
    Ok(())
}

fn local(path: &std::path::Path, e: std::io::Error) -> ClientError {
    ClientError::Local(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;
    use crate::commands::{Cli, Command};

    fn request(args: &[&str]) -> serde_json::Value {
        let cli = Cli::try_parse_from(args).unwrap();
        let Some(Command::Client(ClientCommand::Query(query))) = cli.command else {
            panic!("not a query command");
        };
        query.request().unwrap()
    }

    #[test]
    fn query_flags_become_the_request() {
        assert_eq!(
            request(&[
                "state-proxy",
                "query",
                "--socket",
                "/tmp/s.sock",
                "--prefix",
                "results/",
                "--filter",
                r#"{"status":"failed"}"#,
                "--sort",
                "-updated_at",
                "--sort",
                "name,-n",
                "--limit",
                "20",
                "--offset",
                "40",
                "--keys",
            ]),
            json!({
                "prefix": "results/",
                "filter": {"status": "failed"},
                "sort": ["-updated_at", "name", "-n"],
                "limit": 20,
                "offset": 40,
                "keys": true,
            })
        );
        assert_eq!(request(&["state-proxy", "query"]), json!({"prefix": ""}));
    }

    #[test]
    fn a_filter_that_is_not_json_is_refused_before_sending() {
        let cli =
            Cli::try_parse_from(["state-proxy", "query", "--filter", "status=failed"]).unwrap();
        let Some(Command::Client(ClientCommand::Query(query))) = cli.command else {
            panic!("not a query command");
        };
        assert!(
            query
                .request()
                .unwrap_err()
                .contains("--filter is not valid JSON")
        );
    }
}
