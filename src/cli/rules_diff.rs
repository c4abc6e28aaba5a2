//! `ventana rules diff OLD NEW`: each side is a rules directory, or
//! `REV:DIR` in the git repository of the working directory (its `*.toml`
//! files are copied out with `git ls-tree` and `git cat-file` into a
//! temporary directory, loaded, and the directory removed). Exit 0 when
//! nothing differs, 1 when something does, 2 when a side cannot be read or
//! does not load (its problems as `REV:DIR/file:line: reason`).

use std::path::{Component, Path};
use std::process::{Command, ExitCode};

use chrono::{Datelike, NaiveDate};

use super::{CliError, PageFormat, input, print, runtime};
use crate::clock::Clock;
use crate::officer::diff;
use crate::rules::RuleBook;

#[derive(clap::Args)]
pub struct DiffArgs {
    /// The rules before: a directory, or REV:DIR of the git repository here (e.g. HEAD~1:jurisdictions).
    old: String,
    /// The rules after, in the same forms (e.g. jurisdictions).
    new: String,
    /// Compare every day of this year [default: the current year].
    #[arg(long, conflicts_with_all = ["from", "to"])]
    year: Option<i32>,
    /// First day compared (YYYY-MM-DD), with --to.
    #[arg(long, requires = "to")]
    from: Option<NaiveDate>,
    /// Last day compared (YYYY-MM-DD), inclusive.
    #[arg(long, requires = "from")]
    to: Option<NaiveDate>,
    #[arg(long, value_enum, default_value_t = PageFormat::Text)]
    format: PageFormat,
}

/// Runs `rules diff`: exit 1 when anything differs, so it can gate a change.
pub fn run(args: DiffArgs) -> Result<ExitCode, CliError> {
    let (from, to) = match (args.from, args.to) {
        (Some(from), Some(to)) => (from, to),
        _ => {
            let year = args.year.unwrap_or_else(|| Clock::System.now().year());
            let day = |month, day| {
                NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| input(format!("--year {year} is out of range")))
            };
            (day(1, 1)?, day(12, 31)?)
        }
    };
    let old = open("OLD", &args.old)?;
    let new = open("NEW", &args.new)?;
    let found = diff::diff(&old, &new, from, to)?;
    match args.format {
        PageFormat::Text => print(&diff::text(&found, &args.old, &args.new).trim_end())?,
        PageFormat::Json => print(&diff::json(&found, &args.old, &args.new))?,
        PageFormat::Html => print(&diff::html(&found, &old, &new, &args.old, &args.new).trim_end())?,
    }
    Ok(if found.differs() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Loads one side: a directory as it is, or `REV:DIR` from git.
fn open(label: &str, spec: &str) -> Result<RuleBook, CliError> {
    let path = Path::new(spec);
    if path.is_dir() {
        return load(label, spec, path, None);
    }
    match spec.split_once(':') {
        Some((rev, dir)) if !rev.is_empty() => {
            let dir = dir.trim_end_matches('/');
            let extracted = extract(spec, rev, dir)?;
            load(label, spec, extracted.path(), Some(&format!("{rev}:{dir}")))
        }
        _ => Err(input(format!("{label}: {spec} is neither a directory nor REV:DIR of the git repository here"))),
    }
}

/// Loads `dir`; problems name their files under `shown` instead of `dir` when given.
fn load(label: &str, spec: &str, dir: &Path, shown: Option<&str>) -> Result<RuleBook, CliError> {
    RuleBook::load_dir(dir).map_err(|problems| {
        let prefix = dir.display().to_string();
        let lines: Vec<String> = problems
            .into_iter()
            .map(|mut problem| {
                if let (Some(shown), Some(rest)) = (shown, problem.file.strip_prefix(&prefix)) {
                    problem.file = format!("{shown}{rest}");
                }
                problem.to_string()
            })
            .collect();
        input(format!("{label} ({spec}) does not load:\n{}", lines.join("\n")))
    })
}

/// Copies the `*.toml` files of `rev:dir` into a new temporary directory.
fn extract(spec: &str, rev: &str, dir: &str) -> Result<tempfile::TempDir, CliError> {
    let tree = format!("{rev}:{dir}");
    let listing = git(&["ls-tree", "-r", "-z", "--name-only", &tree])?;
    let temp = tempfile::Builder::new()
        .prefix("ventana-rules-")
        .tempdir()
        .map_err(|e| runtime(format!("cannot make a temporary directory: {e}")))?;
    for name in listing.split(|b| *b == 0).filter(|name| !name.is_empty()) {
        let name = std::str::from_utf8(name).map_err(|_| input(format!("{spec}: a file name is not UTF-8")))?;
        let relative = Path::new(name);
        if !name.ends_with(".toml") {
            continue;
        }
        if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(input(format!("{spec}: unexpected path {name:?}")));
        }
        let object = if dir.is_empty() { format!("{rev}:{name}") } else { format!("{rev}:{dir}/{name}") };
        let bytes = git(&["cat-file", "blob", &object])?;
        let path = temp.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| runtime(format!("{}: {e}", parent.display())))?;
        }
        std::fs::write(&path, bytes).map_err(|e| runtime(format!("{}: {e}", path.display())))?;
    }
    Ok(temp)
}

/// Runs git; a failure names the command and git's own message (a usage error: the revision or path is wrong).
fn git(args: &[&str]) -> Result<Vec<u8>, CliError> {
    let output = Command::new("git").args(args).output().map_err(|e| runtime(format!("cannot run git: {e}")))?;
    if !output.status.success() {
        return Err(input(format!("git {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim())));
    }
    Ok(output.stdout)
}
