//! The plots of a report, taken from its rows ([`crate::report::Aggregate`]): which plots there
//! are and their data as series ([`Plot`]), then their files and the markdown that embeds them.
//! Drawing is [`crate::plots`]. A plot is made only where its data are:
//!
//! - per declared (source, task) table with at least two rows drawable: test accuracy against
//!   trainable parameters and against stored bytes, log x, one point per row (mean over seeds,
//!   error bar ± the sample std); a row at 0 on the log axis is named in a note instead;
//! - per table whose runs recorded convergence curves: validation accuracy against optimiser
//!   step, one line per row, the mean over the seeds that recorded each step;
//! - per (source, declared task) with `sample_fractions` runs: test accuracy against training
//!   images (log x), one line per row label, the declared task's own runs as its last point;
//! - likewise with `label_noise` runs against the noise rate, the declared task at rate 0;
//! - per continual sequence, source and method config: its accuracy matrix (a heatmap);
//! - per `graft serve-bench --json` file: images/s against the number of tasks served.

use crate::plots::{self, Chart, Figure, PlotError, Point, Series};
use crate::report::{Aggregate, Group, Row};
use crate::results::CurveKind;
use crate::sequence::AccuracyMatrix;
use crate::serving::ServeBench;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::Path;

/// A plot's content: where it goes, its file stem, its frame and series.
#[derive(Clone, Debug, PartialEq)]
pub struct Plot {
    /// File stem, before it is made safe and unique.
    pub name: String,
    /// Frame: title, axis labels, log x.
    pub chart: Chart,
    /// The series.
    pub series: Vec<Series>,
    /// What the plot leaves out, if anything.
    pub note: Option<String>,
}

/// One style (colour and marker) per row label, in the order labels first appear in the
/// report, so a method looks the same in every plot.
pub fn styles(agg: &Aggregate) -> BTreeMap<String, usize> {
    let mut styles = BTreeMap::new();
    for row in agg.rows() {
        let next = styles.len();
        styles.entry(row.label.clone()).or_insert(next);
    }
    styles
}

fn acc_point(x: f64, r: &Row) -> Point {
    Point { x, y: r.test_acc_mean, err: r.test_acc_std }
}

/// Which cost a trade-off plot puts on its x axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Trainable parameters per task model.
    Params,
    /// Stored bytes per task model.
    Bytes,
}

/// Test accuracy against `cost` for one declared (source, task) table: one point per row, log x.
/// None for a curve's derived task (the curves show those) and when fewer than two rows can
/// be drawn.
pub fn cost_plot(g: &Group, cost: Cost, styles: &BTreeMap<String, usize>) -> Option<Plot> {
    if g.rows.iter().any(|r| r.axis_kind.is_some()) {
        return None;
    }
    let (what, stem, x_of): (&str, &str, fn(&Row) -> f64) = match cost {
        Cost::Params => ("trainable parameters", "params", |r| r.trainable_params),
        Cost::Bytes => ("stored bytes", "bytes", |r| r.stored_bytes),
    };
    let finite: Vec<&Row> = g.rows.iter().filter(|r| r.test_acc_mean.is_finite()).collect();
    let (drawn, zero): (Vec<&Row>, Vec<&Row>) = finite.into_iter().partition(|r| x_of(r) > 0.0);
    if drawn.len() < 2 {
        return None;
    }
    let series = drawn
        .iter()
        .map(|r| Series { name: r.label.clone(), points: vec![acc_point(x_of(r), r)], joined: false, style: styles[&r.label] })
        .collect();
    let note = (!zero.is_empty()).then(|| {
        let names: Vec<&str> = zero.iter().map(|r| r.label.as_str()).collect();
        format!("Not on the log axis ({what} 0): {}.", names.join(", "))
    });
    Some(Plot {
        name: format!("{stem}-{}-{}", g.source, g.task),
        chart: Chart {
            title: format!("{} → {}: accuracy against {what}", g.source, g.task),
            x_label: format!("{what} per task model (log scale)"),
            y_label: "test accuracy % (± std over seeds)".into(),
            log_x: true,
        },
        series,
        note,
    })
}

/// Validation accuracy against optimiser step for a table whose runs recorded curves: per row,
/// at every step any of its seeds recorded, the mean over the seeds that did.
pub fn convergence_plot(g: &Group, styles: &BTreeMap<String, usize>) -> Option<Plot> {
    let series: Vec<Series> = g
        .rows
        .iter()
        .zip(&g.runs)
        .filter(|(_, rs)| rs.iter().any(|r| !r.curve.is_empty()))
        .map(|(row, rs)| {
            let mut at: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            for p in rs.iter().flat_map(|r| &r.curve) {
                at.entry(p.step).or_default().push(p.val_acc as f64 * 100.0);
            }
            let points = at
                .into_iter()
                .map(|(step, accs)| Point { x: step as f64, y: accs.iter().sum::<f64>() / accs.len() as f64, err: None })
                .collect();
            Series { name: row.label.clone(), points, joined: true, style: styles[&row.label] }
        })
        .collect();
    if series.is_empty() {
        return None;
    }
    Some(Plot {
        name: format!("convergence-{}-{}", g.source, g.task),
        chart: Chart {
            title: format!("{} → {}: convergence", g.source, g.task),
            x_label: "optimiser step".into(),
            y_label: "validation accuracy % (mean over seeds)".into(),
            log_x: false,
        },
        series,
        note: None,
    })
}

/// The metric curves of `kind`: per (source, declared task) with runs on that curve, one line
/// per row label through its (x, accuracy) points, the declared task's own rows as the curve's
/// end (training images of the whole task; noise rate 0).
pub fn metric_curves(agg: &Aggregate, kind: CurveKind, styles: &BTreeMap<String, usize>) -> Vec<Plot> {
    let on_curve = |r: &Row| r.axis_kind == Some(kind);
    let bases: BTreeSet<(&str, &str)> = agg
        .rows()
        .filter(|r| on_curve(r))
        .filter_map(|r| r.axis_base_task.as_deref().map(|b| (r.source.as_str(), b)))
        .collect();
    let x_of = |r: &Row| match kind {
        CurveKind::SampleFraction => r.train_size as f64,
        CurveKind::LabelNoise => r.axis_value.unwrap_or(0.0),
    };
    let mut plots = Vec::new();
    for (source, base) in bases {
        let rows = agg.rows().filter(|r| {
            r.source == source
                && r.test_acc_mean.is_finite()
                && ((on_curve(r) && r.axis_base_task.as_deref() == Some(base)) || (r.axis_kind.is_none() && r.task == base))
        });
        let mut lines: BTreeMap<(usize, &str), Vec<Point>> = BTreeMap::new();
        for r in rows {
            lines.entry((styles[&r.label], r.label.as_str())).or_default().push(acc_point(x_of(r), r));
        }
        let series: Vec<Series> = lines
            .into_iter()
            .map(|((style, label), mut points)| {
                points.sort_by(|a, b| a.x.total_cmp(&b.x));
                Series { name: label.to_string(), points, joined: true, style }
            })
            .collect();
        if series.iter().map(|s| s.points.len()).sum::<usize>() < 2 {
            continue;
        }
        let (stem, what, x_label, log_x) = match kind {
            CurveKind::SampleFraction => ("samples", "training images", "training images (log scale)", true),
            CurveKind::LabelNoise => ("noise", "label noise", "rate of symmetric training-label noise", false),
        };
        plots.push(Plot {
            name: format!("{stem}-{source}-{base}"),
            chart: Chart {
                title: format!("{source} → {base}: accuracy against {what}"),
                x_label: x_label.into(),
                y_label: "test accuracy % (± std over seeds)".into(),
                log_x,
            },
            series,
            note: None,
        });
    }
    plots
}

/// Images/s against the number of tasks served, for both setups of one serve-bench file.
pub fn serving_plot(name: &str, bench: &ServeBench) -> Option<Plot> {
    if bench.rows.is_empty() {
        return None;
    }
    let line = |name: String, style: usize, y: fn(&crate::serving::ServeRow) -> f64| Series {
        name,
        points: bench.rows.iter().map(|r| Point { x: r.tasks as f64, y: y(r), err: None }).collect(),
        joined: true,
        style,
    };
    Some(Plot {
        name: format!("serving-{name}"),
        chart: Chart {
            title: format!("Serving from {} (batch {}, {} threads)", bench.source, bench.batch, bench.threads),
            x_label: "task models served".into(),
            y_label: "images/s (every image through every model)".into(),
            log_x: false,
        },
        series: vec![
            line(format!("{}: one source pass", bench.method), 0, |r| r.shared_images_per_sec),
            line(format!("{}: separate models", bench.baseline), 1, |r| r.separate_images_per_sec),
        ],
        note: None,
    })
}

/// The plots written for a report, to embed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Written {
    /// Under each (source, task) table.
    pub by_group: BTreeMap<(String, String), Vec<Figure>>,
    /// The metric-curve section.
    pub curves: Vec<Figure>,
    /// The continual sequences' accuracy matrices.
    pub sequences: Vec<Figure>,
    /// The serving section, with the files' measurements.
    pub serving: Vec<(Figure, ServeBench)>,
}

/// A file stem made of letters, digits, `.`, `_` and `-` only, unique among `taken`.
fn file_stem(name: &str, taken: &mut BTreeSet<String>) -> String {
    let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    let mut stem = safe.clone();
    let mut i = 2;
    while !taken.insert(stem.clone()) {
        stem = format!("{safe}-{i}");
        i += 1;
    }
    stem
}

/// The title of a sequence's accuracy matrix: the method, with its config hash where the
/// method ran the sequence with several configs.
fn matrix_title(m: &AccuracyMatrix, all: &[AccuracyMatrix]) -> String {
    let configs = all.iter().filter(|o| o.sequence == m.sequence && o.source == m.source && o.method == m.method).count();
    let method = if configs > 1 { format!("{} (cfg {})", m.method, m.config_hash) } else { m.method.clone() };
    format!("{} on {}: {method}", m.sequence, m.source)
}

/// Draws every plot of `agg`, of the sequences' accuracy `matrices` and of the serve-bench
/// measurements `serving` (name, content) into `dir` as SVG, after removing the SVG files a
/// previous report left there; `rel` is `dir` as the markdown links it.
pub fn write(
    agg: &Aggregate,
    matrices: &[AccuracyMatrix],
    serving: &[(String, ServeBench)],
    dir: &Path,
    rel: &str,
) -> Result<Written, PlotError> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "svg") {
                std::fs::remove_file(e.path()).map_err(|source| PlotError::Write { path: e.path(), source })?;
            }
        }
    }
    let styles = styles(agg);
    let mut taken = BTreeSet::new();
    let mut draw = |plot: Plot| -> Result<Figure, PlotError> {
        let stem = file_stem(&plot.name, &mut taken);
        plots::xy_svg(&dir.join(format!("{stem}.svg")), &plot.chart, &plot.series)?;
        Ok(Figure { title: plot.chart.title, path: format!("{rel}/{stem}.svg"), note: plot.note })
    };
    let mut written = Written::default();
    for g in &agg.groups {
        let plots = [cost_plot(g, Cost::Params, &styles), cost_plot(g, Cost::Bytes, &styles), convergence_plot(g, &styles)];
        let figures = plots.into_iter().flatten().map(&mut draw).collect::<Result<Vec<_>, _>>()?;
        if !figures.is_empty() {
            written.by_group.insert((g.source.to_string(), g.task.to_string()), figures);
        }
    }
    for kind in [CurveKind::SampleFraction, CurveKind::LabelNoise] {
        for plot in metric_curves(agg, kind, &styles) {
            written.curves.push(draw(plot)?);
        }
    }
    for (name, bench) in serving {
        if let Some(plot) = serving_plot(name, bench) {
            written.serving.push((draw(plot)?, bench.clone()));
        }
    }
    for m in matrices.iter().filter(|m| !m.tasks.is_empty()) {
        let title = matrix_title(m, matrices);
        let stem = file_stem(&format!("matrix-{}-{}-{}-{}", m.sequence, m.source, m.method, m.config_hash), &mut taken);
        plots::accuracy_matrix_svg(&dir.join(format!("{stem}.svg")), &title, &m.tasks, &m.values)?;
        written.sequences.push(Figure { title, path: format!("{rel}/{stem}.svg"), note: None });
    }
    Ok(written)
}

/// The markdown section of the metric curves (empty without any).
pub fn curves_markdown(figures: &[Figure]) -> String {
    section_markdown(
        "## Metric curves\n\nTest accuracy % against the training images kept (`sample_fractions`) and against the rate \
         of training-label noise (`label_noise`), one line per method, mean over seeds with ± the sample std as error \
         bars; the declared task's own runs are the whole-set and noise-0 points.\n",
        figures,
    )
}

/// The markdown section of the sequences' accuracy matrices (empty without any).
pub fn sequences_markdown(figures: &[Figure]) -> String {
    section_markdown(
        "## Accuracy matrices of the continual sequences\n\nTest accuracy % of each task (columns) after learning the \
         task of each row, mean over seeds.\n",
        figures,
    )
}

/// `heading` (a title and its paragraph) and every figure embedded under it; empty without figures.
fn section_markdown(heading: &str, figures: &[Figure]) -> String {
    let mut out = String::new();
    if figures.is_empty() {
        return out;
    }
    let _ = writeln!(out, "{heading}");
    for f in figures {
        let _ = writeln!(out, "{}\n", f.markdown());
    }
    out
}

/// The markdown section of the serve-bench plots (empty without any).
pub fn serving_markdown(figures: &[(Figure, ServeBench)]) -> String {
    let mut out = String::new();
    if figures.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "## Serving\n\nImages/s of N task models of a source-sharing method fed by one source pass per batch, against N \
         separate models of the baseline (`graft serve-bench --json`).\n"
    );
    for (f, b) in figures {
        let _ = writeln!(out, "{}\n", f.markdown());
        let _ = writeln!(out, "| tasks | {} img/s | {} MiB | {} img/s | {} MiB |", b.method, b.method, b.baseline, b.baseline);
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|");
        for r in &b.rows {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.2} | {:.1} | {:.2} |",
                r.tasks, r.shared_images_per_sec, r.shared_mib, r.separate_images_per_sec, r.separate_mib
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::aggregate;
    use crate::report::tests::rec;
    use crate::results::{CurvePosition, RunRecord};

    fn on(task: &str, method: &str, seed: u64, acc: f32) -> RunRecord {
        let mut r = rec(method, seed, acc);
        r.task = task.into();
        r.key = format!("s/{task}/{method}/s{seed}/h");
        r
    }

    fn at(mut r: RunRecord, kind: CurveKind, value: f64, train_size: usize) -> RunRecord {
        r.axis = Some(CurvePosition { base_task: "t".into(), kind, value });
        r.train_size = train_size;
        r
    }

    #[test]
    fn cost_plots_have_a_point_per_row_and_name_rows_at_zero() {
        let mut ft = on("t", "fine-tune", 0, 0.875);
        ft.footprint.trainable_params = 77_000;
        let mut free = on("t", "poe", 0, 0.6);
        free.footprint.trainable_params = 0;
        let records = [on("t", "linear-probe", 0, 0.5), on("t", "linear-probe", 1, 0.75), ft, free];
        let agg = aggregate(&records, &["fine-tune", "linear-probe", "poe"]);
        let st = styles(&agg);
        let plot = cost_plot(&agg.groups[0], Cost::Params, &st).unwrap();
        assert!(plot.chart.log_x);
        let points: Vec<(&str, Vec<Point>)> = plot.series.iter().map(|s| (s.name.as_str(), s.points.clone())).collect();
        // linear-probe: mean of 50 and 75, sample std √(2 × 12.5²) = 17.68; fine-tune one run.
        assert_eq!(points[0], ("fine-tune", vec![Point { x: 77_000.0, y: 87.5, err: None }]));
        assert_eq!(points[1].0, "linear-probe");
        assert_eq!((points[1].1[0].x, points[1].1[0].y), (1000.0, 62.5));
        assert!((points[1].1[0].err.unwrap() - 17.677_669_529_663_69).abs() < 1e-9);
        assert_eq!(points.len(), 2);
        assert_eq!(plot.note.as_deref(), Some("Not on the log axis (trainable parameters 0): poe."));
        // Bytes: every row has 4000, so all three are drawn.
        assert_eq!(cost_plot(&agg.groups[0], Cost::Bytes, &st).unwrap().series.len(), 3);
        // One row alone is no trade-off.
        let one = [on("t", "fine-tune", 0, 0.9)];
        let agg = aggregate(&one, &[]);
        assert!(cost_plot(&agg.groups[0], Cost::Params, &styles(&agg)).is_none());
    }

    #[test]
    fn sample_curves_run_through_the_fractions_to_the_declared_task() {
        let quarter = |m, seed, acc| at(on("t-frac0.25", m, seed, acc), CurveKind::SampleFraction, 0.25, 25);
        let records = [
            on("t", "fine-tune", 0, 0.875),
            on("t", "fine-tune", 1, 0.625),
            quarter("fine-tune", 0, 0.5),
            at(on("t-frac0.5", "fine-tune", 0, 0.75), CurveKind::SampleFraction, 0.5, 50),
            quarter("linear-probe", 0, 0.25),
            on("u", "fine-tune", 0, 0.9),
            at(on("t-noise0.2", "fine-tune", 0, 0.5), CurveKind::LabelNoise, 0.2, 100),
        ];
        let agg = aggregate(&records, &["fine-tune", "linear-probe"]);
        let st = styles(&agg);
        let curves = metric_curves(&agg, CurveKind::SampleFraction, &st);
        assert_eq!(curves.len(), 1, "one declared task has the curve");
        let c = &curves[0];
        assert_eq!(c.chart.title, "s → t: accuracy against training images");
        assert!(c.chart.log_x);
        let ft = &c.series[0];
        assert_eq!(ft.name, "fine-tune");
        // x = training images: 25, 50, then the declared task's 100 (mean 75 ± 17.68 over 2 seeds).
        let xy: Vec<(f64, f64)> = ft.points.iter().map(|p| (p.x, p.y)).collect();
        assert_eq!(xy, [(25.0, 50.0), (50.0, 75.0), (100.0, 75.0)]);
        assert!((ft.points[2].err.unwrap() - 17.677_669_529_663_69).abs() < 1e-9);
        assert_eq!(ft.points[0].err, None);
        assert_eq!(c.series[1].name, "linear-probe");
        assert_eq!(c.series[1].points.len(), 1);

        let noise = metric_curves(&agg, CurveKind::LabelNoise, &st);
        assert_eq!(noise.len(), 1);
        assert!(!noise[0].chart.log_x);
        let xy: Vec<(f64, f64)> = noise[0].series[0].points.iter().map(|p| (p.x, p.y)).collect();
        assert_eq!(xy, [(0.0, 75.0), (0.2, 50.0)]);
        // The derived tasks get no cost plots of their own.
        let frac = agg.groups.iter().find(|g| g.task == "t-frac0.25").unwrap();
        assert!(cost_plot(frac, Cost::Params, &st).is_none());
    }

    #[test]
    fn convergence_averages_the_seeds_that_recorded_each_step() {
        let point = |step, acc| graft_core::train::CurvePoint { step, epoch: 0, val_acc: acc, train_loss: None, elapsed_sec: 0.0 };
        let mut a = on("t", "tli", 0, 0.5);
        let mut b = on("t", "tli", 1, 0.5);
        a.curve = vec![point(0, 0.25), point(10, 0.5)];
        b.curve = vec![point(0, 0.75), point(10, 1.0), point(20, 1.0)];
        let records = [a, b, on("t", "scratch", 0, 0.5)];
        let agg = aggregate(&records, &[]);
        let plot = convergence_plot(&agg.groups[0], &styles(&agg)).unwrap();
        assert_eq!(plot.series.len(), 1, "scratch recorded no curve");
        let xy: Vec<(f64, f64)> = plot.series[0].points.iter().map(|p| (p.x, p.y)).collect();
        assert_eq!(xy, [(0.0, 50.0), (10.0, 75.0), (20.0, 100.0)]);
        let none = [on("t", "scratch", 0, 0.5)];
        let agg = aggregate(&none, &[]);
        assert!(convergence_plot(&agg.groups[0], &styles(&agg)).is_none());
    }

    #[test]
    fn written_plots_are_svg_files_linked_from_their_places() {
        let mut ft = on("t", "fine-tune", 0, 0.9);
        ft.footprint.trainable_params = 77_000;
        let records = [on("t", "linear-probe", 0, 0.5), ft, at(on("t-frac0.5", "fine-tune", 0, 0.75), CurveKind::SampleFraction, 0.5, 50)];
        let agg = aggregate(&records, &["fine-tune", "linear-probe"]);
        let dir = tempfile::tempdir().unwrap();
        let plots_dir = dir.path().join("r-plots");
        std::fs::create_dir_all(&plots_dir).unwrap();
        std::fs::write(plots_dir.join("stale.svg"), "old").unwrap();
        let bench = ServeBench {
            source: "bench".into(),
            source_mib: 1.0,
            batch: 8,
            threads: 2,
            method: "snow".into(),
            baseline: "fine-tune".into(),
            rows: vec![crate::serving::ServeRow { tasks: 1, shared_images_per_sec: 10.0, shared_mib: 1.5, separate_images_per_sec: 12.0, separate_mib: 1.0 }],
        };
        let matrix = AccuracyMatrix {
            sequence: "q".into(),
            source: "s".into(),
            method: "ksm".into(),
            config_hash: "h".into(),
            tasks: vec!["a".into(), "b".into()],
            values: vec![vec![Some(80.0), None], vec![Some(79.0), Some(90.0)]],
        };
        let w = write(&agg, &[matrix], &[("s b".into(), bench)], &plots_dir, "r-plots").unwrap();
        let group = &w.by_group[&("s".to_string(), "t".to_string())];
        let paths: Vec<&str> = group.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["r-plots/params-s-t.svg", "r-plots/bytes-s-t.svg"]);
        assert_eq!(w.curves.len(), 1);
        assert_eq!(w.curves[0].path, "r-plots/samples-s-t.svg");
        assert_eq!(w.serving[0].0.path, "r-plots/serving-s_b.svg");
        let mut files: Vec<String> =
            std::fs::read_dir(&plots_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        files.sort();
        assert_eq!(
            files,
            ["bytes-s-t.svg", "matrix-q-s-ksm-h.svg", "params-s-t.svg", "samples-s-t.svg", "serving-s_b.svg"],
            "the stale plot is gone"
        );
        assert_eq!(w.sequences[0].title, "q on s: ksm");
        assert!(sequences_markdown(&w.sequences).contains("![q on s: ksm](r-plots/matrix-q-s-ksm-h.svg)"));
        assert!(std::fs::read_to_string(plots_dir.join("params-s-t.svg")).unwrap().starts_with("<svg"));
        let md = curves_markdown(&w.curves);
        assert!(md.contains("![s → t: accuracy against training images](r-plots/samples-s-t.svg)"), "{md}");
        let md = serving_markdown(&w.serving);
        assert!(md.contains("| 1 | 10.0 | 1.50 | 12.0 | 1.00 |"), "{md}");
        let mut taken = BTreeSet::new();
        assert_eq!(file_stem("a/b", &mut taken), "a_b");
        assert_eq!(file_stem("a b", &mut taken), "a_b-2");
    }
}
