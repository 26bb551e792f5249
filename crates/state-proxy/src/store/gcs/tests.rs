//! Unit tests against the in-process fake backend
//! (`store::http_client::fake`) answering as the GCS JSON API does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use google_cloud_auth::signer::{Signer, SigningError, SigningProvider};

use super::api::Api;
use super::auth::Auth;
use super::*;
use crate::error::kind_of;
use crate::store::http_client::fake::{
    FakeServer, Recorded, Reply, assert_stall_times_out, bytes_of, full, key, unreachable_url,
};

fn json(status: u16, value: serde_json::Value) -> Reply {
    Reply::with_body(status, "application/json", value.to_string())
}

fn gcs_error(status: u16, message: &str) -> Reply {
    json(
        status,
        serde_json::json!({"error": {"code": status, "message": message,
            "errors": [{"domain": "global", "reason": "x", "message": message}]}}),
    )
}

fn media(data: &str, generation: &str) -> Reply {
    Reply::Answer {
        status: 200,
        headers: vec![
            ("x-goog-generation", generation.to_owned()),
            ("content-type", "application/octet-stream".to_owned()),
        ],
        body: data.as_bytes().to_vec(),
    }
}

fn resource(generation: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "storage#object", "name": "ignored", "bucket": "bkt",
        "generation": generation, "metageneration": "3", "size": "5",
        "contentType": "text/csv", "storageClass": "NEARLINE"
    })
}

/// The fake as a GCS endpoint.
trait FakeGcs {
    fn store(&self, prefix: &str) -> GcsStore;
    fn store_with(&self, prefix: &str, auth: Auth, timeout: Duration) -> GcsStore;
}

impl FakeGcs for FakeServer {
    fn store(&self, prefix: &str) -> GcsStore {
        self.store_with(prefix, Auth::Anonymous, Duration::from_secs(5))
    }

    fn store_with(&self, prefix: &str, auth: Auth, timeout: Duration) -> GcsStore {
        store_at(&self.url(), prefix, auth, timeout)
    }
}

fn store_at(base: &str, prefix: &str, auth: Auth, timeout: Duration) -> GcsStore {
    let api = Api::new(base.to_owned(), "bkt".to_owned(), auth, timeout).unwrap();
    GcsStore::with_api(api, prefix, Duration::from_secs(900)).unwrap()
}

/// Splits a `multipart/related` upload into its JSON resource and its
/// bytes, checking the framing on the way.
fn multipart_parts(request: &Recorded) -> (serde_json::Value, Vec<u8>) {
    let content_type = request.headers["content-type"].to_str().unwrap();
    let boundary = content_type
        .strip_prefix("multipart/related; boundary=")
        .unwrap_or_else(|| panic!("not multipart/related: {content_type}"));
    let body = &request.body[..];
    let head = format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n");
    assert!(body.starts_with(head.as_bytes()), "first part header");
    let rest = &body[head.len()..];
    let media_head = format!("\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n");
    let split = rest
        .windows(media_head.len())
        .position(|w| w == media_head.as_bytes())
        .expect("second part header");
    let resource = serde_json::from_slice(&rest[..split]).unwrap();
    let data = &rest[split + media_head.len()..];
    let tail = format!("\r\n--{boundary}--\r\n");
    assert!(data.ends_with(tail.as_bytes()), "closing delimiter");
    (resource, data[..data.len() - tail.len()].to_vec())
}

fn upload_answer(generation: &str) -> Reply {
    json(200, resource(generation))
}

#[tokio::test]
async fn writes_are_multipart_uploads_with_the_generation_condition() {
    let fake = FakeServer::start(|_, index| upload_answer(&format!("{}", 100 + index))).await;
    let store = fake.store("tenant");
    let cases = [
        (Condition::None, None),
        (Condition::IfAbsent, Some("0")),
        (
            Condition::IfMatch(Version::new("1712345678901234")),
            Some("1712345678901234"),
        ),
    ];
    for (index, (condition, expected)) in cases.into_iter().enumerate() {
        let version = store
            .put(&key("dir/obj"), full("payload"), condition)
            .await
            .unwrap();
        assert_eq!(
            version.as_str(),
            (100 + index).to_string(),
            "generation of the answer"
        );
        let request = &fake.requests()[index];
        assert_eq!(request.method, "POST");
        assert_eq!(request.raw_path, "/upload/storage/v1/b/bkt/o");
        assert_eq!(request.param("uploadType"), Some("multipart"));
        assert_eq!(request.param("ifGenerationMatch"), expected);
        let (resource, data) = multipart_parts(request);
        assert_eq!(resource["name"], "tenant/dir/obj");
        assert_eq!(data, b"payload");
    }
}

#[tokio::test]
async fn streamed_bodies_are_framed_the_same_way() {
    let fake = FakeServer::start(|_, _| upload_answer("7")).await;
    let store = fake.store("");
    let chunks: Vec<Result<Bytes>> =
        vec![Ok(Bytes::from_static(b"ab")), Ok(Bytes::from_static(b"cd"))];
    let body = Body::Stream {
        stream: futures_util::stream::iter(chunks).boxed(),
        size: Some(4),
    };
    store.put(&key("s"), body, Condition::None).await.unwrap();
    let (resource, data) = multipart_parts(&fake.requests()[0]);
    assert_eq!(resource["name"], "s");
    assert_eq!(data, b"abcd");
}

#[tokio::test]
async fn tags_that_are_no_generation_fail_without_a_call() {
    let fake = FakeServer::start(|_, _| upload_answer("5")).await;
    let store = fake.store("");
    // "0" would tell GCS "only if absent": the opposite of If-Match.
    for tag in ["0", "abc", "-3", ""] {
        let condition = Condition::IfMatch(Version::new(tag));
        let put = store.put(&key("k"), full("x"), condition.clone()).await;
        assert_eq!(
            kind_of(&put),
            Some(ErrorKind::PreconditionFailed),
            "{tag}: {put:?}"
        );
        let delete = store.delete(&key("k"), condition).await;
        assert_eq!(
            kind_of(&delete),
            Some(ErrorKind::PreconditionFailed),
            "{tag}: {delete:?}"
        );
    }
    assert!(fake.requests().is_empty());
}

/// What compare-and-swap relies on (the mode makes a plain write
/// conditional on the version it read): the generation a read returns is
/// the one a conditional upload sends, and GCS's refusal is a failed
/// condition.
#[tokio::test]
async fn failed_preconditions_are_412_for_the_generation_read() {
    let fake = FakeServer::start(|request, _| match request.method.as_str() {
        "GET" => media("hello", "41"),
        _ => gcs_error(412, "Precondition Failed"),
    })
    .await;
    let store = fake.store("");
    let read = store.get(&key("k")).await.unwrap().meta.version;
    assert_eq!(read.as_str(), "41");
    let write = store
        .put(&key("k"), full("x"), Condition::IfMatch(read))
        .await;
    assert!(
        matches!(&write, Err(e) if e.kind() == ErrorKind::PreconditionFailed && e.to_string().contains("Precondition Failed")),
        "{write:?}"
    );
    let upload = fake
        .requests()
        .into_iter()
        .rfind(|r| r.method == "POST")
        .unwrap();
    assert_eq!(upload.param("ifGenerationMatch"), Some("41"));
}

#[tokio::test]
async fn reads_take_the_generation_from_the_download_itself() {
    let fake = FakeServer::start(|request, _| match request.raw_path.as_str() {
        "/storage/v1/b/bkt/o/present" => media("content", "1795840352699816"),
        "/storage/v1/b/bkt/o/no-generation" => Reply::Answer {
            status: 200,
            headers: vec![],
            body: b"x".to_vec(),
        },
        // The emulator's media 404 is plain text.
        _ => Reply::Answer {
            status: 404,
            headers: vec![("content-type", "text/plain".to_owned())],
            body: b"Not Found\n".to_vec(),
        },
    })
    .await;
    let store = fake.store("");
    let object = store.get(&key("present")).await.unwrap();
    assert_eq!(object.meta.version.as_str(), "1795840352699816");
    assert_eq!(object.meta.size, 7);
    assert_eq!(bytes_of(object.body).await, "content");
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "no second call for the generation");
    assert_eq!(requests[0].param("alt"), Some("media"));

    let missing = store.get(&key("absent")).await;
    assert!(
        matches!(&missing, Err(e) if e.to_string() == "key 'absent' not found"),
        "{missing:?}"
    );
    let broken = store.get(&key("no-generation")).await;
    assert_eq!(kind_of(&broken), Some(ErrorKind::Internal), "{broken:?}");
}

#[tokio::test]
async fn object_names_are_escaped_as_one_path_segment() {
    let fake = FakeServer::start(|request, _| match request.method.as_str() {
        "POST" => upload_answer("9"),
        _ => media("x", "9"),
    })
    .await;
    let store = fake.store("pre fix");
    let name = "dir/sub dir/naïve ✓ 100%?#+;=&.txt";
    store
        .put(&key(name), full("x"), Condition::None)
        .await
        .unwrap();
    store.get(&key(name)).await.unwrap();
    let requests = fake.requests();
    let (resource, _) = multipart_parts(&requests[0]);
    assert_eq!(
        resource["name"],
        format!("pre fix/{name}"),
        "the JSON resource carries the raw name"
    );
    assert_eq!(
        requests[1].raw_path,
        "/storage/v1/b/bkt/o/pre%20fix%2Fdir%2Fsub%20dir%2Fna%C3%AFve%20%E2%9C%93%20100%25%3F%23%2B%3B%3D%26.txt"
    );
}

#[tokio::test]
async fn listings_follow_every_page() {
    // Three pages; tokens with characters that need escaping.
    let fake = FakeServer::start(|request, _| match request.param("pageToken") {
        None => json(
            200,
            serde_json::json!({
                "items": [{"name": "p/a/1"}, {"name": "p/a/2"}],
                "prefixes": ["p/a/d/"],
                "nextPageToken": "next/é+1"
            }),
        ),
        Some("next/é+1") => json(
            200,
            serde_json::json!({
                "items": [{"name": "p/a/0"}],
                "prefixes": ["p/a/d/", "p/a/c/"],
                "nextPageToken": "t 2"
            }),
        ),
        Some("t 2") => json(200, serde_json::json!({"kind": "storage#objects"})),
        Some(other) => panic!("unexpected token {other}"),
    })
    .await;
    let store = fake.store("p");
    let listing = store.list("a/", Some("/")).await.unwrap();
    assert_eq!(listing.keys, ["a/0", "a/1", "a/2"]);
    assert_eq!(listing.prefixes, ["a/c/", "a/d/"]);
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(request.raw_path, "/storage/v1/b/bkt/o");
        assert_eq!(request.param("prefix"), Some("p/a/"));
        assert_eq!(request.param("delimiter"), Some("/"));
        assert_eq!(request.param("maxResults"), Some("1000"));
    }
    assert_eq!(requests[1].param("pageToken"), Some("next/é+1"));
    assert_eq!(requests[2].param("pageToken"), Some("t 2"));
}

#[tokio::test]
async fn recursive_listings_send_no_delimiter() {
    let fake = FakeServer::start(|_, _| {
        json(
            200,
            serde_json::json!({"items": [{"name": "x/b"}, {"name": "x/a/c"}]}),
        )
    })
    .await;
    let store = fake.store("");
    for delimiter in [None, Some("")] {
        let listing = store.list("x/", delimiter).await.unwrap();
        assert_eq!(listing.keys, ["x/a/c", "x/b"]);
        assert!(listing.prefixes.is_empty());
    }
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.param("delimiter").is_none())
    );
}

#[tokio::test]
async fn conditional_deletes_check_the_generation_then_send_it() {
    let fake = FakeServer::start(|request, _| {
        match (request.method.as_str(), request.raw_path.as_str()) {
            ("GET", "/storage/v1/b/bkt/o/k") => json(200, resource("20")),
            ("GET", _) => gcs_error(404, "No such object"),
            ("DELETE", "/storage/v1/b/bkt/o/k") => Reply::Answer {
                status: 204,
                headers: vec![],
                body: vec![],
            },
            ("DELETE", _) => gcs_error(404, "No such object"),
            other => panic!("unexpected {other:?}"),
        }
    })
    .await;
    let store = fake.store("");
    let stale = store
        .delete(&key("k"), Condition::IfMatch(Version::new("19")))
        .await;
    assert_eq!(
        kind_of(&stale),
        Some(ErrorKind::PreconditionFailed),
        "{stale:?}"
    );
    assert!(
        fake.requests().iter().all(|r| r.method != "DELETE"),
        "a stale delete is never sent"
    );
    let missing = store
        .delete(&key("gone"), Condition::IfMatch(Version::new("20")))
        .await;
    assert_eq!(
        kind_of(&missing),
        Some(ErrorKind::PreconditionFailed),
        "{missing:?}"
    );

    store
        .delete(&key("k"), Condition::IfMatch(Version::new("20")))
        .await
        .unwrap();
    let delete = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .unwrap();
    assert_eq!(delete.param("ifGenerationMatch"), Some("20"));

    store.delete(&key("k"), Condition::None).await.unwrap();
    let plain = fake
        .requests()
        .into_iter()
        .rfind(|r| r.method == "DELETE")
        .unwrap();
    assert_eq!(plain.param("ifGenerationMatch"), None);
    let absent = store.delete(&key("gone"), Condition::None).await;
    assert_eq!(kind_of(&absent), Some(ErrorKind::KeyNotFound), "{absent:?}");
}

#[tokio::test]
async fn a_delete_refused_by_gcs_after_the_check_is_a_failed_precondition() {
    // The object changed between the check and the delete.
    let fake = FakeServer::start(|request, _| match request.method.as_str() {
        "GET" => json(200, resource("20")),
        _ => gcs_error(412, "Precondition Failed"),
    })
    .await;
    let outcome = fake
        .store("")
        .delete(&key("k"), Condition::IfMatch(Version::new("20")))
        .await;
    assert_eq!(
        kind_of(&outcome),
        Some(ErrorKind::PreconditionFailed),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn attributes_come_from_the_object_resource() {
    let fake = FakeServer::start(|request, _| {
        match (request.method.as_str(), request.raw_path.as_str()) {
            ("GET", "/storage/v1/b/bkt/o/p%2Fk") => json(200, resource("77")),
            ("PATCH", "/storage/v1/b/bkt/o/p%2Fk") => json(200, serde_json::json!({})),
            _ => gcs_error(404, "No such object"),
        }
    })
    .await;
    let store = fake.store("p");
    let k = key("k");
    assert_eq!(store.get_attr(&k, "url").await.unwrap(), "gs://bkt/p/k");
    assert_eq!(store.get_attr(&k, "generation").await.unwrap(), "77");
    assert_eq!(store.get_attr(&k, "metageneration").await.unwrap(), "3");
    assert_eq!(
        store.get_attr(&k, "storage_class").await.unwrap(),
        "NEARLINE"
    );
    assert_eq!(
        store.get_attr(&k, "content_type").await.unwrap(),
        "text/csv"
    );
    assert_eq!(
        store.head(&k).await.unwrap(),
        ObjectMeta {
            size: 5,
            version: Version::new("77")
        }
    );

    store
        .set_attr(&k, "content_type", "text/plain")
        .await
        .unwrap();
    let patch = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&patch.body).unwrap();
    assert_eq!(body, serde_json::json!({"contentType": "text/plain"}));

    let missing = key("missing");
    for attr in ["url", "generation", "signed_url"] {
        let answer = store.get_attr(&missing, attr).await;
        assert_eq!(
            kind_of(&answer),
            Some(ErrorKind::KeyNotFound),
            "{attr}: {answer:?}"
        );
    }
    let set = store.set_attr(&missing, "content_type", "text/plain").await;
    assert_eq!(kind_of(&set), Some(ErrorKind::KeyNotFound), "{set:?}");
}

/// Signs with fixed bytes, so the URL around the signature can be checked.
#[derive(Debug)]
struct FixedSigner;

impl SigningProvider for FixedSigner {
    async fn client_email(&self) -> Result<String, SigningError> {
        Ok("proxy@project.iam.gserviceaccount.com".to_owned())
    }

    async fn sign(&self, content: &[u8]) -> Result<Bytes, SigningError> {
        assert!(
            content.starts_with(b"GOOG4-RSA-SHA256\n"),
            "signs the string to sign"
        );
        Ok(Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]))
    }
}

#[tokio::test]
async fn signed_urls_need_credentials_that_can_sign() {
    let fake = FakeServer::start(|_, _| json(200, resource("1"))).await;
    let anonymous = fake.store("");
    let refused = anonymous.get_attr(&key("k"), "signed_url").await;
    assert!(
        matches!(&refused, Err(e) if e.kind() == ErrorKind::NotImplemented && e.to_string().contains("STORAGE_EMULATOR_HOST")),
        "{refused:?}"
    );
    // What cannot be read is not listed.
    assert!(
        !anonymous
            .readable_attributes()
            .await
            .contains(&"signed_url")
    );

    let auth = Auth::Fixed {
        token: "t0k".to_owned(),
        signer: Some(Signer::from(FixedSigner)),
    };
    let store = fake.store_with("pre", auth, Duration::from_secs(5));
    let every: Vec<&str> = store.info().attributes.iter().map(|a| a.name).collect();
    assert_eq!(store.readable_attributes().await, every);
    let url = store.get_attr(&key("dir/a b"), "signed_url").await.unwrap();
    let (path, query) = url.split_once('?').unwrap();
    assert_eq!(path, "https://storage.googleapis.com/bkt/pre/dir/a%20b");
    let params: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(params["X-Goog-Algorithm"], "GOOG4-RSA-SHA256");
    assert_eq!(params["X-Goog-Expires"], "900");
    assert_eq!(params["X-Goog-SignedHeaders"], "host");
    assert!(params["X-Goog-Credential"].starts_with("proxy@project.iam.gserviceaccount.com/"));
    assert!(params["X-Goog-Credential"].ends_with("/auto/storage/goog4_request"));
    assert_eq!(params["X-Goog-Signature"], "deadbeef");
    assert!(url.ends_with("&X-Goog-Signature=deadbeef"));
}

#[tokio::test]
async fn credentials_are_sent_as_a_bearer_token_and_never_to_an_emulator() {
    let fake = FakeServer::start(|_, _| media("x", "1")).await;
    fake.store("").get(&key("k")).await.unwrap();
    let auth = Auth::Fixed {
        token: "t0k".to_owned(),
        signer: None,
    };
    fake.store_with("", auth, Duration::from_secs(5))
        .get(&key("k"))
        .await
        .unwrap();
    let requests = fake.requests();
    assert!(requests[0].headers.get("authorization").is_none());
    assert_eq!(requests[1].headers["authorization"], "Bearer t0k");
}

#[tokio::test]
async fn backend_errors_map_to_the_protocol() {
    let fake = FakeServer::start(
        |request, _| match request.raw_path.rsplit('/').next().unwrap() {
            "forbidden" => gcs_error(403, "caller does not have storage.objects.get access"),
            "unauthorized" => gcs_error(401, "Invalid Credentials"),
            "throttled" => gcs_error(429, "rate limit"),
            "down" => gcs_error(503, "backend error"),
            "bad" => gcs_error(400, "Invalid argument"),
            _ => gcs_error(418, "teapot"),
        },
    )
    .await;
    let store = fake.store("");
    let forbidden = store.get(&key("forbidden")).await;
    assert!(
        matches!(&forbidden, Err(e) if e.kind() == ErrorKind::PermissionDenied && e.to_string().contains("storage.objects.get access")),
        "{forbidden:?}"
    );
    let unauthorized = store.head(&key("unauthorized")).await;
    assert_eq!(
        kind_of(&unauthorized),
        Some(ErrorKind::PermissionDenied),
        "{unauthorized:?}"
    );
    for name in ["throttled", "down"] {
        let outcome = store.get(&key(name)).await;
        assert_eq!(
            kind_of(&outcome),
            Some(ErrorKind::Unavailable),
            "{name}: {outcome:?}"
        );
    }
    let bad = store.get(&key("bad")).await;
    assert_eq!(kind_of(&bad), Some(ErrorKind::BadRequest), "{bad:?}");
    let odd = store.get(&key("odd")).await;
    assert_eq!(kind_of(&odd), Some(ErrorKind::Internal), "{odd:?}");
}

#[tokio::test]
async fn reads_are_retried_on_throttling_but_uploads_never_once_sent() {
    // The first answer to each request is 503, later ones succeed.
    let fake = FakeServer::start(|request, index| match (request.method.as_str(), index) {
        (_, 0) => gcs_error(503, "try again"),
        ("GET", _) => media("ok", "3"),
        _ => gcs_error(503, "try again"),
    })
    .await;
    let store = fake.store("");
    let object = store.get(&key("k")).await.unwrap();
    assert_eq!(bytes_of(object.body).await, "ok");
    assert_eq!(fake.requests().len(), 2, "one retry after the 503");

    let upload = store.put(&key("k"), full("x"), Condition::None).await;
    assert_eq!(kind_of(&upload), Some(ErrorKind::Unavailable), "{upload:?}");
    assert_eq!(fake.requests().len(), 3, "the upload was sent once");
}

#[tokio::test]
async fn persistent_throttling_gives_up_after_a_few_attempts() {
    let fake = FakeServer::start(|_, _| gcs_error(429, "slow down")).await;
    let outcome = fake.store("").list("", None).await;
    assert_eq!(
        kind_of(&outcome),
        Some(ErrorKind::Unavailable),
        "{outcome:?}"
    );
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn a_hung_backend_answers_timeout_within_the_backend_timeout() {
    let fake = FakeServer::start(|_, _| Reply::Hang).await;
    let store = fake.store_with("", Auth::Anonymous, Duration::from_millis(300));
    let started = Instant::now();
    let outcome = store.get(&key("k")).await;
    assert_eq!(kind_of(&outcome), Some(ErrorKind::Timeout), "{outcome:?}");
    let upload = store.put(&key("k"), full("x"), Condition::IfAbsent).await;
    assert_eq!(kind_of(&upload), Some(ErrorKind::Timeout), "{upload:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_unreachable_backend_is_unavailable() {
    let store = store_at(
        &unreachable_url(),
        "",
        Auth::Anonymous,
        Duration::from_secs(5),
    );
    let outcome = store.get(&key("k")).await;
    assert!(
        matches!(&outcome, Err(e) if e.kind() == ErrorKind::Unavailable && e.to_string().contains("unreachable")),
        "{outcome:?}"
    );
    let probe = store.probe().await;
    assert_eq!(kind_of(&probe), Some(ErrorKind::Unavailable), "{probe:?}");
}

#[tokio::test]
async fn probe_lists_one_object_and_names_a_missing_bucket() {
    let fake = FakeServer::start(|_, index| match index {
        0 => json(200, serde_json::json!({"kind": "storage#objects"})),
        _ => gcs_error(404, "The specified bucket does not exist."),
    })
    .await;
    let store = fake.store("tenant");
    store.probe().await.unwrap();
    let request = &fake.requests()[0];
    assert_eq!(request.param("maxResults"), Some("1"));
    assert_eq!(request.param("prefix"), Some("tenant/"));
    let missing = store.probe().await;
    assert!(
        matches!(&missing, Err(e) if e.kind() == ErrorKind::Unavailable && e.to_string().contains("STATE_BUCKET=bkt")),
        "{missing:?}"
    );
}

fn options(emulator: Option<&str>) -> GcsOptions {
    GcsOptions {
        bucket: "state".to_owned(),
        prefix: String::new(),
        project: None,
        emulator: emulator.map(str::to_owned),
        presign_ttl: Duration::from_secs(3600),
        timeout: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn an_emulator_means_no_credentials_at_all() {
    let store = GcsStore::new(options(Some("http://127.0.0.1:4443"))).unwrap();
    assert_eq!(store.api.base, "http://127.0.0.1:4443");
    assert!(matches!(*store.api.auth, Auth::Anonymous));
    assert_eq!(store.api.auth.bearer().await.unwrap(), None);
    // Without an emulator the credentials exist only as a promise:
    // building the store looks nothing up.
    let store = GcsStore::new(options(None)).unwrap();
    match &*store.api.auth {
        Auth::Google { tokens, signer } => {
            assert!(!tokens.initialized() && !signer.initialized());
        }
        _ => panic!("production credentials expected"),
    }
}

#[tokio::test]
async fn a_download_from_a_backend_that_stalls_midway_times_out() {
    let fake = FakeServer::start(|_, _| Reply::Stall {
        headers: vec![
            ("x-goog-generation", "7".to_owned()),
            ("content-length", "100".to_owned()),
        ],
        first: b"only ten b".to_vec(),
    })
    .await;
    let store = fake.store_with("", Auth::Anonymous, Duration::from_millis(300));
    let object = store.get(&key("k")).await.unwrap();
    assert_eq!(object.meta.size, 100);
    let stalled = assert_stall_times_out(object.body, "only ten b").await;
    assert_eq!(kind_of(&stalled), Some(ErrorKind::Timeout), "{stalled:?}");
}
