//! End-to-end tests of the `graft` binary on tiny suites (embedded digits, width-2 ResNet-8 on
//! 8x8 inputs, one epoch), each in its own temporary directory.

mod common;

use common::*;
use std::path::Path;

#[test]
fn unknown_suite_key_is_named_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let body = tiny_suite("[0]", DIGITS_5TO9).replace("seeds = [0]", "seeds = [0]\nsedes = [1]");
    let suite = write_suite(dir.path(), &body);
    let out = graft(
        dir.path(),
        &[
            "run",
            suite.to_str().unwrap(),
            "--results",
            "r.jsonl",
            "--no-progress",
        ],
    );
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(err.contains("sedes") && err.contains("suite.toml"), "{err}");

    // In a task table too (parsed separately because of its `sources` key).
    let body = tiny_suite("[0]", &format!("{DIGITS_5TO9}clases = [1]\n"));
    let suite = write_suite(dir.path(), &body);
    let out = graft(
        dir.path(),
        &[
            "run",
            suite.to_str().unwrap(),
            "--results",
            "r.jsonl",
            "--no-progress",
        ],
    );
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("clases") && err.contains("suite.toml") && err.contains("digits-5to9"),
        "{err}"
    );
    assert!(!dir.path().join("r.jsonl").exists());
}

#[test]
fn list_prints_the_baselines() {
    let dir = tempfile::tempdir().unwrap();
    let out = graft(dir.path(), &["list"]);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    for m in ["linear-probe", "feature-extractor", "fine-tune", "scratch"] {
        assert!(
            stdout.lines().any(|l| l == m),
            "{m} missing from:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("paper:") && stdout.contains("\"train\""),
        "{stdout}"
    );
    let out = graft(dir.path(), &["list", "--format", "toml"]);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        stdout.contains("[method_configs.fine-tune.train]"),
        "{stdout}"
    );
}

#[test]
fn rerun_skips_recorded_runs_and_report_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), &tiny_suite("[0, 1]", DIGITS_5TO9));
    let args = [
        "run",
        suite.to_str().unwrap(),
        "--results",
        "out/r.jsonl",
        "--no-progress",
    ];
    let out = graft(dir.path(), &args);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{stdout}\n{err}");
    let results = dir.path().join("out/r.jsonl");
    let (records, bad) = read_lines(&results);
    assert_eq!((records.len(), bad), (2, 0));
    assert!(dir.path().join("out/sources/d04.safetensors").exists());
    for r in &records {
        assert_eq!(r["method"], "linear-probe");
        assert_eq!(r["reload_identical"], true, "{r}");
        assert!(r["test_accuracy"].as_f64().unwrap() >= 0.0);
        assert!(r["footprint"]["trainable_params"].as_u64().unwrap() > 0);
        // Recorded relative to the results file's folder.
        assert!(dir.path().join("out").join(r["delta_path"].as_str().unwrap()).exists());
    }

    let out = graft(dir.path(), &args);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{stdout}\n{err}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("skip ")).count(),
        2,
        "{stdout}"
    );
    let (again, bad) = read_lines(&results);
    assert_eq!((again.len(), bad), (2, 0));
    assert_eq!(keys(&again), keys(&records));

    let out = graft(dir.path(), &["report", "out/r.jsonl"]);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        stdout.contains("## d04 → digits-5to9") && stdout.contains("| linear-probe | **"),
        "{stdout}"
    );
    assert!(stdout.contains("(2) |"), "{stdout}");
    assert!(dir.path().join("out/r.md").exists());
}

#[test]
fn truncated_last_line_keeps_earlier_records_and_appends_on_a_fresh_line() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), &tiny_suite("[0, 1]", DIGITS_5TO9));
    let args = [
        "run",
        suite.to_str().unwrap(),
        "--results",
        "r.jsonl",
        "--no-progress",
    ];
    let out = graft(dir.path(), &args);
    assert!(out.status.success(), "{:?}", text(&out));
    let results = dir.path().join("r.jsonl");
    let full = std::fs::read_to_string(&results).unwrap();
    let (records, _) = read_lines(&results);
    let second_key = records[1]["key"].as_str().unwrap().to_string();
    // Kill mid-write: the second line loses its end (and its newline).
    std::fs::write(&results, &full[..full.len() - 40]).unwrap();

    let out = graft(dir.path(), &args);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{stdout}\n{err}");
    assert!(
        err.contains("r.jsonl:2"),
        "the bad line is reported by number: {err}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("skip ")).count(),
        1,
        "{stdout}"
    );

    let text = std::fs::read_to_string(&results).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(serde_json::from_str::<serde_json::Value>(lines[0]).is_ok());
    assert!(serde_json::from_str::<serde_json::Value>(lines[1]).is_err());
    let appended: serde_json::Value =
        serde_json::from_str(lines[2]).expect("appended on a fresh line");
    assert_eq!(appended["key"], second_key.as_str());
    assert!(text.ends_with('\n'));
}

#[test]
fn shards_cover_the_grid_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        &tiny_suite("[0, 1]", &format!("{DIGITS_5TO9}{DIGITS_ROT}")),
    );
    let s = suite.to_str().unwrap();
    let mut shard_keys = Vec::new();
    for (i, file) in ["0/2", "1/2"].iter().zip(["out/a.jsonl", "out/b.jsonl"]) {
        let out = graft(
            dir.path(),
            &["run", s, "--shard", i, "--results", file, "--no-progress"],
        );
        assert!(out.status.success(), "{:?}", text(&out));
        let (records, bad) = read_lines(&dir.path().join(file));
        assert_eq!((records.len(), bad), (2, 0), "shard {i}");
        shard_keys.push(keys(&records));
    }
    let mut all: Vec<String> = shard_keys.concat();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4, "{shard_keys:?}");
    // Both shards used one cached source.
    let (a, _) = read_lines(&dir.path().join("out/a.jsonl"));
    let (b, _) = read_lines(&dir.path().join("out/b.jsonl"));
    assert_eq!(a[0]["source_hash"], b[0]["source_hash"]);

    let out = graft(
        dir.path(),
        &["run", s, "--shard", "2/2", "--results", "out/c.jsonl"],
    );
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(err.contains("2/2") && err.contains("out of range"), "{err}");
    assert!(!dir.path().join("out/c.jsonl").exists());
}

#[test]
fn failed_runs_are_named_and_the_others_recorded() {
    let dir = tempfile::tempdir().unwrap();
    // MNIST is not in the (empty) data dir: its runs fail, the digits runs go on.
    let missing = "\n[[tasks]]\nname = \"mnist-all\"\ndataset = \"mnist\"\n";
    let suite = write_suite(
        dir.path(),
        &tiny_suite("[0]", &format!("{missing}{DIGITS_5TO9}")),
    );
    let out = graft(
        dir.path(),
        &[
            "run",
            suite.to_str().unwrap(),
            "--results",
            "r.jsonl",
            "--no-progress",
        ],
    );
    let (stdout, err) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{err}");
    assert!(
        err.contains("1 run(s) failed") && err.contains("d04/mnist-all/linear-probe/s0/"),
        "{err}"
    );
    assert!(err.contains("graft data fetch"), "{err}");
    let (records, bad) = read_lines(&dir.path().join("r.jsonl"));
    assert_eq!((records.len(), bad), (1, 0));
    assert_eq!(records[0]["task"], "digits-5to9");
}

/// Every crate under `methods/` is linked into the binary (an unlinked crate registers nothing),
/// its methods are listed once, and a method crate other than `baselines` registers its folder name.
#[test]
fn every_method_crate_is_linked_and_listed_once() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let manifest = std::fs::read_to_string(root.join("harness/Cargo.toml")).unwrap();
    let main = std::fs::read_to_string(root.join("harness/src/main.rs")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = graft(dir.path(), &["list"]);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    // Method names are the unindented lines of `graft list`.
    let names: Vec<&str> = stdout.lines().filter(|l| !l.is_empty() && !l.starts_with(char::is_whitespace)).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "a method name is listed twice: {names:?}");
    let mut folders = 0;
    for entry in std::fs::read_dir(root.join("methods")).unwrap() {
        let path = entry.unwrap().path();
        if !path.join("Cargo.toml").exists() {
            continue;
        }
        folders += 1;
        let folder = path.file_name().unwrap().to_string_lossy().to_string();
        let krate = format!("graft-{folder}");
        assert!(manifest.contains(&format!("{krate}.workspace = true")), "harness/Cargo.toml does not depend on {krate}");
        let ident = krate.replace('-', "_");
        assert!(main.contains(&format!("use {ident} as _;")), "harness/src/main.rs does not link {ident}");
        // A crate registers a method named after its folder, except those whose issue named
        // their methods otherwise.
        let expected: Vec<&str> = match folder.as_str() {
            "baselines" => vec!["linear-probe", "feature-extractor", "fine-tune", "scratch"],
            "attention" => vec!["adaptive-attention"],
            "adapters" => vec!["residual-adapter-series", "residual-adapter-parallel"],
            other => vec![other],
        };
        for name in expected {
            assert!(names.contains(&name), "methods/{folder} registers no method named '{name}': {names:?}");
        }
    }
    assert!(folders >= 1, "no method crate found under methods/");
}

#[test]
fn backbones_lists_every_family_and_pretrain_takes_each_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = graft(dir.path(), &["backbones"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for family in ["resnet-cifar:", "wrn:", "resnet:", "mobilenetv2:", "vgg:"] {
        assert!(stdout.contains(family), "{family} missing:\n{stdout}");
    }
    // One epoch on a few embedded digits, one architecture per family.
    for arch in [
        vec!["--arch", "wrn", "--depth", "10", "--widen", "1", "--input", "1x8x8"],
        vec!["--arch", "resnet18-w2", "--input", "1x8x8"],
        vec!["--arch", "mobilenetv2", "--width-mult", "0.25", "--input", "1x8x8"],
        vec!["--arch", r#"{"name": "vgg", "config": "vgg11", "width_div": 64, "pool": 1}"#, "--input", "1x32x32"],
    ] {
        let mut args = vec!["pretrain", "--dataset", "digits", "--epochs", "1", "--max-train", "100", "--out", "s.safetensors", "--no-progress"];
        args.extend(arch.iter().copied());
        let out = graft(dir.path(), &args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{arch:?}: {stderr}");
        assert!(stdout.contains("backbone") && stdout.contains("FLOPs/img"), "{arch:?}: {stdout}");
    }
    let out = graft(dir.path(), &["pretrain", "--dataset", "digits", "--arch", "resnet", "--depth", "20", "--out", "x.safetensors"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success() && stderr.contains("18, 34, 50"), "{stderr}");
}

#[test]
fn bench_rejects_a_zero_batch_and_times_a_tiny_net() {
    let dir = tempfile::tempdir().unwrap();
    let out = graft(dir.path(), &["bench", "--batch", "0"]);
    let (_, err) = text(&out);
    assert!(!out.status.success() && err.contains("--batch must be at least 1"), "{err}");
    let out = graft(dir.path(), &["bench", "--batch", "4", "--depth", "8", "--width", "4", "--channels", "1", "--seconds", "0.05"]);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    for line in ["train     resnet-cifar-8 w4 1x32x32:", "inference resnet-cifar-8 w4 1x32x32:", "peak RSS"] {
        assert!(stdout.contains(line), "missing '{line}' in:\n{stdout}");
    }
}

#[test]
fn serve_bench_compares_shared_and_separate_serving_and_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = graft(dir.path(), &["serve-bench", "--method", "fine-tune"]);
    let (_, err) = text(&out);
    assert!(!out.status.success() && err.contains("does not share its source"), "{err}");
    let out = graft(dir.path(), &["serve-bench", "--tasks", "0"]);
    let (_, err) = text(&out);
    assert!(!out.status.success() && err.contains("--tasks"), "{err}");
    let args = ["serve-bench", "--tasks", "1,2", "--depth", "8", "--width", "8", "--batch", "8", "--seconds", "0.05"];
    let out = graft(dir.path(), &args);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    for line in ["serve-bench: source resnet-cifar-8-w8", "tasks 1: snow", "tasks 2: snow", "fine-tune", "throughput", "peak RSS"] {
        assert!(stdout.contains(line), "missing '{line}' in:\n{stdout}");
    }
}

#[test]
fn a_continual_sequence_reevaluates_earlier_tasks_without_forgetting_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = format!(
        "{DIGITS_5TO9}{DIGITS_ROT}\n[[tasks]]\nname = \"digits-inv\"\ndataset = \"digits\"\ndomain = \"invert\"\n\
         \n[[sequences]]\nname = \"three\"\ntasks = [\"digits-5to9\", \"digits-rot90\", \"digits-inv\"]\n"
    );
    let body = tiny_suite("[0]", &tasks).replace(
        r#"methods = ["linear-probe"]"#,
        r#"methods = ["linear-probe", "fine-tune"]"#,
    ) + "\n[method_configs.fine-tune]\ntrain = { epochs = 1 }\n";
    let suite = write_suite(dir.path(), &body);
    let args = ["run", suite.to_str().unwrap(), "--results", "out/r.jsonl", "--no-progress"];
    let out = graft(dir.path(), &args);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{stdout}\n{err}");
    let (runs, _) = read_lines(&dir.path().join("out/r.jsonl"));
    let (steps, bad) = read_lines(&dir.path().join("out/r.sequences.jsonl"));
    assert_eq!((runs.len(), steps.len(), bad), (6, 6, 0), "{stdout}");
    for method in ["linear-probe", "fine-tune"] {
        let mine: Vec<&serde_json::Value> = steps.iter().filter(|s| s["method"] == method).collect();
        let last = mine.iter().find(|s| s["step"] == 2).expect("last step");
        let accs = last["accuracies"].as_array().unwrap();
        assert_eq!(accs.len(), 3);
        for (j, a) in accs.iter().enumerate() {
            // Exactly what the task's own run measured, and the same logits as when it was learned.
            let run = runs.iter().find(|r| r["method"] == method && r["task"] == a["task"]).unwrap();
            assert_eq!(a["test_accuracy"], run["test_accuracy"], "{method} {a}");
            let at_j = mine.iter().find(|s| s["step"] == j).unwrap()["accuracies"][j].clone();
            assert_eq!(at_j["logits_sha256"], a["logits_sha256"], "{method}: task {j} forgot");
        }
    }
    let out = graft(dir.path(), &args);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(read_lines(&dir.path().join("out/r.sequences.jsonl")).0.len(), 6, "{stdout}");
    let out = graft(dir.path(), &["report", "out/r.jsonl"]);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(stdout.contains("## Continual sequence `three` on `d04`"), "{stdout}");
    assert!(stdout.contains("digits-5to9 → digits-rot90 → digits-inv"), "{stdout}");
    let row = stdout.lines().find(|l| l.starts_with("| linear-probe |") && l.contains("yes")).expect("linear-probe row");
    assert!(row.contains("| 0.00 | yes |"), "{row}");
    // `graft report` with no arguments reads results/*.jsonl: the sequences file beside the
    // results is read as sequences, not warned about line by line as broken results.
    std::fs::rename(dir.path().join("out"), dir.path().join("results")).unwrap();
    let out = graft(dir.path(), &["report"]);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(stdout.contains("## Continual sequence `three` on `d04`"), "{stdout}");
    assert!(!err.contains("skipping unreadable line"), "{err}");
}

#[test]
fn sequential_fine_tuning_carries_its_network_forgets_and_resumes_from_its_step_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = format!(
        "{DIGITS_5TO9}{DIGITS_ROT}\n[[tasks]]\nname = \"digits-inv\"\ndataset = \"digits\"\ndomain = \"invert\"\n\
         \n[[sequences]]\nname = \"three\"\ntasks = [\"digits-5to9\", \"digits-rot90\", \"digits-inv\"]\n"
    );
    let body = tiny_suite("[0]", &tasks).replace(r#"methods = ["linear-probe"]"#, r#"methods = ["sequential-fine-tune"]"#)
        .replace("[method_configs.linear-probe]", "[method_configs.sequential-fine-tune]");
    let suite = write_suite(dir.path(), &body);
    let args = ["run", suite.to_str().unwrap(), "--results", "out/r.jsonl", "--no-progress"];
    let out = graft(dir.path(), &args);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{stdout}\n{err}");
    let (runs, _) = read_lines(&dir.path().join("out/r.jsonl"));
    let seq_file = dir.path().join("out/r.sequences.jsonl");
    let (steps, bad) = read_lines(&seq_file);
    assert_eq!((runs.len(), steps.len(), bad), (3, 3, 0), "{stdout}");
    let step = |j: usize| steps.iter().find(|s| s["step"] == j).unwrap().clone();
    // Step 0 is the first task's grid run; steps 1 and 2 were fitted from the step before and
    // saved their own deltas.
    let run0 = runs.iter().find(|r| r["task"] == "digits-5to9").unwrap();
    assert_eq!(step(0)["accuracies"][0]["test_accuracy"], run0["test_accuracy"]);
    assert!(step(0).get("delta_path").is_none());
    for j in [1, 2] {
        let rel = step(j)["delta_path"].as_str().unwrap().to_string();
        assert!(dir.path().join("out").join(&rel).is_file(), "{rel}");
        assert!(step(j)["train_seconds"].as_f64().unwrap() > 0.0);
    }
    // The first task's model changed as the network moved on: its logits differ after step 2.
    assert_ne!(step(0)["accuracies"][0]["logits_sha256"], step(2)["accuracies"][0]["logits_sha256"]);
    assert_eq!(step(2)["accuracies"].as_array().unwrap().len(), 3);

    // A run killed before the last step: it is fitted again from step 1's saved delta and gives
    // the same figures, bit for bit.
    let before = step(2);
    let kept: Vec<String> = std::fs::read_to_string(&seq_file).unwrap().lines().filter(|l| !l.contains("\"step\":2")).map(String::from).collect();
    std::fs::write(&seq_file, kept.join("\n") + "\n").unwrap();
    let out = graft(dir.path(), &args);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{stdout}\n{err}");
    let (steps, _) = read_lines(&seq_file);
    assert_eq!(steps.len(), 3, "{stdout}");
    let again = steps.iter().find(|s| s["step"] == 2).unwrap();
    assert_eq!(again["accuracies"], before["accuracies"], "{stdout}");

    let out = graft(dir.path(), &["report", "out/r.jsonl"]);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(stdout.contains("backward transfer") && stdout.contains("Accuracy matrix"), "{stdout}");
    assert!(stdout.contains("| sequential-fine-tune | digits-5to9 |"), "{stdout}");
    let row = stdout.lines().find(|l| l.starts_with("| sequential-fine-tune |") && l.contains(" no |")).expect("sequence row, logits not identical");
    assert!(!row.contains("| 0.00 | no |"), "forgetting should be above zero: {row}");
}

#[test]
fn tli_match_and_scores_print_tables_and_reject_bad_input_writing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = graft(
        dir.path(),
        &["pretrain", "--dataset", "digits", "--arch", "resnet-cifar", "--depth", "8", "--width", "2", "--input", "1x8x8", "--epochs", "1", "--max-train", "100", "--out", "t.safetensors", "--no-progress"],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let listing = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    let before = listing(dir.path());

    let out = graft(dir.path(), &["tli", "match", "--teacher", "t.safetensors", "--student", "wrn-10-1"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("resnet-cifar-8-w2 (teacher) → wrn-10-1 (student)"), "{stdout}");
    // wrn-10-1's stem conv takes the teacher's stem conv, reshaped from 2 to 16 output channels.
    assert!(stdout.contains("| conv1.weight | [16, 1, 3, 3] | conv1.weight | [2, 1, 3, 3] |"), "{stdout}");
    assert!(stdout.contains("crop/pad+resize [2, 1, 3, 3]→[16, 1, 3, 3]"), "{stdout}");
    assert!(stdout.contains("TLI score of the teacher for the student: 0."), "{stdout}");

    let out = graft(dir.path(), &["tli", "scores", "--archs", "resnet-cifar-8-w2,wrn-10-1,mobilenetv2-0.25", "--input", "1x8x8"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| student")).collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<f64> = row.split('|').skip(2).filter(|c| !c.trim().is_empty()).map(|c| c.trim().parse().unwrap()).collect();
        assert_eq!(cells[i], 1.0, "the diagonal is 1: {row}");
        assert!(cells.iter().all(|&c| (0.0..=1.0).contains(&c)), "{row}");
    }

    // A plain state dict needs its architecture; a graft source's tensors read as one.
    let out = graft(dir.path(), &["tli", "match", "--teacher", "t.safetensors", "--teacher-arch", "resnet-cifar-8-w2", "--teacher-input", "1x8x8", "--teacher-classes", "10", "--student", "resnet-cifar-8-w2"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("| conv1.weight | [2, 1, 3, 3] | conv1.weight | [2, 1, 3, 3] | 1.000 | copy |"), "{stdout}");

    std::fs::write(dir.path().join("junk.safetensors"), b"not a checkpoint").unwrap();
    for (args, needles) in [
        (vec!["tli", "match", "--teacher", "junk.safetensors", "--student", "wrn-10-1"], vec!["junk.safetensors", "not a graft source", "--teacher-arch"]),
        (vec!["tli", "match", "--teacher", "missing.safetensors", "--student", "wrn-10-1"], vec!["missing.safetensors", "no such file"]),
        (vec!["tli", "match", "--teacher", "t.safetensors", "--student", "alexnet"], vec!["--student", "alexnet"]),
        (vec!["tli", "match", "--teacher", "t.safetensors", "--student", "vgg11-bn-d16-p1"], vec!["vgg11-bn-d16-p1", "too small"]),
        (vec!["tli", "match", "--teacher", "t.safetensors", "--teacher-arch", "resnet-cifar-8-w4", "--teacher-input", "1x8x8", "--teacher-classes", "10", "--student", "wrn-10-1"], vec!["t.safetensors", "conv1.weight"]),
        (vec!["tli", "scores", "--archs", "wrn-10-1,vgg11-bn", "--input", "1x8x8"], vec!["vgg11-bn", "too small"]),
    ] {
        let out = graft(dir.path(), &args);
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        for n in needles {
            assert!(stderr.contains(n), "{args:?}: '{n}' missing from: {stderr}");
        }
    }
    let mut after = listing(dir.path());
    after.retain(|n| n != "junk.safetensors");
    assert_eq!(before, after, "tli commands wrote files");
}

#[test]
fn the_source_cache_is_named_when_results_go_elsewhere_and_can_be_shared() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), &tiny_suite("[0]", DIGITS_5TO9));
    let s = suite.to_str().unwrap();
    let out = graft(dir.path(), &["run", s, "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(dir.path().join("results/sources/d04.safetensors").exists());
    // Elsewhere: the existing cache is named, and not silently reused or overwritten.
    let out = graft(dir.path(), &["run", s, "--results", "other/r.jsonl", "--no-progress"]);
    let (_, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("results/sources/d04.safetensors exists") && err.contains("--sources"), "{err}");
    // Shared on purpose: no pretraining.
    let out = graft(dir.path(), &["run", s, "--results", "third/r.jsonl", "--sources", "results/sources", "--no-progress"]);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("pretraining") && stdout.contains("reusing results/sources/d04.safetensors"), "{stdout}\n{err}");
    assert!(!dir.path().join("third/sources").exists());
}

#[test]
fn without_a_terminal_each_epoch_is_a_log_line_and_quiet_prints_none() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), &tiny_suite("[0, 1]", DIGITS_5TO9));
    let s = suite.to_str().unwrap();
    let out = graft(dir.path(), &["run", s, "--no-progress"]);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("d04/digits-5to9/linear-probe/s0/df5087ec epoch 1/1  loss "), "{err}");
    assert!(err.contains("[2/2] d04/digits-5to9/linear-probe/s1/df5087ec  (suite ETA "), "{err}");
    assert!(stdout.contains("done d04/digits-5to9/linear-probe/s1"), "{stdout}");
    let out = graft(dir.path(), &["run", s, "--results", "q/r.jsonl", "-q"]);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains(" epoch ") && !err.contains("[1/2]") && !stdout.contains("done "), "{stdout}\n{err}");
    assert_eq!(read_lines(&dir.path().join("q/r.jsonl")).0.len(), 2);
}

#[test]
fn a_tap_or_conv_the_source_lacks_is_named_before_anything_is_trained() {
    let dir = tempfile::tempdir().unwrap();
    for (method, config, bad) in [
        ("snow", "taps = [\"stage1.block0\", \"stage9.block0\"]", "stage9.block0"),
        ("ksm", "layers = { only = [\"layer1.0.conv1\", \"layer7.0.conv1\"] }", "layer7.0.conv1"),
    ] {
        let body = tiny_suite("[0]", DIGITS_5TO9).replace(r#"methods = ["linear-probe"]"#, &format!(r#"methods = ["linear-probe", "{method}"]"#))
            + &format!("\n[method_configs.{method}]\n{config}\n");
        let suite = write_suite(dir.path(), &body);
        let out = graft(dir.path(), &["run", suite.to_str().unwrap(), "--no-progress"]);
        let (stdout, err) = text(&out);
        assert!(!out.status.success(), "{stdout}");
        assert!(err.contains(&format!("[method_configs.{method}]")) && err.contains(bad) && err.contains("resnet-cifar-8-w2"), "{err}");
        assert!(!err.contains("pretraining") && !dir.path().join("results/sources").exists(), "{err}");
    }
}
