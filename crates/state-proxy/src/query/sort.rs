//! Sorting: typed, missing fields last, ties broken by key, so that the
//! order is total and pages neither overlap nor skip.

use std::cmp::Ordering;

use serde_json::Value;

use super::Row;
use super::field::FieldPath;
use super::filter::kind;
use super::order::total_cmp;

/// The `sort` of a request: fields, each ascending or (`-field`)
/// descending. Empty means key order.
#[derive(Clone, Debug, Default)]
pub struct Sort {
    keys: Vec<SortKey>,
}

#[derive(Clone, Debug)]
struct SortKey {
    field: FieldPath,
    descending: bool,
}

impl Sort {
    pub fn parse(sort: &Value) -> Result<Sort, String> {
        let Value::Array(items) = sort else {
            return Err(format!(
                "sort must be an array of field names such as [\"-updated_at\", \"name\"], got {}",
                kind(sort)
            ));
        };
        let keys = items
            .iter()
            .map(|item| {
                let Value::String(text) = item else {
                    return Err(format!(
                        "sort must be an array of field names, got {} in it",
                        kind(item)
                    ));
                };
                let (name, descending) = match text.strip_prefix('-') {
                    Some(name) => (name, true),
                    None => (text.as_str(), false),
                };
                let field = FieldPath::parse(name).map_err(|e| format!("sort: {e}"))?;
                Ok(SortKey { field, descending })
            })
            .collect::<Result<_, String>>()?;
        Ok(Sort { keys })
    }

    /// The order of two rows: field by field, typed (see `order`), a
    /// missing field after every present one in either direction, and
    /// finally by key, ascending, which no two rows share.
    pub fn compare(&self, a: &Row, b: &Row) -> Ordering {
        self.keys
            .iter()
            .map(
                |key| match (key.field.lookup(&a.document), key.field.lookup(&b.document)) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Greater,
                    (Some(_), None) => Ordering::Less,
                    (Some(x), Some(y)) if key.descending => total_cmp(y, x),
                    (Some(x), Some(y)) => total_cmp(x, y),
                },
            )
            .find(|order| order.is_ne())
            .unwrap_or_else(|| a.key.cmp(&b.key))
    }

    /// Sorts rows in place.
    pub fn apply(&self, rows: &mut [Row]) {
        rows.sort_by(|a, b| self.compare(a, b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(documents: &[(&str, Value)]) -> Vec<Row> {
        documents
            .iter()
            .map(|(key, document)| Row {
                key: (*key).to_owned(),
                document: document.clone(),
            })
            .collect()
    }

    fn sorted_keys(sort: Value, mut rows: Vec<Row>) -> Vec<String> {
        Sort::parse(&sort).unwrap().apply(&mut rows);
        rows.into_iter().map(|row| row.key).collect()
    }

    #[test]
    fn numbers_sort_as_numbers_and_missing_goes_last() {
        let documents = rows(&[
            ("a", json!({"n": 10})),
            ("b", json!({})),
            ("c", json!({"n": 2})),
            ("d", json!({"n": 2.5})),
        ]);
        assert_eq!(
            sorted_keys(json!(["n"]), documents.clone()),
            ["c", "d", "a", "b"]
        );
        assert_eq!(sorted_keys(json!(["-n"]), documents), ["a", "d", "c", "b"]);
    }

    #[test]
    fn mixed_types_follow_the_type_order() {
        let documents = rows(&[
            ("s", json!({"v": "x"})),
            ("n", json!({"v": 1})),
            ("t", json!({"v": true})),
            ("z", json!({"v": null})),
            ("o", json!({"v": {}})),
            ("a", json!({"v": []})),
        ]);
        assert_eq!(
            sorted_keys(json!(["v"]), documents),
            ["z", "t", "n", "s", "a", "o"]
        );
    }

    #[test]
    fn ties_break_by_key_ascending_in_both_directions() {
        let documents = rows(&[
            ("k3", json!({"g": 1})),
            ("k1", json!({"g": 1})),
            ("k2", json!({"g": 0})),
            ("k0", json!({})),
            ("k9", json!({})),
        ]);
        assert_eq!(
            sorted_keys(json!(["g"]), documents.clone()),
            ["k2", "k1", "k3", "k0", "k9"]
        );
        assert_eq!(
            sorted_keys(json!(["-g"]), documents.clone()),
            ["k1", "k3", "k2", "k0", "k9"]
        );
        assert_eq!(
            sorted_keys(json!([]), documents),
            ["k0", "k1", "k2", "k3", "k9"]
        );
    }

    #[test]
    fn several_fields_and_nested_paths() {
        let documents = rows(&[
            ("a", json!({"r": {"p": 1}, "t": "b"})),
            ("b", json!({"r": {"p": 2}, "t": "a"})),
            ("c", json!({"r": {"p": 1}, "t": "c"})),
        ]);
        assert_eq!(
            sorted_keys(json!(["-r.p", "t"]), documents.clone()),
            ["b", "a", "c"]
        );
        assert_eq!(
            sorted_keys(json!(["r.p", "-t"]), documents),
            ["c", "a", "b"]
        );
    }

    #[test]
    fn invalid_sorts_name_the_problem() {
        for (sort, expected) in [
            (json!("-n"), "sort must be an array"),
            (json!({"n": 1}), "got an object"),
            (json!(["n", 1]), "got a number in it"),
            (json!(["-"]), "field name is empty"),
            (json!(["a..b"]), "empty segment"),
        ] {
            let message = Sort::parse(&sort).unwrap_err();
            assert!(message.contains(expected), "{sort}: {message}");
        }
    }
}
