//! Continual sequences: tasks learned one after another on one frozen source, every earlier task
//! evaluated again after each new one. The records go to `<results>.sequences.jsonl`; the
//! report shows final accuracy per task, forgetting, bytes per task and training time.

use crate::results::RunRecord;
use crate::report::{human_bytes, variant_labels};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Accuracy of one task's model on its test split, measured at one step of a sequence.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TaskAccuracy {
    /// Task name.
    pub task: String,
    /// Test accuracy in [0, 1].
    pub test_accuracy: f32,
    /// SHA-256 of the test logits' bytes: equal across steps when nothing was forgotten.
    pub logits_sha256: String,
}

/// One step of a continual sequence for one (source, method, seed).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SequenceRecord {
    /// `<source>/seq-<sequence>/<step>/<method>/s<seed>/<config hash>`.
    pub key: String,
    /// Suite name.
    pub suite: String,
    /// Sequence name.
    pub sequence: String,
    /// Source name.
    pub source: String,
    /// SHA-256 of the source checkpoint.
    pub source_hash: String,
    /// Method name.
    pub method: String,
    /// Seed.
    pub seed: u64,
    /// Config hash (as in the grid's run keys).
    pub config_hash: String,
    /// Position of the task learned at this step (from 0).
    pub step: usize,
    /// The task learned at this step.
    pub task: String,
    /// Every task learned so far, in order, evaluated after this step.
    pub accuracies: Vec<TaskAccuracy>,
    /// For a continual method, the delta this step fitted (relative to the results file's
    /// folder; absent at step 0, whose delta is its grid run's, and for other methods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_path: Option<PathBuf>,
    /// For a continual method, the seconds this step's fit took (absent for other methods,
    /// whose training is their grid runs').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_seconds: Option<f32>,
    /// `git rev-parse HEAD` of the sources, when available.
    pub git_commit: Option<String>,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
}


impl crate::results::Record for SequenceRecord {
    fn key(&self) -> &str {
        &self.key
    }

    fn check(&self) -> std::result::Result<(), String> {
        self.accuracies.iter().try_for_each(|a| crate::results::check_accuracy(&format!("accuracy of {}", a.task), a.test_accuracy))
    }
}

/// The sequences file next to a results file: `results/x.jsonl` → `results/x.sequences.jsonl`.
pub fn sequences_path(results: &Path) -> PathBuf {
    results.with_extension("sequences.jsonl")
}

/// The key of step `step` of `sequence` for a (source, method, seed, config hash).
pub fn step_key(source: &str, sequence: &str, step: usize, method: &str, seed: u64, config_hash: &str) -> String {
    format!("{source}/seq-{sequence}/{step}/{method}/s{seed}/{config_hash}")
}

/// Seconds until the validation accuracy first reached its final value (the whole training
/// time when there is no validation split).
/// Seconds and epochs (1-based, over every training phase) until the run's validation accuracy
/// first reached its final value; the whole run when there is no validation split.
fn to_final(r: &RunRecord) -> (f64, f64) {
    let whole = (r.train_seconds as f64, r.epochs.len() as f64);
    let Some(fin) = r.epochs.last().and_then(|e| e.val_acc) else { return whole };
    r.epochs
        .iter()
        .position(|e| e.val_acc.is_some_and(|a| a >= fin))
        .map_or(whole, |i| (r.epochs[i].elapsed_sec as f64, (i + 1) as f64))
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

fn mean_std(xs: &[f64]) -> String {
    let m = mean(xs);
    let sd = if xs.len() > 1 { (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt() } else { 0.0 };
    format!("{m:.2} ± {sd:.2}")
}

/// One (method, config) row of a sequence table, over seeds.
struct SequenceRow {
    final_acc: Vec<Vec<f64>>,
    forgetting: Vec<f64>,
    /// Per seed: the mean over every task but the last of (its accuracy after the last task −
    /// its accuracy just after it was learned), in points (Lopez-Paz & Ranzato's BWT).
    backward_transfer: Vec<f64>,
    /// (after step j, task i) → accuracy % per seed: the accuracy matrix.
    matrix: BTreeMap<(usize, usize), Vec<f64>>,
    identical: bool,
    bytes: Vec<f64>,
    train_s: Vec<f64>,
    to_final_s: Vec<f64>,
    to_final_epochs: Vec<f64>,
}

/// Markdown for every sequence in `seqs`, with bytes and times from the grid `runs`;
/// empty when there is none. `method_order` is the registry order.
pub fn render(seqs: &[SequenceRecord], runs: &[RunRecord], method_order: &[&str]) -> String {
    let mut latest: BTreeMap<&str, &SequenceRecord> = BTreeMap::new();
    for s in seqs {
        latest.insert(&s.key, s);
    }
    let run_of: BTreeMap<(&str, &str, &str, u64, &str), &RunRecord> =
        runs.iter().map(|r| ((r.source.as_str(), r.task.as_str(), r.method.as_str(), r.seed, r.config_hash.as_str()), r)).collect();
    // (sequence, source) → (method rank, method, config) → seed → steps.
    type Steps<'a> = BTreeMap<usize, &'a SequenceRecord>;
    let mut groups: BTreeMap<(&str, &str), BTreeMap<((usize, &str), &str), BTreeMap<u64, Steps>>> = BTreeMap::new();
    for s in latest.values() {
        let rank = method_order.iter().position(|m| *m == s.method).unwrap_or(method_order.len());
        groups
            .entry((s.sequence.as_str(), s.source.as_str()))
            .or_default()
            .entry(((rank, s.method.as_str()), s.config_hash.as_str()))
            .or_default()
            .entry(s.seed)
            .or_default()
            .insert(s.step, s);
    }
    let labels = variant_labels(runs);
    let mut out = String::new();
    for ((sequence, source), rows) in groups {
        // The task order: the longest sequence seen.
        let tasks: Vec<String> = rows
            .values()
            .flat_map(|seeds| seeds.values())
            .filter_map(|steps| steps.values().next_back())
            .max_by_key(|s| s.accuracies.len())
            .map(|s| s.accuracies.iter().map(|a| a.task.clone()).collect())
            .unwrap_or_default();
        let _ = writeln!(out, "## Continual sequence `{sequence}` on `{source}`\n");
        let _ = writeln!(
            out,
            "Tasks learned in order: {}. Test accuracy % of every task after the last one (mean ± std over seeds); \
             forgetting = the largest drop of any task from just after it was learned to the end, in points; \
             backward transfer = the mean over every task but the last of its accuracy at the end minus just after it \
             was learned, in points (negative: forgotten); \
             bytes stored per task and the ratio to fine-tune's; training seconds summed over the tasks, and until each \
             task's validation accuracy first reached its final value (seconds summed, epochs averaged over tasks: \
             unlike seconds, epochs do not depend on the machine's load). Complete (method, seed) sequences only.\n",
            tasks.join(" → ")
        );
        let mut table: Vec<(String, SequenceRow)> = Vec::new();
        for (((_, method), hash), seeds) in &rows {
            let mut row = SequenceRow { final_acc: vec![Vec::new(); tasks.len()], forgetting: vec![], backward_transfer: vec![], matrix: BTreeMap::new(), identical: true, bytes: vec![], train_s: vec![], to_final_s: vec![], to_final_epochs: vec![] };
            for (seed, steps) in seeds {
                let Some(last) = steps.get(&(tasks.len().saturating_sub(1))) else { continue };
                if steps.len() != tasks.len() || last.accuracies.len() != tasks.len() {
                    continue;
                }
                let mut worst = 0f64;
                let mut transfer = Vec::new();
                for (j, a) in last.accuracies.iter().enumerate() {
                    row.final_acc[j].push(a.test_accuracy as f64 * 100.0);
                    if let Some(at_j) = steps.get(&j).and_then(|s| s.accuracies.get(j)) {
                        worst = worst.max((at_j.test_accuracy as f64 - a.test_accuracy as f64) * 100.0);
                        row.identical &= at_j.logits_sha256 == a.logits_sha256;
                        if j + 1 < tasks.len() {
                            transfer.push((a.test_accuracy as f64 - at_j.test_accuracy as f64) * 100.0);
                        }
                    }
                    for (after, step) in steps {
                        if let Some(acc) = step.accuracies.get(j) {
                            row.matrix.entry((*after, j)).or_default().push(acc.test_accuracy as f64 * 100.0);
                        }
                    }
                    // A continual method's later steps trained on their own (step 0 is its grid run).
                    if let Some(secs) = steps.get(&j).and_then(|s| s.train_seconds).filter(|_| j > 0) {
                        row.train_s.push(secs as f64);
                        row.to_final_s.push(secs as f64);
                        if let Some(r) = run_of.get(&(source, a.task.as_str(), *method, *seed, *hash)) {
                            row.bytes.push(r.footprint.stored_bytes as f64);
                            row.to_final_epochs.push(r.epochs.len() as f64);
                        }
                    } else if let Some(r) = run_of.get(&(source, a.task.as_str(), *method, *seed, *hash)) {
                        row.bytes.push(r.footprint.stored_bytes as f64);
                        row.train_s.push(r.train_seconds as f64);
                        let (secs, epochs) = to_final(r);
                        row.to_final_s.push(secs);
                        row.to_final_epochs.push(epochs);
                    }
                }
                row.forgetting.push(worst);
                row.backward_transfer.push(mean(&transfer));
            }
            if !row.forgetting.is_empty() {
                let label = labels.get(&(method.to_string(), hash.to_string())).cloned().unwrap_or_else(|| method.to_string());
                table.push((label, row));
            }
        }
        let ft_bytes = table.iter().find(|(l, _)| l == "fine-tune").map(|(_, r)| mean(&r.bytes));
        let _ = writeln!(
            out,
            "| method | {} | mean | forgetting | backward transfer | identical logits | bytes/task | × fine-tune | train s | s to final acc | epochs to final | seeds |",
            tasks.join(" | ")
        );
        let _ = writeln!(out, "|---|{}---:|---:|---:|---|---:|---:|---:|---:|---:|---:|", "---:|".repeat(tasks.len()));
        for (label, r) in &table {
            let per_task: Vec<String> = r.final_acc.iter().map(|a| mean_std(a)).collect();
            let means: Vec<f64> = (0..r.forgetting.len()).map(|s| mean(&r.final_acc.iter().map(|a| a[s]).collect::<Vec<_>>())).collect();
            let seeds = r.forgetting.len() as f64;
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {:.2} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {} |",
                per_task.join(" | "),
                mean_std(&means),
                r.forgetting.iter().cloned().fold(0.0, f64::max),
                mean_std(&r.backward_transfer),
                if r.identical { "yes" } else { "no" },
                human_bytes(mean(&r.bytes)),
                ft_bytes.map_or("–".into(), |f| format!("{:.4}", mean(&r.bytes) / f)),
                r.train_s.iter().sum::<f64>() / seeds,
                r.to_final_s.iter().sum::<f64>() / seeds,
                mean(&r.to_final_epochs),
                r.forgetting.len()
            );
        }
        let _ = writeln!(out);
        write_matrices(&mut out, &tasks, &table);
    }
    out
}

/// The accuracy matrices of a sequence: test accuracy % of task i (columns) after learning
/// task j (rows), mean over seeds, one block of rows per method.
fn write_matrices(out: &mut String, tasks: &[String], table: &[(String, SequenceRow)]) {
    let _ = writeln!(out, "Accuracy matrix: test accuracy % of each task (columns) after learning the task of each row (mean over seeds).\n");
    let _ = writeln!(out, "| method | after | {} |", tasks.join(" | "));
    let _ = writeln!(out, "|---|---|{}", "---:|".repeat(tasks.len()));
    for (label, r) in table {
        for (j, after) in tasks.iter().enumerate() {
            let cells: Vec<String> = (0..tasks.len())
                .map(|i| r.matrix.get(&(j, i)).filter(|_| i <= j).map_or("".to_string(), |v| format!("{:.2}", mean(v))))
                .collect();
            let _ = writeln!(out, "| {} | {after} | {} |", if j == 0 { label.as_str() } else { "" }, cells.join(" | "));
        }
    }
    let _ = writeln!(out);
}

/// The accuracy matrices of every (sequence, source, method, config) in `seqs`: for the plots.
/// Rows: after learning task j; columns: task i (`None` above the diagonal or where missing).
pub fn accuracy_matrices(seqs: &[SequenceRecord]) -> Vec<AccuracyMatrix> {
    let mut latest: BTreeMap<&str, &SequenceRecord> = BTreeMap::new();
    for s in seqs {
        latest.insert(&s.key, s);
    }
    // (sequence, source, method, config) → (after, task) → accuracies over seeds.
    type Cells = BTreeMap<(usize, usize), Vec<f64>>;
    let mut groups: BTreeMap<(&str, &str, &str, &str), (Vec<String>, Cells)> = BTreeMap::new();
    for s in latest.values() {
        let (tasks, cells) = groups.entry((&s.sequence, &s.source, &s.method, &s.config_hash)).or_default();
        if s.accuracies.len() > tasks.len() {
            *tasks = s.accuracies.iter().map(|a| a.task.clone()).collect();
        }
        for (i, a) in s.accuracies.iter().enumerate() {
            cells.entry((s.step, i)).or_default().push(a.test_accuracy as f64 * 100.0);
        }
    }
    groups
        .into_iter()
        .map(|((sequence, source, method, config_hash), (tasks, cells))| AccuracyMatrix {
            sequence: sequence.to_string(),
            source: source.to_string(),
            method: method.to_string(),
            config_hash: config_hash.to_string(),
            values: (0..tasks.len()).map(|j| (0..tasks.len()).map(|i| cells.get(&(j, i)).map(|v| mean(v))).collect()).collect(),
            tasks,
        })
        .collect()
}

/// One method's accuracy matrix over a sequence (see [`accuracy_matrices`]).
#[derive(Clone, Debug, PartialEq)]
pub struct AccuracyMatrix {
    /// Sequence name.
    pub sequence: String,
    /// Source name.
    pub source: String,
    /// Method name.
    pub method: String,
    /// Config hash.
    pub config_hash: String,
    /// Tasks in learning order.
    pub tasks: Vec<String>,
    /// `values[j][i]`: accuracy % of task i after learning task j, mean over seeds.
    pub values: Vec<Vec<Option<f64>>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::rec;

    fn step(step: usize, accs: &[f32]) -> SequenceRecord {
        let names = ["a", "b", "c"];
        SequenceRecord {
            key: format!("s/seq-q/{step}/m/s0/h"),
            suite: "x".into(),
            sequence: "q".into(),
            source: "s".into(),
            source_hash: "0".into(),
            method: "m".into(),
            seed: 0,
            config_hash: "h".into(),
            step,
            task: names[step].into(),
            accuracies: accs
                .iter()
                .enumerate()
                .map(|(i, &a)| TaskAccuracy { task: names[i].into(), test_accuracy: a, logits_sha256: format!("{i}-{a}") })
                .collect(),
            delta_path: None,
            train_seconds: None,
            git_commit: None,
            timestamp: 0,
        }
    }

    #[test]
    fn backward_transfer_and_the_accuracy_matrix_are_read_off_the_steps() {
        // Task a: 80 when learned, 70 after b, 60 after c; b: 90 then 85; c: 95.
        let seqs = [step(0, &[0.8]), step(1, &[0.7, 0.9]), step(2, &[0.6, 0.85, 0.95])];
        let text = render(&seqs, &[], &["m"]);
        // BWT = ((60 − 80) + (85 − 90)) / 2 = −12.5; forgetting = the largest drop, 20.
        let row = text.lines().find(|l| l.starts_with("| m | 60.00")).expect(&text);
        assert!(row.contains("| 20.00 | -12.50 ± 0.00 | no |"), "{row}");
        for want in ["| m | a | 80.00 |  |  |", "|  | b | 70.00 | 90.00 |  |", "|  | c | 60.00 | 85.00 | 95.00 |"] {
            assert!(text.contains(want), "missing '{want}' in\n{text}");
        }
        let m = accuracy_matrices(&seqs);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].tasks, ["a", "b", "c"]);
        let r = |v: Option<f64>| v.map(|x| (x * 100.0).round() / 100.0);
        let values: Vec<Vec<Option<f64>>> = m[0].values.iter().map(|row| row.iter().map(|&v| r(v)).collect()).collect();
        assert_eq!(values, vec![vec![Some(80.0), None, None], vec![Some(70.0), Some(90.0), None], vec![Some(60.0), Some(85.0), Some(95.0)]]);
    }

    #[test]
    fn time_to_final_is_the_first_epoch_that_reaches_the_final_validation_accuracy() {
        let mut r = rec("ksm", 0, 0.9);
        assert_eq!(to_final(&r), (2.0, 4.0), "no validation split: the whole run");
        for (e, acc) in r.epochs.iter_mut().zip([0.5, 0.8, 0.7, 0.8]) {
            e.val_acc = Some(acc);
        }
        assert_eq!(to_final(&r), (0.5, 2.0));
        r.epochs[3].val_acc = Some(0.9);
        assert_eq!(to_final(&r), (1.0, 4.0));
    }
}
