//! Hostile input, fuzzed with proptest inside the normal test run (bounded
//! case counts; `PROPTEST_CASES=100000 cargo test --release --test core hostile`
//! for a long run): jurisdiction files mangled at random and arbitrary gRPC
//! intents must never panic, and every refusal must say where and why. A
//! corpus of malformed files is kept as regression tests.

use proptest::prelude::*;
use ventana::api::pb;
use ventana::domain::Preferences;
use ventana::rules::RuleBook;

fn real_file(name: &str) -> String {
    std::fs::read_to_string(format!("{}/jurisdictions/{name}", env!("CARGO_MANIFEST_DIR"))).expect("file")
}

/// Compiles one file; a refusal must name the file and a line inside it.
fn check_file(name: &str, source: &str) {
    if let Err(problems) = RuleBook::from_sources(&[(name, source)]) {
        assert!(!problems.is_empty(), "a refusal lists its problems");
        let lines = source.lines().count().max(1);
        for problem in problems {
            assert_eq!(problem.file, name, "{problem}");
            assert!(problem.line >= 1 && problem.line <= lines + 1, "line out of the file: {problem}");
            assert!(!problem.message.is_empty(), "{problem}");
        }
    }
}

/// One random edit of a text.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    DuplicateLine(usize),
    SwapDigits(usize),
}

fn apply(text: &str, edit: &Edit) -> String {
    let at = |i: usize| {
        let mut i = i % (text.len() + 1);
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    match edit {
        Edit::Delete(from, len) => {
            let from = at(*from);
            let to = at(from + len % 40);
            format!("{}{}", &text[..from], &text[to.max(from)..])
        }
        Edit::Insert(pos, what) => {
            let pos = at(*pos);
            format!("{}{what}{}", &text[..pos], &text[pos..])
        }
        Edit::DuplicateLine(n) => {
            let lines: Vec<&str> = text.lines().collect();
            let n = n % lines.len().max(1);
            let mut out: Vec<&str> = lines.clone();
            if let Some(line) = lines.get(n) {
                out.insert(n, line);
            }
            out.join("\n")
        }
        Edit::SwapDigits(pos) => text
            .char_indices()
            .map(|(i, c)| if c.is_ascii_digit() && i >= at(*pos) && i < at(*pos) + 30 { '9' } else { c })
            .collect(),
    }
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Delete(a, b)),
        (
            any::<usize>(),
            prop_oneof![
                Just("\"".to_string()),
                Just("[[".to_string()),
                Just("= ".to_string()),
                Just("\n[[versions]]\n".to_string()),
                Just("25:99-24:00".to_string()),
                Just("\u{0}".to_string()),
                "[ -~]{0,12}",
            ]
        )
            .prop_map(|(a, s)| Edit::Insert(a, s)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        any::<usize>().prop_map(Edit::SwapDigits),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Mangled copies of real files: compiled or refused with file and line, never a panic.
    #[test]
    fn mangled_jurisdiction_files_never_panic(
        file in prop::sample::select(vec!["PE.toml", "MX.toml", "CO.toml", "US.toml", "CL.toml"]),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let mut text = real_file(file);
        for e in &edits {
            text = apply(&text, e);
        }
        check_file(file, &text);
    }

    /// Arbitrary text as a jurisdiction file.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        check_file("ZZ.toml", &text);
    }

    /// Arbitrary gRPC intents: validation refuses with INVALID_ARGUMENT naming a field,
    /// or accepts; an accepted intent is then evaluated without panicking.
    #[test]
    fn arbitrary_intents_are_validated_and_evaluated(
        intent_id in "\\PC{0,300}",
        debtor_id in "\\PC{0,20}",
        channel in -2i32..12,
        party in -2i32..8,
        stage in -2i32..8,
        jurisdiction in prop::sample::select(vec!["PE", "MX", "US-NY", "CL", "ZZ", "", "pe"]),
        zones in prop::collection::vec(prop::sample::select(vec!["America/Lima", "Mars/Olympus", "", "America/Santiago"]), 0..3),
        not_before in prop::option::of((any::<i64>(), any::<i32>())),
        payload in prop::collection::btree_map("\\PC{0,5}", "\\PC{0,5}", 0..4),
        at in 0i64..4_102_444_800,
    ) {
        let intent = pb::Intent {
            intent_id,
            debtor_id,
            channel,
            party,
            stage,
            jurisdiction: jurisdiction.to_string(),
            time_zones: zones.into_iter().map(str::to_string).collect(),
            not_before: not_before.map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
            payload: payload.into_iter().collect(),
            ..Default::default()
        };
        match ventana::api::convert::submission("acme", Some(&intent)) {
            Err(error) => {
                let status = tonic::Status::from(error);
                prop_assert_eq!(status.code(), tonic::Code::InvalidArgument);
                prop_assert!(!status.message().is_empty());
            }
            Ok(submission) => {
                let book = crate::support::rules::shipped_book();
                if let Ok(resolved) = book.resolve("acme", &submission.intent.jurisdiction) {
                    let now = chrono::DateTime::from_timestamp(at, 0).expect("in range");
                    let _ = ventana::engine::evaluate(&submission.intent, &resolved, &[], &Preferences::default(), now);
                }
            }
        }
    }
}

/// Malformed files kept as regression tests: each is refused with this line and reason.
#[test]
fn malformed_corpus_is_refused_with_file_line_and_reason() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/malformed");
    let expected: toml::Table =
        toml::from_str(&std::fs::read_to_string(format!("{dir}/expected.toml")).expect("expected.toml")).expect("toml");
    let mut seen = 0;
    for (file, want) in &expected {
        let source = std::fs::read_to_string(format!("{dir}/{file}")).expect("corpus file");
        let problems = RuleBook::from_sources(&[(file.as_str(), source.as_str())]).expect_err(file);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let want = want.as_str().expect("a string");
        assert!(text.iter().any(|p| p.starts_with(want)), "{file}: expected a problem starting {want:?}, got {text:?}");
        seen += 1;
    }
    assert!(seen >= 8, "the corpus has its files");
}
