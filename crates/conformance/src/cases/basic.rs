//! Objects: write, read, stat, delete.

use http::Method;
use state_client::{Condition, key_path};

use super::{
    Case, Outcome, Pattern, case, doing, ensure, ensure_eq, expect_error, expect_error_body,
    request,
};
use crate::Ctx;
use crate::raw::RawConnection;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(healthz),
        case!(put_get_head_roundtrip),
        case!(missing_keys),
        case!(delete_removes),
        case!(overwrite_replaces_content),
        case!(empty_and_binary_values),
        case!(large_value_roundtrip),
        case!(chunked_upload_one_chunk_per_write),
        case!(objects_are_where_the_protocol_says, |t| t.backend.is_some()),
    ]
}

async fn healthz(cx: &Ctx<'_>) -> Outcome {
    let answer = request(cx, Method::GET, "/healthz", &[], "").await?;
    ensure_eq!(answer.status.as_u16(), 200, "GET /healthz");
    ensure_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "content type"
    );
    ensure_eq!(
        answer.json().map_err(|e| e.to_string())?,
        serde_json::json!({"status": "ready"}),
        "body"
    );
    Ok(())
}

async fn put_get_head_roundtrip(cx: &Ctx<'_>) -> Outcome {
    let key = cx.key("doc.json");
    let path = key_path("keys", &key);
    let data = br#"{"n": 1}"#;
    let put = request(cx, Method::PUT, &path, &[], &data[..]).await?;
    ensure_eq!(put.status.as_u16(), 204, "PUT");
    let etag = put
        .header("etag")
        .ok_or("PUT answer has no ETag")?
        .to_owned();
    ensure!(
        etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
        "ETag {etag} is not a quoted strong tag"
    );

    let get = request(cx, Method::GET, &path, &[], "").await?;
    ensure_eq!(get.status.as_u16(), 200, "GET");
    ensure_eq!(&get.body[..], &data[..], "GET body");
    ensure_eq!(
        get.header("content-length"),
        Some("8"),
        "GET Content-Length"
    );
    ensure_eq!(get.header("etag"), Some(etag.as_str()), "GET ETag");

    let head = request(cx, Method::HEAD, &path, &[], "").await?;
    ensure_eq!(head.status.as_u16(), 200, "HEAD");
    ensure_eq!(
        head.header("content-length"),
        Some("8"),
        "HEAD Content-Length"
    );
    ensure_eq!(head.header("x-is-file"), Some("true"), "HEAD X-Is-File");
    ensure_eq!(head.header("etag"), Some(etag.as_str()), "HEAD ETag");
    ensure!(head.body.is_empty(), "HEAD answered a body");
    Ok(())
}

async fn missing_keys(cx: &Ctx<'_>) -> Outcome {
    let path = key_path("keys", &cx.key("missing"));
    let get = request(cx, Method::GET, &path, &[], "").await?;
    expect_error_body("GET of a missing key", &get, 404, "key_not_found")?;
    let delete = request(cx, Method::DELETE, &path, &[], "").await?;
    expect_error_body("DELETE of a missing key", &delete, 404, "key_not_found")?;
    // HEAD: 404 and no body at all, read off the wire.
    let mut connection = RawConnection::open(&cx.target.socket).await?;
    connection
        .send(format!("HEAD {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let head = connection.answer(true).await?;
    ensure_eq!(head.status, 404, "HEAD of a missing key");
    connection
        .send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    let next = connection.answer(false).await?;
    ensure_eq!(
        next.status,
        200,
        "request after the HEAD on the same connection (a HEAD body would corrupt it)"
    );
    Ok(())
}

async fn delete_removes(cx: &Ctx<'_>) -> Outcome {
    let key = cx.key("gone");
    doing("PUT", cx.client.put(&key, "x", Condition::None).await)?;
    doing("DELETE", cx.client.delete(&key, Condition::None).await)?;
    expect_error(
        "GET after DELETE",
        cx.client.get(&key).await,
        404,
        "key_not_found",
    )?;
    ensure_eq!(
        doing("HEAD", cx.client.head(&key).await)?,
        None,
        "HEAD after DELETE"
    );
    expect_error(
        "second DELETE",
        cx.client.delete(&key, Condition::None).await,
        404,
        "key_not_found",
    )
}

async fn overwrite_replaces_content(cx: &Ctx<'_>) -> Outcome {
    let key = cx.key("value");
    let first = doing(
        "first PUT",
        cx.client.put(&key, "first", Condition::None).await,
    )?;
    let second = doing(
        "second PUT",
        cx.client.put(&key, "second!", Condition::None).await,
    )?;
    ensure!(
        first != second,
        "the ETag did not change when the content did ({first})"
    );
    let object = doing("GET", cx.client.get(&key).await)?;
    ensure_eq!(&object.data[..], b"second!", "content after overwrite");
    ensure_eq!(
        object.etag.as_deref(),
        Some(second.as_str()),
        "ETag after overwrite"
    );
    Ok(())
}

async fn empty_and_binary_values(cx: &Ctx<'_>) -> Outcome {
    let empty = cx.key("empty");
    doing(
        "PUT empty",
        cx.client.put(&empty, "", Condition::None).await,
    )?;
    let object = doing("GET empty", cx.client.get(&empty).await)?;
    ensure!(
        object.data.is_empty(),
        "empty value came back as {} bytes",
        object.data.len()
    );
    let stat = doing("HEAD empty", cx.client.head(&empty).await)?;
    ensure_eq!(
        stat.map(|s| s.size),
        Some(0),
        "HEAD size of the empty value"
    );

    let binary = cx.key("binary");
    let every_byte: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    doing(
        "PUT binary",
        cx.client
            .put(&binary, every_byte.clone(), Condition::None)
            .await,
    )?;
    let object = doing("GET binary", cx.client.get(&binary).await)?;
    ensure!(object.data == every_byte, "binary value changed on the way");
    Ok(())
}

async fn large_value_roundtrip(cx: &Ctx<'_>) -> Outcome {
    // Several megabytes: many socket reads on the way in, streamed from
    // disk on the way out for stores that stream large objects.
    let length = cx
        .profile()
        .body_limit
        .map_or(3 << 20, |limit| limit.min(3 << 20) as usize);
    let data = Pattern::bytes(7, length);
    let key = cx.key("large");
    doing(
        "PUT",
        cx.client.put(&key, data.clone(), Condition::None).await,
    )?;
    let object = doing("GET", cx.client.get(&key).await)?;
    ensure_eq!(object.data.len(), length, "length of the large value");
    ensure!(object.data == data, "large value changed on the way");
    Ok(())
}

async fn chunked_upload_one_chunk_per_write(cx: &Ctx<'_>) -> Outcome {
    // As the compat runtime writes a file: one chunk per write() call.
    let key = cx.key("chunked");
    let mut connection = RawConnection::open(&cx.target.socket).await?;
    connection
        .send(
            format!(
                "PUT {} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
                key_path("keys", &key)
            )
            .as_bytes(),
        )
        .await?;
    for part in ["first line\n", "second line\n", "x"] {
        connection
            .send(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes())
            .await?;
    }
    connection.send(b"0\r\n\r\n").await?;
    let answer = connection.answer(false).await?;
    ensure_eq!(answer.status, 204, "chunked PUT");
    ensure!(
        answer.header("etag").is_some(),
        "chunked PUT answer has no ETag"
    );
    let object = doing("GET", cx.client.get(&key).await)?;
    ensure_eq!(
        &object.data[..],
        b"first line\nsecond line\nx",
        "content of the chunked upload"
    );
    Ok(())
}

async fn objects_are_where_the_protocol_says(cx: &Ctx<'_>) -> Outcome {
    let backend = cx.target.backend.as_ref().ok_or("no backend access")?;
    let key = cx.key("placed/here.txt");
    doing(
        "PUT",
        cx.client.put(&key, "in the backend", Condition::None).await,
    )?;
    let stored = backend.read(&key).await?;
    ensure_eq!(
        stored.as_deref(),
        Some(&b"in the backend"[..]),
        "object {key} read directly from {}",
        backend.describe()
    );
    doing("DELETE", cx.client.delete(&key, Condition::None).await)?;
    ensure_eq!(backend.read(&key).await?, None, "object {key} after DELETE");
    Ok(())
}
