//! Keys: literal and percent-encoded names, validation, file/directory
//! names.

use http::Method;
use state_client::{Condition, KEY_ENCODING, PERCENT};

use super::{
    Case, Outcome, case, doing, ensure, ensure_eq, expect_error, expect_error_body,
    expect_raw_error, request,
};
use crate::Ctx;
use crate::raw;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(literal_keys_round_trip),
        case!(percent_encoded_keys),
        case!(key_encoding_header_is_checked),
        case!(a_literal_hash_ends_the_key),
        case!(invalid_keys_are_rejected),
        case!(key_length_limit),
        case!(nested_keys_coexist, |t| t.profile.nested_keys),
        case!(file_and_directory_names_conflict, |t| !t
            .profile
            .nested_keys),
        case!(a_refused_write_leaves_no_trace, |t| t.profile.store == "fs"),
        case!(internal_names_are_never_listed, |t| t.profile.store == "fs"),
    ]
}

/// Without `X-Key-Encoding` the path is the key, byte for byte, as the
/// compat runtime sends file names: `%` is a percent sign, `+` a plus.
async fn literal_keys_round_trip(cx: &Ctx<'_>) -> Outcome {
    let names = [
        "50%off-x%41y.txt",
        "100%",
        "%2Fnot-a-slash",
        "c++",
        "a%zz=b;c",
    ];
    for name in names {
        let path = format!("/keys/{}", cx.key(&format!("d/{name}")));
        let put = request(cx, Method::PUT, &path, &[], name.to_owned()).await?;
        ensure_eq!(put.status.as_u16(), 204, "PUT {path}");
        let get = request(cx, Method::GET, &path, &[], "").await?;
        ensure_eq!(get.status.as_u16(), 200, "GET {path}");
        ensure_eq!(&get.body[..], name.as_bytes(), "content under {path}");
        let head = request(cx, Method::HEAD, &path, &[], "").await?;
        ensure_eq!(head.status.as_u16(), 200, "HEAD {path}");
        // The client, percent-encoding, names the same object.
        let object = doing(
            &format!("GET {name:?} (percent-encoded)"),
            cx.client.get(&cx.key(&format!("d/{name}"))).await,
        )?;
        ensure_eq!(&object.data[..], name.as_bytes(), "content of {name:?}");
    }
    // The runtime's listdir: the prefix as it is, unescaped.
    let path = format!("/keys/?prefix={}&delimiter=/", cx.key("d/"));
    let listed = request(cx, Method::GET, &path, &[], "").await?;
    ensure_eq!(listed.status.as_u16(), 200, "GET {path}");
    let json = listed.json().map_err(|e| e.to_string())?;
    let mut expected: Vec<String> = names.iter().map(|n| cx.key(&format!("d/{n}"))).collect();
    expected.sort();
    ensure_eq!(
        json["keys"],
        serde_json::json!(expected),
        "literal keys listed under their own names"
    );
    // A literal prefix with a '%' finds them too.
    let path = format!("/keys/?prefix={}&delimiter=", cx.key("d/50%off"));
    let listed = request(cx, Method::GET, &path, &[], "").await?;
    let json = listed.json().map_err(|e| e.to_string())?;
    ensure_eq!(
        json["keys"],
        serde_json::json!([cx.key("d/50%off-x%41y.txt")]),
        "listing under a literal '%' prefix"
    );
    let delete = request(
        cx,
        Method::DELETE,
        &format!("/keys/{}", cx.key("d/100%")),
        &[],
        "",
    )
    .await?;
    ensure_eq!(delete.status.as_u16(), 204, "DELETE of a literal key");
    Ok(())
}

/// With `X-Key-Encoding: percent` escapes are decoded (and only they: a
/// `+` is a plus), so a client can name any key.
async fn percent_encoded_keys(cx: &Ctx<'_>) -> Outcome {
    let cases = [
        ("sp%20ace", "sp ace"),
        ("caf%C3%A9", "café"),
        ("dir%2Finner", "dir/inner"),
        ("plus+sign", "plus+sign"),
        ("pct%25", "pct%"),
        ("50%25off-x%2541y.txt", "50%off-x%41y.txt"),
        ("what%3Fnot", "what?not"),
        ("hash%23tag", "hash#tag"),
        ("semi;colon=equals", "semi;colon=equals"),
    ];
    for (raw, decoded) in cases {
        let path = format!("/keys/{}/{raw}", cx.key("k"));
        let put = request(
            cx,
            Method::PUT,
            &path,
            &[(KEY_ENCODING, PERCENT)],
            decoded.to_owned(),
        )
        .await?;
        ensure_eq!(put.status.as_u16(), 204, "PUT {path}");
        // The client escapes the decoded key its own way: same object.
        let object = doing(
            &format!("GET {decoded:?}"),
            cx.client.get(&cx.key(&format!("k/{decoded}"))).await,
        )?;
        ensure_eq!(
            &object.data[..],
            decoded.as_bytes(),
            "content under {decoded:?}"
        );
    }
    let listing = doing("list", cx.client.list(&cx.dir(), Some("")).await)?;
    let mut expected: Vec<String> = cases
        .iter()
        .map(|(_, d)| cx.key(&format!("k/{d}")))
        .collect();
    expected.sort();
    ensure_eq!(listing.keys, expected, "keys listed after percent-decoding");
    Ok(())
}

async fn key_encoding_header_is_checked(cx: &Ctx<'_>) -> Outcome {
    let path = format!("/keys/{}", cx.key("k"));
    for value in ["form", "utf-8", ""] {
        let put = request(cx, Method::PUT, &path, &[(KEY_ENCODING, value)], "x").await?;
        expect_error_body(
            &format!("PUT with {KEY_ENCODING}: {value:?}"),
            &put,
            400,
            "bad_request",
        )?;
    }
    // Only routes that name keys read it.
    let health = request(cx, Method::GET, "/healthz", &[(KEY_ENCODING, "form")], "").await?;
    ensure_eq!(
        health.status.as_u16(),
        200,
        "/healthz with {KEY_ENCODING}: form"
    );
    let explicit = request(cx, Method::PUT, &path, &[(KEY_ENCODING, "literal")], "x").await?;
    ensure_eq!(
        explicit.status.as_u16(),
        204,
        "PUT with {KEY_ENCODING}: literal"
    );
    let bare = format!("/keys/{}", cx.key("50%off"));
    let put = request(cx, Method::PUT, &bare, &[(KEY_ENCODING, PERCENT)], "x").await?;
    expect_error_body(
        "PUT of a bare '%' when percent-encoded",
        &put,
        400,
        "bad_request",
    )?;
    let listing = doing("list", cx.client.list(&cx.dir(), Some("")).await)?;
    ensure_eq!(
        listing.keys,
        vec![cx.key("k")],
        "only the valid write stored"
    );
    Ok(())
}

/// Documented, not wanted: the HTTP layer drops a fragment before the
/// proxy sees the request, so a literal `#` ends the key (send `%23`
/// with `X-Key-Encoding: percent`).
async fn a_literal_hash_ends_the_key(cx: &Ctx<'_>) -> Outcome {
    let put = raw::exchange(
        &cx.target.socket,
        format!(
            "PUT /keys/{}#tag HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n\r\nx",
            cx.key("h")
        )
        .as_bytes(),
    )
    .await?;
    ensure_eq!(put.status, 204, "PUT of a literal '#'");
    let listing = doing("list", cx.client.list(&cx.dir(), Some("")).await)?;
    ensure_eq!(
        listing.keys,
        vec![cx.key("h")],
        "stored under the part before '#'"
    );
    Ok(())
}

async fn invalid_keys_are_rejected(cx: &Ctx<'_>) -> Outcome {
    let ns = cx.key("bad");
    let long = "k".repeat(1025);
    let percent = format!("{KEY_ENCODING}: {PERCENT}\r\n");
    // Refused as literal text and as percent-encoded text alike.
    let literal = [
        format!("/keys//{ns}/absolute"),
        format!("/keys/{ns}/../escape"),
        format!("/keys/{ns}/./here"),
        format!("/keys/{ns}//double"),
        format!("/keys/{ns}/trailing/"),
        format!("/keys/{long}"),
    ];
    // Refused once decoded (as literal text they are valid names).
    let escaped = [
        format!("/keys/{ns}/%2E%2E/escape"),
        format!("/keys/{ns}/nul%00byte"),
        format!("/keys/{ns}/newline%0Abyte"),
        format!("/keys/{ns}/del%7Fbyte"),
        format!("/keys/{ns}/invalid%FFutf8"),
        format!("/keys/{ns}/bad%zzescape"),
        format!("/keys/{ns}/bare%"),
    ];
    let attempts = literal
        .iter()
        .flat_map(|path| [(path, ""), (path, percent.as_str())])
        .chain(escaped.iter().map(|path| (path, percent.as_str())));
    for (path, header) in attempts {
        // Sent byte for byte: a client library would normalise `..` away.
        let put = raw::exchange(
            &cx.target.socket,
            format!("PUT {path} HTTP/1.1\r\nHost: localhost\r\n{header}Content-Length: 1\r\n\r\nx")
                .as_bytes(),
        )
        .await?;
        expect_raw_error(&format!("PUT {path} {header:?}"), &put, 400, "bad_request")?;
        let get = raw::exchange(
            &cx.target.socket,
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{header}\r\n").as_bytes(),
        )
        .await?;
        expect_raw_error(&format!("GET {path} {header:?}"), &get, 400, "bad_request")?;
    }
    let empty = request(cx, Method::PUT, "/keys/", &[], "x").await?;
    expect_error_body("PUT of the empty key", &empty, 400, "bad_request")?;
    // Nothing was stored under any other name.
    let listing = doing("list", cx.client.list(&cx.dir(), Some("")).await)?;
    ensure!(
        listing.keys.is_empty(),
        "rejected keys left objects: {:?}",
        listing.keys
    );
    let root = doing("list root", cx.client.list("escape", Some("")).await)?;
    ensure!(
        root.keys.is_empty(),
        "a rejected key escaped its directory: {:?}",
        root.keys
    );
    Ok(())
}

async fn key_length_limit(cx: &Ctx<'_>) -> Outcome {
    // Segments of 200 bytes stay within every file system's name limit.
    let mut key = cx.key("");
    while key.len() < 1024 {
        let room = 1024 - key.len();
        key.push_str(&"s".repeat(room.min(200)));
        if key.len() < 1023 {
            key.push('/');
        }
    }
    ensure_eq!(key.len(), 1024, "test key length");
    doing(
        "PUT of a 1024-byte key",
        cx.client.put(&key, "max", Condition::None).await,
    )?;
    let object = doing("GET of a 1024-byte key", cx.client.get(&key).await)?;
    ensure_eq!(&object.data[..], b"max", "content under the longest key");
    let longer = format!("{key}s");
    expect_error(
        "PUT of a 1025-byte key",
        cx.client.put(&longer, "x", Condition::None).await,
        400,
        "bad_request",
    )
}

async fn nested_keys_coexist(cx: &Ctx<'_>) -> Outcome {
    let (parent, child) = (cx.key("a"), cx.key("a/c"));
    doing(
        "PUT a",
        cx.client.put(&parent, "parent", Condition::None).await,
    )?;
    doing(
        "PUT a/c",
        cx.client.put(&child, "child", Condition::None).await,
    )?;
    ensure_eq!(
        &doing("GET a", cx.client.get(&parent).await)?.data[..],
        b"parent",
        "a"
    );
    ensure_eq!(
        &doing("GET a/c", cx.client.get(&child).await)?.data[..],
        b"child",
        "a/c"
    );
    let listing = doing("list", cx.client.list(&cx.dir(), None).await)?;
    ensure_eq!(listing.keys, vec![parent], "keys");
    ensure_eq!(
        listing.prefixes,
        vec![format!("{}a/", cx.dir())],
        "prefixes"
    );
    Ok(())
}

async fn file_and_directory_names_conflict(cx: &Ctx<'_>) -> Outcome {
    doing(
        "PUT a",
        cx.client.put(&cx.key("a"), "file", Condition::None).await,
    )?;
    expect_error(
        "PUT a/c over the file a",
        cx.client.put(&cx.key("a/c"), "x", Condition::None).await,
        409,
        "conflict",
    )?;
    doing(
        "PUT d/e",
        cx.client.put(&cx.key("d/e"), "file", Condition::None).await,
    )?;
    expect_error(
        "PUT d over the directory d/",
        cx.client.put(&cx.key("d"), "x", Condition::None).await,
        409,
        "conflict",
    )?;
    ensure_eq!(
        &doing("GET a", cx.client.get(&cx.key("a")).await)?.data[..],
        b"file",
        "a kept"
    );
    ensure_eq!(
        &doing("GET d/e", cx.client.get(&cx.key("d/e")).await)?.data[..],
        b"file",
        "d/e kept"
    );
    Ok(())
}

/// fs: a write refused for a segment longer than a file name can be
/// leaves no directory behind, so the name stays free for a key.
async fn a_refused_write_leaves_no_trace(cx: &Ctx<'_>) -> Outcome {
    let long = "n".repeat(300);
    expect_error(
        "PUT with a 300-byte segment",
        cx.client
            .put(&cx.key(&format!("d/{long}")), "x", Condition::None)
            .await,
        400,
        "bad_request",
    )?;
    let listing = doing("list", cx.client.list(&cx.dir(), Some("")).await)?;
    ensure!(
        listing.keys.is_empty() && listing.prefixes.is_empty(),
        "the refused write left {listing:?}"
    );
    doing(
        "PUT d after the refused d/...",
        cx.client.put(&cx.key("d"), "x", Condition::None).await,
    )?;
    Ok(())
}

/// fs: the store's own files (temporary files, locks) are no keys, not
/// even when a listing names their directory.
async fn internal_names_are_never_listed(cx: &Ctx<'_>) -> Outcome {
    doing(
        "PUT",
        cx.client.put(&cx.key("k"), "x", Condition::None).await,
    )?;
    for (prefix, delimiter) in [
        (".state-proxy/", Some("")),
        (".state-proxy/", Some("/")),
        (".state-proxy/locks/", Some("")),
        (".state-", Some("/")),
    ] {
        let listing = doing(
            &format!("list {prefix} {delimiter:?}"),
            cx.client.list(prefix, delimiter).await,
        )?;
        ensure!(
            listing.keys.is_empty() && listing.prefixes.is_empty(),
            "listing {prefix:?} (delimiter {delimiter:?}) shows {listing:?}"
        );
    }
    Ok(())
}
