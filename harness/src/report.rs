//! Markdown report: one table per (source, task), one row per method (and config variant), the
//! best mean accuracy in bold. The rows are computed once ([`aggregate`]); the markdown, the
//! CSV/JSON export (`crate::export`) and the plots (`crate::figures`) all read them.

use crate::plots::Figure;
use crate::results::{CurveKind, RunRecord};
use crate::selection::Outcome;
use graft_core::checkpoint::abbrev;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Mean and sample standard deviation (0 for a single value; NaN for none).
pub(crate) fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// A mean over `n` runs where the table gives n beside it: `m ± s` over several runs, `m` alone
/// over one (the sample standard deviation of one run is no spread, so no "± 0.00").
pub(crate) fn mean_pm(mean: f64, std: f64, n: usize, decimals: usize) -> String {
    if n > 1 {
        format!("{mean:.decimals$} ± {std:.decimals$}")
    } else {
        format!("{mean:.decimals$}")
    }
}

/// [`mean_pm`] for a table that does not give n: over a single run the cell reads `m (1)`.
pub(crate) fn mean_cell(mean: f64, std: f64, n: usize, decimals: usize) -> String {
    if n > 1 {
        mean_pm(mean, std, n, decimals)
    } else {
        format!("{} (1)", mean_pm(mean, std, n, decimals))
    }
}

/// Human-readable count with k/M/G suffixes.
pub fn human_count(n: f64) -> String {
    let a = n.abs();
    if a >= 1e9 {
        format!("{:.2}G", n / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// Bytes with B, KiB or MiB.
pub fn human_bytes(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// Position of `method` in the registry order; unregistered methods sort after, by name.
pub(crate) fn method_rank(method: &str, order: &[&str]) -> (usize, String) {
    (
        order
            .iter()
            .position(|m| *m == method)
            .unwrap_or(order.len()),
        method.to_string(),
    )
}

/// One row of a (source, task) table: one config of a method over its seeds, as the markdown
/// table shows it and `graft report --format csv|json` writes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Source name.
    pub source: String,
    /// Task name.
    pub task: String,
    /// Method name.
    pub method: String,
    /// The row's label: the method, with the config keys that tell its variants apart or the
    /// chosen candidate.
    pub label: String,
    /// Config hash of the runs.
    pub config_hash: String,
    /// Runs (one per seed).
    pub n_seeds: usize,
    /// Mean test accuracy, %.
    pub test_acc_mean: f64,
    /// Sample standard deviation of the test accuracy over the seeds, points; none for one run.
    pub test_acc_std: Option<f64>,
    /// Trainable parameters (mean over the runs).
    pub trainable_params: f64,
    /// Stored bytes of the task model (mean over the runs).
    pub stored_bytes: f64,
    /// FLOPs per image (mean over the runs).
    pub flops_per_image: f64,
    /// Interconnections (mean over the runs).
    pub interconnections: f64,
    /// FLOPs per training image of an optimiser step, measured by the trainer (mean over the
    /// runs that recorded it; none when none did).
    pub train_flops_per_image: Option<f64>,
    /// Training seconds per epoch (mean over the runs); none when no run recorded epochs.
    pub train_seconds_per_epoch: Option<f64>,
    /// Training seconds per run (mean).
    pub train_seconds_per_run: f64,
    /// Training images of the task.
    pub train_size: usize,
    /// The metric curve the task is a point of, if any.
    pub axis_kind: Option<CurveKind>,
    /// Its x value (kept fraction or noise rate).
    pub axis_value: Option<f64>,
    /// The declared task the curve's tasks derive from.
    pub axis_base_task: Option<String>,
    /// Whether every run's reloaded delta gave identical test logits.
    pub reload_identical: bool,
}

/// One (source, task) table: its rows in registry order and the runs behind each.
pub struct Group<'a> {
    /// Source name.
    pub source: &'a str,
    /// Task name.
    pub task: &'a str,
    /// The table's rows.
    pub rows: Vec<Row>,
    /// The runs of each row, in row order.
    pub runs: Vec<Vec<&'a RunRecord>>,
}

/// The report's content before it is written out: the records, the choices made among
/// candidates, and the tables of what is shown.
pub struct Aggregate<'a> {
    /// Every record read.
    pub records: &'a [RunRecord],
    /// Distinct runs (a key counted once per suite).
    pub runs: usize,
    /// The selection protocol's choices.
    pub outcomes: Vec<Outcome>,
    /// The records shown (after selection), in file order.
    pub shown: Vec<&'a RunRecord>,
    /// The (source, task) tables in first-appearance order.
    pub groups: Vec<Group<'a>>,
}

impl Aggregate<'_> {
    /// Every table row, table by table.
    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.groups.iter().flat_map(|g| g.rows.iter())
    }
}

/// Seconds per training epoch of a run (the trainer's clock, so feature-cache filling before
/// the first epoch is not included); NaN when the run recorded no epochs.
fn seconds_per_epoch(r: &RunRecord) -> f64 {
    match r.epochs.last() {
        Some(last) => last.elapsed_sec as f64 / r.epochs.len() as f64,
        None => f64::NAN,
    }
}

/// `key.path = value` for every leaf of a config (objects are walked, arrays and scalars are
/// leaves written as compact JSON).
fn flatten_config(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten_config(&path, child, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), leaf.to_string());
        }
    }
}

/// Row labels for methods that ran with more than one config in `records`: the method name
/// followed by the config keys whose values tell its variants apart, e.g.
/// `piggyback (tune_bn=true, train.lr=0.0001)`; just the name when a method has one config.
/// Keyed by (method, config hash).
pub(crate) fn variant_labels<'a>(records: impl IntoIterator<Item = &'a RunRecord>) -> BTreeMap<(String, String), String> {
    let mut configs: BTreeMap<&str, BTreeMap<&str, BTreeMap<String, String>>> = BTreeMap::new();
    for r in records {
        configs.entry(r.method.as_str()).or_default().entry(r.config_hash.as_str()).or_insert_with(|| {
            let mut flat = BTreeMap::new();
            flatten_config("", &r.config, &mut flat);
            flat
        });
    }
    let mut labels = BTreeMap::new();
    for (method, variants) in configs {
        let keys: BTreeSet<&String> = variants.values().flat_map(|f| f.keys()).collect();
        let differing: Vec<&String> = keys
            .into_iter()
            .filter(|k| {
                let mut values = variants.values().map(|f| f.get(*k));
                let first = values.next().flatten();
                values.any(|v| v != first)
            })
            .collect();
        for (hash, flat) in &variants {
            let label = if variants.len() == 1 {
                method.to_string()
            } else if differing.is_empty() {
                format!("{method} (cfg {hash})")
            } else {
                let parts: Vec<String> =
                    differing.iter().map(|k| format!("{k}={}", flat.get(*k).map_or("–", |v| v.as_str()))).collect();
                format!("{method} ({})", parts.join(", "))
            };
            labels.insert((method.to_string(), hash.to_string()), label);
        }
    }
    labels
}

/// The row label of one config's runs: a chosen candidate by its combination, as its newest run
/// names it; otherwise the config's label among the method's shown configs (`variant_labels`).
pub(crate) fn shown_label(runs: &[&RunRecord], labels: &BTreeMap<(String, String), String>) -> String {
    let newest = runs[runs.len() - 1];
    match &newest.candidate {
        Some(tag) => format!("{} ({})", newest.method, tag.label),
        None => labels[&(newest.method.clone(), newest.config_hash.clone())].clone(),
    }
}

/// Renders `records` as markdown. Duplicate keys keep the last record. `method_order` is the
/// registry order (e.g. the names of `graft_core::registry::methods()`). Every other method is
/// set against feature-extractor and fine-tune ([`crate::versus::BASELINES`]).
pub fn render(records: &[RunRecord], method_order: &[&str]) -> String {
    render_against(records, method_order, &crate::versus::BASELINES)
}

/// [`render`] with every other method set against the methods `against`.
pub fn render_against(records: &[RunRecord], method_order: &[&str], against: &[&str]) -> String {
    render_aggregate(&aggregate(records, method_order), method_order, against, &BTreeMap::new())
}

/// The report's tables of `records`: a key recorded twice in one suite keeps its last record;
/// of a method's candidate settings only the chosen one is shown; one row per (source, task,
/// method, config), in `method_order` (the registry order) within a table.
pub fn aggregate<'a>(records: &'a [RunRecord], method_order: &[&str]) -> Aggregate<'a> {
    // A run is one per suite: two suites (e.g. two stages of a selection) may each record the
    // same run key, and each keeps its own.
    let mut by_key: BTreeMap<(&str, &str), &RunRecord> = BTreeMap::new();
    for r in records {
        by_key.insert((&r.suite, &r.key), r);
    }
    let unique: Vec<&RunRecord> =
        records.iter().filter(|r| std::ptr::eq(by_key[&(r.suite.as_str(), r.key.as_str())], *r)).collect();
    // Of a method's candidate settings, only the one chosen on validation accuracy is shown.
    let (shown, outcomes) = crate::selection::select(&unique);
    // (source, task) in first-appearance order.
    let mut pairs: Vec<((&str, &str), Vec<&RunRecord>)> = Vec::new();
    for &r in &shown {
        let g = (r.source.as_str(), r.task.as_str());
        match pairs.iter_mut().find(|(k, _)| *k == g) {
            Some((_, v)) => v.push(r),
            None => pairs.push((g, vec![r])),
        }
    }
    let labels = variant_labels(shown.iter().copied());
    let groups = pairs
        .into_iter()
        .map(|((source, task), recs)| {
            // Rows: per method, per config hash (labelled when a method has several).
            let mut cells: BTreeMap<((usize, String), String), Vec<&RunRecord>> = BTreeMap::new();
            for r in recs {
                cells.entry((method_rank(&r.method, method_order), r.config_hash.clone())).or_default().push(r);
            }
            let runs: Vec<Vec<&RunRecord>> = cells.into_values().collect();
            let rows = runs.iter().map(|rs| row(rs, &labels)).collect();
            Group { source, task, rows, runs }
        })
        .collect();
    Aggregate { records, runs: by_key.len(), outcomes, shown, groups }
}

/// The table row of one config's runs on one (source, task).
fn row(rs: &[&RunRecord], labels: &BTreeMap<(String, String), String>) -> Row {
    let accs: Vec<f64> = rs.iter().map(|r| r.test_accuracy as f64 * 100.0).collect();
    let avg = |f: &dyn Fn(&RunRecord) -> f64| rs.iter().map(|r| f(r)).sum::<f64>() / rs.len() as f64;
    let (mean, std) = mean_std(&accs);
    let newest = rs[rs.len() - 1];
    let epoch_secs = avg(&seconds_per_epoch);
    Row {
        source: newest.source.clone(),
        task: newest.task.clone(),
        method: newest.method.clone(),
        label: shown_label(rs, labels),
        config_hash: newest.config_hash.clone(),
        n_seeds: rs.len(),
        test_acc_mean: mean,
        test_acc_std: (rs.len() > 1).then_some(std),
        trainable_params: avg(&|r| r.footprint.trainable_params as f64),
        stored_bytes: avg(&|r| r.footprint.stored_bytes as f64),
        flops_per_image: avg(&|r| r.footprint.flops_per_image as f64),
        interconnections: avg(&|r| r.footprint.interconnections as f64),
        train_flops_per_image: {
            let v: Vec<f64> = rs.iter().filter_map(|r| r.train_flops_per_image()).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        },
        train_seconds_per_epoch: epoch_secs.is_finite().then_some(epoch_secs),
        train_seconds_per_run: avg(&|r| r.train_seconds as f64),
        train_size: newest.train_size,
        axis_kind: newest.axis.as_ref().map(|a| a.kind),
        axis_value: newest.axis.as_ref().map(|a| a.value),
        axis_base_task: newest.axis.as_ref().map(|a| a.base_task.clone()),
        reload_identical: rs.iter().all(|r| r.reload_identical),
    }
}

/// The markdown of `agg`, every other method set against the methods `against`; `figures`
/// holds the plots to embed under each (source, task) table.
pub fn render_aggregate(
    agg: &Aggregate,
    method_order: &[&str],
    against: &[&str],
    figures: &BTreeMap<(String, String), Vec<Figure>>,
) -> String {
    let records = agg.records;
    let mut out = String::new();
    let suites: BTreeSet<&str> = records.iter().map(|r| r.suite.as_str()).collect();
    let _ = writeln!(out, "# graft results\n");
    let _ = writeln!(
        out,
        "{} runs; suites: {}; commits: {}.\n",
        agg.runs,
        suites.iter().copied().collect::<Vec<_>>().join(", "),
        {
            let c: BTreeSet<String> = records
                .iter()
                .map(|r| {
                    r.git_commit
                        .as_deref()
                        .map(|c| abbrev(c, 10).to_string())
                        .unwrap_or_else(|| "unknown".into())
                })
                .collect();
            c.into_iter().collect::<Vec<_>>().join(", ")
        }
    );
    let _ = writeln!(
        out,
        "Test accuracy in %, mean ± sample std over seeds (n runs; the mean alone over a single run). Parameters, \
         bytes and FLOPs are per task model; FLOPs include the frozen source parts the model runs.\n"
    );
    out.push_str(&crate::selection::render(&agg.outcomes));
    out.push_str(&crate::versus::render(&agg.shown, method_order, against));
    if agg.groups.is_empty() {
        let _ = writeln!(out, "_No results._");
        return out;
    }

    for g in &agg.groups {
        let (source, task, recs) = (g.source, g.task, g.runs.iter().flatten());
        let first = g.runs[0][0];
        let _ = writeln!(out, "## {source} → {task}\n");
        let hashes: BTreeSet<&str> = recs.map(|r| abbrev(&r.source_hash, 12)).collect();
        let _ = writeln!(
            out,
            "Source `{source}` ({}, hash {}); task `{task}`: {} classes, {} train / {} test images.\n",
            first.backbone,
            hashes.into_iter().collect::<Vec<_>>().join(", "),
            first.num_classes,
            first.train_size,
            first.test_size
        );
        let best = g
            .rows
            .iter()
            .map(|r| r.test_acc_mean)
            .filter(|a| a.is_finite())
            .fold(f64::NEG_INFINITY, f64::max);

        let _ = writeln!(
            out,
            "| method | test acc % (n) | trainable params | stored bytes | FLOPs/img | train FLOPs/img | interconnections | train s/epoch | train s/run |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &g.rows {
            let acc = mean_pm(r.test_acc_mean, r.test_acc_std.unwrap_or(0.0), r.n_seeds, 2);
            let acc = if r.test_acc_mean == best { format!("**{acc}**") } else { acc };
            let _ = writeln!(
                out,
                "| {}{} | {acc} ({}) | {} | {} | {} | {} | {} | {} | {:.1} |",
                r.label,
                if r.reload_identical { "" } else { " ⚠" },
                r.n_seeds,
                human_count(r.trainable_params),
                human_bytes(r.stored_bytes),
                human_count(r.flops_per_image),
                r.train_flops_per_image.map_or("–".into(), human_count),
                human_count(r.interconnections),
                r.train_seconds_per_epoch.map_or("–".into(), |s| format!("{s:.2}")),
                r.train_seconds_per_run
            );
        }
        write_curves(&mut out, g);
        write_metrics(&mut out, g);
        if g.rows.iter().any(|r| !r.reload_identical) {
            let _ = writeln!(
                out,
                "\n⚠ the saved delta, reloaded, did not give identical test logits in some runs."
            );
        }
        for f in figures.get(&(source.to_string(), task.to_string())).into_iter().flatten() {
            let _ = writeln!(out, "\n{}", f.markdown());
        }
        let _ = writeln!(out, "\nTask provenance: {}\n", first.task_provenance);
    }
    out
}

/// The steps shown in a convergence table: 0, the "round" steps (1, 2, 3, 5 × 10^k) that every
/// curve of the table recorded, and each curve's last step; all common steps when there are
/// at most 8.
fn curve_columns(curves: &[&[graft_core::train::CurvePoint]]) -> Vec<usize> {
    let mut common: Option<BTreeSet<usize>> = None;
    let mut last = BTreeSet::new();
    for c in curves {
        let steps: BTreeSet<usize> = c.iter().map(|p| p.step).collect();
        if let Some(l) = c.last() {
            last.insert(l.step);
        }
        common = Some(match common {
            None => steps,
            Some(prev) => prev.intersection(&steps).copied().collect(),
        });
    }
    let common = common.unwrap_or_default();
    if common.len() <= 8 {
        return common.into_iter().chain(last).collect::<BTreeSet<_>>().into_iter().collect();
    }
    let round = |s: usize| {
        let mut m = s;
        while m >= 10 && m % 10 == 0 {
            m /= 10;
        }
        s == 0 || matches!(m, 1 | 2 | 3 | 5)
    };
    common.into_iter().filter(|&s| round(s)).chain(last).collect::<BTreeSet<_>>().into_iter().collect()
}

/// A convergence table (validation accuracy % at chosen optimiser steps, mean ± std over seeds)
/// when the runs recorded curves (the suite's `eval_every_steps`).
fn write_curves(out: &mut String, g: &Group) {
    let curves: Vec<&[graft_core::train::CurvePoint]> =
        g.runs.iter().flatten().filter(|r| !r.curve.is_empty()).map(|r| r.curve.as_slice()).collect();
    if curves.is_empty() {
        return;
    }
    let steps = curve_columns(&curves);
    let _ = writeln!(out, "
Convergence: validation accuracy % after N optimiser steps (mean ± std over seeds).
");
    let head: Vec<String> = steps.iter().map(|s| format!("step {s}")).collect();
    let _ = writeln!(out, "| method | {} |", head.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(steps.len()));
    for (row, rs) in g.rows.iter().zip(&g.runs) {
        if rs.iter().all(|r| r.curve.is_empty()) {
            continue;
        }
        let values: Vec<String> = steps
            .iter()
            .map(|&s| {
                let accs: Vec<f64> = rs
                    .iter()
                    .filter_map(|r| r.curve.iter().find(|p| p.step == s))
                    .map(|p| p.val_acc as f64 * 100.0)
                    .collect();
                if accs.is_empty() {
                    "–".to_string()
                } else {
                    let (m, sd) = mean_std(&accs);
                    mean_cell(m, sd, accs.len(), 1)
                }
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", row.label, values.join(" | "));
    }
}

/// A table of the method-specific figures (`TaskModel::metrics`, e.g. TLI's score), mean over
/// seeds, when any run recorded one.
fn write_metrics(out: &mut String, g: &Group) {
    let keys: BTreeSet<&str> = g.runs.iter().flatten().flat_map(|r| r.metrics.keys().map(String::as_str)).collect();
    if keys.is_empty() {
        return;
    }
    let _ = writeln!(out, "
Method figures (mean over seeds).
");
    let _ = writeln!(out, "| method | {} |", keys.iter().copied().collect::<Vec<_>>().join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(keys.len()));
    for (row, rs) in g.rows.iter().zip(&g.runs) {
        let values: Vec<String> = keys
            .iter()
            .map(|k| {
                let xs: Vec<f64> = rs.iter().filter_map(|r| r.metrics.get(*k).copied()).collect();
                if xs.is_empty() {
                    "–".to_string()
                } else {
                    format!("{:.4}", xs.iter().sum::<f64>() / xs.len() as f64)
                }
            })
            .collect();
        if values.iter().all(|v| v == "–") {
            continue;
        }
        let _ = writeln!(out, "| {} | {} |", row.label, values.join(" | "));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn human_counts() {
        assert_eq!(human_count(650.0), "650");
        assert_eq!(human_count(12_500.0), "12.5k");
        assert_eq!(human_count(2_500_000.0), "2.50M");
    }
    use graft_core::Footprint;

    /// A run record with 4 epochs of 0.25 s each and no validation accuracy.
    #[test]
    fn hashes_and_commits_of_any_text_are_shortened_without_panicking() {
        // Found by the `results` fuzz target: a multi-byte character across the 10th byte of
        // a commit made the report slice inside it.
        let mut r = rec("linear-probe", 0, 0.5);
        r.git_commit = Some("12345678\u{20ac}9abcdef".into());
        r.source_hash = "\u{e9}".repeat(20);
        let md = render(&[r], &["linear-probe"]);
        assert!(md.contains("12345678\u{20ac}9"), "{md}");
        assert!(md.contains(&"\u{e9}".repeat(12)), "{md}");
    }

    pub(crate) fn rec(method: &str, seed: u64, acc: f32) -> RunRecord {
        RunRecord {
            key: format!("s/t/{method}/s{seed}/h"),
            suite: "q".into(),
            source: "s".into(),
            source_hash: "abcdef0123456789".into(),
            backbone: "resnet-cifar-8-w16".into(),
            task: "t".into(),
            task_provenance: "dataset=digits".into(),
            num_classes: 5,
            train_size: 100,
            test_size: 50,
            method: method.into(),
            seed,
            config: serde_json::json!({}),
            config_hash: "h".into(),
            test_accuracy: acc,
            best_val_accuracy: None,
            val_accuracy: None,
            candidate: None,
            footprint: Footprint {
                trainable_params: 1000,
                stored_bytes: 4000,
                interconnections: 1,
                flops_per_image: 2_000_000,
            },
            train_seconds: 2.0,
            epochs: (0..4)
                .map(|epoch| graft_core::train::EpochMetrics {
                    epoch,
                    train_loss: 1.0,
                    train_acc: 0.5,
                    val_acc: None,
                    lr_factor: 1.0,
                    images_per_sec: 100.0,
                    elapsed_sec: 0.25 * (epoch + 1) as f32,
                    train_flops_per_image: Some(3_000_000.0),
                })
                .collect(),
            curve: vec![],
            metrics: Default::default(),
            reload_identical: true,
            reload_max_abs_diff: Some(0.0),
            reload_error: None,
            delta_path: "d".into(),
            settings_fingerprint: None,
            axis: None,
            graft_version: "0.1.0".into(),
            git_commit: None,
            timestamp: 0,
        }
    }

    #[test]
    fn variants_of_a_method_are_labelled_by_the_config_keys_that_differ() {
        let mut a = rec("piggyback", 0, 0.5);
        a.config = serde_json::json!({"tune_bn": false, "threshold": 0.005, "train": {"lr": 0.001, "epochs": 8}});
        a.config_hash = "aaaa".into();
        a.key = "s/t/piggyback/s0/aaaa".into();
        let mut b = rec("piggyback", 0, 0.8);
        b.config = serde_json::json!({"tune_bn": true, "threshold": 0.005, "train": {"lr": 0.0001, "epochs": 8}});
        b.config_hash = "bbbb".into();
        b.key = "s/t/piggyback/s0/bbbb".into();
        let c = rec("fine-tune", 0, 0.9);
        let labels = variant_labels([&a, &b, &c]);
        assert_eq!(labels[&("piggyback".into(), "aaaa".into())], "piggyback (train.lr=0.001, tune_bn=false)");
        assert_eq!(labels[&("piggyback".into(), "bbbb".into())], "piggyback (train.lr=0.0001, tune_bn=true)");
        assert_eq!(labels[&("fine-tune".into(), "h".into())], "fine-tune");
        let md = render(&[a, b, c], &["fine-tune", "piggyback"]);
        assert!(md.contains("| piggyback (train.lr=0.0001, tune_bn=true) | 80.00"), "{md}");
    }

    #[test]
    fn table_orders_methods_and_bolds_best() {
        let records = vec![
            rec("scratch", 0, 0.5),
            rec("linear-probe", 0, 0.8),
            rec("linear-probe", 1, 0.9),
            rec("fine-tune", 0, 0.95),
        ];
        let md = render(&records, &["fine-tune", "linear-probe", "scratch"]);
        // The per-pair table (after the "against" tables).
        let table = &md[md.find("## s → t").expect("the pair's table")..];
        let ft = table.find("| fine-tune").unwrap();
        let lp = table.find("| linear-probe").unwrap();
        let sc = table.find("| scratch").unwrap();
        assert!(ft < lp && lp < sc, "{md}");
        assert!(md.contains("| fine-tune | **95.00** (1) |"), "a single run has no ± 0.00: {md}");
        assert!(md.contains("85.00 ± 7.07 (2)"), "{md}");
        assert!(md.contains("## s → t"), "{md}");
        // 4 epochs in 1.0 s: 0.25 s per epoch; 2.0 s per run; one interconnection.
        // Training FLOPs: every epoch of the fixture measured 3M per image.
        assert!(md.contains("| 2.00M | 3.00M | 1 | 0.25 | 2.0 |"), "{md}");
    }

    #[test]
    fn the_same_key_in_two_suites_is_kept_in_each() {
        // Stage 1 and stage 2 of a selection both ran the config `h`; each suite keeps its run.
        let mut a = rec("ksm", 0, 0.5);
        a.suite = "stage1".into();
        let mut b = rec("ksm", 0, 0.5);
        b.suite = "stage2".into();
        let md = render(&[a, b], &["ksm"]);
        assert!(md.starts_with("# graft results\n\n2 runs; suites: stage1, stage2;"), "{md}");
    }

    #[test]
    fn duplicate_keys_count_once() {
        let records = vec![rec("scratch", 0, 0.5), rec("scratch", 0, 0.7)];
        let md = render(&records, &[]);
        assert!(md.contains("**70.00** (1)"), "{md}");
    }

    fn point(step: usize, acc: f32) -> graft_core::train::CurvePoint {
        graft_core::train::CurvePoint { step, epoch: 0, val_acc: acc, train_loss: None, elapsed_sec: 0.0 }
    }

    #[test]
    fn convergence_and_method_figures_tables_average_over_seeds() {
        let mut a = rec("tli", 0, 0.5);
        let mut b = rec("tli", 1, 0.5);
        let mut c = rec("scratch", 0, 0.5);
        a.curve = vec![point(0, 0.10), point(10, 0.40), point(20, 0.60)];
        b.curve = vec![point(0, 0.20), point(10, 0.60), point(20, 0.80)];
        c.curve = vec![point(0, 0.10), point(10, 0.20), point(20, 0.30)];
        a.metrics.insert("tli_score".into(), 0.75);
        b.metrics.insert("tli_score".into(), 0.25);
        let md = render(&[a, b, c], &[]);
        assert!(md.contains("| method | step 0 | step 10 | step 20 |"), "{md}");
        // tli: (40 + 60) / 2 = 50, sample std √((10² + 10²) / 1) = 14.1.
        assert!(md.contains("| tli | 15.0 ± 7.1 | 50.0 ± 14.1 | 70.0 ± 14.1 |"), "{md}");
        assert!(md.contains("| scratch | 10.0 (1) | 20.0 (1) | 30.0 (1) |"), "{md}");
        assert!(md.contains("| method | tli_score |\n|---|---:|\n| tli | 0.5000 |"), "{md}");
        assert!(!md.contains("| scratch | –"), "a row without figures is left out: {md}");
    }

    #[test]
    fn long_curves_show_round_steps_and_the_last() {
        let curve: Vec<_> = (0..=47).map(|i| point(i * 25, 0.5)).collect();
        let cols = curve_columns(&[curve.as_slice()]);
        assert_eq!(cols, [0, 50, 100, 200, 300, 500, 1000, 1175]);
    }
}
