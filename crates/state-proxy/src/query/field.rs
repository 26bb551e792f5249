//! Field names of filters and sorts: dotted paths into a JSON document.

use serde_json::Value;

/// Longest accepted field name, in bytes.
const MAX_FIELD_BYTES: usize = 1024;

/// A validated dotted path such as `result.status` or `tags.0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPath {
    segments: Vec<String>,
}

impl FieldPath {
    /// Validates a field name; the error names the problem.
    ///
    /// A name is one or more non-empty segments separated by `.`, without
    /// control characters, and does not start with `$`, which is kept for
    /// operators (so `{"$or": ...}` is refused instead of looking for a
    /// field called `$or`).
    pub fn parse(name: &str) -> Result<FieldPath, String> {
        if name.is_empty() {
            return Err("field name is empty".to_owned());
        }
        if name.len() > MAX_FIELD_BYTES {
            return Err(format!(
                "field name is {} bytes long, the limit is {MAX_FIELD_BYTES}",
                name.len()
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(format!("field name {name:?} contains a control character"));
        }
        if name.starts_with('$') {
            return Err(format!(
                "field name {name:?} starts with '$', which is kept for operators \
                 ($eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists) inside a field's condition"
            ));
        }
        let segments: Vec<String> = name.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(format!("field name {name:?} has an empty segment"));
        }
        Ok(FieldPath { segments })
    }

    /// The value at this path, `None` when a segment is missing. A segment
    /// that is a decimal number also indexes arrays (`tags.0`).
    pub fn lookup<'v>(&self, document: &'v Value) -> Option<&'v Value> {
        self.segments
            .iter()
            .try_fold(document, |value, segment| match value {
                Value::Object(fields) => fields.get(segment),
                Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_paths_reach_objects_and_array_items() {
        let doc = json!({"a": {"b": {"c": 3}}, "tags": ["x", "y"], "n": null});
        let at = |name: &str| FieldPath::parse(name).unwrap().lookup(&doc).cloned();
        assert_eq!(at("a.b.c"), Some(json!(3)));
        assert_eq!(at("a.b"), Some(json!({"c": 3})));
        assert_eq!(at("tags.1"), Some(json!("y")));
        assert_eq!(at("n"), Some(Value::Null));
        assert_eq!(at("tags.2"), None);
        assert_eq!(at("tags.first"), None);
        assert_eq!(at("a.b.c.d"), None);
        assert_eq!(at("missing"), None);
    }

    #[test]
    fn bad_names_say_what_is_wrong() {
        for (name, expected) in [
            ("", "empty"),
            ("a..b", "empty segment"),
            (".a", "empty segment"),
            ("a.", "empty segment"),
            ("$or", "kept for operators"),
            ("a\nb", "control character"),
        ] {
            let message = FieldPath::parse(name).unwrap_err();
            assert!(message.contains(expected), "{name:?}: {message}");
        }
        assert!(FieldPath::parse(&"x".repeat(1025)).is_err());
        assert!(FieldPath::parse("a-b.c_d.0").is_ok());
    }
}
