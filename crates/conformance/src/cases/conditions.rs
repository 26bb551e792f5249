//! Explicit conditions: `If-None-Match: *` and `If-Match`.

use http::Method;
use state_client::{Condition, key_path};

use super::{
    Case, Outcome, case, doing, ensure, ensure_eq, expect_error, expect_error_body, request,
};
use crate::Ctx;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(create_if_absent),
        case!(write_if_match),
        case!(delete_if_match, |t| t.profile.conditional_delete),
        case!(conditional_delete_unsupported_is_501, |t| !t
            .profile
            .conditional_delete),
        case!(unsupported_conditions_are_400),
    ]
}

async fn create_if_absent(cx: &Ctx<'_>) -> Outcome {
    let key = cx.key("once");
    let etag = doing(
        "first create",
        cx.client.put(&key, "first", Condition::IfAbsent).await,
    )?;
    ensure!(!etag.is_empty(), "create answered an empty ETag");
    let path = key_path("keys", &key);
    let again = request(cx, Method::PUT, &path, &[("if-none-match", "*")], "second").await?;
    expect_error_body("second create", &again, 412, "precondition_failed")?;
    ensure_eq!(
        &doing("GET", cx.client.get(&key).await)?.data[..],
        b"first",
        "content after a refused create"
    );
    Ok(())
}

async fn write_if_match(cx: &Ctx<'_>) -> Outcome {
    let key = cx.key("guarded");
    let v1 = doing("PUT v1", cx.client.put(&key, "v1", Condition::None).await)?;
    let v2 = doing(
        "PUT v2 if v1",
        cx.client
            .put(&key, "v2", Condition::IfMatch(v1.clone()))
            .await,
    )?;
    // The tag is accepted without its quotes too.
    let bare = v2.trim_matches('"').to_owned();
    let v3 = doing(
        "PUT v3 if v2 unquoted",
        cx.client.put(&key, "v3", Condition::IfMatch(bare)).await,
    )?;
    expect_error(
        "PUT with a stale If-Match",
        cx.client.put(&key, "stale", Condition::IfMatch(v1)).await,
        412,
        "precondition_failed",
    )?;
    let object = doing("GET", cx.client.get(&key).await)?;
    ensure_eq!(&object.data[..], b"v3", "content after a refused write");
    ensure_eq!(object.etag, Some(v3.clone()), "ETag after a refused write");
    expect_error(
        "PUT If-Match on a missing key",
        cx.client
            .put(&cx.key("absent"), "x", Condition::IfMatch(v3))
            .await,
        412,
        "precondition_failed",
    )?;
    ensure_eq!(
        doing("HEAD absent", cx.client.head(&cx.key("absent")).await)?,
        None,
        "absent key after a refused write"
    );
    Ok(())
}

async fn delete_if_match(cx: &Ctx<'_>) -> Outcome {
    let key = cx.key("guarded");
    let v1 = doing("PUT v1", cx.client.put(&key, "v1", Condition::None).await)?;
    let v2 = doing("PUT v2", cx.client.put(&key, "v2", Condition::None).await)?;
    expect_error(
        "DELETE with a stale If-Match",
        cx.client.delete(&key, Condition::IfMatch(v1)).await,
        412,
        "precondition_failed",
    )?;
    ensure_eq!(
        &doing("GET", cx.client.get(&key).await)?.data[..],
        b"v2",
        "content after a refused delete"
    );
    doing(
        "DELETE with the current If-Match",
        cx.client.delete(&key, Condition::IfMatch(v2.clone())).await,
    )?;
    ensure_eq!(
        doing("HEAD", cx.client.head(&key).await)?,
        None,
        "key after a conditional delete"
    );
    // As for writes, If-Match on a missing key is a failed precondition.
    expect_error(
        "DELETE If-Match of a missing key",
        cx.client.delete(&key, Condition::IfMatch(v2)).await,
        412,
        "precondition_failed",
    )
}

async fn conditional_delete_unsupported_is_501(cx: &Ctx<'_>) -> Outcome {
    let key = cx.key("guarded");
    let v1 = doing("PUT", cx.client.put(&key, "v1", Condition::None).await)?;
    expect_error(
        "DELETE with If-Match",
        cx.client.delete(&key, Condition::IfMatch(v1)).await,
        501,
        "not_implemented",
    )?;
    ensure!(
        doing("HEAD", cx.client.head(&key).await)?.is_some(),
        "the key was deleted anyway"
    );
    Ok(())
}

async fn unsupported_conditions_are_400(cx: &Ctx<'_>) -> Outcome {
    let key = cx.key("k");
    doing("PUT", cx.client.put(&key, "v", Condition::None).await)?;
    let path = key_path("keys", &key);
    let cases: [&[(&'static str, &str)]; 5] = [
        &[("if-match", "*")],
        &[("if-match", "W/\"weak\"")],
        &[("if-match", "\"a\", \"b\"")],
        &[("if-none-match", "\"a\"")],
        &[("if-match", "\"a\""), ("if-none-match", "*")],
    ];
    for headers in cases {
        let answer = request(cx, Method::PUT, &path, headers, "changed").await?;
        expect_error_body(
            &format!("PUT with {headers:?}"),
            &answer,
            400,
            "bad_request",
        )?;
    }
    let delete = request(cx, Method::DELETE, &path, &[("if-none-match", "*")], "").await?;
    expect_error_body("DELETE with If-None-Match", &delete, 400, "bad_request")?;
    ensure_eq!(
        &doing("GET", cx.client.get(&key).await)?.data[..],
        b"v",
        "content after refused requests"
    );
    Ok(())
}
