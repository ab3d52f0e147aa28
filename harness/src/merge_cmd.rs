//! `graft merge OUT IN...`: one results file from several, every run once (the shards of an
//! array job, `graft run --shard i/n --results shard-i.jsonl`, become one file to report on and
//! to resume).
//!
//! Each file is read with the results reader (a damaged line is skipped with a warning, as
//! everywhere). A run key found in two files must hold the same record in both, and one copy is
//! kept; two different records under one key (the same run made twice, or two suites naming
//! different runs alike) stop the merge before anything is written, naming the key, both files
//! and the fields that differ. OUT's own records, when it exists, are kept: merging again, or
//! adding a late shard, updates it. The continual-sequence steps of each file's
//! `<file>.sequences.jsonl` are merged the same way into OUT's.
//!
//! Deltas stay where they are: a record's `delta_path` is relative to its results file's folder
//! ([`RunRecord::delta_file`]), so every input must be in OUT's folder, as the shards of one
//! array job are (they share its `deltas/` and `sources/`). An input elsewhere is refused,
//! naming the folder to copy it (with its `deltas/`) into; paths are never rewritten, so a
//! merged folder can still be moved whole.

use crate::cli::MergeArgs;
use crate::lock::ResultsLock;
use crate::results::{self, Record, RunRecord};
use crate::sequence::{sequences_path, SequenceRecord};
use anyhow::{bail, Context, Result};
use graft_core::checkpoint::{abbrev, write_atomic};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// One key held by two files with different records.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "{what} '{key}' is in both {} and {} with different records (they differ in {}): the run was made twice, or two \
     suites name different runs alike; delete one of the two lines, or keep the files apart",
    first.display(),
    second.display(),
    fields.join(", ")
)]
pub struct KeyConflict {
    /// `run` or `sequence step`.
    pub what: &'static str,
    /// The key.
    pub key: String,
    /// The file the key was first read from.
    pub first: PathBuf,
    /// The file holding the other record.
    pub second: PathBuf,
    /// The top-level fields whose values differ.
    pub fields: Vec<String>,
}

/// The records of several files, each key once.
#[derive(Debug)]
pub struct Merged<T> {
    /// First occurrence of every key, in file order.
    pub records: Vec<T>,
    /// Identical copies left out.
    pub duplicates: usize,
}

/// Merges `files` (each a path and its records, in order): keeps the first record of every key,
/// drops identical copies, and refuses a key whose records differ.
pub fn merge_records<T: Record + Serialize + PartialEq>(what: &'static str, files: Vec<(PathBuf, Vec<T>)>) -> Result<Merged<T>, KeyConflict> {
    let mut records: Vec<T> = Vec::new();
    let mut origin: Vec<usize> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut duplicates = 0;
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    for (fi, (_, list)) in files.into_iter().enumerate() {
        for r in list {
            match index.get(r.key()) {
                Some(&i) if records[i] == r => duplicates += 1,
                Some(&i) => {
                    return Err(KeyConflict {
                        what,
                        key: r.key().to_string(),
                        first: paths[origin[i]].clone(),
                        second: paths[fi].clone(),
                        fields: differing_fields(&records[i], &r),
                    })
                }
                None => {
                    index.insert(r.key().to_string(), records.len());
                    records.push(r);
                    origin.push(fi);
                }
            }
        }
    }
    Ok(Merged { records, duplicates })
}

/// The top-level JSON fields in which `a` and `b` differ, sorted.
fn differing_fields<T: Serialize>(a: &T, b: &T) -> Vec<String> {
    let (a, b) = (serde_json::to_value(a).unwrap_or_default(), serde_json::to_value(b).unwrap_or_default());
    let empty = serde_json::Map::new();
    let (a, b) = (a.as_object().unwrap_or(&empty), b.as_object().unwrap_or(&empty));
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names.into_iter().filter(|k| a.get(*k) != b.get(*k)).cloned().collect()
}

/// What [`merge`] did.
#[derive(Debug, Default)]
pub struct MergeSummary {
    /// Files read (OUT first when it existed).
    pub files: usize,
    /// Runs written.
    pub runs: usize,
    /// Identical run records left out.
    pub duplicate_runs: usize,
    /// Sequence steps written.
    pub steps: usize,
    /// Identical sequence steps left out.
    pub duplicate_steps: usize,
    /// Merged runs whose delta file is not there.
    pub missing_deltas: Vec<PathBuf>,
    /// Source names whose runs were made with more than one source checkpoint, with the hashes.
    pub mixed_sources: BTreeMap<String, BTreeSet<String>>,
}

/// The folder a file is in (`.` for a bare name).
fn folder(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Merges the results files `inputs` (and OUT's own records, when it exists) into `out`, and
/// their sequences files into OUT's; writes nothing when a key conflicts or an input is refused.
pub fn merge(out: &Path, inputs: &[PathBuf]) -> Result<MergeSummary> {
    if inputs.is_empty() {
        bail!("nothing to merge: give the results files after {}", out.display());
    }
    let out_dir = folder(out);
    let out_dir_real = out_dir.canonicalize().ok();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    if out.exists() {
        seen.insert(out.canonicalize().with_context(|| format!("resolving {}", out.display()))?);
        files.push(out.to_path_buf());
    }
    for input in inputs {
        if input.to_string_lossy().ends_with(".sequences.jsonl") {
            bail!(
                "{} is a sequences file: give its results file ({}), whose sequences are merged with it",
                input.display(),
                input.to_string_lossy().trim_end_matches(".sequences.jsonl").to_string() + ".jsonl"
            );
        }
        if !input.is_file() {
            bail!("results file {} does not exist", input.display());
        }
        let real = input.canonicalize().with_context(|| format!("resolving {}", input.display()))?;
        if out_dir_real.as_deref() != real.parent() {
            bail!(
                "{} is not in {}, the folder of {}: records name their deltas relative to their results file's folder, so \
                 every input must be beside the merged file. Merge into that folder, or copy {} with its deltas/ (and \
                 sources/) into {} first",
                input.display(),
                out_dir.display(),
                out.display(),
                input.display(),
                out_dir.display()
            );
        }
        if seen.insert(real) {
            files.push(input.clone());
        }
    }
    // Nothing may append to OUT while it is rewritten, and a shard still running would leave
    // its last runs out: every file is locked as a whole-suite run locks it.
    let mut locks = Vec::new();
    if !out.exists() {
        locks.push(ResultsLock::acquire(out, false)?);
    }
    for f in &files {
        locks.push(ResultsLock::acquire(f, false)?);
    }

    let mut runs = Vec::new();
    let mut steps = Vec::new();
    for f in &files {
        runs.push((f.clone(), results::read_reporting(f)?.records));
        let seq = sequences_path(f);
        steps.push((seq.clone(), results::read_lines_reporting::<SequenceRecord>(&seq)?.0));
    }
    let runs = merge_records::<RunRecord>("run", runs)?;
    let steps = merge_records::<SequenceRecord>("sequence step", steps)?;

    let mut summary = MergeSummary { files: files.len(), ..MergeSummary::default() };
    for r in &runs.records {
        summary.mixed_sources.entry(r.source.clone()).or_default().insert(r.source_hash.clone());
        let delta = r.delta_file(out);
        if !delta.exists() {
            summary.missing_deltas.push(delta);
        }
    }
    summary.mixed_sources.retain(|_, hashes| hashes.len() > 1);
    write_atomic(out, &lines(&runs.records)?).with_context(|| format!("writing {}", out.display()))?;
    let out_steps = sequences_path(out);
    if !steps.records.is_empty() || out_steps.exists() {
        write_atomic(&out_steps, &lines(&steps.records)?).with_context(|| format!("writing {}", out_steps.display()))?;
    }
    summary.runs = runs.records.len();
    summary.duplicate_runs = runs.duplicates;
    summary.steps = steps.records.len();
    summary.duplicate_steps = steps.duplicates;
    drop(locks);
    Ok(summary)
}

/// One JSON line per record.
fn lines<T: Serialize>(records: &[T]) -> Result<Vec<u8>> {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).context("cannot serialise a record")?);
        text.push('\n');
    }
    Ok(text.into_bytes())
}

/// `graft merge`: merges, then says what it wrote and warns about what cannot be used.
pub fn run(args: &MergeArgs) -> Result<()> {
    let s = merge(&args.out, &args.inputs)?;
    println!(
        "merged {} runs from {} files into {} ({} identical copies kept once)",
        s.runs,
        s.files,
        args.out.display(),
        s.duplicate_runs
    );
    if s.steps > 0 {
        println!(
            "merged {} sequence steps into {} ({} identical copies kept once)",
            s.steps,
            sequences_path(&args.out).display(),
            s.duplicate_steps
        );
    }
    if let Some(first) = s.missing_deltas.first() {
        eprintln!(
            "warning: {} merged runs have no delta file (first: {}); the report reads them, but their task models \
             cannot be reloaded (predict, export, sequences) until the deltas are copied there",
            s.missing_deltas.len(),
            first.display()
        );
    }
    for (source, hashes) in &s.mixed_sources {
        let short: Vec<&str> = hashes.iter().map(|h| abbrev(h, 12)).collect();
        eprintln!(
            "warning: the runs of source '{source}' were made with {} different checkpoints ({}): the shards pretrained \
             it separately and got different bytes (different CPUs?); pretrain it once before the shards start \
             (docs/scaling.md)",
            hashes.len(),
            short.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use graft_core::Footprint;

    fn record(key: &str, acc: f32) -> RunRecord {
        serde_json::from_value(serde_json::json!({
            "key": key, "suite": "s", "source": "src", "source_hash": "ab", "backbone": "resnet-cifar-8-w2",
            "task": "t", "task_provenance": "p", "num_classes": 2, "train_size": 10, "test_size": 5,
            "method": "m", "seed": 0, "config": {"a": 1}, "config_hash": "12345678", "test_accuracy": acc,
            "best_val_accuracy": null, "footprint": Footprint::default(), "train_seconds": 1.0, "epochs": [],
            "reload_identical": true, "reload_max_abs_diff": 0.0, "delta_path": format!("deltas/{key}.safetensors"),
            "graft_version": "0", "git_commit": null, "timestamp": 1
        }))
        .expect("a complete record")
    }

    fn write(path: &Path, records: &[RunRecord]) {
        std::fs::write(path, lines(records).unwrap()).unwrap();
    }

    fn keys(path: &Path) -> Vec<(String, f32)> {
        results::read(path).unwrap().records.into_iter().map(|r| (r.key, r.test_accuracy)).collect()
    }

    #[test]
    fn identical_copies_are_kept_once_and_different_records_name_key_files_and_fields() {
        let a = PathBuf::from("a.jsonl");
        let b = PathBuf::from("b.jsonl");
        let m = merge_records("run", vec![(a.clone(), vec![record("x", 0.5), record("y", 0.25)]), (b.clone(), vec![record("y", 0.25), record("z", 1.0)])])
            .unwrap();
        assert_eq!(m.records.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), ["x", "y", "z"]);
        assert_eq!(m.duplicates, 1);

        let remade = RunRecord { timestamp: 2, ..record("y", 0.75) };
        let err = merge_records("run", vec![(a.clone(), vec![record("x", 0.5), record("y", 0.25)]), (b.clone(), vec![remade])]).unwrap_err();
        assert_eq!(
            err,
            KeyConflict { what: "run", key: "y".into(), first: a, second: b, fields: vec!["test_accuracy".into(), "timestamp".into()] }
        );
        let msg = err.to_string();
        assert!(msg.contains("run 'y' is in both a.jsonl and b.jsonl") && msg.contains("differ in test_accuracy, timestamp"), "{msg}");
    }

    #[test]
    fn shards_merge_into_their_folder_keeping_out_and_writing_again_gives_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let (s0, s1, out) = (dir.path().join("shard-0.jsonl"), dir.path().join("shard-1.jsonl"), dir.path().join("merged.jsonl"));
        write(&s0, &[record("a", 0.5), record("c", 0.125)]);
        write(&s1, &[record("b", 0.25)]);
        let s = merge(&out, &[s0.clone(), s1.clone()]).unwrap();
        assert_eq!((s.files, s.runs, s.duplicate_runs, s.steps), (2, 3, 0, 0));
        assert_eq!(s.missing_deltas.len(), 3, "no delta files were written");
        assert!(s.mixed_sources.is_empty());
        let first = std::fs::read(&out).unwrap();
        assert_eq!(keys(&out), [("a".into(), 0.5), ("c".into(), 0.125), ("b".into(), 0.25)]);
        assert!(!sequences_path(&out).exists(), "no sequences, no sequences file");
        // Again, the same file listed twice: OUT's records are read first, every copy is identical.
        let s = merge(&out, &[s0.clone(), s1.clone(), s1.clone()]).unwrap();
        assert_eq!((s.files, s.runs, s.duplicate_runs), (3, 3, 3));
        assert_eq!(std::fs::read(&out).unwrap(), first);
        // A late shard is added to what OUT holds.
        let s2 = dir.path().join("shard-2.jsonl");
        write(&s2, &[RunRecord { source_hash: "cd".into(), ..record("d", 1.0) }]);
        let s = merge(&out, &[s2]).unwrap();
        assert_eq!(s.runs, 4);
        assert_eq!(s.mixed_sources["src"], BTreeSet::from(["ab".to_string(), "cd".to_string()]));
    }

    #[test]
    fn a_conflict_an_input_elsewhere_a_missing_input_or_a_sequences_file_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("merged.jsonl");
        let (s0, s1) = (dir.path().join("shard-0.jsonl"), dir.path().join("shard-1.jsonl"));
        write(&s0, &[record("a", 0.5)]);
        write(&s1, &[record("a", 0.75)]);
        let err = format!("{:#}", merge(&out, &[s0.clone(), s1.clone()]).unwrap_err());
        assert!(err.contains("run 'a' is in both") && err.contains("shard-0.jsonl") && err.contains("shard-1.jsonl"), "{err}");
        assert!(!out.exists());

        std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
        let other = dir.path().join("elsewhere/shard-9.jsonl");
        write(&other, &[record("b", 0.5)]);
        let err = format!("{:#}", merge(&out, &[s0.clone(), other]).unwrap_err());
        assert!(err.contains("elsewhere/shard-9.jsonl is not in") && err.contains("deltas/"), "{err}");
        let err = format!("{:#}", merge(&out, &[s0.clone(), dir.path().join("shard-7.jsonl")]).unwrap_err());
        assert!(err.contains("shard-7.jsonl does not exist"), "{err}");
        let err = format!("{:#}", merge(&out, &[dir.path().join("shard-0.sequences.jsonl")]).unwrap_err());
        assert!(err.contains("is a sequences file") && err.contains("shard-0.jsonl"), "{err}");
        assert!(!out.exists());
    }

    #[test]
    fn sequence_steps_are_merged_beside_the_merged_results() {
        let dir = tempfile::tempdir().unwrap();
        let (s0, s1, out) = (dir.path().join("shard-0.jsonl"), dir.path().join("shard-1.jsonl"), dir.path().join("merged.jsonl"));
        write(&s0, &[record("a", 0.5)]);
        write(&s1, &[record("b", 0.5)]);
        let step = |key: &str| -> SequenceRecord {
            serde_json::from_value(serde_json::json!({
                "key": key, "suite": "s", "sequence": "q", "source": "src", "source_hash": "ab", "method": "m",
                "seed": 0, "config_hash": "12345678", "step": 0, "task": "t",
                "accuracies": [{"task": "t", "test_accuracy": 0.5, "logits_sha256": "00"}], "git_commit": null, "timestamp": 1
            }))
            .unwrap()
        };
        std::fs::write(sequences_path(&s0), lines(&[step("q0"), step("q1")]).unwrap()).unwrap();
        std::fs::write(sequences_path(&s1), lines(&[step("q1")]).unwrap()).unwrap();
        let s = merge(&out, &[s0, s1]).unwrap();
        assert_eq!((s.runs, s.steps, s.duplicate_steps), (2, 2, 1));
        let (steps, bad) = results::read_lines::<SequenceRecord>(&sequences_path(&out)).unwrap();
        assert_eq!((steps.iter().map(|q| q.key.as_str()).collect::<Vec<_>>(), bad.len()), (vec!["q0", "q1"], 0));
    }
}
