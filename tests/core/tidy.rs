//! Architecture checks on the source tree (ARCHITECTURE.md names them):
//! layers point one way, the engine and rules stay free of I/O, generated
//! protobuf types stay in `api`, both backends' migrations define the
//! same tables and columns, the bench writes through the store, and the
//! tests are three binaries on one harness.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable source directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The library's files, each with its top-level module (`app`, `engine`, …);
/// the binaries (`main.rs`, `bin/`) and `lib.rs` are not layers.
fn library_files() -> Vec<(String, PathBuf, String)> {
    let src = root().join("src");
    rust_files(&src)
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(&src).expect("under src").to_string_lossy().replace('\\', "/");
            if relative == "main.rs" || relative == "lib.rs" || relative.starts_with("bin/") {
                return None;
            }
            let module = relative.split('/').next().expect("a first component").trim_end_matches(".rs").to_string();
            let text = std::fs::read_to_string(&path).expect("readable source file");
            Some((module, path, text))
        })
        .collect()
}

/// The crate modules `text` names as `crate::name`.
fn crate_modules(text: &str) -> BTreeSet<String> {
    text.match_indices("crate::")
        .map(|(at, _)| {
            text[at + "crate::".len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn layers_point_one_way() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, _, text) in library_files() {
        let uses: Vec<String> = crate_modules(&text).into_iter().filter(|m| *m != module).collect();
        graph.entry(module).or_default().extend(uses);
    }
    // Depth-first search for a cycle; report the first one found, as a path.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
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
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("modules import each other in a circle: {}", cycle.join(" → "));
        }
    }
    // The pure core depends on nothing but itself and the vocabulary.
    for pure in ["engine", "rules", "domain", "audit", "preferences"] {
        let allowed = ["domain", "rules", "engine"];
        let extra: Vec<&String> =
            graph.get(pure).into_iter().flatten().filter(|m| !allowed.contains(&m.as_str())).collect();
        assert!(extra.is_empty(), "{pure} must not depend on {extra:?}");
    }
}

#[test]
fn the_engine_and_rules_do_no_io() {
    let forbidden =
        ["tokio", "sqlx", "tonic", "hyper", "reqwest", "std::net", "std::process", "SystemTime", "Utc::now"];
    for (module, path, text) in library_files() {
        // `audit` is pure too but its event types still derive sqlx's row
        // mapping; they move into the store with the store's split.
        if !["engine", "rules", "domain", "preferences"].contains(&module.as_str()) {
            continue;
        }
        for word in forbidden {
            assert!(!text.contains(word), "{} uses {word}: the core must stay pure", path.display());
        }
        // Only the loader reads files.
        let reads_files = text.contains("std::fs") || text.contains("read_to_string") || text.contains("read_dir");
        assert!(
            !reads_files || path.ends_with("rules/mod.rs"),
            "{} reads files; only rules/mod.rs loads",
            path.display()
        );
    }
}

#[test]
fn generated_protobuf_types_stay_in_api() {
    for (module, path, text) in library_files() {
        if module == "api" {
            continue;
        }
        for word in ["pb::", "api::pb", "prost::", "prost_types::"] {
            assert!(!text.contains(word), "{} uses generated protobuf types ({word}): convert in api/", path.display());
        }
    }
}

/// (table, column) pairs a migrations folder defines, in order of the files.
fn schema(folder: &str) -> BTreeSet<(String, String)> {
    let dir = root().join("migrations").join(folder);
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("migrations folder").map(|e| e.expect("entry").path()).collect();
    files.sort();
    let mut columns = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("migration");
        let text: String =
            text.lines().map(|l| l.split("--").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
        for statement in text.split(';') {
            let words: Vec<&str> = statement.split_whitespace().collect();
            match words.as_slice() {
                ["CREATE", "TABLE", table, ..] => {
                    let body = statement.split_once('(').map(|(_, b)| b).unwrap_or_default();
                    let body = body.rsplit_once(')').map(|(b, _)| b).unwrap_or_default();
                    for line in body.split(",\n").flat_map(|l| l.split('\n')) {
                        let Some(first) = line.split_whitespace().next() else { continue };
                        let first = first.trim_end_matches(',');
                        let keyword = ["PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "CONSTRAINT"];
                        if !first.is_empty()
                            && !keyword.contains(&first)
                            && first.chars().all(|c| c.is_alphanumeric() || c == '_')
                        {
                            columns.insert((table.to_string(), first.to_string()));
                        }
                    }
                }
                ["ALTER", "TABLE", table, "ADD", "COLUMN", column, ..] => {
                    columns.insert((table.to_string(), column.to_string()));
                }
                ["ALTER", "TABLE", table, "DROP", "COLUMN", column, ..] => {
                    columns.remove(&(table.to_string(), column.to_string()));
                }
                _ => {}
            }
        }
    }
    columns
}

#[test]
fn both_backends_define_the_same_tables_and_columns() {
    let sqlite = schema("sqlite");
    let postgres = schema("postgres");
    assert!(sqlite.len() > 40, "the parser found too little: {sqlite:?}");
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    let only_postgres: Vec<_> = postgres.difference(&sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "migrations differ: only in sqlite {only_sqlite:?}, only in postgres {only_postgres:?}"
    );
    let folder = |name: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root().join("migrations").join(name))
            .expect("folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(folder("sqlite"), folder("postgres"), "every migration exists for both backends, same version and name");
}

/// The load generator reaches the database only through the store's public
/// API, so a schema change breaks it at compile time, not in the middle of a run.
#[test]
fn the_bench_goes_through_the_store() {
    let forbidden = [
        "execute_unchecked",
        "sqlx::query",
        "raw_sql",
        "QueryBuilder",
        "Pool",
        "Connection",
        "INSERT INTO",
        "SELECT ",
        "UPDATE ",
        "DELETE FROM",
        "contact_events",
        "audit_log",
        "audit_heads",
    ];
    let files = rust_files(&root().join("src/bin/ventana-bench"));
    assert!(files.len() > 1, "the bench is a folder of files: {files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable source file");
        for word in forbidden {
            assert!(!text.contains(word), "{} uses {word}: the bench goes through ventana::store", path.display());
        }
    }
}

/// The tests build as three binaries sharing one harness (ARCHITECTURE.md,
/// "Testing"): `core`, `service` and `system`, each `tests/<name>/main.rs`,
/// and `tests/support/` included by all three. A new top-level test file
/// would be a fourth binary, linked separately.
#[test]
fn tests_are_three_binaries_and_one_harness() {
    let tests = root().join("tests");
    let mut binaries = Vec::new();
    for entry in std::fs::read_dir(&tests).expect("tests/") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("a name").to_string_lossy().into_owned();
        assert!(path.extension().is_none_or(|e| e != "rs"), "tests/{name} would be a test binary of its own");
        if path.join("main.rs").exists() {
            binaries.push(name);
        }
    }
    binaries.sort();
    assert_eq!(binaries, ["core", "service", "system"]);
    for binary in &binaries {
        let main = std::fs::read_to_string(tests.join(binary).join("main.rs")).expect("main.rs");
        assert!(
            main.contains("#[path = \"../support/mod.rs\"]\nmod support;"),
            "tests/{binary}/main.rs does not include the shared harness"
        );
    }
}

/// The console is read-only (issue 17): none of its files opens a write
/// transaction or calls a use case or key operation that changes something.
/// Its only POSTs sign in and out and run `explain`, a dry run.
#[test]
fn the_console_only_reads() {
    let writes = [
        ".begin(",
        "Tx",
        "execute_unchecked",
        ".submit",
        ".cancel(",
        ".lease(",
        ".ack",
        ".set_preferences(",
        "replace_rules",
        "save_rules_snapshots",
        "wake_due",
        "purge(",
        "revoke_",
        "mint_key",
        "create_key",
        "insert_key",
    ];
    let files = rust_files(&root().join("src/console"));
    assert!(files.len() > 1, "the console is a folder of files: {files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable source file");
        for word in writes {
            assert!(!text.contains(word), "{} uses {word}: the console changes nothing", path.display());
        }
    }
}
