//! The gateway's tasks, in memory. A task's status only moves forward:
//! pending → running → succeeded or failed. A later report of an earlier
//! status, or a second final report (a redelivered message reported
//! twice), changes nothing.

use std::collections::HashMap;

use parking_lot::RwLock;
use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl TaskStatus {
    /// Order of the lifecycle; both final statuses share the last rank.
    fn rank(self) -> u8 {
        match self {
            TaskStatus::Pending => 0,
            TaskStatus::Running => 1,
            TaskStatus::Succeeded | TaskStatus::Failed => 2,
        }
    }

    pub fn is_final(self) -> bool {
        self.rank() == 2
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Task {
    pub id: String,
    pub tool: String,
    pub status: TaskStatus,
    pub result: Value,
    pub error: Option<String>,
    /// The end actor that reported the outcome.
    pub reported_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Default)]
pub struct Tasks {
    tasks: RwLock<HashMap<String, Task>>,
}

/// A change to a task's status.
pub struct Change {
    pub status: TaskStatus,
    pub result: Value,
    pub error: Option<String>,
    pub reported_by: Option<String>,
}

impl Change {
    pub fn to(status: TaskStatus) -> Change {
        Change {
            status,
            result: Value::Null,
            error: None,
            reported_by: None,
        }
    }
}

impl Tasks {
    pub fn create(&self, id: &str, tool: &str, now: &str) {
        let task = Task {
            id: id.to_owned(),
            tool: tool.to_owned(),
            status: TaskStatus::Pending,
            result: Value::Null,
            error: None,
            reported_by: None,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
        };
        self.tasks.write().insert(id.to_owned(), task);
    }

    pub fn get(&self, id: &str) -> Option<Task> {
        self.tasks.read().get(id).cloned()
    }

    /// Applies `change` if it moves the task forward; returns the task as
    /// it is afterwards, `None` when there is no such task.
    pub fn advance(&self, id: &str, change: Change, now: &str) -> Option<Task> {
        let mut tasks = self.tasks.write();
        let task = tasks.get_mut(id)?;
        if change.status.rank() > task.status.rank() {
            task.status = change.status;
            task.updated_at = now.to_owned();
            if change.status.is_final() {
                task.result = change.result;
                task.error = change.error;
                task.reported_by = change.reported_by;
            }
        }
        Some(task.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_moves_forward_only() {
        let tasks = Tasks::default();
        tasks.create("t", "test_echo", "t0");
        assert_eq!(tasks.get("t").unwrap().status, TaskStatus::Pending);
        let mut done = Change::to(TaskStatus::Succeeded);
        done.result = serde_json::json!({"echoed": 1});
        // The end actor can report before the gateway marked it running.
        let after = tasks.advance("t", done, "t1").unwrap();
        assert_eq!(after.status, TaskStatus::Succeeded);
        let after = tasks
            .advance("t", Change::to(TaskStatus::Running), "t2")
            .unwrap();
        assert_eq!(after.status, TaskStatus::Succeeded);
        let mut again = Change::to(TaskStatus::Failed);
        again.error = Some("late".into());
        let after = tasks.advance("t", again, "t3").unwrap();
        assert_eq!(after.status, TaskStatus::Succeeded);
        assert_eq!(after.result["echoed"], 1);
        assert_eq!(after.error, None);
        assert_eq!(after.updated_at, "t1");
        assert!(
            tasks
                .advance("other", Change::to(TaskStatus::Running), "t")
                .is_none()
        );
    }
}
