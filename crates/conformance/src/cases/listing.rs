//! Listing: prefixes, delimiters, order, completeness.

use state_client::{Condition, KEY_ENCODING, PERCENT};

use super::{Case, Outcome, case, doing, ensure_eq, request};
use crate::Ctx;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(listing_one_level),
        case!(listing_recursive),
        case!(listing_partial_prefix),
        case!(listing_other_delimiter),
        case!(listing_byte_order),
        case!(listing_query_decoding),
        case!(listing_compat_shapes),
    ]
}

async fn put_all(cx: &Ctx<'_>, names: &[&str]) -> Outcome {
    for name in names {
        doing(
            &format!("PUT {name}"),
            cx.client.put(&cx.key(name), "x", Condition::None).await,
        )?;
    }
    Ok(())
}

fn keys(cx: &Ctx<'_>, names: &[&str]) -> Vec<String> {
    names.iter().map(|name| cx.key(name)).collect()
}

const TREE: &[&str] = &["a", "ab", "b", "c/d", "c/e", "f/g/h", "f/i"];

async fn listing_one_level(cx: &Ctx<'_>) -> Outcome {
    put_all(cx, TREE).await?;
    for delimiter in [None, Some("/")] {
        let listing = doing("list", cx.client.list(&cx.dir(), delimiter).await)?;
        ensure_eq!(
            listing.keys,
            keys(cx, &["a", "ab", "b"]),
            "keys (delimiter {delimiter:?})"
        );
        ensure_eq!(
            listing.prefixes,
            keys(cx, &["c/", "f/"]),
            "prefixes (delimiter {delimiter:?})"
        );
    }
    let inner = doing("list f/", cx.client.list(&cx.key("f/"), Some("/")).await)?;
    ensure_eq!(inner.keys, keys(cx, &["f/i"]), "keys under f/");
    ensure_eq!(inner.prefixes, keys(cx, &["f/g/"]), "prefixes under f/");
    let none = doing("list x/", cx.client.list(&cx.key("x/"), Some("/")).await)?;
    ensure_eq!(
        (none.keys.len(), none.prefixes.len()),
        (0, 0),
        "listing of an absent prefix"
    );
    Ok(())
}

async fn listing_recursive(cx: &Ctx<'_>) -> Outcome {
    put_all(cx, TREE).await?;
    let listing = doing("list", cx.client.list(&cx.dir(), Some("")).await)?;
    ensure_eq!(listing.keys, keys(cx, TREE), "every key, recursively");
    ensure_eq!(
        listing.prefixes,
        Vec::<String>::new(),
        "no prefixes when recursive"
    );
    Ok(())
}

async fn listing_partial_prefix(cx: &Ctx<'_>) -> Outcome {
    put_all(cx, &["app/1", "apple", "apricot", "b"]).await?;
    let listing = doing("list ap", cx.client.list(&cx.key("ap"), Some("/")).await)?;
    ensure_eq!(
        listing.keys,
        keys(cx, &["apple", "apricot"]),
        "keys starting with ap"
    );
    ensure_eq!(
        listing.prefixes,
        keys(cx, &["app/"]),
        "prefixes starting with ap"
    );
    Ok(())
}

async fn listing_other_delimiter(cx: &Ctx<'_>) -> Outcome {
    put_all(cx, &["run-1-a", "run-1-b", "run-2", "solo"]).await?;
    let listing = doing(
        "list with -",
        cx.client.list(&cx.key("run-"), Some("-")).await,
    )?;
    ensure_eq!(listing.keys, keys(cx, &["run-2"]), "keys");
    ensure_eq!(listing.prefixes, keys(cx, &["run-1-"]), "prefixes");
    Ok(())
}

async fn listing_byte_order(cx: &Ctx<'_>) -> Outcome {
    let names = ["b", "B", "a", "_", "é", "Z", "a0", "a-"];
    put_all(cx, &names).await?;
    let listing = doing("list", cx.client.list(&cx.dir(), Some("/")).await)?;
    let mut expected = keys(cx, &names);
    expected.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    ensure_eq!(listing.keys, expected, "keys in byte order");
    Ok(())
}

/// Query parameters are never form-decoded: a `+` is a plus sign (the
/// runtime's `os.listdir("c++")`). Without `X-Key-Encoding` they are taken
/// as sent; with `percent`, `%XX` escapes are decoded.
async fn listing_query_decoding(cx: &Ctx<'_>) -> Outcome {
    put_all(cx, &["c++/x", "with space/y", "50%off/z"]).await?;
    let dir = cx.dir();
    let percent = [(KEY_ENCODING, PERCENT)];
    for (query, headers, expected) in [
        ("c++/&delimiter=/", &[][..], "c++/x"),
        ("50%off/&delimiter=/", &[][..], "50%off/z"),
        ("c++%2F&delimiter=%2F", &percent[..], "c++/x"),
        ("c%2B%2B/&delimiter=/", &percent[..], "c++/x"),
        ("with%20space/&delimiter=/", &percent[..], "with space/y"),
        ("50%25off/&delimiter=", &percent[..], "50%off/z"),
    ] {
        let path = format!("/keys/?prefix={dir}{query}");
        let answer = request(cx, http::Method::GET, &path, headers, "").await?;
        ensure_eq!(answer.status.as_u16(), 200, "GET {path} {headers:?}");
        let json = answer.json().map_err(|e| e.to_string())?;
        ensure_eq!(
            json["keys"],
            serde_json::json!([cx.key(expected)]),
            "keys for {path} {headers:?}"
        );
    }
    // A '+' is never a space, and a literal escape is no escape.
    for (query, headers) in [
        ("with+space/&delimiter=/", &[][..]),
        ("with+space/&delimiter=/", &percent[..]),
        ("with%20space/&delimiter=/", &[][..]),
    ] {
        let path = format!("/keys/?prefix={dir}{query}");
        let answer = request(cx, http::Method::GET, &path, headers, "").await?;
        let json = answer.json().map_err(|e| e.to_string())?;
        ensure_eq!(
            json["keys"],
            serde_json::json!([]),
            "keys for {path} {headers:?}"
        );
    }
    let bad = format!("/keys/?prefix={dir}50%off/");
    let answer = request(cx, http::Method::GET, &bad, &percent, "").await?;
    super::expect_error_body(
        "a bare '%' in a percent-encoded prefix",
        &answer,
        400,
        "bad_request",
    )
}

async fn listing_compat_shapes(cx: &Ctx<'_>) -> Outcome {
    // The compat client lists a directory as prefix=d/&delimiter=/ and the
    // root as prefix=&delimiter=/.
    put_all(cx, &["d/x"]).await?;
    let path = format!("/keys/?prefix={}&delimiter=/", cx.key("d/"));
    let answer = request(cx, http::Method::GET, &path, &[], "").await?;
    let json = answer.json().map_err(|e| e.to_string())?;
    ensure_eq!(
        json,
        serde_json::json!({"keys": [cx.key("d/x")], "prefixes": []}),
        "directory listing"
    );
    let root = request(cx, http::Method::GET, "/keys/?prefix=&delimiter=/", &[], "").await?;
    let json = root.json().map_err(|e| e.to_string())?;
    let namespace_root = format!("{}/", cx.target.namespace);
    let listed = json["prefixes"]
        .as_array()
        .is_some_and(|prefixes| prefixes.iter().any(|p| p.as_str() == Some(&namespace_root)));
    ensure_eq!(
        listed,
        true,
        "root listing shows {namespace_root} among {json}"
    );
    Ok(())
}
