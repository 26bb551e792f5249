//! V4 signed URLs (`GOOG4-RSA-SHA256`), path style, for `GET` of one
//! object with only the `host` header signed: the URL `/meta` hands out.
//!
//! The string to sign is built here; the signature itself comes from the
//! credentials (`auth::Auth::signer`), so a key never has to be handled
//! by this crate.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{SHA256, digest};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything except RFC 3986's unreserved characters is escaped: object
/// names in JSON API paths, and signed query values.
pub(crate) const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// The object part of a signed URL's path keeps its `/`.
const SIGNED_PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// The longest validity V4 signatures allow: seven days.
pub(crate) const MAX_EXPIRES_SECS: u64 = 604_800;

/// What a URL is signed for.
pub(crate) struct UrlToSign<'a> {
    pub method: &'a str,
    pub scheme: &'a str,
    pub host: &'a str,
    pub bucket: &'a str,
    pub object: &'a str,
    pub client_email: &'a str,
    /// `YYYYMMDDTHHMMSSZ`, UTC.
    pub timestamp: &'a str,
    pub expires_secs: u64,
}

/// A URL ready for its signature.
pub(crate) struct Unsigned {
    pub canonical_request: String,
    pub string_to_sign: String,
    url: String,
}

impl Unsigned {
    /// The final URL, with the signature (lowercase hex) appended.
    pub fn with_signature(self, signature: &[u8]) -> String {
        format!("{}&X-Goog-Signature={}", self.url, hex(signature))
    }
}

pub(crate) fn prepare(request: &UrlToSign<'_>) -> Unsigned {
    let timestamp = request.timestamp;
    let scope = format!("{}/auto/storage/goog4_request", &timestamp[..8]);
    let credential = format!("{}/{scope}", request.client_email);
    let expires = request.expires_secs.to_string();
    // Listed in the byte order of their escaped names, as the canonical
    // query must be.
    let query = [
        ("X-Goog-Algorithm", "GOOG4-RSA-SHA256"),
        ("X-Goog-Credential", credential.as_str()),
        ("X-Goog-Date", timestamp),
        ("X-Goog-Expires", expires.as_str()),
        ("X-Goog-SignedHeaders", "host"),
    ]
    .iter()
    .map(|(name, value)| {
        format!(
            "{}={}",
            utf8_percent_encode(name, COMPONENT),
            utf8_percent_encode(value, COMPONENT)
        )
    })
    .collect::<Vec<_>>()
    .join("&");
    let path = format!(
        "/{}/{}",
        utf8_percent_encode(request.bucket, COMPONENT),
        utf8_percent_encode(request.object, SIGNED_PATH)
    );
    // Canonical headers end with a newline, hence the empty line before
    // the signed header names.
    let canonical_request = format!(
        "{}\n{path}\n{query}\nhost:{}\n\nhost\nUNSIGNED-PAYLOAD",
        request.method, request.host
    );
    let hashed = hex(digest(&SHA256, canonical_request.as_bytes()).as_ref());
    let string_to_sign = format!("GOOG4-RSA-SHA256\n{timestamp}\n{scope}\n{hashed}");
    Unsigned {
        canonical_request,
        string_to_sign,
        url: format!("{}://{}{path}?{query}", request.scheme, request.host),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// `YYYYMMDDTHHMMSSZ` of a moment, UTC.
pub(crate) fn timestamp(at: SystemTime) -> String {
    let seconds = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), so that no date crate is needed for one format.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_utc_in_the_v4_format() {
        let at = |secs| timestamp(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "19700101T000000Z");
        // 2019-02-01T09:00:00Z, the conformance vectors' moment.
        assert_eq!(at(1_549_011_600), "20190201T090000Z");
        // A leap day, and the last second of a leap year.
        assert_eq!(at(951_782_400), "20000229T000000Z");
        assert_eq!(at(1_735_689_599), "20241231T235959Z");
    }

    /// Vectors from Google's V4 signing conformance suite
    /// (googleapis/google-cloud-rust, `src/storage/conformance/v4_signatures.json`,
    /// Apache-2.0): path style, only `host` signed. The signatures were made
    /// with the suite's test key; since RSA PKCS#1 v1.5 is deterministic, a
    /// signer returning them must yield exactly the expected URL.
    struct Vector {
        method: &'static str,
        bucket: &'static str,
        object: &'static str,
        timestamp: &'static str,
        expires_secs: u64,
        canonical_request: &'static str,
        string_to_sign: &'static str,
        url: &'static str,
    }

    const EMAIL: &str = "test-iam-credentials@dummy-project-id.iam.gserviceaccount.com";

    fn vectors() -> Vec<Vector> {
        vec![
            Vector {
                method: "GET",
                bucket: "test-bucket",
                object: "test-object",
                timestamp: "20190201T090000Z",
                expires_secs: 10,
                canonical_request: "GET\n/test-bucket/test-object\nX-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=test-iam-credentials%40dummy-project-id.iam.gserviceaccount.com%2F20190201%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190201T090000Z&X-Goog-Expires=10&X-Goog-SignedHeaders=host\nhost:storage.googleapis.com\n\nhost\nUNSIGNED-PAYLOAD",
                string_to_sign: "GOOG4-RSA-SHA256\n20190201T090000Z\n20190201/auto/storage/goog4_request\n00e2fb794ea93d7adb703edaebdd509821fcc7d4f1a79ac5c8d2b394df109320",
                url: "https://storage.googleapis.com/test-bucket/test-object?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=test-iam-credentials%40dummy-project-id.iam.gserviceaccount.com%2F20190201%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190201T090000Z&X-Goog-Expires=10&X-Goog-SignedHeaders=host&X-Goog-Signature=95e6a13d43a1d1962e667f17397f2b80ac9bdd1669210d5e08e0135df9dff4e56113485dbe429ca2266487b9d1796ebdee2d7cf682a6ef3bb9fbb4c351686fba90d7b621cf1c4eb1fdf126460dd25fa0837dfdde0a9fd98662ce60844c458448fb2b352c203d9969cb74efa4bdb742287744a4f2308afa4af0e0773f55e32e92973619249214b97283b2daa14195244444e33f938138d1e5f561088ce8011f4986dda33a556412594db7c12fc40e1ff3f1bedeb7a42f5bcda0b9567f17f65855f65071fabb88ea12371877f3f77f10e1466fff6ff6973b74a933322ff0949ce357e20abe96c3dd5cfab42c9c83e740a4d32b9e11e146f0eb3404d2e975896f74",
            },
            Vector {
                method: "PUT",
                bucket: "test-bucket",
                object: "test-object",
                timestamp: "20190201T090000Z",
                expires_secs: 10,
                canonical_request: "PUT\n/test-bucket/test-object\nX-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=test-iam-credentials%40dummy-project-id.iam.gserviceaccount.com%2F20190201%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190201T090000Z&X-Goog-Expires=10&X-Goog-SignedHeaders=host\nhost:storage.googleapis.com\n\nhost\nUNSIGNED-PAYLOAD",
                string_to_sign: "GOOG4-RSA-SHA256\n20190201T090000Z\n20190201/auto/storage/goog4_request\n78742860705da91404222d5d66ff89850292471199c3c2808d116ad12e6177b4",
                url: "https://storage.googleapis.com/test-bucket/test-object?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=test-iam-credentials%40dummy-project-id.iam.gserviceaccount.com%2F20190201%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190201T090000Z&X-Goog-Expires=10&X-Goog-SignedHeaders=host&X-Goog-Signature=8adff1d4285739e31aa68e73767a46bc5511fde377497dbe08481bf5ceb34e29cc9a59921748d8ec3dd4085b7e9b7772a952afedfcdaecb3ae8352275b8b7c867f204e3db85076220a3127a8a9589302fc1181eae13b9b7fe41109ec8cdc93c1e8bac2d7a0cc32a109ca02d06957211326563ab3d3e678a0ba296e298b5fc5e14593c99d444c94724cc4be97015dbff1dca377b508fa0cb7169195de98d0e4ac96c42b918d28c8d92d33e1bd125ce0fb3cd7ad2c45dae65c22628378f6584971b8bf3945b26f2611eb651e9b6a8648970c1ecf386bb71327b082e7296c4e1ee2fc0bdd8983da80af375c817fb1ad491d0bc22c0f51dba0d66e2cffbc90803e47",
            },
            Vector {
                method: "GET",
                bucket: "test-bucket",
                object: "test-object",
                timestamp: "20190301T090000Z",
                expires_secs: 20,
                canonical_request: "GET\n/test-bucket/test-object\nX-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=test-iam-credentials%40dummy-project-id.iam.gserviceaccount.com%2F20190301%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190301T090000Z&X-Goog-Expires=20&X-Goog-SignedHeaders=host\nhost:storage.googleapis.com\n\nhost\nUNSIGNED-PAYLOAD",
                string_to_sign: "GOOG4-RSA-SHA256\n20190301T090000Z\n20190301/auto/storage/goog4_request\n779f19fdb6fd381390e2d5af04947cf21750277ee3c20e0c97b7e46a1dff8907",
                url: "https://storage.googleapis.com/test-bucket/test-object?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=test-iam-credentials%40dummy-project-id.iam.gserviceaccount.com%2F20190301%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190301T090000Z&X-Goog-Expires=20&X-Goog-SignedHeaders=host&X-Goog-Signature=9669ed5b10664dc594c758296580662912cf4bcc5a4ba0b6bf055bcbf6f34eed7bdad664f534962174a924741a0c273a4f67bc1847cef20192a6beab44223bd9d4fbbd749c407b79997598c30f82ddc269ff47ec09fa3afe74e00616d438df0d96a7d8ad0adacfad1dc3286f864d924fe919fb0dce45d3d975c5afe8e13af2db9cc37ba77835f92f7669b61e94c6d562196c1274529e76cfff1564cc2cad7d5387dc8e12f7a5dfd925685fe92c30b43709eee29fa2f66067472cee5423d1a3a4182fe8cea75c9329d181dc6acad7c393cd04f8bf5bc0515127d8ebd65d80c08e19ad03316053ea60033fd1b1fd85a69c576415da3bf0a3718d9ea6d03e0d66f0",
            },
            Vector {
                method: "GET",
                bucket: "test-bucket",
                object: "/path/with/slashes/under_score/amper&sand/file.ext",
                timestamp: "20190201T090000Z",
                expires_secs: 10,
                canonical_request: "GET\n/test-bucket//path/with/slashes/under_score/amper%26sand/file.ext\nX-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=test-iam-credentials%40dummy-project-id.iam.gserviceaccount.com%2F20190201%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190201T090000Z&X-Goog-Expires=10&X-Goog-SignedHeaders=host\nhost:storage.googleapis.com\n\nhost\nUNSIGNED-PAYLOAD",
                string_to_sign: "GOOG4-RSA-SHA256\n20190201T090000Z\n20190201/auto/storage/goog4_request\n63c601ecd6ccfec84f1113fc906609cbdf7651395f4300cecd96ddd2c35164f8",
                url: "https://storage.googleapis.com/test-bucket//path/with/slashes/under_score/amper%26sand/file.ext?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=test-iam-credentials%40dummy-project-id.iam.gserviceaccount.com%2F20190201%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190201T090000Z&X-Goog-Expires=10&X-Goog-SignedHeaders=host&X-Goog-Signature=2db8b70e3f85b39be7824f6d02be31af2e6a2eb63f6bb41254851f7ef51bdad8963a9d2b254f8379c1780c8e6898be002d4100a0abd3d45f1437687fed65d15dd237c3a6f3c399c64ffd4e4cea7ef1c2f0391d35ecbeeaf3e3148d23c6f24c839cfcd92c1496332f5bfbbf1ed1e957eb45fad57df24828c96cf243eec23fba014d277c22a572708beb355888c5a8c0047cb3015d7f62cc90285676e7e34626fd0ce9ba5e0da39fc3de0035cc3ad120c46cb73db87246ae123f7a342c235e9480bd7d7e00c13b1e1bb7be5e2bce74d59a53505172463b48aefeedb48281d90874aa4177c881d3596ed1067f02eaac13d810a7aed234c41978b1394d0ce3662f76",
            },
        ]
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn google_conformance_vectors() {
        for vector in vectors() {
            let unsigned = prepare(&UrlToSign {
                method: vector.method,
                scheme: "https",
                host: "storage.googleapis.com",
                bucket: vector.bucket,
                object: vector.object,
                client_email: EMAIL,
                timestamp: vector.timestamp,
                expires_secs: vector.expires_secs,
            });
            assert_eq!(unsigned.canonical_request, vector.canonical_request);
            assert_eq!(unsigned.string_to_sign, vector.string_to_sign);
            let signature = vector.url.rsplit_once("X-Goog-Signature=").unwrap().1;
            assert_eq!(unsigned.with_signature(&unhex(signature)), vector.url);
        }
    }
}
