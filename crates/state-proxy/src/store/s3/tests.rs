//! Unit tests against the in-process fake backend
//! (`store::http_client::fake`) answering as the S3 REST API does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;

use super::upload::PART_SIZE;
use super::*;
use crate::error::kind_of;
use crate::store::http_client::fake::{
    FakeServer, Recorded, Reply, assert_stall_times_out, bytes_of, full, key, unreachable_url,
};

/// A fake whose bucket exists: the `HeadBucket` a 404 to a HEAD asks
/// answers 200, every other request `answer`.
fn with_bucket(
    answer: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static {
    move |request, index| {
        if request.method == "HEAD" && request.raw_path == "/bkt/" {
            empty(200, vec![])
        } else {
            answer(request, index)
        }
    }
}

fn empty(status: u16, headers: Vec<(&'static str, String)>) -> Reply {
    Reply::empty(status, headers)
}

fn xml(status: u16, body: &str) -> Reply {
    Reply::with_body(status, "application/xml", body)
}

fn s3_error(status: u16, code: &str, message: &str) -> Reply {
    xml(
        status,
        &format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
             <Message>{message}</Message><RequestId>r</RequestId></Error>"
        ),
    )
}

fn stored(etag: &str) -> Reply {
    empty(200, vec![("etag", format!("\"{etag}\""))])
}

fn object(data: &str, etag: &str) -> Reply {
    Reply::Answer {
        status: 200,
        headers: vec![
            ("etag", format!("\"{etag}\"")),
            ("content-type", "application/octet-stream".to_owned()),
        ],
        body: data.as_bytes().to_vec(),
    }
}

/// The fake as an S3 endpoint.
trait FakeS3 {
    fn store(&self, prefix: &str) -> S3Store;
    fn store_with(&self, prefix: &str, timeout: Duration) -> S3Store;
}

impl FakeS3 for FakeServer {
    fn store(&self, prefix: &str) -> S3Store {
        self.store_with(prefix, Duration::from_secs(5))
    }

    fn store_with(&self, prefix: &str, timeout: Duration) -> S3Store {
        store_at(&self.url(), prefix, timeout)
    }
}

fn store_at(endpoint: &str, prefix: &str, timeout: Duration) -> S3Store {
    let options = S3Options {
        bucket: "bkt".to_owned(),
        prefix: prefix.to_owned(),
        region: "eu-west-3".to_owned(),
        endpoint: Some(endpoint.to_owned()),
        presign_ttl: Duration::from_secs(900),
        timeout,
    };
    let credentials = AmazonS3Builder::new()
        .with_access_key_id("AKIDTEST")
        .with_secret_access_key("secret");
    let signer = options.signer(credentials).unwrap();
    S3Store::with_signer(options, signer).unwrap()
}

/// A streamed body of `length` bytes in 1 MiB chunks, byte `i` = `i % 251`.
fn streamed(length: usize) -> Body {
    let data: Vec<u8> = (0..length).map(|i| (i % 251) as u8).collect();
    let data = Bytes::from(data);
    let chunks: Vec<Result<Bytes>> = (0..length)
        .step_by(1 << 20)
        .map(|start| Ok(data.slice(start..(start + (1 << 20)).min(length))))
        .collect();
    Body::Stream {
        stream: futures_util::stream::iter(chunks).boxed(),
        size: None,
    }
}

#[tokio::test]
async fn whole_writes_are_one_signed_put_with_the_condition_headers() {
    let fake = FakeServer::start(|_, index| stored(&format!("e{index}"))).await;
    let store = fake.store("tenant");
    let cases = [
        (Condition::None, None, None),
        (Condition::IfAbsent, Some("*"), None),
        (
            Condition::IfMatch(Version::new("\"abc\"")),
            None,
            Some("\"abc\""),
        ),
    ];
    for (index, (condition, if_none_match, if_match)) in cases.into_iter().enumerate() {
        let version = store
            .put(&key("dir/obj"), full("payload"), condition)
            .await
            .unwrap();
        assert_eq!(version.as_str(), format!("e{index}"), "ETag of the answer");
        let request = &fake.requests()[index];
        assert_eq!(request.method, "PUT");
        assert_eq!(request.raw_path, "/bkt/tenant/dir/obj");
        assert_eq!(request.header("if-none-match"), if_none_match);
        assert_eq!(request.header("if-match"), if_match);
        assert_eq!(&request.body[..], b"payload");
        assert_eq!(request.header("content-length"), Some("7"));
        let authorization = request.header("authorization").unwrap();
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
                && authorization.contains("/eu-west-3/s3/aws4_request"),
            "{authorization}"
        );
        assert!(request.header("x-amz-date").is_some());
    }
}

/// What compare-and-swap relies on (the mode makes a plain write
/// conditional on the version it read): the version a read returns is the
/// one a conditional write sends, and S3's refusal is a failed condition.
#[tokio::test]
async fn failed_preconditions_are_412_for_the_version_read() {
    let fake = FakeServer::start(|request, _| match request.method.as_str() {
        "GET" => object("hello", "41"),
        _ => s3_error(
            412,
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
        ),
    })
    .await;
    let store = fake.store("");
    let read = store.get(&key("k")).await.unwrap().meta.version;
    assert_eq!(read.as_str(), "41");
    let write = store
        .put(&key("k"), full("x"), Condition::IfMatch(read))
        .await;
    assert!(
        matches!(&write, Err(e) if e.kind() == ErrorKind::PreconditionFailed && e.to_string().contains("pre-conditions")),
        "{write:?}"
    );
    let put = fake
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(
        put.header("if-match"),
        Some("\"41\""),
        "conditional on the ETag read"
    );
}

#[tokio::test]
async fn a_key_deleted_behind_our_back_fails_the_condition() {
    // S3 answers If-Match on a missing key with 404 NoSuchKey.
    let fake =
        FakeServer::start(|_, _| s3_error(404, "NoSuchKey", "The specified key does not exist."))
            .await;
    let explicit = fake
        .store("")
        .put(&key("k"), full("w"), Condition::IfMatch(Version::new("7")))
        .await;
    assert_eq!(
        kind_of(&explicit),
        Some(ErrorKind::PreconditionFailed),
        "{explicit:?}"
    );
    // Racing conditional writers may get 409 ConditionalRequestConflict.
    let racing =
        FakeServer::start(|_, _| s3_error(409, "ConditionalRequestConflict", "retry")).await;
    let raced = racing
        .store("")
        .put(&key("k"), full("w"), Condition::IfAbsent)
        .await;
    assert_eq!(
        kind_of(&raced),
        Some(ErrorKind::PreconditionFailed),
        "{raced:?}"
    );
}

#[tokio::test]
async fn reads_take_the_etag_from_the_download_itself() {
    let fake = FakeServer::start(with_bucket(|request, _| match request.raw_path.as_str() {
        "/bkt/present" => object("content", "9f"),
        _ => s3_error(404, "NoSuchKey", "The specified key does not exist."),
    }))
    .await;
    let store = fake.store("");
    let object = store.get(&key("present")).await.unwrap();
    assert_eq!(object.meta.version.as_str(), "9f");
    assert_eq!(object.meta.size, 7);
    assert_eq!(bytes_of(object.body).await, "content");
    assert_eq!(fake.requests().len(), 1, "no second call for the ETag");
    let missing = store.get(&key("absent")).await;
    assert!(
        matches!(&missing, Err(e) if e.to_string() == "key 'absent' not found"),
        "{missing:?}"
    );
    let head = store.head(&key("absent")).await;
    assert_eq!(kind_of(&head), Some(ErrorKind::KeyNotFound), "{head:?}");
}

#[tokio::test]
async fn object_names_are_encoded_segment_by_segment() {
    let fake = FakeServer::start(|_, _| stored("1")).await;
    let store = fake.store("pre fix");
    store
        .put(
            &key("dir/sub dir/naïve ✓ 100%?#+;=&.txt"),
            full("x"),
            Condition::None,
        )
        .await
        .unwrap();
    assert_eq!(
        fake.requests()[0].raw_path,
        "/bkt/pre%20fix/dir/sub%20dir/na%C3%AFve%20%E2%9C%93%20100%25%3F%23%2B%3B%3D%26.txt"
    );
}

fn list_page(keys: &[&str], prefixes: &[&str], next: Option<&str>) -> Reply {
    let mut body = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>bkt</Name>",
    );
    for key in keys {
        body.push_str(&format!(
            "<Contents><Key>{key}</Key><Size>1</Size></Contents>"
        ));
    }
    for prefix in prefixes {
        body.push_str(&format!(
            "<CommonPrefixes><Prefix>{prefix}</Prefix></CommonPrefixes>"
        ));
    }
    match next {
        Some(token) => body.push_str(&format!(
            "<IsTruncated>true</IsTruncated><NextContinuationToken>{token}</NextContinuationToken>"
        )),
        None => body.push_str("<IsTruncated>false</IsTruncated>"),
    }
    body.push_str("</ListBucketResult>");
    xml(200, &body)
}

#[tokio::test]
async fn listings_follow_every_continuation_token() {
    let fake = FakeServer::start(|request, _| match request.param("continuation-token") {
        None => list_page(&["p/a/1", "p/a/2"], &["p/a/d/"], Some("next/é+1")),
        Some("next/é+1") => list_page(
            &["p/a/0", "p/a/x&amp;y"],
            &["p/a/d/", "p/a/c/"],
            Some("t 2"),
        ),
        Some("t 2") => list_page(&[], &[], None),
        Some(other) => panic!("unexpected token {other}"),
    })
    .await;
    let listing = fake.store("p").list("a/", Some("/")).await.unwrap();
    assert_eq!(listing.keys, ["a/0", "a/1", "a/2", "a/x&y"]);
    assert_eq!(listing.prefixes, ["a/c/", "a/d/"]);
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(request.raw_path, "/bkt/");
        assert_eq!(request.param("list-type"), Some("2"));
        assert_eq!(request.param("prefix"), Some("p/a/"));
        assert_eq!(request.param("delimiter"), Some("/"));
        assert_eq!(request.param("max-keys"), Some("1000"));
    }
    assert_eq!(requests[1].param("continuation-token"), Some("next/é+1"));
    assert_eq!(requests[2].param("continuation-token"), Some("t 2"));
}

#[tokio::test]
async fn listings_pass_any_delimiter_and_none_for_recursive() {
    let fake = FakeServer::start(|request, _| match request.param("delimiter") {
        Some("-") => list_page(&["x-2"], &["x-1-"], None),
        _ => list_page(&["x-1-a", "x-2"], &[], None),
    })
    .await;
    let store = fake.store("");
    let by_dash = store.list("x-", Some("-")).await.unwrap();
    assert_eq!(
        (by_dash.keys, by_dash.prefixes),
        (vec!["x-2".to_owned()], vec!["x-1-".to_owned()])
    );
    let recursive = store.list("x-", Some("")).await.unwrap();
    assert_eq!(recursive.keys, ["x-1-a", "x-2"]);
    assert_eq!(fake.requests()[1].param("delimiter"), None);
}

/// Answers a multipart upload: `fail` decides the answer of some calls.
fn multipart_fake(
    existing: Option<&'static str>,
    fail: impl Fn(&Recorded) -> Option<Reply> + Send + Sync + 'static,
) -> impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static {
    move |request, _| {
        if let Some(reply) = fail(request) {
            return reply;
        }
        match (request.method.as_str(), request.param("uploadId")) {
            ("HEAD", _) => match existing {
                Some(etag) => Reply::Answer {
                    status: 200,
                    headers: vec![
                        ("etag", format!("\"{etag}\"")),
                        ("content-length", "3".to_owned()),
                    ],
                    body: Vec::new(),
                },
                None => empty(404, vec![]),
            },
            ("POST", None) if request.query.contains_key("uploads") => xml(
                200,
                "<InitiateMultipartUploadResult><Bucket>bkt</Bucket><Key>k</Key>\
                 <UploadId>up-1</UploadId></InitiateMultipartUploadResult>",
            ),
            ("PUT", Some("up-1")) => {
                stored(&format!("part{}", request.param("partNumber").unwrap()))
            }
            ("POST", Some("up-1")) => xml(
                200,
                "<CompleteMultipartUploadResult><ETag>\"whole-3\"</ETag></CompleteMultipartUploadResult>",
            ),
            ("DELETE", Some("up-1")) => empty(204, vec![]),
            ("PUT", None) => stored("single"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn streamed_bodies_are_multipart_uploads_with_the_condition_on_completion() {
    let fake = FakeServer::start(multipart_fake(None, |_| None)).await;
    let length = 2 * PART_SIZE + 12345;
    let version = fake
        .store("t")
        .put(&key("big"), streamed(length), Condition::IfAbsent)
        .await
        .unwrap();
    assert_eq!(version.as_str(), "whole-3");
    let requests = fake.requests();
    let calls: Vec<(String, Option<String>)> = requests
        .iter()
        .map(|r| (r.method.clone(), r.param("partNumber").map(str::to_owned)))
        .collect();
    assert_eq!(
        calls[0],
        ("HEAD".to_owned(), None),
        "the condition is checked first"
    );
    assert_eq!(calls[1], ("POST".to_owned(), None));
    let mut parts: Vec<_> = requests[2..5]
        .iter()
        .map(|r| (r.param("partNumber").unwrap().to_owned(), r.body.len()))
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        [
            ("1".to_owned(), PART_SIZE),
            ("2".to_owned(), PART_SIZE),
            ("3".to_owned(), 12345)
        ]
    );
    let received: Vec<u8> = {
        let mut by_number: Vec<_> = requests[2..5].to_vec();
        by_number.sort_by_key(|r| r.param("partNumber").unwrap().parse::<u32>().unwrap());
        by_number.iter().flat_map(|r| r.body.to_vec()).collect()
    };
    assert!(
        received
            .iter()
            .enumerate()
            .all(|(i, b)| *b == (i % 251) as u8),
        "parts carry the body in order"
    );
    let complete = &requests[5];
    assert_eq!(
        (complete.method.as_str(), complete.param("uploadId")),
        ("POST", Some("up-1"))
    );
    assert_eq!(complete.header("if-none-match"), Some("*"));
    let document = String::from_utf8(complete.body.to_vec()).unwrap();
    assert_eq!(
        document,
        "<CompleteMultipartUpload>\
         <Part><PartNumber>1</PartNumber><ETag>&quot;part1&quot;</ETag></Part>\
         <Part><PartNumber>2</PartNumber><ETag>&quot;part2&quot;</ETag></Part>\
         <Part><PartNumber>3</PartNumber><ETag>&quot;part3&quot;</ETag></Part>\
         </CompleteMultipartUpload>"
    );
    assert_eq!(requests.len(), 6, "nothing aborted");
}

#[tokio::test]
async fn small_streamed_bodies_are_one_put() {
    let fake = FakeServer::start(multipart_fake(None, |_| None)).await;
    let version = fake
        .store("")
        .put(
            &key("small"),
            streamed(3 << 20),
            Condition::IfMatch(Version::new("e")),
        )
        .await
        .unwrap();
    assert_eq!(version.as_str(), "single");
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("if-match"), Some("\"e\""));
    assert_eq!(requests[0].body.len(), 3 << 20);
}

#[tokio::test]
async fn a_refused_completion_aborts_the_upload() {
    let fake = FakeServer::start(multipart_fake(Some("old"), |request| {
        (request.method == "POST" && request.param("uploadId").is_some())
            .then(|| s3_error(412, "PreconditionFailed", "changed meanwhile"))
    }))
    .await;
    let outcome = fake
        .store("")
        .put(
            &key("k"),
            streamed(PART_SIZE + 1),
            Condition::IfMatch(Version::new("old")),
        )
        .await;
    assert_eq!(
        kind_of(&outcome),
        Some(ErrorKind::PreconditionFailed),
        "{outcome:?}"
    );
    let requests = fake.requests();
    let complete = requests
        .iter()
        .find(|r| r.method == "POST" && r.param("uploadId").is_some())
        .unwrap();
    assert_eq!(complete.header("if-match"), Some("\"old\""));
    let last = requests.last().unwrap();
    assert_eq!(
        (last.method.as_str(), last.param("uploadId")),
        ("DELETE", Some("up-1"))
    );
}

#[tokio::test]
async fn a_stale_condition_fails_before_any_part_is_sent() {
    let fake = FakeServer::start(multipart_fake(Some("current"), |_| None)).await;
    let store = fake.store("");
    for condition in [
        Condition::IfAbsent,
        Condition::IfMatch(Version::new("stale")),
    ] {
        let outcome = store
            .put(&key("k"), streamed(PART_SIZE + 1), condition)
            .await;
        assert_eq!(
            kind_of(&outcome),
            Some(ErrorKind::PreconditionFailed),
            "{outcome:?}"
        );
    }
    assert!(fake.requests().iter().all(|r| r.method == "HEAD"));
}

#[tokio::test]
async fn an_upload_cut_off_midway_is_aborted() {
    let fake = FakeServer::start(multipart_fake(None, |_| None)).await;
    let mut chunks: Vec<Result<Bytes>> = (0..20)
        .map(|_| Ok(Bytes::from(vec![1u8; 1 << 20])))
        .collect();
    chunks.push(Err(Error::bad_request("the client went away")));
    let body = Body::Stream {
        stream: futures_util::stream::iter(chunks).boxed(),
        size: Some(40 << 20),
    };
    let outcome = fake.store("").put(&key("k"), body, Condition::None).await;
    assert_eq!(
        kind_of(&outcome),
        Some(ErrorKind::BadRequest),
        "{outcome:?}"
    );
    let requests = fake.requests();
    assert!(
        !requests
            .iter()
            .any(|r| r.method == "POST" && r.param("uploadId").is_some()),
        "never completed"
    );
    let last = requests.last().unwrap();
    assert_eq!(
        (last.method.as_str(), last.param("uploadId")),
        ("DELETE", Some("up-1"))
    );
}

#[tokio::test]
async fn a_failing_part_aborts_the_upload() {
    let fake = FakeServer::start(multipart_fake(None, |request| {
        (request.param("partNumber") == Some("2")).then(|| s3_error(403, "AccessDenied", "no"))
    }))
    .await;
    let outcome = fake
        .store("")
        .put(&key("k"), streamed(2 * PART_SIZE), Condition::None)
        .await;
    assert_eq!(
        kind_of(&outcome),
        Some(ErrorKind::PermissionDenied),
        "{outcome:?}"
    );
    let requests = fake.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.method == "DELETE" && r.param("uploadId") == Some("up-1"))
    );
    assert!(
        !requests
            .iter()
            .any(|r| r.method == "POST" && r.param("uploadId").is_some())
    );
}

#[tokio::test]
async fn an_upload_dropped_midway_is_aborted_in_the_background() {
    let fake = FakeServer::start(multipart_fake(None, |request| {
        (request.param("partNumber") == Some("1")).then_some(Reply::Hang)
    }))
    .await;
    let store = Arc::new(fake.store(""));
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .put(&key("k"), streamed(3 * PART_SIZE), Condition::None)
                .await
        })
    };
    // Wait until the upload is under way (the first part hangs), then
    // cancel the request, as a dropped connection does.
    let started = Instant::now();
    while !fake
        .requests()
        .iter()
        .any(|r| r.param("partNumber") == Some("1"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no part was sent"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    writer.abort();
    let _ = writer.await;
    let started = Instant::now();
    while !fake.requests().iter().any(|r| r.method == "DELETE") {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the upload was not aborted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn deletes_look_first_then_delete_with_the_condition() {
    let fake = FakeServer::start(with_bucket(|request, _| {
        match (request.method.as_str(), request.raw_path.as_str()) {
            ("HEAD", "/bkt/k") => Reply::Answer {
                status: 200,
                headers: vec![
                    ("etag", "\"20\"".to_owned()),
                    ("content-length", "1".to_owned()),
                ],
                body: Vec::new(),
            },
            ("HEAD", _) => empty(404, vec![]),
            ("DELETE", _) => empty(204, vec![]),
            other => panic!("unexpected {other:?}"),
        }
    }))
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
    let gone = store
        .delete(&key("gone"), Condition::IfMatch(Version::new("20")))
        .await;
    assert_eq!(
        kind_of(&gone),
        Some(ErrorKind::PreconditionFailed),
        "{gone:?}"
    );
    let absent = store.delete(&key("gone"), Condition::None).await;
    assert_eq!(kind_of(&absent), Some(ErrorKind::KeyNotFound), "{absent:?}");
    assert!(
        fake.requests().iter().all(|r| r.method == "HEAD"),
        "nothing deleted yet"
    );

    store
        .delete(&key("k"), Condition::IfMatch(Version::new("20")))
        .await
        .unwrap();
    store.delete(&key("k"), Condition::None).await.unwrap();
    let deletes: Vec<Recorded> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 2);
    assert_eq!(deletes[0].header("if-match"), Some("\"20\""));
    assert_eq!(deletes[1].header("if-match"), None);
}

#[tokio::test]
async fn attributes_come_from_head_and_content_type_is_a_copy_onto_itself() {
    let fake = FakeServer::start(with_bucket(|request, index| match (request.method.as_str(), request.raw_path.as_str()) {
        ("HEAD", "/bkt/p/k") => Reply::Answer {
            status: 200,
            headers: vec![
                ("etag", "\"77\"".to_owned()),
                ("content-length", "5".to_owned()),
                ("content-type", "text/csv".to_owned()),
                ("x-amz-version-id", "v3".to_owned()),
                ("x-amz-storage-class", "GLACIER_IR".to_owned()),
            ],
            body: Vec::new(),
        },
        ("PUT", "/bkt/p/k") if index < 20 => xml(
            200,
            "<CopyObjectResult><ETag>\"77\"</ETag><LastModified>2026-01-01T00:00:00Z</LastModified></CopyObjectResult>",
        ),
        ("PUT", "/bkt/p/k") => s3_error(200, "InternalError", "copy failed after 200"),
        ("PUT", _) => s3_error(404, "NoSuchKey", "The specified key does not exist."),
        _ => empty(404, vec![]),
    }))
    .await;
    let store = fake.store("p");
    let k = key("k");
    assert_eq!(store.get_attr(&k, "url").await.unwrap(), "s3://bkt/p/k");
    assert_eq!(store.get_attr(&k, "etag").await.unwrap(), "\"77\"");
    assert_eq!(store.get_attr(&k, "version").await.unwrap(), "v3");
    assert_eq!(
        store.get_attr(&k, "storage_class").await.unwrap(),
        "GLACIER_IR"
    );
    assert_eq!(
        store.get_attr(&k, "content_type").await.unwrap(),
        "text/csv"
    );
    let url = store.get_attr(&k, "presigned_url").await.unwrap();
    let (path, query) = url.split_once('?').unwrap();
    assert_eq!(path, format!("http://{}/bkt/p/k", fake.addr));
    let params: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(params["X-Amz-Expires"], "900");
    assert_eq!(params["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
    assert!(params["X-Amz-Credential"].starts_with("AKIDTEST/"));
    assert!(params.contains_key("X-Amz-Signature"));

    store
        .set_attr(&k, "content_type", "text/plain")
        .await
        .unwrap();
    let copy = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(copy.header("x-amz-copy-source"), Some("/bkt/p/k"));
    assert_eq!(copy.header("x-amz-metadata-directive"), Some("REPLACE"));
    assert_eq!(copy.header("content-type"), Some("text/plain"));
    assert!(copy.body.is_empty());

    let missing = key("missing");
    for attr in ["url", "etag", "presigned_url"] {
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

#[tokio::test]
async fn an_error_document_in_a_200_answer_is_an_error() {
    let fake =
        FakeServer::start(|_, _| s3_error(200, "SlowDown", "Please reduce your request rate."))
            .await;
    let set = fake
        .store("")
        .set_attr(&key("k"), "content_type", "text/plain")
        .await;
    assert!(
        matches!(&set, Err(e) if e.kind() == ErrorKind::Unavailable && e.to_string().contains("reduce your request rate")),
        "{set:?}"
    );
}

#[tokio::test]
async fn backend_errors_map_to_the_protocol() {
    let fake = FakeServer::start(
        |request, _| match request.raw_path.rsplit('/').next().unwrap() {
            "forbidden" => s3_error(403, "AccessDenied", "Access Denied"),
            "badkey" => s3_error(
                403,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist",
            ),
            "slow" => s3_error(503, "SlowDown", "Please reduce your request rate."),
            "broken" => s3_error(500, "InternalError", "We encountered an internal error."),
            "nobucket" => s3_error(404, "NoSuchBucket", "The specified bucket does not exist"),
            "region" => s3_error(301, "PermanentRedirect", "use another endpoint"),
            _ => s3_error(418, "Teapot", "odd"),
        },
    )
    .await;
    let store = fake.store("");
    let forbidden = store.get(&key("forbidden")).await;
    assert!(
        matches!(&forbidden, Err(e) if e.kind() == ErrorKind::PermissionDenied && e.to_string().contains("AccessDenied: Access Denied")),
        "{forbidden:?}"
    );
    let bad_key = store.put(&key("badkey"), full("x"), Condition::None).await;
    assert_eq!(
        kind_of(&bad_key),
        Some(ErrorKind::PermissionDenied),
        "{bad_key:?}"
    );
    for name in ["slow", "broken"] {
        let outcome = store.get(&key(name)).await;
        assert_eq!(
            kind_of(&outcome),
            Some(ErrorKind::Unavailable),
            "{name}: {outcome:?}"
        );
    }
    let no_bucket = store.get(&key("nobucket")).await;
    assert!(
        matches!(&no_bucket, Err(e) if e.kind() == ErrorKind::Unavailable && e.to_string().contains("STATE_BUCKET=bkt")),
        "{no_bucket:?}"
    );
    let region = store.get(&key("region")).await;
    assert!(
        matches!(&region, Err(e) if e.kind() == ErrorKind::Internal && e.to_string().contains("AWS_REGION=eu-west-3")),
        "{region:?}"
    );
    let odd = store.get(&key("odd")).await;
    assert_eq!(kind_of(&odd), Some(ErrorKind::Internal), "{odd:?}");
}

#[tokio::test]
async fn reads_are_retried_on_throttling_but_conditional_writes_never_once_sent() {
    let fake = FakeServer::start(|request, index| match (request.method.as_str(), index) {
        (_, 0) => s3_error(503, "SlowDown", "Please reduce your request rate."),
        ("GET", _) => object("ok", "3"),
        _ => s3_error(503, "SlowDown", "Please reduce your request rate."),
    })
    .await;
    let store = fake.store("");
    let object = store.get(&key("k")).await.unwrap();
    assert_eq!(bytes_of(object.body).await, "ok");
    assert_eq!(fake.requests().len(), 2, "one retry after the 503");

    let conditional = store.put(&key("k"), full("x"), Condition::IfAbsent).await;
    assert_eq!(
        kind_of(&conditional),
        Some(ErrorKind::Unavailable),
        "{conditional:?}"
    );
    assert_eq!(
        fake.requests().len(),
        3,
        "the conditional write was sent once"
    );
    let plain = store.put(&key("k"), full("x"), Condition::None).await;
    assert_eq!(kind_of(&plain), Some(ErrorKind::Unavailable), "{plain:?}");
    assert_eq!(
        fake.requests().len(),
        6,
        "a plain write is tried three times"
    );
}

#[tokio::test]
async fn a_hung_backend_answers_timeout_within_the_backend_timeout() {
    let fake = FakeServer::start(|_, _| Reply::Hang).await;
    let store = fake.store_with("", Duration::from_millis(300));
    let started = Instant::now();
    let read = store.get(&key("k")).await;
    assert_eq!(kind_of(&read), Some(ErrorKind::Timeout), "{read:?}");
    let write = store.put(&key("k"), full("x"), Condition::IfAbsent).await;
    assert_eq!(kind_of(&write), Some(ErrorKind::Timeout), "{write:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_unreachable_backend_is_unavailable() {
    let store = store_at(&unreachable_url(), "", Duration::from_secs(5));
    let outcome = store.get(&key("k")).await;
    assert!(
        matches!(&outcome, Err(e) if e.kind() == ErrorKind::Unavailable && e.to_string().contains("unreachable")),
        "{outcome:?}"
    );
    let probe = store.probe().await;
    assert_eq!(kind_of(&probe), Some(ErrorKind::Unavailable), "{probe:?}");
}

#[tokio::test]
async fn a_missing_bucket_is_unavailable_for_head_meta_and_delete_too() {
    // HEAD answers carry no error document: the store asks for the bucket.
    let fake = FakeServer::start(|_, _| Reply::empty(404, Vec::new())).await;
    let store = fake.store("");
    let version = Version::new("\"v1\"");
    let outcomes = [
        ("head", store.head(&key("k")).await.map(drop)),
        ("meta", store.get_attr(&key("k"), "etag").await.map(drop)),
        ("delete", store.delete(&key("k"), Condition::None).await),
        (
            "conditional delete",
            store.delete(&key("k"), Condition::IfMatch(version)).await,
        ),
    ];
    for (what, outcome) in outcomes {
        assert!(
            matches!(&outcome, Err(e) if e.kind() == ErrorKind::Unavailable && e.to_string().contains("STATE_BUCKET=bkt")),
            "{what}: {outcome:?}"
        );
    }
    let requests = fake.requests();
    assert_eq!(requests[1].method, "HEAD");
    assert_eq!(requests[1].raw_path, "/bkt/");

    // With the bucket there, a missing key is a missing key.
    let fake = FakeServer::start(with_bucket(|_, _| empty(404, vec![]))).await;
    let store = fake.store("");
    assert_eq!(
        kind_of(&store.head(&key("k")).await),
        Some(ErrorKind::KeyNotFound)
    );
    assert_eq!(
        kind_of(&store.delete(&key("k"), Condition::None).await),
        Some(ErrorKind::KeyNotFound)
    );
}

#[tokio::test]
async fn probe_lists_one_object_and_names_a_missing_bucket() {
    let fake = FakeServer::start(|_, index| match index {
        0 => list_page(&[], &[], None),
        _ => s3_error(404, "NoSuchBucket", "The specified bucket does not exist"),
    })
    .await;
    let store = fake.store("tenant");
    store.probe().await.unwrap();
    let request = &fake.requests()[0];
    assert_eq!(request.param("max-keys"), Some("1"));
    assert_eq!(request.param("prefix"), Some("tenant/"));
    let missing = store.probe().await;
    assert!(
        matches!(&missing, Err(e) if e.kind() == ErrorKind::Unavailable && e.to_string().contains("STATE_BUCKET=bkt")),
        "{missing:?}"
    );
}

#[test]
fn production_requests_are_virtual_hosted_on_the_regional_endpoint() {
    let options = S3Options {
        bucket: "state".to_owned(),
        prefix: String::new(),
        region: "eu-central-1".to_owned(),
        endpoint: None,
        presign_ttl: Duration::from_secs(3600),
        timeout: Duration::from_secs(30),
    };
    let credentials = AmazonS3Builder::new()
        .with_access_key_id("a")
        .with_secret_access_key("b");
    let signer = options.signer(credentials).unwrap();
    let store = S3Store::with_signer(options, signer).unwrap();
    assert_eq!(
        store.api.object_url("a b/c"),
        "https://state.s3.eu-central-1.amazonaws.com/a%20b/c"
    );
}

#[tokio::test]
async fn a_download_from_a_backend_that_stalls_midway_times_out() {
    let fake = FakeServer::start(|_, _| Reply::Stall {
        headers: vec![
            ("etag", "\"1\"".to_owned()),
            ("content-length", "100".to_owned()),
        ],
        first: b"only ten b".to_vec(),
    })
    .await;
    let store = fake.store_with("", Duration::from_millis(300));
    let object = store.get(&key("k")).await.unwrap();
    assert_eq!(object.meta.size, 100);
    let stalled = assert_stall_times_out(object.body, "only ten b").await;
    assert_eq!(kind_of(&stalled), Some(ErrorKind::Timeout), "{stalled:?}");
}
