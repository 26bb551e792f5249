//! Keys: the two ways a request names them (literal or percent-encoded)
//! and validation (docs/protocol.md, "Keys").
//!
//! A [`Key`] can only be built through validation, so every layer below
//! the HTTP one can rely on it: never empty, never absolute, no `.`/`..`
//! or empty segment, no control character, at most [`MAX_KEY_BYTES`].
//! Such a key cannot escape the configured prefix of any store.

use std::borrow::Cow;
use std::fmt;

use crate::error::{Error, Result};

/// Longest accepted key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// A validated key, relative to the store's prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

/// How a request spells keys, listing prefixes and other parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyEncoding {
    /// The text is the name, byte for byte: a `%` is a percent sign. The
    /// compat runtime sends file names so, and the original proxy stores
    /// them so.
    Literal,
    /// `%XX` escapes are decoded (strictly, to UTF-8); `+` is a plus sign.
    /// It lets a client name what literal text cannot carry (a space,
    /// `?`, `#`, `&`, non-ASCII).
    Percent,
}

impl KeyEncoding {
    /// The name `raw` stands for; `what` names it in errors.
    pub fn decode<'r>(self, raw: &'r str, what: &str) -> Result<Cow<'r, str>> {
        match self {
            KeyEncoding::Literal => Ok(Cow::Borrowed(raw)),
            KeyEncoding::Percent => percent_decode(raw, what),
        }
    }
}

impl Key {
    /// Decodes a key as it appears in a request path (after `/keys/` or
    /// `/meta/`) and validates it.
    pub fn from_path(raw: &str, encoding: KeyEncoding) -> Result<Key> {
        Key::parse(encoding.decode(raw, "key")?.into_owned())
    }

    /// Validates an already decoded key.
    pub fn parse(key: impl Into<String>) -> Result<Key> {
        let key = key.into();
        if key.is_empty() {
            return Err(Error::bad_request("key is empty"));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(Error::bad_request(format!(
                "key is {} bytes long, the limit is {MAX_KEY_BYTES}",
                key.len()
            )));
        }
        if key.starts_with('/') {
            return Err(Error::bad_request("key must not start with '/'"));
        }
        reject_control_characters(&key, "key")?;
        for segment in key.split('/') {
            match segment {
                "" => return Err(Error::bad_request("key has an empty path segment")),
                "." | ".." => {
                    return Err(Error::bad_request(format!(
                        "key must not contain a '{segment}' segment"
                    )));
                }
                _ => {}
            }
        }
        Ok(Key(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Checks a listing prefix. Unlike a key it may be empty or end in the
/// middle of a segment; it is only a filter, so it is never stored.
pub fn validate_list_prefix(prefix: &str) -> Result<()> {
    if prefix.len() > MAX_KEY_BYTES {
        return Err(Error::bad_request(format!(
            "prefix is {} bytes long, the limit is {MAX_KEY_BYTES}",
            prefix.len()
        )));
    }
    reject_control_characters(prefix, "prefix")
}

fn reject_control_characters(text: &str, what: &str) -> Result<()> {
    match text.chars().find(|c| c.is_ascii_control()) {
        Some(c) => Err(Error::bad_request(format!(
            "{what} contains the control character U+{:04X}",
            c as u32
        ))),
        None => Ok(()),
    }
}

/// Strict percent-decoding: a `%` must be followed by two hex digits and
/// the result must be UTF-8; nothing else is decoded (`+` stays a plus).
/// (The lenient decoders pass `%zz` through, which would store a key
/// under a name the client did not mean.)
fn percent_decode<'r>(raw: &'r str, what: &str) -> Result<Cow<'r, str>> {
    if !raw.contains('%') {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16));
            let low = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16));
            match (high, low) {
                (Some(high), Some(low)) => decoded.push((high * 16 + low) as u8),
                _ => {
                    return Err(Error::bad_request(format!(
                        "invalid percent-encoding at byte {i} of the {what}"
                    )));
                }
            }
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).map(Cow::Owned).map_err(|_| {
        Error::bad_request(format!("{what} is not valid UTF-8 after percent-decoding"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    use KeyEncoding::{Literal, Percent};

    fn rejected(raw: &str) -> String {
        match Key::from_path(raw, Percent) {
            Err(e) if e.kind() == ErrorKind::BadRequest => e.to_string(),
            other => panic!("{raw:?} should be rejected, got {other:?}"),
        }
    }

    #[test]
    fn literal_keys_are_the_text_itself() {
        for raw in ["50%off-x%41y.txt", "100%", "a%zz", "a%2Fb", "c++/x", "a%FF"] {
            assert_eq!(Key::from_path(raw, Literal).unwrap().as_str(), raw);
        }
        // The rules hold for the literal text as for a decoded key.
        assert!(Key::from_path("a/../b", Literal).is_err());
        assert!(Key::from_path("a//b", Literal).is_err());
        assert!(Key::from_path("%2E%2E", Literal).is_ok());
    }

    #[test]
    fn plain_keys_decode_to_themselves() {
        for raw in [
            "a",
            "a/b/c.json",
            "results/task-1/out",
            "x+y",
            "with space?",
        ] {
            assert_eq!(Key::from_path(raw, Percent).unwrap().as_str(), raw);
        }
    }

    #[test]
    fn percent_escapes_are_decoded() {
        let decoded = |raw| Key::from_path(raw, Percent).unwrap().to_string();
        assert_eq!(decoded("a%20b"), "a b");
        assert_eq!(decoded("a%2Fb"), "a/b");
        assert_eq!(decoded("caf%C3%A9"), "café");
        assert_eq!(decoded("100%25"), "100%");
        assert_eq!(decoded("50%25off-x%2541y.txt"), "50%off-x%41y.txt");
        // Only escapes: a plus is a plus (unlike a form).
        assert_eq!(decoded("c++%2B"), "c+++");
    }

    #[test]
    fn malformed_escapes_are_rejected() {
        assert!(rejected("a%zz").contains("percent-encoding"));
        assert!(rejected("a%2").contains("percent-encoding"));
        assert!(rejected("a%").contains("percent-encoding"));
        assert!(rejected("a%FF").contains("UTF-8"));
        assert!(rejected("%C3").contains("UTF-8"));
        assert!(rejected("50%off").contains("byte 2 of the key"));
    }

    #[test]
    fn unsafe_keys_are_rejected() {
        assert!(rejected("").contains("empty"));
        assert!(rejected("/etc/passwd").contains("start with '/'"));
        assert!(rejected("%2Fetc").contains("start with '/'"));
        assert!(rejected("a/../b").contains("'..'"));
        assert!(rejected("..").contains("'..'"));
        assert!(rejected("a/%2E%2E/b").contains("'..'"));
        assert!(rejected("./a").contains("'.'"));
        assert!(rejected("a//b").contains("empty path segment"));
        assert!(rejected("a/").contains("empty path segment"));
        assert!(rejected("a%00b").contains("U+0000"));
        assert!(rejected("a%0Ab").contains("U+000A"));
        assert!(rejected("a%7Fb").contains("U+007F"));
    }

    #[test]
    fn length_limit_counts_decoded_bytes() {
        let at_limit = "k".repeat(MAX_KEY_BYTES);
        assert!(Key::from_path(&at_limit, Percent).is_ok());
        assert!(rejected(&format!("{at_limit}k")).contains("1025 bytes"));
        // Three raw bytes per escape, one decoded byte: the decoded length counts.
        let escaped = "%6B".repeat(MAX_KEY_BYTES);
        assert!(Key::from_path(&escaped, Percent).is_ok());
    }

    #[test]
    fn dots_inside_names_are_fine() {
        for raw in ["a.b", "...", ".hidden", "a/.b/c..d"] {
            assert!(Key::from_path(raw, Literal).is_ok(), "{raw}");
        }
    }

    #[test]
    fn list_prefixes_may_be_partial_but_not_control() {
        assert!(validate_list_prefix("").is_ok());
        assert!(validate_list_prefix("a/b").is_ok());
        assert!(validate_list_prefix("a/").is_ok());
        assert!(validate_list_prefix("a\u{1}").is_err());
        assert!(validate_list_prefix(&"p".repeat(MAX_KEY_BYTES + 1)).is_err());
    }
}
