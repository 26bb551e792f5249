//! The gateway's tasks, in memory. A task's status only moves forward:
//! pending → running → succeeded or failed. A later report of an earlier
//! status, or a second final report (a redelivered message reported
//! twice), changes nothing.
//!
//! The table is bounded (`ASYA_GATEWAY_MAX_TASKS`): past the cap, the
//! tasks that finished first are forgotten first (`GET /mesh/{id}` then
//! answers 404). Tasks still in flight are never evicted; when the table
//! is full of them, a new task is refused.

use std::collections::{HashMap, VecDeque};

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

/// Default of `ASYA_GATEWAY_MAX_TASKS`.
pub const DEFAULT_MAX_TASKS: usize = 100_000;

pub struct Tasks {
    table: RwLock<Table>,
    max: usize,
}

#[derive(Default)]
struct Table {
    tasks: HashMap<String, Task>,
    /// Ids of finished tasks, in the order they finished: the eviction
    /// order.
    finished: VecDeque<String>,
}

/// The table holds `max` tasks, none of them finished.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0} tasks are in flight, the most this gateway keeps (ASYA_GATEWAY_MAX_TASKS)")]
pub struct Full(pub usize);

impl Default for Tasks {
    fn default() -> Tasks {
        Tasks::with_max(DEFAULT_MAX_TASKS)
    }
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
    /// A table of at most `max` tasks (at least one).
    pub fn with_max(max: usize) -> Tasks {
        Tasks {
            table: RwLock::default(),
            max: max.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.table.read().tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a new pending task, first forgetting the oldest finished
    /// ones if the table is full.
    pub fn create(&self, id: &str, tool: &str, now: &str) -> Result<(), Full> {
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
        let mut table = self.table.write();
        while table.tasks.len() >= self.max {
            let Some(oldest) = table.finished.pop_front() else {
                return Err(Full(table.tasks.len()));
            };
            table.tasks.remove(&oldest);
        }
        table.tasks.insert(id.to_owned(), task);
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<Task> {
        self.table.read().tasks.get(id).cloned()
    }

    /// Applies `change` if it moves the task forward; returns the task as
    /// it is afterwards, `None` when there is no such task.
    pub fn advance(&self, id: &str, change: Change, now: &str) -> Option<Task> {
        let mut table = self.table.write();
        let task = table.tasks.get_mut(id)?;
        let mut finished = false;
        if change.status.rank() > task.status.rank() {
            task.status = change.status;
            task.updated_at = now.to_owned();
            if change.status.is_final() {
                task.result = change.result;
                task.error = change.error;
                task.reported_by = change.reported_by;
                finished = true;
            }
        }
        let task = task.clone();
        if finished {
            table.finished.push_back(id.to_owned());
        }
        Some(task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_moves_forward_only() {
        let tasks = Tasks::default();
        tasks.create("t", "test_echo", "t0").unwrap();
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

    #[test]
    fn past_the_cap_the_first_finished_are_forgotten_first() {
        let tasks = Tasks::with_max(3);
        for id in ["a", "b", "c"] {
            tasks.create(id, "test_echo", "t0").unwrap();
        }
        // None finished: a fourth is refused, nothing is forgotten.
        assert_eq!(tasks.create("d", "test_echo", "t0"), Err(Full(3)));
        assert_eq!(tasks.len(), 3);
        // c finishes before a; b stays in flight.
        tasks.advance("c", Change::to(TaskStatus::Failed), "t1");
        tasks.advance("a", Change::to(TaskStatus::Succeeded), "t2");
        // A second report of c does not queue it twice.
        tasks.advance("c", Change::to(TaskStatus::Succeeded), "t3");
        tasks.create("d", "test_echo", "t4").unwrap();
        assert!(tasks.get("c").is_none(), "c finished first");
        assert!(tasks.get("a").is_some());
        tasks.create("e", "test_echo", "t5").unwrap();
        assert!(tasks.get("a").is_none());
        assert_eq!(tasks.get("b").unwrap().status, TaskStatus::Pending);
        assert_eq!(tasks.len(), 3);
        // b, d and e are in flight: full again.
        assert_eq!(tasks.create("f", "test_echo", "t6"), Err(Full(3)));
    }
}
