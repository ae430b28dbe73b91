//! No module of the library imports, directly or through others, a module that imports it back
//! (test code aside): the modules stay layered, so each can be read, tested and changed from the
//! bottom up. Imports are read from the source: every `crate::<module>` path outside comments
//! and `#[cfg(test)]` modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The library's top-level module of each source file (src/cli and the binary are not library).
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main" | "cli")).then(|| name.to_string())
}

/// The source without comments and without `#[cfg(test)]` items (a test module is the file's tail).
fn library_code(src: &str) -> String {
    let code = src.split("#[cfg(test)]").next().unwrap_or("");
    code.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn library_modules_import_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    // Items the crate root re-exports (`crate::Mask`) lead to their module.
    let mut reexports = BTreeMap::new();
    for line in std::fs::read_to_string(src.join("lib.rs")).unwrap().lines() {
        if let Some((module, items)) = line.trim().strip_prefix("pub use ").and_then(|r| r.split_once("::")) {
            for item in items.trim_matches(|c| "{};".contains(c)).split(',') {
                reexports.insert(item.trim().to_string(), module.to_string());
            }
        }
    }
    let module_named = |name: &str| -> Option<String> {
        if src.join(format!("{name}.rs")).exists() || src.join(name).is_dir() {
            Some(name.to_string())
        } else {
            reexports.get(name).cloned()
        }
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &all {
        let Some(me) = module_of(f.strip_prefix(&src).unwrap()) else { continue };
        let code = library_code(&std::fs::read_to_string(f).unwrap());
        let deps = edges.entry(me.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            // `crate::a::b` or `crate::{a::b, C}`: the first name of each path.
            let paths = match rest.strip_prefix('{') {
                Some(group) => group[..group.find('}').unwrap_or(group.len())].split(',').collect(),
                None => vec![rest],
            };
            for path in paths {
                let name: String = path.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if let Some(m) = module_named(&name).filter(|m| *m != me) {
                    deps.insert(m);
                }
            }
        }
    }
    assert!(edges.len() >= 10 && edges.values().any(|d| !d.is_empty()), "read the modules: {edges:?}");
    // A cycle exists iff some module reaches itself.
    let mut cycles = Vec::new();
    for start in edges.keys() {
        let (mut seen, mut stack) = (BTreeSet::new(), vec![start.clone()]);
        while let Some(m) = stack.pop() {
            for d in edges.get(&m).into_iter().flatten() {
                if d == start {
                    cycles.push(format!("{start} -> ... -> {m} -> {start}"));
                } else if seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}\n{edges:#?}");
}
