//! `graft`: the command-line harness. Pretrains sources, runs method × task × seed grids from
//! suite files into JSONL results, and writes markdown reports. With no arguments it runs the
//! embedded quick suite and prints its report.

mod backbones_cmd;
mod bench_cmd;
mod cli;
mod data_cmd;
mod import_cmd;
mod list;
mod lock;
mod merge_cmd;
mod open_task;
mod poe_cmd;
mod predict_cmd;
mod pretrain_cmd;
mod runner;
mod serve_bench_cmd;
mod tli_cmd;

// The file formats live in the library target.
use graft_harness::{candidates, export, figures, report, results, sequence, serving, suite, versus};

// Method crates register themselves when linked; name each one here.
use graft_adapters as _;
use graft_attention as _;
use graft_baselines as _;
use graft_ksm as _;
use graft_piggyback as _;
use graft_poe as _;
use graft_snow as _;
use graft_tli as _;

use anyhow::{bail, Context, Result};
use clap::Parser;
use cli::{Cli, Command, DataCommand, ReportArgs, ReportFormat, RunArgs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The quick suite, compiled in.
const QUICK_SUITE: &str = include_str!("../suites/quick.toml");

fn main() -> ExitCode {
    graft_core::kernels::tune_allocator();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        // Before any tensor work: candle's CPU kernels size their pools from it.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let data_dir = || -> Result<PathBuf> {
        match &cli.data_dir {
            Some(d) => Ok(d.clone()),
            None => Ok(graft_datasets::data_dir()?),
        }
    };
    match cli.command {
        None => quick(&data_dir()?),
        Some(Command::List(args)) => {
            print!("{}", list::render(args.format)?);
            Ok(())
        }
        Some(Command::Data(DataCommand::Fetch { datasets })) => {
            data_cmd::fetch(&datasets, &data_dir()?)
        }
        Some(Command::Data(DataCommand::Status)) => data_cmd::status(&data_dir()?),
        Some(Command::Pretrain(args)) => pretrain_cmd::run(&args, &data_dir()?),
        Some(Command::Import(args)) => import_cmd::import(&args),
        Some(Command::Export(args)) => import_cmd::export(&args),
        Some(Command::Predict(args)) => predict_cmd::run(&args),
        Some(Command::Backbones(args)) => {
            print!("{}", backbones_cmd::render(&args)?);
            Ok(())
        }
        Some(Command::Run(args)) => run_cmd(&args, &data_dir()?),
        Some(Command::Report(args)) => report_cmd(&args),
        Some(Command::Bench(args)) => bench_cmd::run(&args),
        Some(Command::ServeBench(args)) => serve_bench_cmd::run(&args),
        Some(Command::Tli(cmd)) => {
            print!("{}", tli_cmd::run(&cmd)?);
            Ok(())
        }
        Some(Command::Poe(cmd)) => {
            print!("{}", poe_cmd::run(&cmd, &data_dir()?)?);
            Ok(())
        }
        Some(Command::Merge(args)) => merge_cmd::run(&args),
    }
}

/// Turns a run summary into the command's outcome: non-zero when runs failed, naming them.
fn finish(summary: &runner::RunSummary) -> Result<()> {
    if summary.failed.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = summary
        .failed
        .iter()
        .map(|(k, e)| format!("  {k}: {e}"))
        .collect();
    bail!(
        "{} run(s) failed:\n{}",
        summary.failed.len(),
        list.join("\n")
    )
}

fn run_cmd(args: &RunArgs, data_dir: &Path) -> Result<()> {
    let shard = args
        .shard
        .as_deref()
        .map(str::parse::<runner::Shard>)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    let suite = suite::Suite::load_with(&args.suite, &args.set)?;
    let opts = runner::RunOptions {
        results: suite.results_path(args.results.as_deref()),
        sources: args.sources.clone(),
        verbosity: match (args.quiet, args.verbose) {
            (true, _) => cli::Verbosity::Quiet,
            (_, true) => cli::Verbosity::Verbose,
            _ => cli::Verbosity::Normal,
        },
        shard,
        progress: cli::progress_enabled(args.progress, args.no_progress),
        data_dir: data_dir.to_path_buf(),
    };
    let summary = runner::run_suite(&suite, &opts)?;
    finish(&summary)
}

fn quick(data_dir: &Path) -> Result<()> {
    let suite = suite::Suite::parse(QUICK_SUITE, "harness/suites/quick.toml (embedded)")?;
    let opts = runner::RunOptions {
        results: suite.results_path(None),
        sources: None,
        verbosity: cli::Verbosity::Normal,
        shard: None,
        progress: cli::progress_enabled(false, false),
        data_dir: data_dir.to_path_buf(),
    };
    println!(
        "running the quick suite ({}); results in {}",
        suite.name,
        opts.results.display()
    );
    let summary = runner::run_suite(&suite, &opts)?;
    let out = opts.results.with_extension("md");
    let how = ReportOptions { format: ReportFormat::Md, plots: true, serving: &[] };
    write_report(std::slice::from_ref(&opts.results), &out, &versus::BASELINES, &how)?;
    finish(&summary)
}

fn report_cmd(args: &ReportArgs) -> Result<()> {
    let files = if args.results.is_empty() {
        let dir = Path::new("results");
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("no results files given and cannot list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            // A suite's sequences file is read beside its results file, not as one.
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl") && !p.to_string_lossy().ends_with(".sequences.jsonl"))
            .collect();
        v.sort();
        if v.is_empty() {
            bail!("no results files given and none in {}/", dir.display());
        }
        v
    } else {
        args.results.clone()
    };
    let ext = args.format.extension();
    let out = match &args.out {
        Some(o) => o.clone(),
        None if files.len() == 1 => files[0].with_extension(ext),
        None if args.results.is_empty() => PathBuf::from(format!("results/report.{ext}")),
        None => files[0].with_extension(ext),
    };
    let named: Vec<&str> = args.against.iter().map(String::as_str).collect();
    let against: &[&str] = if named.is_empty() { &versus::BASELINES } else { &named };
    let how = ReportOptions { format: args.format, plots: !args.no_plots, serving: &args.serving };
    write_report(&files, &out, against, &how)
}

/// What a report is written as.
struct ReportOptions<'a> {
    /// Markdown, CSV or JSON.
    format: ReportFormat,
    /// Markdown with SVG plots in `<out stem>-plots/`.
    plots: bool,
    /// `graft serve-bench --json` files for the Serving section.
    serving: &'a [PathBuf],
}

/// Reads `files`, prints the report (every other method set against `against`) and writes it
/// to `out`: markdown with its plots beside it, or the table rows as CSV or JSON.
fn write_report(files: &[PathBuf], out: &Path, against: &[&str], how: &ReportOptions) -> Result<()> {
    let mut records = Vec::new();
    let mut sequences = Vec::new();
    for f in files {
        if !f.exists() {
            bail!("results file {} does not exist", f.display());
        }
        records.extend(results::read_reporting(f)?.records);
        sequences.extend(results::read_lines_reporting::<sequence::SequenceRecord>(&sequence::sequences_path(f))?.0);
    }
    let order: Vec<&str> = graft_core::registry::methods()
        .iter()
        .map(|m| m.name)
        .collect();
    let agg = report::aggregate(&records, &order);
    let text = match how.format {
        ReportFormat::Csv => export::csv(agg.rows()),
        ReportFormat::Json => export::json(agg.rows()),
        ReportFormat::Md => {
            let written = if how.plots {
                let benches = how
                    .serving
                    .iter()
                    .map(|f| {
                        let name = f.file_stem().map_or("serve-bench".into(), |s| s.to_string_lossy().into_owned());
                        Ok((name, serving::read(f)?))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let stem = out.file_stem().map_or("report".into(), |s| s.to_string_lossy().into_owned());
                let rel = format!("{stem}-plots");
                let matrices = sequence::accuracy_matrices(&sequences);
                figures::write(&agg, &matrices, &benches, &out.with_file_name(&rel), &rel)?
            } else {
                figures::Written::default()
            };
            let mut md = report::render_aggregate(&agg, &order, against, &written.by_group);
            md.push_str(&figures::curves_markdown(&written.curves));
            md.push_str(&sequence::render(&sequences, &records, &order));
            md.push_str(&figures::sequences_markdown(&written.sequences));
            md.push_str(&figures::serving_markdown(&written.serving));
            md
        }
    };
    print!("{text}");
    graft_core::checkpoint::write_atomic(out, text.as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("report written to {}", out.display());
    Ok(())
}
