//! Each method set against the baselines of a grid: one table per method over every source →
//! task pair it ran on, and on how many pairs its mean test accuracy is above each baseline's.
//! This is the form in which a paper's claim ("as accurate as fine-tuning at a fraction of the
//! cost") is checked across a grid.

use crate::report::{mean_cell, mean_std, method_rank, shown_label, variant_labels};
use crate::results::RunRecord;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The methods every other method is set against, where the records hold them.
pub const BASELINES: [&str; 2] = ["feature-extractor", "fine-tune"];

/// A source → task pair.
type Pair<'a> = (&'a str, &'a str);
/// Runs per (pair, method, config hash).
type RunsByConfig<'a> = BTreeMap<(Pair<'a>, &'a str, &'a str), Vec<&'a RunRecord>>;

/// One (source, task) pair's runs of one config, summarised.
struct Cell {
    acc: (f64, f64),
    n: usize,
    secs: f64,
}

fn summarise(runs: &[&RunRecord]) -> Cell {
    let accs: Vec<f64> = runs.iter().map(|r| r.test_accuracy as f64 * 100.0).collect();
    let secs = runs.iter().map(|r| r.train_seconds as f64).sum::<f64>() / runs.len() as f64;
    Cell { acc: mean_std(&accs), n: runs.len(), secs }
}

/// Markdown for every config in `shown` (the records after selection) of a method not in
/// `against`, set against those of `against` present; empty when the records hold none of them or
/// no other method. A baseline with several configs on one pair is not compared there (shown as
/// "several").
pub fn render(shown: &[&RunRecord], method_order: &[&str], against: &[&str]) -> String {
    let baselines: Vec<&str> = against.iter().copied().filter(|b| shown.iter().any(|r| r.method == *b)).collect();
    if baselines.is_empty() {
        return String::new();
    }
    let labels = variant_labels(shown.iter().copied());
    // Pairs in first-appearance order; runs per (pair, method, config).
    let mut pairs: Vec<Pair> = Vec::new();
    let mut runs: RunsByConfig = BTreeMap::new();
    for &r in shown {
        let pair = (r.source.as_str(), r.task.as_str());
        if !pairs.contains(&pair) {
            pairs.push(pair);
        }
        runs.entry((pair, r.method.as_str(), r.config_hash.as_str())).or_default().push(r);
    }
    // Each baseline's summary per pair (None: several configs there).
    let mut base: BTreeMap<(&str, (&str, &str)), Option<Cell>> = BTreeMap::new();
    for ((pair, method, _), rs) in &runs {
        if baselines.contains(method) {
            base.entry((*method, *pair)).and_modify(|c| *c = None).or_insert_with(|| Some(summarise(rs)));
        }
    }
    // The configs compared, in registry order.
    let mut configs: Vec<((usize, String), &str)> = runs
        .keys()
        .filter(|(_, m, _)| !baselines.contains(m))
        .map(|(_, m, h)| (method_rank(m, method_order), *h))
        .collect();
    configs.sort();
    configs.dedup();
    if configs.is_empty() {
        return String::new();
    }

    let mut out = String::new();
    let _ = writeln!(out, "## Each method against {}\n", baselines.join(" and "));
    let _ = writeln!(
        out,
        "Test accuracy in %, mean ± sample std over seeds (a single run: its accuracy and (1)), on every \
         source → target pair the method ran on; training seconds per run. \"Above\" compares the means.\n"
    );
    for ((_, method), hash) in configs {
        let own: Vec<((&str, &str), &Vec<&RunRecord>)> =
            pairs.iter().filter_map(|p| runs.get(&(*p, method.as_str(), hash)).map(|rs| (*p, rs))).collect();
        let label = shown_label(own[0].1, &labels);
        let _ = writeln!(out, "### {label}\n");
        let mut head = format!("| source → target | {method} |");
        let mut rule = String::from("|---|---|");
        for b in &baselines {
            let _ = write!(head, " {b} |");
            rule.push_str("---|");
        }
        let _ = write!(head, " {method} s/run |");
        rule.push_str("---:|");
        for b in &baselines {
            let _ = write!(head, " {b} s/run |");
            rule.push_str("---:|");
        }
        let _ = writeln!(out, "{head}\n{rule}");
        // Per baseline: pairs compared, pairs above, and the means over the compared pairs.
        let mut tally: Vec<(usize, usize, Vec<f64>, Vec<f64>)> = vec![(0, 0, Vec::new(), Vec::new()); baselines.len()];
        for ((source, task), rs) in &own {
            let mine = summarise(rs);
            let mut accs = String::new();
            let mut secs = String::new();
            for (i, b) in baselines.iter().enumerate() {
                match base.get(&(*b, (*source, *task))) {
                    Some(Some(c)) => {
                        let _ = write!(accs, " {} |", mean_cell(c.acc.0, c.acc.1, c.n, 2));
                        let _ = write!(secs, " {:.1} |", c.secs);
                        let t = &mut tally[i];
                        t.0 += 1;
                        t.1 += usize::from(mine.acc.0 > c.acc.0);
                        t.2.push(mine.acc.0);
                        t.3.push(c.acc.0);
                    }
                    Some(None) => {
                        accs.push_str(" several |");
                        secs.push_str(" – |");
                    }
                    None => {
                        accs.push_str(" – |");
                        secs.push_str(" – |");
                    }
                }
            }
            let _ = writeln!(
                out,
                "| {source} → {task} | {} |{accs} {:.1} |{secs}",
                mean_cell(mine.acc.0, mine.acc.1, mine.n, 2),
                mine.secs
            );
        }
        let verdicts: Vec<String> = baselines
            .iter()
            .zip(&tally)
            .filter(|(_, t)| t.0 > 0)
            .map(|(b, (n, above, mine, theirs))| {
                format!(
                    "above {b} on {above} of {n} pairs (mean over them {:.2} vs {:.2})",
                    mean_std(mine).0,
                    mean_std(theirs).0
                )
            })
            .collect();
        if !verdicts.is_empty() {
            let _ = writeln!(out, "\n{method}: {}.", verdicts.join("; "));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::rec;

    fn run(method: &str, task: &str, seed: u64, acc: f32, secs: f32) -> RunRecord {
        let mut r = rec(method, seed, acc);
        r.key = format!("s/{task}/{method}/s{seed}/h");
        r.task = task.into();
        r.train_seconds = secs;
        r
    }

    #[test]
    fn each_method_is_counted_against_each_baseline_pair_by_pair() {
        // Pair a: snow 80/90 (mean 85) vs FE 70/70 and FT 90/90; pair b: snow 60 vs FE 65, no FT.
        let records = [
            run("snow", "a", 0, 0.80, 4.0),
            run("snow", "a", 1, 0.90, 6.0),
            run("feature-extractor", "a", 0, 0.70, 3.0),
            run("feature-extractor", "a", 1, 0.70, 3.0),
            run("fine-tune", "a", 0, 0.90, 10.0),
            run("fine-tune", "a", 1, 0.90, 10.0),
            run("snow", "b", 0, 0.60, 5.0),
            run("feature-extractor", "b", 0, 0.65, 2.0),
        ];
        let refs: Vec<&RunRecord> = records.iter().collect();
        let md = render(&refs, &["feature-extractor", "fine-tune", "snow"], &BASELINES);
        assert!(md.contains("## Each method against feature-extractor and fine-tune"), "{md}");
        assert!(md.contains("| source → target | snow | feature-extractor | fine-tune | snow s/run | feature-extractor s/run | fine-tune s/run |"), "{md}");
        // sample std of 80, 90 is 7.07; the mean seconds of 4 and 6 is 5.
        assert!(md.contains("| s → a | 85.00 ± 7.07 | 70.00 ± 0.00 | 90.00 ± 0.00 | 5.0 | 3.0 | 10.0 |"), "{md}");
        // A single run: no "± 0.00", marked (1).
        assert!(md.contains("| s → b | 60.00 (1) | 65.00 (1) | – | 5.0 | 2.0 | – |"), "{md}");
        // FE: above on a (85 > 70), below on b (60 < 65): means over both 72.5 vs 67.5.
        assert!(
            md.contains(
                "snow: above feature-extractor on 1 of 2 pairs (mean over them 72.50 vs 67.50); \
                 above fine-tune on 0 of 1 pairs (mean over them 85.00 vs 90.00)."
            ),
            "{md}"
        );
        // The baselines get no table of their own.
        assert!(!md.contains("### feature-extractor") && !md.contains("### fine-tune"), "{md}");
    }

    #[test]
    fn without_a_baseline_nothing_is_written() {
        let records = [run("snow", "a", 0, 0.8, 1.0), run("ksm", "a", 0, 0.7, 1.0)];
        let refs: Vec<&RunRecord> = records.iter().collect();
        assert_eq!(render(&refs, &[], &BASELINES), "");
        // Against another method: ksm is set against snow.
        let md = render(&refs, &[], &["snow"]);
        assert!(md.contains("ksm: above snow on 0 of 1 pairs (mean over them 70.00 vs 80.00)."), "{md}");
    }
}
