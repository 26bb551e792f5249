//! Listings: folding a flat list of keys into keys and common prefixes
//! (for stores whose backend cannot do it for the delimiter asked for),
//! and following a backend's paged listing to its end.

use std::future::Future;

use super::{Listing, ObjectNames};
use crate::error::Result;

/// One page of a backend's listing.
pub struct Page {
    /// Object names and common prefixes, as the backend names them.
    pub names: Vec<String>,
    /// The token of the next page; `None` (or empty) on the last one.
    pub next: Option<String>,
}

/// The complete listing of `prefix`: `fetch` reads the page after a token
/// (the first page for `None`), and pages are read until one has no next
/// token. Names outside the store's prefix are left out; common prefixes
/// end with the delimiter, so the builder files them as prefixes again,
/// and it sorts and drops the duplicates pages may repeat.
pub async fn follow_pages<F, Fut>(
    names: &ObjectNames,
    prefix: &str,
    delimiter: Option<&str>,
    mut fetch: F,
) -> Result<Listing>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page>>,
{
    let mut builder = ListingBuilder::new(prefix, delimiter);
    let mut token = None;
    loop {
        let page = fetch(token.take()).await?;
        for name in &page.names {
            if let Some(key) = names.key(name) {
                builder.push(key);
            }
        }
        match page.next.filter(|next| !next.is_empty()) {
            Some(next) => token = Some(next),
            None => return Ok(builder.finish()),
        }
    }
}

/// Collects keys under `prefix`; keys with `delimiter` after the prefix
/// become a common prefix (up to and including the delimiter).
pub struct ListingBuilder<'a> {
    prefix: &'a str,
    delimiter: Option<&'a str>,
    listing: Listing,
}

impl<'a> ListingBuilder<'a> {
    /// An empty delimiter means a recursive listing, like no delimiter.
    pub fn new(prefix: &'a str, delimiter: Option<&'a str>) -> Self {
        ListingBuilder {
            prefix,
            delimiter: delimiter.filter(|d| !d.is_empty()),
            listing: Listing::default(),
        }
    }

    /// Adds one key; keys outside the prefix are ignored.
    pub fn push(&mut self, key: &str) {
        let Some(rest) = key.strip_prefix(self.prefix) else {
            return;
        };
        if let Some(delimiter) = self.delimiter
            && let Some(position) = rest.find(delimiter)
        {
            let common = &key[..self.prefix.len() + position + delimiter.len()];
            if self.listing.prefixes.last().map(String::as_str) != Some(common) {
                self.listing.prefixes.push(common.to_owned());
            }
            return;
        }
        self.listing.keys.push(key.to_owned());
    }

    /// Sorted by byte order and without duplicates, whatever order the
    /// keys came in.
    pub fn finish(mut self) -> Listing {
        for list in [&mut self.listing.keys, &mut self.listing.prefixes] {
            list.sort_unstable();
            list.dedup();
        }
        self.listing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(keys: &[&str], prefix: &str, delimiter: Option<&str>) -> (Vec<String>, Vec<String>) {
        let mut builder = ListingBuilder::new(prefix, delimiter);
        for key in keys {
            builder.push(key);
        }
        let listing = builder.finish();
        (listing.keys, listing.prefixes)
    }

    const KEYS: &[&str] = &["a/1", "a/2", "a/b/3", "a/b/4", "ab", "b", "a/c/5"];

    #[test]
    fn delimiter_folds_deeper_keys_into_prefixes() {
        let (keys, prefixes) = list(KEYS, "", Some("/"));
        assert_eq!(keys, ["ab", "b"]);
        assert_eq!(prefixes, ["a/"]);
        let (keys, prefixes) = list(KEYS, "a/", Some("/"));
        assert_eq!(keys, ["a/1", "a/2"]);
        assert_eq!(prefixes, ["a/b/", "a/c/"]);
    }

    #[test]
    fn partial_prefix_matches_names_that_start_with_it() {
        let (keys, prefixes) = list(KEYS, "a", Some("/"));
        assert_eq!(keys, ["ab"]);
        assert_eq!(prefixes, ["a/"]);
    }

    #[test]
    fn empty_or_absent_delimiter_lists_recursively() {
        for delimiter in [None, Some("")] {
            let (keys, prefixes) = list(KEYS, "a/", delimiter);
            assert_eq!(keys, ["a/1", "a/2", "a/b/3", "a/b/4", "a/c/5"]);
            assert!(prefixes.is_empty());
        }
    }

    #[test]
    fn other_delimiters_work_too() {
        let (keys, prefixes) = list(&["x-1-a", "x-1-b", "x-2", "x"], "x-", Some("-"));
        assert_eq!(keys, ["x-2"]);
        assert_eq!(prefixes, ["x-1-"]);
    }

    #[test]
    fn output_is_sorted_by_bytes_and_deduplicated() {
        let (keys, prefixes) = list(&["b", "B", "é", "a/x", "c/1", "a/y"], "", Some("/"));
        assert_eq!(keys, ["B", "b", "é"]);
        assert_eq!(prefixes, ["a/", "c/"]);
    }
}
