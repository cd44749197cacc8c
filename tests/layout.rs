//! The source layout stays readable: every file opens with a `//!` line saying what it is
//! for, and no module imports a module that imports it back — neither between the stage
//! folders (`crate::x` references) nor between the files of one folder (`super::x`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The names following `prefix` (`crate::` or `super::`) in non-test code, also inside
/// `use crate::{a, b}` groups.
fn referenced(code: &str, prefix: &str) -> BTreeSet<String> {
    let code = code.split("#[cfg(test)]").next().unwrap_or(code);
    let mut names = BTreeSet::new();
    for (index, _) in code.match_indices(prefix) {
        let rest = &code[index + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    names.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// A cycle in `graph`, if any, as the path of nodes.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn every_file_says_what_it_is_for_and_no_module_imports_its_importer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());

    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut siblings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let code = std::fs::read_to_string(path).expect("read file");
        let relative = path.strip_prefix(&src).expect("under src");
        assert!(
            code.trim_start().starts_with("//!"),
            "{} does not open with a `//!` line saying what it is for",
            relative.display()
        );
        let parts: Vec<String> = relative
            .with_extension("")
            .iter()
            .map(|part| part.to_string_lossy().into_owned())
            .collect();
        let folder = parts[0].clone();
        let targets = folders.entry(folder.clone()).or_default();
        for target in referenced(&code, "crate::") {
            let is_module = src.join(&target).is_dir() || src.join(format!("{target}.rs")).exists();
            if is_module && target != folder {
                targets.insert(target);
            }
        }
        if parts.len() == 2 && parts[1] != "mod" {
            let node = format!("{}/{}", parts[0], parts[1]);
            let edges = siblings.entry(node).or_default();
            for target in referenced(&code, "super::") {
                if src.join(&parts[0]).join(format!("{target}.rs")).exists() {
                    edges.insert(format!("{}/{target}", parts[0]));
                }
            }
        }
    }
    if let Some(cycle) = find_cycle(&folders) {
        panic!("module cycle between stages: {}", cycle.join(" -> "));
    }
    if let Some(cycle) = find_cycle(&siblings) {
        panic!("module cycle between files: {}", cycle.join(" -> "));
    }
    eprintln!("stage dependencies: {folders:#?}");
}
