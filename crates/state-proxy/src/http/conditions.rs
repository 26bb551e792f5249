//! Conditional requests: the explicit condition a write or delete
//! carries in `If-Match` / `If-None-Match`, and what the protocol refuses
//! (`If-Match: *`, weak or several tags, both headers at once).

use http::{HeaderMap, header};

use crate::error::{Error, Result};
use crate::store::{Condition, Version};

/// The explicit condition of a write or delete.
pub fn write_condition(headers: &HeaderMap) -> Result<Condition> {
    let if_match = header_text(headers, header::IF_MATCH)?;
    let if_none_match = header_text(headers, header::IF_NONE_MATCH)?;
    match (if_match, if_none_match) {
        (None, None) => Ok(Condition::None),
        (Some(_), Some(_)) => Err(Error::bad_request(
            "If-Match and If-None-Match cannot be combined",
        )),
        (None, Some("*")) => Ok(Condition::IfAbsent),
        (None, Some(_)) => Err(Error::bad_request(
            "only If-None-Match: * is supported on writes",
        )),
        (Some(tag), None) => parse_etag(tag).map(Condition::IfMatch),
    }
}

/// One strong entity tag, quoted or not.
fn parse_etag(tag: &str) -> Result<Version> {
    if tag == "*" {
        return Err(Error::bad_request(
            "If-Match: * is not supported; send the version (ETag) you expect",
        ));
    }
    if tag.starts_with("W/") {
        return Err(Error::bad_request(
            "weak entity tags cannot be used with If-Match",
        ));
    }
    let inner = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag);
    if inner.is_empty() || inner.contains(['"', ',']) {
        return Err(Error::bad_request(format!(
            "If-Match must hold exactly one entity tag, got {tag}"
        )));
    }
    Ok(Version::new(inner))
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Result<Option<&str>> {
    let mut values = headers.get_all(&name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Error::bad_request(format!(
            "{name} is given more than once"
        )));
    }
    value
        .to_str()
        .map(|text| Some(text.trim()))
        .map_err(|_| Error::bad_request(format!("{name} is not visible ASCII")))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::error::ErrorKind;
    use crate::error::kind_of;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn conditions_from_headers() {
        assert_eq!(write_condition(&headers(&[])), Ok(Condition::None));
        assert_eq!(
            write_condition(&headers(&[("if-none-match", "*")])),
            Ok(Condition::IfAbsent)
        );
        let quoted = write_condition(&headers(&[("if-match", "\"abc\"")]));
        let bare = write_condition(&headers(&[("if-match", "abc")]));
        assert_eq!(quoted, Ok(Condition::IfMatch(Version::new("abc"))));
        assert_eq!(quoted, bare);
    }

    #[test]
    fn unsupported_conditions_are_bad_requests() {
        for pairs in [
            &[("if-match", "*")][..],
            &[("if-match", "W/\"a\"")],
            &[("if-match", "\"a\", \"b\"")],
            &[("if-match", "\"\"")],
            &[("if-none-match", "\"a\"")],
            &[("if-match", "\"a\""), ("if-none-match", "*")],
            &[("if-match", "\"a\""), ("if-match", "\"b\"")],
        ] {
            let result = write_condition(&headers(pairs));
            assert_eq!(
                kind_of(&result),
                Some(ErrorKind::BadRequest),
                "{pairs:?}: {result:?}"
            );
        }
    }
}
