//! A client of the gateway, as a test or a benchmark uses it: call a
//! tool, read a task, wait until the task is final. It remembers the
//! tasks it submitted, test by test.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[derive(Clone)]
pub struct Gateway {
    pub base: String,
    http: reqwest::Client,
    /// How often a waiting caller asks for the task.
    poll: Duration,
    submitted: Arc<Mutex<Submitted>>,
}

/// Ids of the tasks submitted, by the test under way and before it.
#[derive(Default)]
struct Submitted {
    earlier: BTreeSet<String>,
    current: BTreeSet<String>,
}

impl Gateway {
    pub fn new(base: &str) -> Gateway {
        Gateway {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("a plain HTTP client builds"),
            poll: Duration::from_millis(20),
            submitted: Arc::default(),
        }
    }

    /// A new test begins: what was submitted so far was an earlier
    /// test's.
    pub fn next_test(&self) {
        let mut submitted = self.submitted.lock().expect("not poisoned");
        let current = std::mem::take(&mut submitted.current);
        submitted.earlier.extend(current);
    }

    /// Whether task `id` was submitted by an earlier test.
    pub fn submitted_earlier(&self, id: &str) -> bool {
        let submitted = self.submitted.lock().expect("not poisoned");
        submitted.earlier.contains(id)
    }

    /// The same gateway, polled this often by `wait_final`.
    pub fn polling(mut self, every: Duration) -> Gateway {
        self.poll = every;
        self
    }

    /// `POST /tools/call`; the task id from the MCP result.
    pub async fn call(&self, tool: &str, arguments: Value) -> Result<String, String> {
        let (status, body) = self
            .post(
                "/tools/call",
                &json!({"name": tool, "arguments": arguments}),
            )
            .await?;
        if status != 200 {
            return Err(format!("calling {tool}: status {status}: {body}"));
        }
        let text = body["content"][0]["text"]
            .as_str()
            .ok_or_else(|| format!("calling {tool}: no content[0].text in {body}"))?;
        let handle: Value =
            serde_json::from_str(text).map_err(|e| format!("calling {tool}: {e}: {text}"))?;
        let id = handle["task_id"]
            .as_str()
            .ok_or_else(|| format!("calling {tool}: no task_id in {text}"))?;
        if handle["status_url"] != format!("/mesh/{id}") {
            return Err(format!("calling {tool}: unexpected status_url in {text}"));
        }
        let mut submitted = self.submitted.lock().expect("not poisoned");
        submitted.current.insert(id.to_owned());
        Ok(id.to_owned())
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        read(response, path).await
    }

    pub async fn get(&self, path: &str) -> Result<(u16, Value), String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        read(response, path).await
    }

    /// `GET /mesh/{id}`.
    pub async fn task(&self, id: &str) -> Result<Value, String> {
        match self.get(&format!("/mesh/{id}")).await? {
            (200, task) => Ok(task),
            (status, body) => Err(format!("task {id}: status {status}: {body}")),
        }
    }

    /// Polls the task until its status is final; fails at `within`. The
    /// statuses seen on the way must only move forward.
    pub async fn wait_final(&self, id: &str, within: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + within;
        let order = ["pending", "running", "succeeded|failed"];
        let rank = |status: &str| order.iter().position(|s| s.split('|').any(|x| x == status));
        let mut seen = 0;
        loop {
            let task = self.task(id).await?;
            let status = task["status"].as_str().unwrap_or("");
            let now = rank(status).ok_or_else(|| format!("task {id}: status {status:?}"))?;
            if now < seen {
                return Err(format!("task {id}: status went back to {status}"));
            }
            seen = now;
            if now == 2 {
                return Ok(task);
            }
            if Instant::now() > deadline {
                return Err(format!("task {id} not final within {within:?}: {task}"));
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

async fn read(response: reqwest::Response, path: &str) -> Result<(u16, Value), String> {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| format!("{path}: {e}"))?;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).map_err(|e| format!("{path}: answer is not JSON: {e}"))?
    };
    Ok((status, body))
}
