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

/// The first identifier of each item of a path's tail: `a::b` gives `a`,
/// `{a, b::{c}}` gives `a` and `b`.
fn first_idents(tail: &str) -> Vec<String> {
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
        return items.into_iter().flat_map(first_idents).collect();
    }
    let ident: String = tail
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if ident.is_empty() || ident == "self" {
        Vec::new()
    } else {
        vec![ident]
    }
}

/// The module paths (from the crate root) a file refers to, read from
/// `crate::` and `super::` paths outside comments.
fn references(source: &Source) -> BTreeSet<Vec<String>> {
    let mut found = BTreeSet::new();
    for line in source.text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (at, _) in code.match_indices("crate::") {
            let preceded_by_ident = code[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
            if preceded_by_ident {
                continue; // `state_crate::`, `$crate::` and the like
            }
            for ident in first_idents(&code[at + "crate::".len()..]) {
                found.insert(vec![ident]);
            }
        }
        let mut rest = code;
        while let Some(at) = rest.find("super::") {
            let before = &rest[..at];
            let preceded = before
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
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
            let base_len = source.module.len().saturating_sub(ups);
            for ident in first_idents(tail) {
                let mut target = source.module[..base_len].to_vec();
                target.push(ident);
                found.insert(target);
            }
        }
    }
    found
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
    let mut violations = Vec::new();
    for source in crate_sources() {
        let [store, backend, ..] = source.module.as_slice() else {
            continue;
        };
        if store != "store" || !BACKENDS.contains(&backend.as_str()) {
            continue;
        }
        for target in references(&source) {
            if let [first, second, ..] = target.as_slice()
                && first == "store"
                && second != backend
                && BACKENDS.contains(&second.as_str())
            {
                violations.push(format!("{} uses store::{second}", source.path.display()));
            }
        }
    }
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
    let expected: Vec<Vec<String>> = [
        vec!["Error"],
        vec!["error"],
        vec!["key"],
        vec!["store", "listing"],
        vec!["store", "s3", "upload"],
    ]
    .iter()
    .map(|path| path.iter().map(|s| (*s).to_owned()).collect())
    .collect();
    assert_eq!(found, expected);
    assert_eq!(top_level(&["Error".to_owned()]), Some("error".to_owned()));
}
