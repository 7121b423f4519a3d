//! The source tree's shape, checked on every test run (docs/design.md#conventions):
//!
//! - no import cycle between the files of a module folder (a folder's `mod.rs` is its
//!   root and may name every child; children that import each other in a circle are
//!   what makes a protocol core hard to change);
//! - the engine's top-level modules import only modules of the same or a lower layer;
//! - no non-test source file over 800 lines;
//! - tests live in sibling `*_test.rs` files, never in an inline `mod tests { .. }`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 800;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// Modules a parent declares under `#[cfg(test)]` (their files are tests).
fn test_only_modules(parent: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut test_attribute = false;
    for line in parent.lines().map(str::trim) {
        if line == "#[cfg(test)]" {
            test_attribute = true;
            continue;
        }
        if test_attribute {
            if let Some(name) = line
                .strip_prefix("mod ")
                .or_else(|| line.strip_prefix("pub(crate) mod "))
                .and_then(|rest| rest.strip_suffix(';'))
            {
                names.insert(name.to_owned());
            }
            if !line.starts_with("#[") {
                test_attribute = false;
            }
        }
    }
    names
}

/// Every identifier that follows `prefix` in `source`.
fn names_after<'a>(source: &'a str, prefix: &str) -> Vec<&'a str> {
    source
        .match_indices(prefix)
        .map(|(at, _)| {
            let rest = &source[at + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// Sibling modules each non-test child file of `folder` imports.
fn sibling_imports(folder: &Path, crate_path: &str) -> BTreeMap<String, BTreeSet<String>> {
    let root = fs::read_to_string(folder.join("mod.rs")).expect("a folder module has mod.rs");
    let tests = test_only_modules(&root);
    let children: BTreeSet<String> = fs::read_dir(folder)
        .expect("readable folder")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_stem()?.to_str()?.to_owned();
            let is_child = path.extension()? == "rs" && name != "mod";
            (is_child && !tests.contains(&name) && !name.ends_with("_test")).then_some(name)
        })
        .collect();
    let mut graph = BTreeMap::new();
    for child in &children {
        let source = fs::read_to_string(folder.join(format!("{child}.rs"))).expect("readable");
        let mut imported = BTreeSet::new();
        for prefix in ["super::".to_owned(), format!("{crate_path}::")] {
            for name in names_after(&source, &prefix) {
                if children.contains(name) && name != child {
                    imported.insert(name.to_owned());
                }
            }
        }
        // `use super::{a, b::C}` lists several siblings in one group.
        for (at, _) in source.match_indices("use super::{") {
            let group = &source[at + "use super::{".len()..];
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                if children.contains(name) && name != child {
                    imported.insert(name.to_owned());
                }
            }
        }
        graph.insert(child.clone(), imported);
    }
    graph
}

/// A cycle in `graph`, if any, as the path that closes it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// Every folder module of the engine (protocol cores, simulator, checkers, ...).
fn engine_folders() -> Vec<(String, PathBuf)> {
    let src = workspace().join("engine/src");
    let mut folders: Vec<(String, PathBuf)> = fs::read_dir(&src)
        .expect("engine/src")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?.to_owned();
            path.join("mod.rs").is_file().then_some((name, path))
        })
        .collect();
    folders.sort();
    folders
}

#[test]
fn no_import_cycle_inside_any_engine_folder() {
    let folders = engine_folders();
    assert!(
        folders.iter().any(|(name, _)| name == "epaxos"),
        "the check must see the protocol folders"
    );
    let mut cycles = Vec::new();
    for (name, path) in &folders {
        let graph = sibling_imports(path, &format!("crate::{name}"));
        if let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("{name}/: {}", cycle.join(" -> ")));
        }
    }
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let edge = |a: &str, b: &[&str]| {
        (
            a.to_owned(),
            b.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>(),
        )
    };
    let acyclic: BTreeMap<_, _> = [edge("a", &["b"]), edge("b", &["c"]), edge("c", &[])].into();
    assert_eq!(find_cycle(&acyclic), None);
    let cyclic: BTreeMap<_, _> = [edge("a", &["b"]), edge("b", &["c"]), edge("c", &["a"])].into();
    assert_eq!(
        find_cycle(&cyclic),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let grouped = "use super::{batch::Batch, messages};\nfn f() { super::instance::x(); }";
    assert_eq!(names_after(grouped, "super::"), vec!["", "instance"]);
}

/// The engine's layers (engine/src/lib.rs): a module may import its own layer or lower.
#[test]
fn engine_modules_import_only_their_layer_or_lower() {
    let layers: BTreeMap<&str, u8> = [
        ("id", 0),
        ("time", 0),
        ("command", 0),
        ("request", 0),
        ("protocol", 1),
        ("timer", 1),
        ("quorum", 1),
        ("state_machine", 1),
        ("session", 1),
        ("storage", 1),
        ("topology", 1),
        ("transfer", 1),
        ("configuration", 1),
        ("multipaxos", 2),
        ("epaxos", 2),
        ("dynamo", 2),
        ("tempo", 2),
        ("check", 3),
        ("sim", 3),
        ("test_host", 3),
    ]
    .into();
    let src = workspace().join("engine/src");
    let mut violations = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(&src).expect("below src");
            let top = relative
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .map(|s| s.trim_end_matches(".rs"))
                .unwrap_or("");
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let test_file = name.ends_with("_test")
                || name == "test_support"
                || relative
                    .components()
                    .any(|c| c.as_os_str() == "model_check");
            let Some(&own) = layers.get(top) else {
                continue;
            };
            if test_file {
                continue;
            }
            let source = fs::read_to_string(&path).expect("readable");
            // Test modules at the end of a file may use anything.
            let source = source.split("#[cfg(test)]").next().unwrap_or("");
            for used in names_after(source, "crate::") {
                if let Some(&layer) = layers.get(used) {
                    if layer > own && used != top {
                        violations.push(format!("{}: crate::{used}", relative.display()));
                    }
                }
            }
        }
    }
    violations.sort();
    assert!(
        violations.is_empty(),
        "imports of a higher layer: {violations:#?}"
    );
}

/// Every `.rs` file under the crates' `src` folders.
fn source_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack: Vec<PathBuf> = ["engine/src", "server/src", "bench/src", "tests/src"]
        .iter()
        .map(|p| workspace().join(p))
        .collect();
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn no_source_file_is_over_800_lines() {
    let mut long = Vec::new();
    for path in source_files() {
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if name.ends_with("_test") {
            continue;
        }
        let lines = fs::read_to_string(&path).expect("readable").lines().count();
        if lines > MAX_LINES {
            long.push(format!("{} ({lines} lines)", path.display()));
        }
    }
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:#?}");
}

#[test]
fn tests_live_in_sibling_test_files() {
    let inline: Vec<String> = source_files()
        .into_iter()
        .filter(|path| {
            fs::read_to_string(path)
                .expect("readable")
                .lines()
                .any(|line| line.trim_start().starts_with("mod tests {"))
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        inline.is_empty(),
        "inline test modules (move them to a sibling <module>_test.rs): {inline:#?}"
    );
}
