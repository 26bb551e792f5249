//! What a connector must do, per the protocol (docs/protocol.md): written down here
//! independently of the proxy, so the suite checks the proxy against the
//! protocol rather than against itself.

/// The mode part of a connector name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    Lww,
    Cas,
    Passthrough,
}

/// An extended attribute the connector must serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub name: &'static str,
    /// A valid value to set, for settable attributes.
    pub settable: Option<&'static str>,
}

const fn read_only(name: &'static str) -> Attr {
    Attr {
        name,
        settable: None,
    }
}

const fn settable(name: &'static str, sample: &'static str) -> Attr {
    Attr {
        name,
        settable: Some(sample),
    }
}

/// Expected behaviour of one connector.
#[derive(Clone, Debug)]
pub struct Profile {
    /// `<store>-<mode>`.
    pub connector: String,
    pub store: String,
    pub consistency: Consistency,
    /// Whether `a` and `a/b` can both exist (not on `fs`).
    pub nested_keys: bool,
    /// The `/meta` attribute table.
    pub attrs: Vec<Attr>,
    /// Whether `DELETE` with `If-Match` is enforced.
    pub conditional_delete: bool,
    /// The body limit of buffered modes, when known to the tester.
    pub body_limit: Option<u64>,
    /// Attributes of the table that this deployment cannot produce and
    /// must refuse with 501 `not_implemented` (the protocol allows it for
    /// signed URLs where the credentials cannot sign, e.g. on an emulator
    /// without credentials). Set by whoever knows the deployment.
    pub not_implemented_attrs: Vec<&'static str>,
}

impl Profile {
    /// The profile of a connector name (`-` or `_`, bare store names
    /// meaning `buffered-lww`).
    pub fn for_connector(name: &str) -> Result<Profile, String> {
        let normalized = name.trim().replace('_', "-");
        let (store, mode) = normalized
            .split_once('-')
            .unwrap_or((&normalized, "buffered-lww"));
        let consistency = match mode {
            "buffered-lww" => Consistency::Lww,
            "buffered-cas" => Consistency::Cas,
            "passthrough" => Consistency::Passthrough,
            other => return Err(format!("unknown mode '{other}' in connector '{name}'")),
        };
        let (nested_keys, attrs, conditional_delete) = match store {
            "memory" => (
                true,
                vec![read_only("etag"), settable("content_type", "text/plain")],
                true,
            ),
            "fs" => (false, vec![read_only("url"), read_only("etag")], true),
            "s3" => (
                true,
                vec![
                    read_only("url"),
                    read_only("presigned_url"),
                    read_only("etag"),
                    settable("content_type", "text/plain"),
                    read_only("version"),
                    read_only("storage_class"),
                ],
                // DeleteObject with If-Match (S3 since 2024, moto 5.2.5).
                true,
            ),
            "gcs" => (
                true,
                vec![
                    read_only("url"),
                    read_only("signed_url"),
                    read_only("generation"),
                    settable("content_type", "text/plain"),
                    read_only("storage_class"),
                    read_only("metageneration"),
                ],
                true,
            ),
            "redis" => (true, vec![settable("ttl", "3600")], true),
            other => return Err(format!("unknown store '{other}' in connector '{name}'")),
        };
        Ok(Profile {
            connector: format!("{store}-{mode}"),
            store: store.to_owned(),
            consistency,
            nested_keys,
            attrs,
            conditional_delete,
            body_limit: None,
            not_implemented_attrs: Vec::new(),
        })
    }

    pub fn with_body_limit(mut self, limit: u64) -> Profile {
        self.body_limit = Some(limit);
        self
    }

    pub fn cas(&self) -> bool {
        self.consistency == Consistency::Cas
    }

    pub fn streams(&self) -> bool {
        self.consistency == Consistency::Passthrough
    }

    /// The proxy holds request bodies, or a streamed body's parts, in
    /// memory and counts them against its budget: every connector but a
    /// streaming one over GCS, whose uploads pass chunks straight on.
    pub fn holds_bodies(&self) -> bool {
        !(self.streams() && self.store == "gcs")
    }

    /// The store reads a value whole (Redis cannot stream one), so the
    /// proxy counts a read against its memory budget until it was sent.
    pub fn whole_reads(&self) -> bool {
        self.store == "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_names() {
        let profile = Profile::for_connector("s3_buffered_cas").unwrap();
        assert_eq!(profile.connector, "s3-buffered-cas");
        assert!(profile.cas());
        let bare = Profile::for_connector("fs").unwrap();
        assert_eq!(bare.connector, "fs-buffered-lww");
        assert!(!bare.nested_keys);
        assert!(Profile::for_connector("ftp-buffered-lww").is_err());
        assert!(Profile::for_connector("fs-eventual").is_err());
    }
}
