//! Extended attributes (`/meta`).

use http::Method;
use state_client::{Condition, key_path};

use super::{Case, Outcome, case, doing, ensure, ensure_eq, expect_error_body, request};
use crate::Ctx;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(meta_lists_the_attribute_table),
        case!(meta_reads_every_attribute),
        case!(meta_sets_settable_attributes, |t| t
            .profile
            .attrs
            .iter()
            .any(|a| a.settable.is_some())),
        case!(meta_read_only_attributes_are_403, |t| t
            .profile
            .attrs
            .iter()
            .any(|a| a.settable.is_none())),
        case!(meta_unknown_attribute_is_400),
        case!(meta_missing_key_is_404),
        case!(meta_bad_requests_are_400),
    ]
}

async fn existing_key(cx: &Ctx<'_>) -> Result<String, String> {
    let key = cx.key("object");
    doing(
        "PUT",
        cx.client
            .put(&key, "with attributes", Condition::None)
            .await,
    )?;
    Ok(key)
}

fn attr_path(key: &str, attr: &str) -> String {
    format!("{}?attr={attr}", key_path("meta", key))
}

async fn meta_lists_the_attribute_table(cx: &Ctx<'_>) -> Outcome {
    let key = existing_key(cx).await?;
    let answer = request(cx, Method::GET, &key_path("meta", &key), &[], "").await?;
    ensure_eq!(answer.status.as_u16(), 200, "GET /meta");
    let mut listed: Vec<String> =
        serde_json::from_value(answer.json().map_err(|e| e.to_string())?["attrs"].clone())
            .map_err(|e| format!("attrs is not a list of names: {e}"))?;
    // An attribute that cannot be read here (501) is not listed.
    let mut expected: Vec<String> = cx
        .profile()
        .attrs
        .iter()
        .filter(|a| !cx.profile().not_implemented_attrs.contains(&a.name))
        .map(|a| a.name.to_owned())
        .collect();
    listed.sort();
    expected.sort();
    ensure_eq!(listed, expected, "attribute names");
    Ok(())
}

async fn meta_reads_every_attribute(cx: &Ctx<'_>) -> Outcome {
    let key = existing_key(cx).await?;
    for attr in &cx.profile().attrs {
        let answer = request(cx, Method::GET, &attr_path(&key, attr.name), &[], "").await?;
        if cx.profile().not_implemented_attrs.contains(&attr.name) {
            expect_error_body(
                &format!("GET attribute {} (not available here)", attr.name),
                &answer,
                501,
                "not_implemented",
            )?;
            continue;
        }
        ensure_eq!(answer.status.as_u16(), 200, "GET attribute {}", attr.name);
        let json = answer.json().map_err(|e| e.to_string())?;
        ensure_eq!(json["attr"].as_str(), Some(attr.name), "attr field");
        ensure!(
            json["value"].is_string(),
            "value of {} is not a string: {json}",
            attr.name
        );
    }
    Ok(())
}

/// Equal, or for numbers (a TTL counting down) at most a few less.
fn same_value(got: &str, set: &str) -> bool {
    match (got.parse::<i64>(), set.parse::<i64>()) {
        (Ok(got), Ok(set)) => (set - 5..=set).contains(&got),
        _ => got == set,
    }
}

async fn meta_sets_settable_attributes(cx: &Ctx<'_>) -> Outcome {
    let key = existing_key(cx).await?;
    for attr in &cx.profile().attrs {
        let Some(sample) = attr.settable else {
            continue;
        };
        doing(
            &format!("set {}", attr.name),
            cx.client.set_attr(&key, attr.name, sample).await,
        )?;
        let value = doing(
            &format!("get {}", attr.name),
            cx.client.get_attr(&key, attr.name).await,
        )?;
        ensure!(
            same_value(&value, sample),
            "{} is {value:?} after setting {sample:?}",
            attr.name
        );
    }
    // The content is untouched by attribute changes.
    ensure_eq!(
        &doing("GET", cx.client.get(&key).await)?.data[..],
        b"with attributes",
        "content"
    );
    Ok(())
}

async fn meta_read_only_attributes_are_403(cx: &Ctx<'_>) -> Outcome {
    let key = existing_key(cx).await?;
    for attr in cx.profile().attrs.iter().filter(|a| a.settable.is_none()) {
        let answer = request(
            cx,
            Method::PUT,
            &attr_path(&key, attr.name),
            &[],
            r#"{"value":"x"}"#,
        )
        .await?;
        expect_error_body(
            &format!("PUT read-only {}", attr.name),
            &answer,
            403,
            "permission_denied",
        )?;
    }
    Ok(())
}

async fn meta_unknown_attribute_is_400(cx: &Ctx<'_>) -> Outcome {
    let key = existing_key(cx).await?;
    let get = request(cx, Method::GET, &attr_path(&key, "no_such_attr"), &[], "").await?;
    expect_error_body("GET unknown attribute", &get, 400, "unsupported_attribute")?;
    let put = request(
        cx,
        Method::PUT,
        &attr_path(&key, "no_such_attr"),
        &[],
        r#"{"value":"x"}"#,
    )
    .await?;
    expect_error_body("PUT unknown attribute", &put, 400, "unsupported_attribute")
}

async fn meta_missing_key_is_404(cx: &Ctx<'_>) -> Outcome {
    let missing = cx.key("missing");
    let list = request(cx, Method::GET, &key_path("meta", &missing), &[], "").await?;
    expect_error_body("GET /meta of a missing key", &list, 404, "key_not_found")?;
    for attr in &cx.profile().attrs {
        let get = request(cx, Method::GET, &attr_path(&missing, attr.name), &[], "").await?;
        expect_error_body(
            &format!("GET {} of a missing key", attr.name),
            &get,
            404,
            "key_not_found",
        )?;
        if let Some(sample) = attr.settable {
            let body = serde_json::json!({ "value": sample }).to_string();
            let put = request(cx, Method::PUT, &attr_path(&missing, attr.name), &[], body).await?;
            expect_error_body(
                &format!("PUT {} of a missing key", attr.name),
                &put,
                404,
                "key_not_found",
            )?;
        }
    }
    Ok(())
}

async fn meta_bad_requests_are_400(cx: &Ctx<'_>) -> Outcome {
    let key = existing_key(cx).await?;
    let attr = cx
        .profile()
        .attrs
        .first()
        .map_or("content_type", |a| a.name);
    let no_attr = request(
        cx,
        Method::PUT,
        &key_path("meta", &key),
        &[],
        r#"{"value":"x"}"#,
    )
    .await?;
    expect_error_body("PUT /meta without attr", &no_attr, 400, "bad_request")?;
    for body in ["not json", "{}", r#"{"value": null}"#, "[1]"] {
        let answer = request(cx, Method::PUT, &attr_path(&key, attr), &[], body).await?;
        expect_error_body(
            &format!("PUT /meta with body {body:?}"),
            &answer,
            400,
            "bad_request",
        )?;
    }
    let empty_key = request(cx, Method::GET, "/meta/", &[], "").await?;
    expect_error_body(
        "GET /meta/ of the empty key",
        &empty_key,
        400,
        "bad_request",
    )
}
