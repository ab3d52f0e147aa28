//! `graft merge` end to end: the shards of a tiny suite (embedded digits, width-2 ResNet-8 on
//! 8x8 inputs, one epoch) merged into one file that holds one run's results, resumes and
//! reports; a conflicting copy of a run and an input in another folder are refused.

mod common;

use common::*;

fn runs(records: &[serde_json::Value]) -> Vec<String> {
    let mut v: Vec<String> =
        records.iter().map(|r| format!("{} {} {}", r["key"], r["test_accuracy"], r["source_hash"])).collect();
    v.sort();
    v
}

#[test]
fn merged_shards_equal_one_run_resume_and_refuse_a_conflicting_copy_or_another_folder() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), &tiny_suite("[0, 1]", &format!("{DIGITS_5TO9}{DIGITS_ROT}")));
    let s = suite.to_str().unwrap();
    let out = graft(dir.path(), &["run", s, "--results", "single/r.jsonl", "--no-progress"]);
    assert!(out.status.success(), "{:?}", text(&out));
    for i in ["0", "1"] {
        let shard = format!("{i}/2");
        let file = format!("out/shard-{i}.jsonl");
        let out = graft(dir.path(), &["run", s, "--shard", &shard, "--results", &file, "--no-progress"]);
        assert!(out.status.success(), "{:?}", text(&out));
    }

    let merge = ["merge", "out/merged.jsonl", "out/shard-0.jsonl", "out/shard-1.jsonl"];
    let out = graft(dir.path(), &merge);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{stdout}\n{err}");
    assert!(stdout.contains("merged 4 runs from 2 files into out/merged.jsonl"), "{stdout}");
    assert!(!err.contains("warning"), "every delta is there: {err}");
    let (merged, bad) = read_lines(&dir.path().join("out/merged.jsonl"));
    let (single, _) = read_lines(&dir.path().join("single/r.jsonl"));
    assert_eq!(bad, 0);
    assert_eq!(runs(&merged), runs(&single), "the same keys, accuracies and source as one run");
    for r in &merged {
        assert!(dir.path().join("out").join(r["delta_path"].as_str().unwrap()).exists(), "{r}");
    }
    let bytes = std::fs::read(dir.path().join("out/merged.jsonl")).unwrap();
    let out = graft(dir.path(), &merge);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains("4 identical copies kept once"), "{:?}", text(&out));
    assert_eq!(std::fs::read(dir.path().join("out/merged.jsonl")).unwrap(), bytes, "merging again changes nothing");

    // The merged file is a results file like any: the suite resumes on it, the report reads it.
    let out = graft(dir.path(), &["run", s, "--results", "out/merged.jsonl", "--no-progress"]);
    let (stdout, err) = text(&out);
    assert!(out.status.success() && stdout.contains("nothing to run: 4 runs already recorded"), "{stdout}\n{err}");
    let out = graft(dir.path(), &["report", "out/merged.jsonl"]);
    assert!(out.status.success() && text(&out).0.contains("4 runs"), "{:?}", text(&out));

    // One run recorded twice with another accuracy.
    let mut copy = merged[0].clone();
    copy["test_accuracy"] = serde_json::json!(0.125);
    std::fs::write(dir.path().join("out/again.jsonl"), format!("{copy}\n")).unwrap();
    let out = graft(dir.path(), &["merge", "out/m2.jsonl", "out/shard-0.jsonl", "out/shard-1.jsonl", "out/again.jsonl"]);
    let (_, err) = text(&out);
    assert!(!out.status.success());
    let key = merged[0]["key"].as_str().unwrap();
    assert!(err.contains(&format!("run '{key}' is in both out/shard-")) && err.contains("and out/again.jsonl"), "{err}");
    assert!(err.contains("differ in test_accuracy"), "{err}");
    assert!(!dir.path().join("out/m2.jsonl").exists());

    // A merged file elsewhere would point at deltas that are not beside it.
    std::fs::create_dir(dir.path().join("other")).unwrap();
    let out = graft(dir.path(), &["merge", "other/m.jsonl", "out/shard-0.jsonl"]);
    let (_, err) = text(&out);
    assert!(!out.status.success() && err.contains("out/shard-0.jsonl is not in other"), "{err}");
    assert!(!dir.path().join("other/m.jsonl").exists());
}
