//! The dependency rule, checked: every `crate::` and `super::` path in
//! the sources (tests included) goes down the layers of [`LAYERS`], never
//! up or sideways, so the module graph has no cycle. Inside `store`, a
//! backend uses the trait and the shared helpers, never another backend.
//! docs/design.md draws the same tree; change both together.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top-level modules, highest layer first. A module may use modules of
/// later rows only.
const LAYERS: &[&[&str]] = &[
    &["commands"],
    &["config"],
    &["logging"],
    &["connector"],
    &["http"],
    &["capabilities"],
    &["metrics", "readiness"],
    &["mode", "query", "selftest", "timing"],
    &["store"],
    &["key"],
    &["error"],
];

/// The stores under `store/`; each may use the rest of `store`, but not
/// one another.
const BACKENDS: &[&str] = &["fs", "gcs", "memory", "redis", "s3"];

/// Names the crate root re-exports, and the module they come from.
const ROOT_REEXPORTS: &[(&str, &str)] = &[("Error", "error"), ("Result", "error")];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

/// One source file and the module path it defines (`store/s3/api.rs` is
/// `["store", "s3", "api"]`, `store/s3/mod.rs` is `["store", "s3"]`).
struct Source {
    path: PathBuf,
    module: Vec<String>,
    text: String,
}

fn sources(dir: &Path, module: &[String], out: &mut Vec<Source>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if path.is_dir() {
            let mut inner = module.to_vec();
            inner.push(name);
            sources(&path, &inner, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let mut file_module = module.to_vec();
            if name != "mod" {
                file_module.push(name);
            }
            let text = std::fs::read_to_string(&path).unwrap();
            out.push(Source {
                path,
                module: file_module,
                text,
            });
        }
    }
}

/// The module paths a path's tail names, in full: `a::b` gives `[a, b]`,
/// `{a, b::{c, self}}` gives `[a]`, `[b, c]` and `[b]`. Whitespace
/// (newlines of a use statement spread over lines) is skipped; a path
/// ends at anything that is neither an identifier nor `::` (`*`, `<`,
/// `(`, `;`).
fn paths(tail: &str) -> Vec<Vec<String>> {
    let tail = tail.trim_start();
    if let Some(group) = tail.strip_prefix('{') {
        let mut items = Vec::new();
        let (mut depth, mut start) = (0usize, 0usize);
        for (at, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    items.push(&group[start..at]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&group[start..at]);
                    start = at + 1;
                }
                _ => {}
            }
        }
        return items.into_iter().flat_map(paths).collect();
    }
    let ident: String = tail
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if ident.is_empty() {
        return Vec::new();
    }
    let own = if ident == "self" {
        Vec::new()
    } else {
        vec![ident.clone()]
    };
    match tail[ident.len()..].trim_start().strip_prefix("::") {
        Some(rest) if ident != "self" => {
            let inner = paths(rest);
            if inner.is_empty() {
                return vec![own];
            }
            inner
                .into_iter()
                .map(|path| own.iter().cloned().chain(path).collect())
                .collect()
        }
        _ => vec![own],
    }
}

/// The source without its line comments.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether the text before a `crate::` or `super::` ends in an identifier
/// or a path (`state_crate::`, `a::super::`): then it is not ours.
fn preceded_by_ident(before: &str) -> bool {
    before
        .chars()
        .next_back()
        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
}

/// The module paths (from the crate root, in full) a file refers to, read
/// from `crate::` and `super::` paths outside comments, whole use
/// statements included however many lines they take.
fn references(source: &Source) -> BTreeSet<Vec<String>> {
    let code = code_of(&source.text);
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        if preceded_by_ident(&code[..at]) {
            continue; // `state_crate::`, `$crate::` and the like
        }
        found.extend(paths(&code[at + "crate::".len()..]));
    }
    let mut rest = code.as_str();
    while let Some(at) = rest.find("super::") {
        let preceded = preceded_by_ident(&rest[..at]);
        let mut tail = &rest[at..];
        let mut ups = 0;
        while let Some(after) = tail.strip_prefix("super::") {
            ups += 1;
            tail = after;
        }
        rest = tail;
        if preceded {
            continue;
        }
        let base = &source.module[..source.module.len().saturating_sub(ups)];
        for path in paths(tail) {
            found.insert(base.iter().cloned().chain(path).collect());
        }
    }
    found.retain(|path| !path.is_empty());
    found
}

/// The uses of another backend by a file of a backend.
fn backend_violations(source: &Source) -> Vec<String> {
    let [store, backend, ..] = source.module.as_slice() else {
        return Vec::new();
    };
    if store != "store" || !BACKENDS.contains(&backend.as_str()) {
        return Vec::new();
    }
    references(source)
        .into_iter()
        .filter_map(|target| match target.as_slice() {
            [first, second, ..]
                if first == "store" && second != backend && BACKENDS.contains(&second.as_str()) =>
            {
                Some(format!(
                    "{} uses {}",
                    source.path.display(),
                    target.join("::")
                ))
            }
            _ => None,
        })
        .collect()
}

/// The top-level module a reference lands in, if it is one.
fn top_level(target: &[String]) -> Option<String> {
    let first = target.first()?;
    if let Some((_, module)) = ROOT_REEXPORTS.iter().find(|(name, _)| name == first) {
        return Some((*module).to_owned());
    }
    layer_of(first).map(|_| first.clone())
}

fn crate_sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    sources(&root, &[], &mut all);
    all
}

#[test]
fn every_top_level_module_has_a_layer() {
    for source in crate_sources() {
        let Some(top) = source.module.first() else {
            continue;
        };
        if ["main", "lib", "dependency_rule"].contains(&top.as_str()) {
            continue;
        }
        assert!(
            layer_of(top).is_some(),
            "{} is in no layer of dependency_rule::LAYERS",
            source.path.display()
        );
    }
}

#[test]
fn dependencies_go_down_the_layers_only() {
    let mut violations = Vec::new();
    for source in crate_sources() {
        let Some(from) = source.module.first().and_then(|top| layer_of(top)) else {
            continue;
        };
        let own = &source.module[0];
        for target in references(&source) {
            let Some(to_module) = top_level(&target) else {
                continue;
            };
            if &to_module == own {
                continue;
            }
            let to = layer_of(&to_module).expect("top_level returns known modules");
            if to <= from {
                violations.push(format!(
                    "{} uses {to_module} (layer {to}) from {own} (layer {from})",
                    source.path.display()
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "dependencies against the layers:\n{}",
        violations.join("\n")
    );
}

#[test]
fn a_backend_never_uses_another_backend() {
    let violations: Vec<String> = crate_sources()
        .iter()
        .flat_map(backend_violations)
        .collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_checker_reads_paths_as_rust_resolves_them() {
    let source = Source {
        path: PathBuf::from("store/s3/api.rs"),
        module: vec!["store".into(), "s3".into(), "api".into()],
        text: "use crate::{error::{Error, Result}, key};\n\
               use super::super::listing::ListingBuilder;\n\
               use super::upload; // crate::http in a comment\n\
               let x = crate::Error::internal(\"y\");\n"
            .to_owned(),
    };
    let found: Vec<Vec<String>> = references(&source).into_iter().collect();
    assert_eq!(
        found,
        owned(&[
            &["Error", "internal"],
            &["error", "Error"],
            &["error", "Result"],
            &["key"],
            &["store", "listing", "ListingBuilder"],
            &["store", "s3", "upload"],
        ])
    );
    assert_eq!(top_level(&["Error".to_owned()]), Some("error".to_owned()));
}

#[test]
fn the_checker_reads_use_statements_over_several_lines() {
    let source = Source {
        path: PathBuf::from("store/gcs/api.rs"),
        module: vec!["store".into(), "gcs".into(), "api".into()],
        text: "use crate::{\n    \
                   error::Error,\n    \
                   store::{\n        \
                       self,\n        \
                       s3::api::Api, // crate::http\n    \
                   },\n\
               };\n\
               use super::super::memory\n    ::MemoryStore;\n\
               let y = crate::store::redis::RedisStore::open();\n"
            .to_owned(),
    };
    let found: Vec<Vec<String>> = references(&source).into_iter().collect();
    assert_eq!(
        found,
        owned(&[
            &["error", "Error"],
            &["store"],
            &["store", "memory", "MemoryStore"],
            &["store", "redis", "RedisStore", "open"],
            &["store", "s3", "api", "Api"],
        ])
    );
    assert_eq!(backend_violations(&source).len(), 3);
}

fn owned(paths: &[&[&str]]) -> Vec<Vec<String>> {
    paths
        .iter()
        .map(|path| path.iter().map(|s| (*s).to_owned()).collect())
        .collect()
}
