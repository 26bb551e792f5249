//! The gateway's tools, read from a flows file (JSON):
//!
//! ```json
//! {"flows": [{"name": "test_pipeline", "entrypoint": "test-doubler",
//!             "route_next": ["test-incrementer"], "timeout": 45}]}
//! ```
//!
//! `timeout` (seconds) becomes the envelope's `deadline_at`.

use std::path::Path;

use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Flow {
    pub name: String,
    pub entrypoint: String,
    #[serde(default)]
    pub route_next: Vec<String>,
    /// Seconds from submission to the task's deadline.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    #[serde(default)]
    pub description: String,
}

fn default_timeout() -> u64 {
    300
}

#[derive(Debug, Deserialize)]
struct File {
    flows: Vec<Flow>,
}

#[derive(Debug, Default)]
pub struct Flows {
    flows: Vec<Flow>,
}

impl Flows {
    pub fn parse(text: &str) -> Result<Flows, String> {
        let file: File = serde_json::from_str(text).map_err(|e| format!("flows file: {e}"))?;
        for (i, flow) in file.flows.iter().enumerate() {
            if flow.name.is_empty() || flow.entrypoint.is_empty() {
                return Err(format!(
                    "flows file: flow {i} needs a name and an entrypoint"
                ));
            }
            if file.flows[..i].iter().any(|f| f.name == flow.name) {
                return Err(format!("flows file: {} is defined twice", flow.name));
            }
        }
        Ok(Flows { flows: file.flows })
    }

    pub fn read(path: &Path) -> Result<Flows, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Flows::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn get(&self, name: &str) -> Option<&Flow> {
        self.flows.iter().find(|f| f.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Flow> {
        self.flows.iter()
    }

    /// Every actor some flow routes through, in order of first mention.
    pub fn actors(&self) -> Vec<String> {
        let mut actors: Vec<String> = Vec::new();
        for flow in &self.flows {
            for actor in std::iter::once(&flow.entrypoint).chain(&flow.route_next) {
                if !actors.contains(actor) {
                    actors.push(actor.clone());
                }
            }
        }
        actors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_parse_and_list_their_actors() {
        let flows = Flows::parse(
            r#"{"flows": [
                {"name": "echo", "entrypoint": "test-echo", "timeout": 30},
                {"name": "pipe", "entrypoint": "test-doubler", "route_next": ["test-incrementer"]},
                {"name": "echo2", "entrypoint": "test-echo"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(flows.get("pipe").unwrap().route_next, ["test-incrementer"]);
        assert_eq!(flows.get("pipe").unwrap().timeout, 300);
        assert_eq!(
            flows.actors(),
            ["test-echo", "test-doubler", "test-incrementer"]
        );
        assert!(flows.get("nope").is_none());
    }

    #[test]
    fn bad_flows_are_refused() {
        assert!(Flows::parse("{}").is_err());
        assert!(Flows::parse(r#"{"flows": [{"name": "", "entrypoint": "a"}]}"#).is_err());
        assert!(
            Flows::parse(
                r#"{"flows": [{"name": "a", "entrypoint": "x"}, {"name": "a", "entrypoint": "y"}]}"#
            )
            .is_err()
        );
    }
}
