//! How a request names keys: the `X-Key-Encoding` header chooses literal
//! text (the default, what the compat runtime sends) or percent-encoding,
//! for the key in the path and for the query parameters alike
//! (docs/protocol.md, "Keys").

use http::{HeaderMap, HeaderName};

use crate::error::{Error, Result};
use crate::key::{Key, KeyEncoding};

/// The header that says how keys and parameters are spelled; a
/// `HeaderName` already, so keyed requests compare with it without
/// parsing it again.
pub const KEY_ENCODING: HeaderName = HeaderName::from_static("x-key-encoding");

/// The naming rule of one request.
#[derive(Clone, Copy, Debug)]
pub(super) struct Naming(KeyEncoding);

impl Naming {
    /// Reads `X-Key-Encoding`: absent or `literal`, `percent`; anything
    /// else is refused rather than guessed at.
    pub fn of(headers: &HeaderMap) -> Result<Naming> {
        // A scan rather than a lookup: hashing a name the map does not
        // know (about 500 instructions under callgrind) costs more than
        // comparing it with the few headers a request carries; hyper
        // takes at most 100.
        let mut values = headers
            .iter()
            .filter(|(name, _)| **name == KEY_ENCODING)
            .map(|(_, value)| value);
        let encoding = match (values.next(), values.next()) {
            (None, _) => KeyEncoding::Literal,
            (Some(value), None) => match value.to_str().map(str::trim) {
                Ok(text) if text.eq_ignore_ascii_case("literal") => KeyEncoding::Literal,
                Ok(text) if text.eq_ignore_ascii_case("percent") => KeyEncoding::Percent,
                _ => {
                    return Err(Error::bad_request(format!(
                        "{KEY_ENCODING} must be 'percent' or 'literal', not {value:?}"
                    )));
                }
            },
            (Some(_), Some(_)) => {
                return Err(Error::bad_request(format!(
                    "{KEY_ENCODING} is sent more than once"
                )));
            }
        };
        Ok(Naming(encoding))
    }

    /// The key a request path names (the part after `/keys/` or `/meta/`).
    pub fn key(self, raw: &str) -> Result<Key> {
        Key::from_path(raw, self.0)
    }

    /// The value of the query parameter `name`, the last one when it is
    /// repeated. The query is split at `&` and at the first `=` of each
    /// pair; a pair without `=` has an empty value. Names and values are
    /// decoded by the request's rule: never as a form, so `+` is a plus.
    pub fn param(self, query: Option<&str>, name: &str) -> Result<Option<String>> {
        let mut found = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            if self.0.decode(raw_name, "parameter name")? == name {
                found = Some(self.0.decode(raw_value, name)?.into_owned());
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::error::{ErrorKind, kind_of};

    fn naming(value: Option<&'static str>) -> Result<Naming> {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(KEY_ENCODING, HeaderValue::from_static(value));
        }
        Naming::of(&headers)
    }

    #[test]
    fn the_header_chooses_the_rule() {
        assert_eq!(naming(None).unwrap().0, KeyEncoding::Literal);
        assert_eq!(naming(Some("literal")).unwrap().0, KeyEncoding::Literal);
        assert_eq!(naming(Some("Percent")).unwrap().0, KeyEncoding::Percent);
        for bad in ["", "utf-8", "percent, literal"] {
            assert_eq!(
                kind_of(&naming(Some(bad))),
                Some(ErrorKind::BadRequest),
                "{bad:?}"
            );
        }
        let mut twice = HeaderMap::new();
        twice.append(KEY_ENCODING, HeaderValue::from_static("percent"));
        twice.append(KEY_ENCODING, HeaderValue::from_static("percent"));
        assert_eq!(kind_of(&Naming::of(&twice)), Some(ErrorKind::BadRequest));
    }

    #[test]
    fn literal_parameters_are_taken_as_sent() {
        let literal = naming(None).unwrap();
        let query = Some("prefix=c++/50%off&delimiter=/&x");
        assert_eq!(
            literal.param(query, "prefix").unwrap().unwrap(),
            "c++/50%off"
        );
        assert_eq!(literal.param(query, "delimiter").unwrap().unwrap(), "/");
        assert_eq!(literal.param(query, "x").unwrap().unwrap(), "");
        assert_eq!(literal.param(query, "attr").unwrap(), None);
        // The first '=' splits: the rest belongs to the value.
        assert_eq!(
            literal
                .param(Some("prefix=a=b"), "prefix")
                .unwrap()
                .unwrap(),
            "a=b"
        );
        assert_eq!(
            literal
                .param(Some("delimiter=&delimiter=-"), "delimiter")
                .unwrap()
                .unwrap(),
            "-"
        );
        assert_eq!(literal.param(None, "prefix").unwrap(), None);
    }

    #[test]
    fn percent_parameters_decode_escapes_only() {
        let percent = naming(Some("percent")).unwrap();
        let query = Some("prefix=c++%2F%20%25&%64elimiter=%2F");
        assert_eq!(percent.param(query, "prefix").unwrap().unwrap(), "c++/ %");
        assert_eq!(percent.param(query, "delimiter").unwrap().unwrap(), "/");
        assert_eq!(
            kind_of(&percent.param(Some("prefix=50%off"), "prefix")),
            Some(ErrorKind::BadRequest)
        );
        assert_eq!(
            kind_of(&percent.param(Some("prefix=%FF"), "prefix")),
            Some(ErrorKind::BadRequest)
        );
    }
}
