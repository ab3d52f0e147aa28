//! Results files: one JSON object per line, one line per finished run, appended and fsynced.
//!
//! Reading tolerates damage: a line that does not parse (e.g. cut short when a run was killed
//! mid-write) is reported with its line number and skipped; the other lines are kept. The writer
//! starts on a fresh line when the file does not end with a newline.

use crate::candidates::CandidateTag;
use anyhow::{Context, Result};
use graft_core::train::{CurvePoint, EpochMetrics};
use std::collections::BTreeMap;
use graft_core::Footprint;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// One finished run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RunRecord {
    /// `<source>/<task>/<method>/s<seed>/<config hash>`: unique per run; resume skips known keys.
    pub key: String,
    /// Suite name.
    pub suite: String,
    /// Source name (from the suite).
    pub source: String,
    /// SHA-256 of the source checkpoint.
    pub source_hash: String,
    /// Backbone id, e.g. `resnet-cifar-8-w16`.
    pub backbone: String,
    /// Task name.
    pub task: String,
    /// How the task was derived (dataset, classes, split, domain, fit, sizes, seed).
    pub task_provenance: String,
    /// Number of classes of the task.
    pub num_classes: usize,
    /// Training images.
    pub train_size: usize,
    /// Test images the accuracy is measured on.
    pub test_size: usize,
    /// Registered method name.
    pub method: String,
    /// Seed of the run.
    pub seed: u64,
    /// The method's full config (defaults filled in), as JSON.
    pub config: serde_json::Value,
    /// First 8 hex digits of the SHA-256 of `config` (compact JSON, keys sorted).
    pub config_hash: String,
    /// Accuracy on the task's test split, in [0, 1].
    pub test_accuracy: f32,
    /// Best validation accuracy over the epochs (null when there was no validation split).
    pub best_val_accuracy: Option<f32>,
    /// Validation accuracy of the model the run returned, what the selection protocol compares
    /// (absent without a validation split, and in records written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f32>,
    /// The candidate combination the run tried, and where the protocol selects among them
    /// (absent for a method without `[candidates]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<CandidateTag>,
    /// Cost figures of the task model.
    pub footprint: Footprint,
    /// Wall-clock seconds of `fit`.
    pub train_seconds: f32,
    /// Per-epoch metrics reported by the trainer (every training phase of the method, in order).
    pub epochs: Vec<EpochMetrics>,
    /// Validation accuracy against optimiser step (the suite's `eval_every_steps`); empty when
    /// not asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub curve: Vec<CurvePoint>,
    /// Method-specific figures (`TaskModel::metrics`, e.g. TLI's `tli_score`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    /// Whether the saved-and-reloaded delta gives exactly the fitted model's test logits.
    pub reload_identical: bool,
    /// Largest absolute difference between fitted and reloaded test logits (null if the reload
    /// failed).
    pub reload_max_abs_diff: Option<f32>,
    /// Why the reload failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_error: Option<String>,
    /// Where the delta was saved, relative to the results file's folder (so a results folder can
    /// be moved or copied whole); records written before that hold a path relative to the
    /// working directory ([`RunRecord::delta_file`] reads both).
    pub delta_path: PathBuf,
    /// The grid entry's source-and-task settings fingerprint (absent in records written before
    /// it was recorded, which resume cannot check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings_fingerprint: Option<String>,
    /// Where the run sits on a metric curve of the suite (`sample_fractions`, `label_noise`):
    /// the task it was derived from and the curve's x value; absent for a task as declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axis: Option<CurvePosition>,
    /// graft version of the binary.
    pub graft_version: String,
    /// `git rev-parse HEAD` of the sources, when available.
    pub git_commit: Option<String>,
    /// Seconds since the Unix epoch when the run finished.
    pub timestamp: u64,
}

/// Which metric curve a derived task belongs to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CurveKind {
    /// Accuracy against the fraction of the training set kept (the training-samples metric).
    SampleFraction,
    /// Accuracy on clean test labels against the rate of symmetric training-label noise.
    LabelNoise,
}

/// A run's place on a metric curve: the declared task it derives from, the curve, the x value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CurvePosition {
    /// The task as declared in the suite, before the curve's change.
    pub base_task: String,
    /// Which curve.
    pub kind: CurveKind,
    /// The x value: the kept fraction in (0, 1], or the noise rate in [0, 1).
    pub value: f64,
}

impl RunRecord {
    /// FLOPs per training image of an optimiser step, measured by the trainer (mean over the
    /// epochs that recorded it; `None` when none did: a method that does not train through
    /// graft's trainer, e.g. Pool of Experts' assembly, or a record written before it was measured).
    pub fn train_flops_per_image(&self) -> Option<f64> {
        let v: Vec<f64> = self.epochs.iter().filter_map(|e| e.train_flops_per_image).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// The delta's file for a record read from `results` (the JSONL file): `delta_path` under the
    /// results file's folder; for records that hold a path relative to the working directory
    /// (written before paths were made relative to the results file) that path when only it
    /// exists.
    pub fn delta_file(&self, results: &Path) -> PathBuf {
        if self.delta_path.is_absolute() {
            return self.delta_path.clone();
        }
        let dir = results.parent().unwrap_or_else(|| Path::new(""));
        let beside = dir.join(&self.delta_path);
        if !beside.exists() && self.delta_path.exists() {
            return self.delta_path.clone();
        }
        beside
    }
}

/// A line of a results file that could not be read.
#[derive(Clone, Debug, PartialEq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    /// Why it was rejected.
    pub error: String,
}

/// The readable content of a results file.
#[derive(Clone, Debug, Default)]
pub struct ResultsFile {
    /// Records in file order.
    pub records: Vec<RunRecord>,
    /// Lines that were skipped.
    pub bad_lines: Vec<BadLine>,
}

/// Reads a results file; a missing file is empty. Blank lines are ignored; unparseable lines are
/// collected in `bad_lines`.
pub fn read(path: &Path) -> Result<ResultsFile> {
    let (records, bad_lines) = read_lines(path)?;
    Ok(ResultsFile { records, bad_lines })
}

/// A record of a JSON-lines results file: its key, and what a line must satisfy beyond parsing.
pub trait Record: DeserializeOwned {
    /// The record's unique key in its file.
    fn key(&self) -> &str;
    /// Why the record cannot be right (an accuracy outside [0, 1], say), if it cannot.
    fn check(&self) -> std::result::Result<(), String>;
}

/// Checks that accuracy `name` is a number in [0, 1].
pub fn check_accuracy(name: &str, value: f32) -> std::result::Result<(), String> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(format!("{name} is {value}, not a fraction in [0, 1]"))
    }
}

impl Record for RunRecord {
    fn key(&self) -> &str {
        &self.key
    }

    fn check(&self) -> std::result::Result<(), String> {
        check_accuracy("test_accuracy", self.test_accuracy)?;
        self.best_val_accuracy.map_or(Ok(()), |a| check_accuracy("best_val_accuracy", a))
    }
}

/// The records of type `T` of a JSON-lines file (a missing file has none) and the lines that
/// are skipped, as [`parse_lines`] reads them.
pub fn read_lines<T: Record>(path: &Path) -> Result<(Vec<T>, Vec<BadLine>)> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(parse_lines(&String::from_utf8_lossy(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Vec::new(), Vec::new())),
        Err(e) => Err(e).with_context(|| format!("cannot read results {}", path.display())),
    }
}

/// The records of type `T` in JSON-lines `text` and the lines that are skipped: those that do
/// not parse as one, fail its check, or repeat an earlier line's key (the first is kept, as
/// resuming found it). Blank lines are ignored.
pub fn parse_lines<T: Record>(text: &str) -> (Vec<T>, Vec<BadLine>) {
    let (mut records, mut bad) = (Vec::new(), Vec::new());
    let mut first_line: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str::<T>(line).map_err(|e| e.to_string()).and_then(|r: T| r.check().map(|_| r));
        match record {
            Ok(r) => match first_line.get(r.key()) {
                Some(first) => bad.push(BadLine { line: i + 1, error: format!("repeats key '{}' of line {first}; the first is kept", r.key()) }),
                None => {
                    first_line.insert(r.key().to_string(), i + 1);
                    records.push(r);
                }
            },
            Err(e) => bad.push(BadLine { line: i + 1, error: e }),
        }
    }
    (records, bad)
}

/// Reads a results file and prints a warning for every skipped line.
pub fn read_reporting(path: &Path) -> Result<ResultsFile> {
    let file = read(path)?;
    warn_bad_lines(path, &file.bad_lines);
    Ok(file)
}

/// [`read_lines`], printing a warning for every skipped line.
pub fn read_lines_reporting<T: Record>(path: &Path) -> Result<(Vec<T>, Vec<BadLine>)> {
    let (records, bad_lines) = read_lines(path)?;
    warn_bad_lines(path, &bad_lines);
    Ok((records, bad_lines))
}

fn warn_bad_lines(path: &Path, bad_lines: &[BadLine]) {
    for bad in bad_lines {
        eprintln!(
            "warning: {}:{}: skipping unreadable line ({})",
            path.display(),
            bad.line,
            bad.error
        );
    }
}

/// Appends records to a results file, one line each, flushed and fsynced.
pub struct ResultsWriter {
    file: File,
    path: PathBuf,
}

impl ResultsWriter {
    /// Opens `path` for appending (creating it and its folder); when the file's last byte is not
    /// a newline (a line cut short), a newline is written first so the next record starts on a
    /// fresh line.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .with_context(|| format!("cannot open results {} for appending", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("cannot stat {}", path.display()))?
            .len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if last[0] != b'\n' {
                file.write_all(b"\n")
                    .with_context(|| format!("cannot write {}", path.display()))?;
                file.sync_data()?;
            }
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Writes `record` as one line (a single write), then flushes and fsyncs.
    pub fn append<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let mut line = serde_json::to_string(record).context("cannot serialise a run record")?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .and_then(|_| self.file.sync_all())
            .with_context(|| format!("cannot append to {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str) -> RunRecord {
        RunRecord {
            key: key.into(),
            suite: "s".into(),
            source: "src".into(),
            source_hash: "ab".into(),
            backbone: "resnet-cifar-8-w2".into(),
            task: "t".into(),
            task_provenance: "p".into(),
            num_classes: 2,
            train_size: 10,
            test_size: 5,
            method: "m".into(),
            seed: 0,
            config: serde_json::json!({"a": 1}),
            config_hash: "12345678".into(),
            test_accuracy: 0.5,
            best_val_accuracy: None,
            val_accuracy: None,
            candidate: None,
            footprint: Footprint::default(),
            train_seconds: 1.0,
            epochs: vec![],
            curve: vec![],
            metrics: BTreeMap::new(),
            reload_identical: true,
            reload_max_abs_diff: Some(0.0),
            reload_error: None,
            delta_path: "d".into(),
            settings_fingerprint: None,
            axis: None,
            graft_version: "0".into(),
            git_commit: None,
            timestamp: 1,
        }
    }

    #[test]
    fn truncated_line_is_skipped_and_next_append_starts_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let mut w = ResultsWriter::open(&path).unwrap();
        w.append(&record("a")).unwrap();
        w.append(&record("b")).unwrap();
        drop(w);
        // Cut the last line in the middle.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 20]).unwrap();
        let f = read(&path).unwrap();
        assert_eq!(f.records.len(), 1);
        assert_eq!(f.bad_lines.len(), 1);
        assert_eq!(f.bad_lines[0].line, 2);
        let mut w = ResultsWriter::open(&path).unwrap();
        w.append(&record("c")).unwrap();
        let f = read(&path).unwrap();
        assert_eq!(
            f.records.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
        assert_eq!(f.bad_lines.len(), 1);
    }

    #[test]
    fn an_impossible_accuracy_and_a_repeated_key_are_skipped_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let mut w = ResultsWriter::open(&path).unwrap();
        w.append(&record("a")).unwrap();
        w.append(&RunRecord { test_accuracy: 7.5, ..record("b") }).unwrap();
        w.append(&RunRecord { test_accuracy: 0.25, ..record("a") }).unwrap();
        w.append(&RunRecord { best_val_accuracy: Some(-0.1), ..record("c") }).unwrap();
        drop(w);
        let f = read(&path).unwrap();
        assert_eq!(f.records.iter().map(|r| (r.key.as_str(), r.test_accuracy)).collect::<Vec<_>>(), [("a", 0.5)]);
        let errors: Vec<(usize, &str)> = f.bad_lines.iter().map(|b| (b.line, b.error.as_str())).collect();
        assert_eq!(
            errors,
            [
                (2, "test_accuracy is 7.5, not a fraction in [0, 1]"),
                (3, "repeats key 'a' of line 1; the first is kept"),
                (4, "best_val_accuracy is -0.1, not a fraction in [0, 1]"),
            ]
        );
    }

    #[test]
    fn missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let f = read(&dir.path().join("none.jsonl")).unwrap();
        assert!(f.records.is_empty() && f.bad_lines.is_empty());
    }
}
