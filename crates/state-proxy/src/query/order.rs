//! Typed comparison of JSON values, shared by filters and sorts.
//!
//! Values of the same type compare as that type: numbers numerically
//! (`2 < 10`, `1 == 1.0`), strings by bytes, `false < true`. Values of
//! different types are never equal; for sorting they are ranked by type:
//! null, booleans, numbers, strings, arrays, objects.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

fn type_rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// Order within one type; `None` when the types differ.
pub fn same_type_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Number(x), Value::Number(y)) => Some(cmp_numbers(x, y)),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Array(x), Value::Array(y)) => Some(cmp_arrays(x, y)),
        (Value::Object(x), Value::Object(y)) => Some(cmp_objects(x, y)),
        _ => None,
    }
}

/// The total order used for sorting: by type rank, then within the type.
pub fn total_cmp(a: &Value, b: &Value) -> Ordering {
    same_type_cmp(a, b).unwrap_or_else(|| type_rank(a).cmp(&type_rank(b)))
}

/// Typed equality: same type and equal as that type.
pub fn typed_eq(a: &Value, b: &Value) -> bool {
    same_type_cmp(a, b) == Some(Ordering::Equal)
}

/// Integers compare exactly (i64 and u64 alike); as soon as one side has
/// a fraction or exponent both compare as f64. JSON has no NaN, so the
/// f64 order is total here.
fn cmp_numbers(a: &Number, b: &Number) -> Ordering {
    let integer = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (integer(a), integer(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => {
            let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
    }
}

fn cmp_arrays(a: &[Value], b: &[Value]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| total_cmp(x, y))
        .find(|order| order.is_ne())
        .unwrap_or_else(|| a.len().cmp(&b.len()))
}

/// Objects compare as their entries sorted by name, whatever order the
/// map keeps them in.
fn cmp_objects(a: &Map<String, Value>, b: &Map<String, Value>) -> Ordering {
    let (x, y) = (sorted_entries(a), sorted_entries(b));
    x.iter()
        .zip(&y)
        .map(|((xk, xv), (yk, yv))| xk.cmp(yk).then_with(|| total_cmp(xv, yv)))
        .find(|order| order.is_ne())
        .unwrap_or_else(|| x.len().cmp(&y.len()))
}

fn sorted_entries(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|x, y| x.0.cmp(y.0));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_as_numbers() {
        assert_eq!(total_cmp(&json!(2), &json!(10)), Ordering::Less);
        assert!(typed_eq(&json!(1), &json!(1.0)));
        assert!(typed_eq(&json!(0.0), &json!(-0.0)));
        assert_eq!(total_cmp(&json!(-5), &json!(u64::MAX)), Ordering::Less);
        assert_eq!(total_cmp(&json!(1.5), &json!(1)), Ordering::Greater);
        assert_eq!(
            total_cmp(&json!(i64::MAX), &json!(u64::MAX)),
            Ordering::Less
        );
    }

    #[test]
    fn strings_compare_by_bytes_not_as_numbers() {
        assert_eq!(total_cmp(&json!("10"), &json!("2")), Ordering::Less);
        assert_eq!(total_cmp(&json!("B"), &json!("a")), Ordering::Less);
    }

    #[test]
    fn different_types_are_never_equal() {
        for (a, b) in [
            (json!(1), json!("1")),
            (json!(true), json!("true")),
            (json!(true), json!(1)),
            (json!(null), json!(false)),
            (json!(null), json!("")),
            (json!([1]), json!(1)),
        ] {
            assert!(!typed_eq(&a, &b), "{a} == {b}");
            assert_eq!(same_type_cmp(&a, &b), None);
        }
    }

    #[test]
    fn types_are_ranked_for_sorting() {
        let ordered = [
            json!(null),
            json!(false),
            json!(true),
            json!(-1),
            json!(3.5),
            json!(""),
            json!("a"),
            json!([]),
            json!([1, 2]),
            json!({}),
            json!({"a": 1}),
        ];
        for pair in ordered.windows(2) {
            assert_eq!(
                total_cmp(&pair[0], &pair[1]),
                Ordering::Less,
                "{} < {}",
                pair[0],
                pair[1]
            );
            assert_eq!(total_cmp(&pair[1], &pair[0]), Ordering::Greater);
        }
    }

    #[test]
    fn containers_compare_deeply_and_typed() {
        assert!(typed_eq(
            &json!({"a": [1, {"b": 2}]}),
            &json!({"a": [1.0, {"b": 2}]})
        ));
        assert!(!typed_eq(&json!({"a": 1}), &json!({"a": "1"})));
        assert!(!typed_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert_eq!(total_cmp(&json!([1, 2]), &json!([1, 3])), Ordering::Less);
        assert_eq!(total_cmp(&json!([1]), &json!([1, 0])), Ordering::Less);
    }
}
