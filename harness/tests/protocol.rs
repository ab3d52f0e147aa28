//! The selection protocol end to end: a suite's `[candidates]` run as their own configs, every
//! run records its validation accuracy and candidate, and the report keeps the candidate with the
//! best validation accuracy, showing test accuracy for it alone.

mod common;

use common::{graft, read_lines, text, tiny_suite, write_suite, DIGITS_5TO9, DIGITS_ROT};

#[test]
fn candidates_run_as_configs_and_the_report_shows_the_one_chosen_on_validation() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite("[0, 1]", &format!("{DIGITS_5TO9}{DIGITS_ROT}")).replace(
        "[method_configs.linear-probe]",
        "[candidates.linear-probe.train]\nlr = [0.000001, 0.01]\n[method_configs.linear-probe]",
    );
    let out = graft(dir.path(), &["run", write_suite(dir.path(), &suite).to_str().unwrap(), "--results", "r.jsonl"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let (records, bad) = read_lines(&dir.path().join("r.jsonl"));
    assert_eq!((records.len(), bad), (8, 0), "2 tasks x 2 candidates x 2 seeds");
    for r in &records {
        let label = r["candidate"]["label"].as_str().unwrap();
        assert!(label == "train.lr=1e-6" || label == "train.lr=0.01", "{label}");
        assert_eq!(r["candidate"]["select_by"], "suite");
        assert_eq!(r["config"]["train"]["lr"].as_f64().unwrap(), if label.ends_with("1e-6") { 1e-6 } else { 0.01 });
        assert!(r["val_accuracy"].as_f64().is_some(), "{r}");
    }
    // A learning rate of 1e-6 leaves the head where it started: lr 0.01 wins on validation.
    let out = graft(dir.path(), &["report", "r.jsonl", "--out", "report.md"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("## Selection on validation accuracy"), "{md}");
    assert!(md.contains("### linear-probe (one choice for suite `tiny`, over 2 source × task cells)"), "{md}");
    let chosen: Vec<&str> = md.lines().filter(|l| l.contains("**chosen**")).collect();
    assert_eq!(chosen.len(), 1, "{md}");
    assert!(chosen[0].starts_with("| train.lr=0.01 | 4 |"), "{md}");
    // Test accuracy rows: the chosen candidate only, in both tasks' tables.
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| linear-probe")).collect();
    assert_eq!(rows.len(), 2, "{md}");
    assert!(rows.iter().all(|l| l.starts_with("| linear-probe (train.lr=0.01) |")), "{rows:?}");
}

#[test]
fn candidate_mistakes_are_named_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, needle) in [
        ("[candidates.snow]\nk = [1, 2]\n", "[candidates.snow]: 'snow' is not in `methods`"),
        ("[candidates.linear-probe]\nk = 3\n", "`k` is 3, not a list"),
        ("[candidates.linear-probe.train]\nepochs = [0, 1]\n", "[candidates.linear-probe] (train.epochs=0)"),
        ("[candidates.linear-probe]\ntap = [\"pool\", \"stage9\"]\n", "names 'stage9'"),
        ("[[sequences]]\nname = \"q\"\ntasks = [\"digits-5to9\", \"digits-rot90\"]\n[candidates.linear-probe.train]\nlr = [0.1, 0.2]\n", "cannot share a suite"),
    ] {
        let suite = format!("{}{extra}", tiny_suite("[0]", &format!("{DIGITS_5TO9}{DIGITS_ROT}")));
        let out = graft(dir.path(), &["run", write_suite(dir.path(), &suite).to_str().unwrap(), "--results", "r.jsonl"]);
        let (_, stderr) = text(&out);
        assert!(!out.status.success() && stderr.contains(needle), "{needle}: {stderr}");
        assert!(!dir.path().join("r.jsonl").exists() || read_lines(&dir.path().join("r.jsonl")).0.is_empty());
    }
}
