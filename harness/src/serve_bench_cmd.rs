//! `graft serve-bench`: serving throughput of N task models of a source-sharing method (one
//! source pass per batch feeds every model) against N separate models of a baseline (each
//! runs its whole network), with the memory each setup holds.

use crate::cli::ServeBenchArgs;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use graft_core::backbone::Arch;
use graft_core::bench::{peak_rss_bytes, BenchConfig};
use graft_core::serve::SharedServing;
use graft_core::{registry, Backbone, FitContext, Provenance, Source, Task, TaskModel};
use graft_datasets::{DatasetName, TaskSpec};
use graft_harness::serving::{ServeBench, ServeRow};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

/// Images the task models are fitted on (one epoch: serving speed does not depend on training).
const FIT_IMAGES: usize = 128;

/// The source to serve from: the file given, or the randomly initialised bench net.
fn source(args: &ServeBenchArgs) -> Result<Source> {
    match &args.source {
        Some(path) => Source::load(path, &Device::Cpu).with_context(|| format!("--source {}", path.display())),
        None => {
            let mut spec = BenchConfig::bench_net(args.channels).spec;
            spec.arch = Arch::ResnetCifar { depth: args.depth, width: args.width };
            Ok(Source::new(Backbone::init(spec, 0, &Device::Cpu)?, Provenance::default())?)
        }
    }
}

/// The embedded digits fitted to the source's input, cut to [`FIT_IMAGES`] training images.
fn fit_task(source: &Source) -> Result<Task> {
    let input = source.backbone.spec().input.shape();
    let mut task = TaskSpec::new("digits", DatasetName::Digits).build(Path::new("embedded"), input)?;
    let keep: Vec<usize> = (0..FIT_IMAGES.min(task.train.len())).collect();
    task.train = task.train.subset(&keep);
    task.val = task.val.subset(&[]);
    Ok(task)
}

/// `n` task models of `method`, each fitted for one epoch with its own seed.
fn models(method: &str, n: usize, source: &Source, task: &Task) -> Result<Vec<Box<dyn TaskModel>>> {
    let m = registry::build(method, Some(&json!({ "train": { "epochs": 1, "batch_size": 32 } })))
        .with_context(|| format!("method '{method}'"))?;
    (0..n)
        .map(|seed| Ok(m.fit(source, task, &mut FitContext::new(Device::Cpu, seed as u64))?))
        .collect()
}

/// Images per second of `serve` on `batch`, timed for at least `seconds` after one warm-up call.
fn throughput(batch: &Tensor, seconds: f64, serve: &dyn Fn(&Tensor) -> Result<Vec<Tensor>>) -> Result<f64> {
    serve(batch)?;
    let n = batch.dim(0)?;
    let (start, mut calls) = (Instant::now(), 0usize);
    while calls == 0 || start.elapsed().as_secs_f64() < seconds {
        serve(batch)?;
        calls += 1;
    }
    Ok((calls * n) as f64 / start.elapsed().as_secs_f64())
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Runs the comparison for every N in `--tasks` and prints one line per N; with `--json FILE`
/// writes the figures there too ([`ServeBench`]).
pub fn run(args: &ServeBenchArgs) -> Result<()> {
    if args.batch == 0 || args.seconds <= 0.0 || args.tasks.is_empty() || args.tasks.contains(&0) {
        bail!("--batch and every --tasks value must be at least 1, and --seconds positive");
    }
    let shared_method = registry::build(&args.method, None)?;
    if !shared_method.shares_source() {
        bail!("--method {}: the method does not share its source; serve-bench compares methods that do (e.g. snow)", args.method);
    }
    let source = source(args)?;
    let task = fit_task(&source)?;
    let most = *args.tasks.iter().max().expect("non-empty");
    eprintln!("fitting {most} {} and {most} {} task models for one epoch on {} digits", args.method, args.baseline, task.train.len());
    let shared = models(&args.method, most, &source, &task)?;
    let separate = models(&args.baseline, most, &source, &task)?;
    let batch = {
        let ids: Vec<usize> = (0..args.batch).map(|i| i % task.test.len()).collect();
        task.test.batch(&ids, &Device::Cpu)?.0
    };
    let source_bytes: usize = source.backbone.params().values().map(|t| t.elem_count() * 4).sum();
    println!(
        "serve-bench: source {} ({:.2} MiB), batch {}, {} threads; {} (one source pass per batch) vs {} (separate models)",
        source.backbone.spec().id(),
        mib(source_bytes),
        args.batch,
        rayon::current_num_threads(),
        args.method,
        args.baseline
    );
    let mut rows = Vec::new();
    for &n in &args.tasks {
        let group = &shared[..n];
        let server = SharedServing::new(&source, group)?;
        let shared_img_s = throughput(&batch, args.seconds, &|x| Ok(server.forward(x)?))?;
        let alone = &separate[..n];
        let separate_img_s = throughput(&batch, args.seconds, &|x| alone.iter().map(|m| Ok(m.forward(x)?)).collect())?;
        let shared_bytes = source_bytes + group.iter().map(|m| m.footprint().stored_bytes).sum::<usize>();
        let separate_bytes: usize = alone.iter().map(|m| m.footprint().stored_bytes).sum();
        println!(
            "tasks {n}: {} {:8.1} img/s ({:.2} MiB)  {} {:8.1} img/s ({:.2} MiB)  throughput {:.2}x, memory {:.2}x",
            args.method,
            shared_img_s,
            mib(shared_bytes),
            args.baseline,
            separate_img_s,
            mib(separate_bytes),
            shared_img_s / separate_img_s,
            separate_bytes as f64 / shared_bytes as f64
        );
        rows.push(ServeRow {
            tasks: n,
            shared_images_per_sec: shared_img_s,
            shared_mib: mib(shared_bytes),
            separate_images_per_sec: separate_img_s,
            separate_mib: mib(separate_bytes),
        });
    }
    if let Some(path) = &args.json {
        let bench = ServeBench {
            source: source.backbone.spec().id(),
            source_mib: mib(source_bytes),
            batch: args.batch,
            threads: rayon::current_num_threads(),
            method: args.method.clone(),
            baseline: args.baseline.clone(),
            rows,
        };
        let text = serde_json::to_string_pretty(&bench)?;
        graft_core::checkpoint::write_atomic(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("figures written to {}", path.display());
    }
    if let Some(rss) = peak_rss_bytes() {
        println!("peak RSS {:.0} MiB", rss as f64 / (1 << 20) as f64);
    }
    Ok(())
}
