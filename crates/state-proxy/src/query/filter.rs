//! Filters: `{field: value}` pairs that must all hold, a value being
//! either a literal (typed equality) or an object of operators.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::field::FieldPath;
use super::order::{same_type_cmp, typed_eq};

/// The operators of the platform's other query API.
const OPERATORS: &str = "$eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists";

/// A parsed filter; the empty filter matches every document.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    clauses: Vec<Clause>,
}

#[derive(Clone, Debug)]
struct Clause {
    field: FieldPath,
    test: Test,
}

/// One condition on one field's value (`None` when the field is missing).
#[derive(Clone, Debug)]
enum Test {
    Eq(Value),
    Ne(Value),
    /// `$gt`, `$gte`, `$lt`, `$lte`: the orderings that satisfy it.
    Range(Value, &'static [Ordering]),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
}

impl Test {
    /// `$ne` and `$nin` are the exact negations of `$eq` and `$in`, so a
    /// missing field matches them; every other test needs the field.
    fn holds(&self, value: Option<&Value>) -> bool {
        match self {
            Test::Eq(expected) => value.is_some_and(|v| typed_eq(v, expected)),
            Test::Ne(expected) => !value.is_some_and(|v| typed_eq(v, expected)),
            Test::Range(bound, wanted) => value
                .and_then(|v| same_type_cmp(v, bound))
                .is_some_and(|order| wanted.contains(&order)),
            Test::In(options) => value.is_some_and(|v| options.iter().any(|o| typed_eq(v, o))),
            Test::Nin(options) => !value.is_some_and(|v| options.iter().any(|o| typed_eq(v, o))),
            Test::Exists(wanted) => value.is_some() == *wanted,
        }
    }
}

impl Filter {
    /// Parses the `filter` field of a request; the error names the
    /// problem and the field.
    pub fn parse(filter: &Value) -> Result<Filter, String> {
        let Value::Object(pairs) = filter else {
            return Err(format!(
                "filter must be a JSON object of field conditions, got {}",
                kind(filter)
            ));
        };
        let mut clauses = Vec::new();
        for (name, condition) in pairs {
            let field = FieldPath::parse(name).map_err(|e| format!("filter: {e}"))?;
            match condition {
                Value::Object(operators) if operators.keys().any(|k| k.starts_with('$')) => {
                    for test in parse_operators(name, operators)? {
                        clauses.push(Clause {
                            field: field.clone(),
                            test,
                        });
                    }
                }
                // A literal, objects included: typed equality of the whole value.
                literal => clauses.push(Clause {
                    field,
                    test: Test::Eq(literal.clone()),
                }),
            }
        }
        Ok(Filter { clauses })
    }

    pub fn matches(&self, document: &Value) -> bool {
        self.clauses
            .iter()
            .all(|clause| clause.test.holds(clause.field.lookup(document)))
    }
}

fn parse_operators(field: &str, operators: &Map<String, Value>) -> Result<Vec<Test>, String> {
    let mut tests = Vec::with_capacity(operators.len());
    for (operator, operand) in operators {
        let test = match operator.as_str() {
            "$eq" => Test::Eq(operand.clone()),
            "$ne" => Test::Ne(operand.clone()),
            "$gt" => range(field, operator, operand, &[Ordering::Greater])?,
            "$gte" => range(
                field,
                operator,
                operand,
                &[Ordering::Greater, Ordering::Equal],
            )?,
            "$lt" => range(field, operator, operand, &[Ordering::Less])?,
            "$lte" => range(field, operator, operand, &[Ordering::Less, Ordering::Equal])?,
            "$in" => Test::In(list(field, operator, operand)?),
            "$nin" => Test::Nin(list(field, operator, operand)?),
            "$exists" => match operand {
                Value::Bool(wanted) => Test::Exists(*wanted),
                other => {
                    return Err(format!(
                        "filter on {field:?}: $exists needs true or false, got {}",
                        kind(other)
                    ));
                }
            },
            other if other.starts_with('$') => {
                return Err(format!(
                    "filter on {field:?}: unknown operator {other:?}; known operators: {OPERATORS}"
                ));
            }
            other => {
                return Err(format!(
                    "filter on {field:?} mixes operators and the field {other:?}; \
                     write nested fields as dotted paths ({field}.{other})"
                ));
            }
        };
        tests.push(test);
    }
    Ok(tests)
}

/// Range operators compare within one type, so their operand must be a
/// type with an order a person would expect.
fn range(
    field: &str,
    operator: &str,
    operand: &Value,
    wanted: &'static [Ordering],
) -> Result<Test, String> {
    match operand {
        Value::Number(_) | Value::String(_) | Value::Bool(_) => {
            Ok(Test::Range(operand.clone(), wanted))
        }
        other => Err(format!(
            "filter on {field:?}: {operator} needs a number, a string or a boolean, got {}",
            kind(other)
        )),
    }
}

fn list(field: &str, operator: &str, operand: &Value) -> Result<Vec<Value>, String> {
    match operand {
        Value::Array(items) => Ok(items.clone()),
        other => Err(format!(
            "filter on {field:?}: {operator} needs an array of values, got {}",
            kind(other)
        )),
    }
}

/// The JSON type of a value, for messages.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matches(filter: Value, document: Value) -> bool {
        Filter::parse(&filter).unwrap().matches(&document)
    }

    #[test]
    fn equality_is_typed() {
        let doc = json!({"n": 10, "s": "10", "b": true, "z": null});
        assert!(matches(json!({"n": 10}), doc.clone()));
        assert!(matches(json!({"n": 10.0}), doc.clone()));
        assert!(!matches(json!({"n": "10"}), doc.clone()));
        assert!(matches(json!({"s": "10"}), doc.clone()));
        assert!(!matches(json!({"s": 10}), doc.clone()));
        assert!(matches(json!({"b": true}), doc.clone()));
        assert!(!matches(json!({"b": "true"}), doc.clone()));
        assert!(matches(json!({"z": null}), doc.clone()));
        assert!(!matches(json!({"missing": null}), doc.clone()));
        assert!(matches(json!({"n": 10, "b": true}), doc.clone()));
        assert!(!matches(json!({"n": 10, "b": false}), doc));
    }

    #[test]
    fn object_literals_compare_whole() {
        let doc = json!({"meta": {"a": 1, "b": [1, 2]}});
        assert!(matches(json!({"meta": {"b": [1, 2], "a": 1}}), doc.clone()));
        assert!(!matches(json!({"meta": {"a": 1}}), doc.clone()));
        assert!(matches(json!({"meta.b.1": 2}), doc));
    }

    #[test]
    fn ranges_compare_within_one_type() {
        let doc = json!({"n": 10, "s": "b"});
        assert!(matches(json!({"n": {"$gt": 2}}), doc.clone()));
        assert!(!matches(json!({"n": {"$gt": "2"}}), doc.clone()));
        assert!(!matches(json!({"n": {"$lt": "2"}}), doc.clone()));
        assert!(matches(json!({"n": {"$gte": 10, "$lte": 10}}), doc.clone()));
        assert!(!matches(json!({"n": {"$gt": 10}}), doc.clone()));
        assert!(matches(
            json!({"n": {"$gt": 9.5, "$lt": 10.5}}),
            doc.clone()
        ));
        assert!(matches(json!({"s": {"$gt": "a", "$lt": "c"}}), doc.clone()));
        assert!(!matches(json!({"missing": {"$lt": 100}}), doc.clone()));
        assert!(matches(json!({"b": {"$gt": false}}), json!({"b": true})));
    }

    #[test]
    fn negations_match_missing_fields() {
        let doc = json!({"status": "done", "n": 1});
        assert!(!matches(json!({"status": {"$ne": "done"}}), doc.clone()));
        assert!(matches(json!({"status": {"$ne": "failed"}}), doc.clone()));
        assert!(matches(json!({"n": {"$ne": "1"}}), doc.clone()));
        assert!(matches(json!({"missing": {"$ne": "done"}}), doc.clone()));
        assert!(matches(json!({"missing": {"$nin": ["done"]}}), doc.clone()));
        assert!(!matches(json!({"status": {"$nin": ["done", "x"]}}), doc));
    }

    #[test]
    fn membership_and_existence() {
        let doc = json!({"n": 2, "z": null});
        assert!(matches(json!({"n": {"$in": [1, 2, 3]}}), doc.clone()));
        assert!(!matches(json!({"n": {"$in": ["2"]}}), doc.clone()));
        assert!(!matches(json!({"n": {"$in": []}}), doc.clone()));
        assert!(matches(json!({"n": {"$nin": ["2"]}}), doc.clone()));
        assert!(matches(json!({"z": {"$exists": true}}), doc.clone()));
        assert!(matches(json!({"y": {"$exists": false}}), doc.clone()));
        assert!(!matches(json!({"n": {"$exists": false}}), doc));
    }

    #[test]
    fn non_object_documents_have_no_fields() {
        assert!(matches(json!({}), json!(42)));
        assert!(!matches(json!({"a": 1}), json!([1])));
        assert!(matches(json!({"a": {"$exists": false}}), json!("text")));
    }

    #[test]
    fn invalid_filters_name_the_problem() {
        for (filter, expected) in [
            (json!([]), "filter must be a JSON object"),
            (json!("status"), "got a string"),
            (json!({"a..b": 1}), "empty segment"),
            (json!({"$or": []}), "kept for operators"),
            (json!({"a": {"$regex": "x"}}), "unknown operator \"$regex\""),
            (json!({"a": {"$gt": 1, "b": 2}}), "mixes operators"),
            (json!({"a": {"$in": 1}}), "$in needs an array"),
            (json!({"a": {"$nin": "x"}}), "$nin needs an array"),
            (json!({"a": {"$exists": 1}}), "$exists needs true or false"),
            (json!({"a": {"$gt": null}}), "$gt needs a number"),
            (json!({"a": {"$lte": [1]}}), "$lte needs a number"),
        ] {
            let message = Filter::parse(&filter).unwrap_err();
            assert!(message.contains(expected), "{filter}: {message}");
        }
    }
}
