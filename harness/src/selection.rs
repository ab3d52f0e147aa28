//! The selection protocol's choice (docs/protocol.md): among the runs of a method's candidate
//! settings, keep the setting with the best mean validation accuracy, once for the whole suite
//! or once per source × task cell, and drop the others' runs, so that test accuracy is reported
//! for the chosen setting alone.

use crate::candidates::SelectBy;
use crate::report::{mean_pm, mean_std};
use crate::results::RunRecord;
use std::collections::BTreeMap;

/// One candidate setting's validation figures.
#[derive(Clone, Debug, PartialEq)]
pub struct CandidateScore {
    /// The combination, e.g. `k=4, train.lr=0.001`.
    pub label: String,
    /// Its config hash.
    pub config_hash: String,
    /// Runs recorded.
    pub runs: usize,
    /// Mean and sample std of the validation accuracy over the runs, in %; NaN when a run has
    /// none.
    pub val: (f64, f64),
    /// Source × task cells where its mean validation accuracy is the best of the candidates
    /// (ties count for each).
    pub best_cells: usize,
    /// Whether it could be chosen: all its runs recorded, each with a validation accuracy.
    pub eligible: bool,
}

/// The choice for one method (and cell, with `select_by = "task"`).
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Suite name.
    pub suite: String,
    /// Method name.
    pub method: String,
    /// Where the choice was made.
    pub select_by: SelectBy,
    /// `(source, task)` with `select_by = "task"`.
    pub cell: Option<(String, String)>,
    /// Source × task cells the candidates ran on.
    pub cells: usize,
    /// Every candidate, in label order.
    pub candidates: Vec<CandidateScore>,
    /// The chosen candidate's config hash; `None` when none could be chosen.
    pub chosen: Option<String>,
    /// Why a candidate was not eligible or nothing was chosen.
    pub notes: Vec<String>,
    /// The chosen candidate paired with the eligible runner-up, run by run.
    pub paired: Option<Paired>,
}

/// The chosen candidate against the runner-up on the runs both made (same source, task and
/// seed): the differences of their validation accuracies. Pairing removes the spread between
/// cells and seeds, which dominates the spread of either candidate's own runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Paired {
    /// The runner-up's combination.
    pub runner_up: String,
    /// Pairs compared.
    pub n: usize,
    /// Mean and sample std of chosen − runner-up, in points.
    pub diff: (f64, f64),
}

impl Paired {
    /// Twice the standard error of the mean difference: a mean difference above it is a
    /// separation.
    pub fn bar(&self) -> f64 {
        2.0 * self.diff.1 / (self.n as f64).sqrt()
    }
}

/// The candidate with the highest mean validation accuracy (ties: the first).
fn best<'c>(candidates: impl Iterator<Item = &'c CandidateScore>) -> Option<&'c CandidateScore> {
    candidates.fold(None, |best, c| match best {
        Some(b) if b.val.0 >= c.val.0 => Some(b),
        _ => Some(c),
    })
}

/// `chosen` − `other` per (source, task, seed) both ran; `None` with fewer than two pairs.
fn pair(runs: &[&RunRecord], chosen: &CandidateScore, other: &CandidateScore) -> Option<Paired> {
    let key = |r: &RunRecord| (r.source.clone(), r.task.clone(), r.seed);
    let theirs: BTreeMap<_, f64> = runs
        .iter()
        .filter(|r| r.config_hash == other.config_hash)
        .filter_map(|r| Some((key(r), val_of(r)?)))
        .collect();
    let diffs: Vec<f64> = runs
        .iter()
        .filter(|r| r.config_hash == chosen.config_hash)
        .filter_map(|r| Some(val_of(r)? - theirs.get(&key(r))?))
        .collect();
    (diffs.len() >= 2).then(|| Paired { runner_up: other.label.clone(), n: diffs.len(), diff: mean_std(&diffs) })
}

fn val_of(r: &RunRecord) -> Option<f64> {
    r.val_accuracy.or(r.best_val_accuracy).map(|v| v as f64 * 100.0)
}

/// Splits `records` into those the report shows (runs of methods without candidates, and the
/// chosen candidates' runs) and the outcome of every choice.
pub fn select<'a>(records: &[&'a RunRecord]) -> (Vec<&'a RunRecord>, Vec<Outcome>) {
    type Scope = (String, String, SelectBy, Option<(String, String)>);
    let mut kept = Vec::new();
    let mut scopes: BTreeMap<Scope, Vec<&'a RunRecord>> = BTreeMap::new();
    for &r in records {
        match &r.candidate {
            None => kept.push(r),
            Some(tag) => {
                let cell = (tag.select_by == SelectBy::Task).then(|| (r.source.clone(), r.task.clone()));
                scopes.entry((r.suite.clone(), r.method.clone(), tag.select_by, cell)).or_default().push(r);
            }
        }
    }
    let mut outcomes = Vec::new();
    for ((suite, method, select_by, cell), runs) in scopes {
        let outcome = choose(suite, method, select_by, cell, &runs);
        if let Some(hash) = &outcome.chosen {
            kept.extend(runs.iter().filter(|r| &r.config_hash == hash));
        }
        outcomes.push(outcome);
    }
    // Keep the records' own order.
    let position: BTreeMap<*const RunRecord, usize> = records.iter().enumerate().map(|(i, r)| (*r as *const _, i)).collect();
    kept.sort_by_key(|r| position[&(*r as *const _)]);
    (kept, outcomes)
}

fn choose(suite: String, method: String, select_by: SelectBy, cell: Option<(String, String)>, runs: &[&RunRecord]) -> Outcome {
    let mut by_hash: BTreeMap<&str, (String, Vec<&RunRecord>)> = BTreeMap::new();
    for r in runs {
        // The newest record names the candidate: a run recorded before the suite gained an axis
        // carries the older, shorter label of the same config.
        let entry = by_hash.entry(r.config_hash.as_str()).or_default();
        entry.0 = r.candidate.as_ref().map(|t| t.label.clone()).unwrap_or_default();
        entry.1.push(r);
    }
    // Best candidates per source × task cell, by mean validation accuracy.
    let mut per_cell: BTreeMap<(&str, &str), BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    for r in runs {
        if let Some(v) = val_of(r) {
            per_cell.entry((&r.source, &r.task)).or_default().entry(r.config_hash.as_str()).or_default().push(v);
        }
    }
    let mut best_cells: BTreeMap<&str, usize> = BTreeMap::new();
    for scores in per_cell.values() {
        let means: Vec<(&str, f64)> = scores.iter().map(|(h, v)| (*h, mean_std(v).0)).collect();
        let top = means.iter().map(|(_, m)| *m).fold(f64::NEG_INFINITY, f64::max);
        for (h, m) in means {
            if m == top {
                *best_cells.entry(h).or_default() += 1;
            }
        }
    }
    let mut candidates: Vec<CandidateScore> = by_hash
        .iter()
        .map(|(hash, (label, rs))| {
            let vals: Vec<f64> = rs.iter().filter_map(|r| val_of(r)).collect();
            let val = if vals.len() == rs.len() { mean_std(&vals) } else { (f64::NAN, f64::NAN) };
            CandidateScore {
                label: label.clone(),
                config_hash: hash.to_string(),
                runs: rs.len(),
                val,
                best_cells: best_cells.get(hash).copied().unwrap_or(0),
                eligible: false,
            }
        })
        .collect();
    candidates.sort_by(|a, b| a.label.cmp(&b.label));
    let full = candidates.iter().map(|c| c.runs).max().unwrap_or(0);
    for c in &mut candidates {
        c.eligible = c.runs == full && c.val.0.is_finite();
    }
    let mut notes = Vec::new();
    for c in &candidates {
        if c.runs < full {
            notes.push(format!("'{}' has {} of {full} runs and is not eligible until its grid is complete", c.label, c.runs));
        } else if c.val.0.is_nan() {
            notes.push(format!("'{}' has runs without a validation accuracy (a task without a validation split?)", c.label));
        }
    }
    let winner = best(candidates.iter().filter(|c| c.eligible));
    let paired = winner.and_then(|w| {
        let runner_up = best(candidates.iter().filter(|c| c.eligible && c.config_hash != w.config_hash))?;
        pair(runs, w, runner_up)
    });
    let chosen = winner.map(|c| c.config_hash.clone());
    if chosen.is_none() {
        notes.push("no candidate could be chosen: none of its test accuracies is shown".into());
    }
    Outcome { suite, method, select_by, cell, cells: per_cell.len(), candidates, chosen, notes, paired }
}

/// The markdown section that shows every choice (empty when there were none).
pub fn render(outcomes: &[Outcome]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if outcomes.is_empty() {
        return out;
    }
    let _ = writeln!(out, "## Selection on validation accuracy\n");
    let _ = writeln!(
        out,
        "Each method's candidate settings compared by the validation accuracy of the model each run returned \
         (mean ± sample std over runs, in %); the tables below show test accuracy for the chosen setting only \
         (docs/protocol.md).\n"
    );
    for o in outcomes {
        let scope = match &o.cell {
            None => format!("one choice for suite `{}`, over {} source × task cells", o.suite, o.cells),
            Some((source, task)) => format!("suite `{}`, chosen for {source} → {task}", o.suite),
        };
        let _ = writeln!(out, "### {} ({scope})\n", o.method);
        let _ = writeln!(out, "| candidate | runs | val acc % | best in cells | |");
        let _ = writeln!(out, "|---|---:|---|---:|---|");
        let chosen_val = o.candidates.iter().find(|c| Some(&c.config_hash) == o.chosen.as_ref()).map(|c| c.val.0);
        let runner_up = o
            .candidates
            .iter()
            .filter(|c| Some(&c.config_hash) != o.chosen.as_ref() && c.eligible)
            .map(|c| c.val.0)
            .fold(f64::NEG_INFINITY, f64::max);
        for c in &o.candidates {
            let val = if c.val.0.is_finite() { mean_pm(c.val.0, c.val.1, c.runs, 2) } else { "–".into() };
            let mark = match chosen_val {
                Some(v) if Some(&c.config_hash) == o.chosen.as_ref() && runner_up.is_finite() => {
                    format!("**chosen** (+{:.2} over the next)", v - runner_up)
                }
                Some(_) if Some(&c.config_hash) == o.chosen.as_ref() => "**chosen**".to_string(),
                _ => String::new(),
            };
            let mark = if c.eligible { mark } else { "not eligible (incomplete)".to_string() };
            let _ = writeln!(out, "| {} | {} | {val} | {} of {} | {mark} |", c.label, c.runs, c.best_cells, o.cells);
        }
        if let Some(p) = &o.paired {
            let verdict = if p.diff.0.abs() > p.bar() { "a separation" } else { "not a separation" };
            let _ = writeln!(
                out,
                "\nPaired with the runner-up '{}' on the {} runs both made (same cell and seed): {:+.2} ± {:.2} points; \
                 twice the standard error of that mean is {:.2}: {verdict}.",
                p.runner_up,
                p.n,
                p.diff.0,
                p.diff.1,
                p.bar()
            );
        }
        for n in &o.notes {
            let _ = writeln!(out, "\n_{n}_");
        }
        let _ = writeln!(out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidates::CandidateTag;
    use crate::report::tests::rec;

    #[allow(clippy::too_many_arguments)]
    fn cand(method: &str, label: &str, hash: &str, task: &str, seed: u64, val: f32, test: f32, by: SelectBy) -> RunRecord {
        let mut r = rec(method, seed, test);
        r.key = format!("s/{task}/{method}/s{seed}/{hash}");
        r.task = task.into();
        r.config_hash = hash.into();
        r.val_accuracy = Some(val);
        r.candidate = Some(CandidateTag { label: label.into(), select_by: by });
        r
    }

    #[test]
    fn the_best_mean_validation_accuracy_is_kept_and_only_its_test_accuracy_shown() {
        // k=8 wins on validation (0.8, 0.7 vs 0.6, 0.75: means 0.75 vs 0.675) although k=4 has
        // the better test accuracy: the test split must not decide.
        let runs = [
            cand("snow", "k=4", "h4", "a", 0, 0.60, 0.99, SelectBy::Suite),
            cand("snow", "k=4", "h4", "b", 0, 0.75, 0.99, SelectBy::Suite),
            cand("snow", "k=8", "h8", "a", 0, 0.80, 0.10, SelectBy::Suite),
            cand("snow", "k=8", "h8", "b", 0, 0.70, 0.10, SelectBy::Suite),
            rec("linear-probe", 0, 0.5),
        ];
        let refs: Vec<&RunRecord> = runs.iter().collect();
        let (kept, outcomes) = select(&refs);
        let kept_keys: Vec<&str> = kept.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(kept_keys, vec!["s/a/snow/s0/h8", "s/b/snow/s0/h8", "s/t/linear-probe/s0/h"]);
        assert_eq!(outcomes.len(), 1);
        let o = &outcomes[0];
        assert_eq!(o.chosen.as_deref(), Some("h8"));
        assert_eq!(o.cells, 2);
        // k=4 is best on cell b (75 vs 70), k=8 on cell a (80 vs 60).
        assert_eq!(o.candidates.iter().map(|c| (c.label.as_str(), c.best_cells)).collect::<Vec<_>>(), vec![("k=4", 1), ("k=8", 1)]);
        assert!((o.candidates[1].val.0 - 75.0).abs() < 1e-4 && (o.candidates[0].val.0 - 67.5).abs() < 1e-4);
        let md = render(&outcomes);
        assert!(md.contains("| k=8 | 2 | 75.00 ± 7.07 | 1 of 2 | **chosen** (+7.50 over the next) |"), "{md}");
    }

    #[test]
    fn per_task_selection_chooses_in_each_cell() {
        let runs = [
            cand("ksm", "lr=1", "h1", "a", 0, 0.9, 0.5, SelectBy::Task),
            cand("ksm", "lr=2", "h2", "a", 0, 0.8, 0.5, SelectBy::Task),
            cand("ksm", "lr=1", "h1", "b", 0, 0.1, 0.5, SelectBy::Task),
            cand("ksm", "lr=2", "h2", "b", 0, 0.2, 0.5, SelectBy::Task),
        ];
        let refs: Vec<&RunRecord> = runs.iter().collect();
        let (kept, outcomes) = select(&refs);
        let kept_keys: Vec<&str> = kept.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(kept_keys, vec!["s/a/ksm/s0/h1", "s/b/ksm/s0/h2"]);
        assert_eq!(outcomes.iter().map(|o| o.cell.clone().unwrap().1).collect::<Vec<_>>(), vec!["a", "b"]);
    }

    #[test]
    fn an_incomplete_candidate_is_not_eligible_and_without_validation_nothing_is_chosen() {
        let runs = [
            cand("snow", "k=4", "h4", "a", 0, 0.6, 0.5, SelectBy::Suite),
            cand("snow", "k=4", "h4", "a", 1, 0.6, 0.5, SelectBy::Suite),
            cand("snow", "k=8", "h8", "a", 0, 0.9, 0.5, SelectBy::Suite),
        ];
        let refs: Vec<&RunRecord> = runs.iter().collect();
        let (_, outcomes) = select(&refs);
        assert_eq!(outcomes[0].chosen.as_deref(), Some("h4"));
        assert!(outcomes[0].notes[0].contains("'k=8' has 1 of 2 runs"), "{:?}", outcomes[0].notes);
        // The incomplete candidate's higher score is no runner-up: the chosen one has none.
        let md = render(&outcomes);
        assert!(md.contains("| k=4 | 2 | 60.00 ± 0.00 | 0 of 1 | **chosen** |"), "{md}");
        assert!(md.contains("| k=8 | 1 | 90.00 | 1 of 1 | not eligible (incomplete) |"), "{md}");
        let mut blind = runs[..2].to_vec();
        for r in &mut blind {
            r.val_accuracy = None;
        }
        let refs: Vec<&RunRecord> = blind.iter().collect();
        let (kept, outcomes) = select(&refs);
        assert!(kept.is_empty());
        assert_eq!(outcomes[0].chosen, None);
    }

    #[test]
    fn a_candidate_is_named_by_its_newest_run() {
        // The first run was recorded when the suite had another axis (lambda); the same config
        // under the current suite is labelled without it.
        let runs = [
            cand("tli", "lambda=0.75, train.lr=0.001", "h1", "a", 0, 0.8, 0.5, SelectBy::Suite),
            cand("tli", "train.lr=0.001", "h1", "a", 1, 0.8, 0.5, SelectBy::Suite),
        ];
        let refs: Vec<&RunRecord> = runs.iter().collect();
        let (_, outcomes) = select(&refs);
        assert_eq!(outcomes[0].candidates.len(), 1);
        assert_eq!(outcomes[0].candidates[0].label, "train.lr=0.001");
    }

    #[test]
    fn the_choice_is_paired_with_the_runner_up_run_by_run() {
        // A is 1 point above B on every (cell, seed): the spread across cells (60..90) hides it
        // in the unpaired means (75 vs 74, std 12.9) but not in the pairs (+1.00 ± 0.00).
        let mut runs = Vec::new();
        for (task, seed, a) in [("a", 0, 0.60), ("a", 1, 0.70), ("b", 0, 0.80), ("b", 1, 0.90)] {
            runs.push(cand("ksm", "A", "hA", task, seed, a, 0.5, SelectBy::Suite));
            runs.push(cand("ksm", "B", "hB", task, seed, a - 0.01, 0.5, SelectBy::Suite));
        }
        let refs: Vec<&RunRecord> = runs.iter().collect();
        let (_, outcomes) = select(&refs);
        let p = outcomes[0].paired.clone().expect("paired");
        assert_eq!((p.runner_up.as_str(), p.n), ("B", 4));
        assert!((p.diff.0 - 1.0).abs() < 1e-4 && p.diff.1 < 1e-4, "{p:?}");
        assert!(render(&outcomes).contains("Paired with the runner-up 'B' on the 4 runs both made (same cell and seed): +1.00 ± 0.00 points; twice the standard error of that mean is 0.00: a separation."));
        // Differences +3, -1, +3, -1: mean 1, std sqrt(16/3) = 2.309, bar 2 * 2.309 / 2 = 2.309.
        for (r, d) in runs.iter_mut().filter(|r| r.config_hash == "hB").zip([-0.03f32, 0.01, -0.03, 0.01]) {
            r.val_accuracy = Some(r.val_accuracy.unwrap() + 0.01 + d);
        }
        let refs: Vec<&RunRecord> = runs.iter().collect();
        let (_, outcomes) = select(&refs);
        let md = render(&outcomes);
        assert!(md.contains(": +1.00 ± 2.31 points; twice the standard error of that mean is 2.31: not a separation."), "{md}");
    }
}
