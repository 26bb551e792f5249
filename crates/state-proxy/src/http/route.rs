//! Routing: which resource a request path names, which methods it
//! serves, and its name in the metrics.

use crate::metrics::RouteName;

/// The resource a path names.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Healthz,
    Readyz,
    Capabilities,
    Metrics,
    /// `/keys/` itself: a listing for GET.
    KeysRoot,
    Key(&'a str),
    Meta(&'a str),
    Query,
    Unknown,
}

impl Route<'_> {
    pub fn parse(path: &str) -> Route<'_> {
        match path {
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/capabilities" => Route::Capabilities,
            "/metrics" => Route::Metrics,
            "/keys" | "/keys/" => Route::KeysRoot,
            "/query" => Route::Query,
            _ => {
                if let Some(raw) = path.strip_prefix("/keys/") {
                    Route::Key(raw)
                } else if let Some(raw) = path.strip_prefix("/meta/") {
                    Route::Meta(raw)
                } else {
                    Route::Unknown
                }
            }
        }
    }

    /// Methods served on this route, for 405 and `Allow`.
    pub fn allowed(&self) -> &'static str {
        match self {
            Route::Healthz | Route::Readyz | Route::Capabilities | Route::Metrics => "GET, HEAD",
            Route::KeysRoot | Route::Key(_) => "GET, HEAD, PUT, DELETE",
            Route::Meta(_) => "GET, PUT",
            Route::Query => "POST",
            Route::Unknown => "",
        }
    }

    /// The route's name in metrics: never the key, so the number of
    /// series stays bounded.
    pub fn label(&self) -> RouteName {
        match self {
            Route::Healthz => RouteName::Healthz,
            Route::Readyz => RouteName::Readyz,
            Route::Capabilities => RouteName::Capabilities,
            Route::Metrics => RouteName::Metrics,
            Route::KeysRoot => RouteName::Keys,
            Route::Key(_) => RouteName::Key,
            Route::Meta(_) => RouteName::Meta,
            Route::Query => RouteName::Query,
            Route::Unknown => RouteName::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_recognised() {
        assert_eq!(Route::parse("/healthz"), Route::Healthz);
        assert_eq!(Route::parse("/readyz"), Route::Readyz);
        assert_eq!(Route::parse("/capabilities"), Route::Capabilities);
        assert_eq!(Route::parse("/metrics"), Route::Metrics);
        assert_eq!(Route::parse("/keys/metrics").label(), RouteName::Key);
        assert_eq!(Route::parse("/keys/"), Route::KeysRoot);
        assert_eq!(Route::parse("/keys"), Route::KeysRoot);
        assert_eq!(Route::parse("/keys/a/b"), Route::Key("a/b"));
        assert_eq!(Route::parse("/meta/a"), Route::Meta("a"));
        assert_eq!(Route::parse("/meta/"), Route::Meta(""));
        assert_eq!(Route::parse("/query"), Route::Query);
        assert_eq!(Route::parse("/keysx"), Route::Unknown);
        assert_eq!(Route::parse("/"), Route::Unknown);
    }
}
