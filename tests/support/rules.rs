//! The rule sets tests run on: the shipped `jurisdictions/`, and the small
//! synthetic sets in `tests/fixtures/rules/`, one directory per set (each is
//! a jurisdictions directory a server can load as it is) plus `overlays/`.

use std::path::PathBuf;
use std::sync::OnceLock;

use ventana::rules::RuleBook;

/// The shipped `jurisdictions/` directory.
pub fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("jurisdictions")
}

/// The shipped jurisdictions, loaded once.
pub fn shipped_book() -> &'static RuleBook {
    static BOOK: OnceLock<RuleBook> = OnceLock::new();
    BOOK.get_or_init(|| {
        RuleBook::load_dir(&shipped()).unwrap_or_else(|problems| {
            panic!(
                "jurisdictions/ does not load:\n{}",
                problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n")
            )
        })
    })
}

/// A fixture directory, `tests/fixtures/rules/<set>` (`ten-a-day`, `hourly`, …).
pub fn fixture(set: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules").join(set);
    assert!(dir.is_dir(), "no rule fixture {}", dir.display());
    dir
}

/// The text of a fixture file, `tests/fixtures/rules/<file>` (`new-york-edges/ZZ.toml`, …).
pub fn fixture_source(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("rule fixture {}: {e}", path.display()))
}

/// "Test land": the smallest jurisdiction file, working days 09:00–17:00
/// in UTC, for tests that build rule books from text.
pub const TEST_LAND: &str = r#"
jurisdiction = "ZZ"
name = "Test land"
time_zones = ["UTC"]

[[versions]]
effective_from = 2020-01-01

[[versions.windows]]
id = "zz-hours"
citation = "Test Act s. 1"
description = "working days 09:00 to 17:00"
basis = "law"
channels = ["all"]
mon_fri = ["09:00-17:00"]
"#;
