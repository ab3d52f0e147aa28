//! `graft bench`: training and inference throughput of the bench net, in the format that
//! `bench/pytorch_peer.py` prints for PyTorch, and the feature cache's effect on a linear probe.

use crate::cli::BenchArgs;
use anyhow::{bail, Result};
use graft_core::backbone::Arch;
use graft_core::bench::{self, BenchConfig};
use graft_core::features::FeatureCache;
use graft_core::{registry, Backbone, FitContext, Provenance, Source};
use graft_datasets::{DatasetName, TaskSpec};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

/// Runs the benchmark for every requested input and prints one line per figure.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.batch == 0 || args.seconds <= 0.0 {
        bail!("--batch must be at least 1 and --seconds positive");
    }
    let channels = if args.channels.is_empty() { vec![1, 3] } else { args.channels.clone() };
    println!("graft {}, {} threads, batch {}", env!("CARGO_PKG_VERSION"), rayon::current_num_threads(), args.batch);
    if !args.probe_only {
        for c in channels {
            let mut cfg = BenchConfig::bench_net(c);
            cfg.spec.arch = Arch::ResnetCifar { depth: args.depth, width: args.width };
            cfg.batch = args.batch;
            cfg.min_seconds = args.seconds;
            let net = format!("resnet-cifar-{} w{} {c}x32x32", args.depth, args.width);
            let r = bench::run(&cfg)?;
            println!("train     {net}: {:8.1} img/s  {:6.1} GFLOP/s", r.train_img_s, r.train_gflops);
            println!("inference {net}: {:8.1} img/s  {:6.1} GFLOP/s", r.infer_img_s, r.infer_gflops);
        }
        if let Some(rss) = bench::peak_rss_bytes() {
            println!("peak RSS {:.0} MiB", rss as f64 / (1 << 20) as f64);
        }
    }
    if args.probe || args.probe_only {
        probe(args)?;
    }
    Ok(())
}

/// Mean seconds per epoch of a linear probe, and seconds spent before the first epoch (cache
/// fill), with the given feature cache.
fn probe_epochs(source: &Source, task: &graft_core::Task, cache: FeatureCache, batch: usize) -> Result<(f64, f64)> {
    let epochs = 4;
    let method = registry::build("linear-probe", Some(&json!({ "train": { "epochs": epochs, "batch_size": batch } })))?;
    let mut ends = Vec::new();
    let mut record = |m: &graft_core::train::EpochMetrics| ends.push(f64::from(m.elapsed_sec));
    let start = Instant::now();
    {
        let mut ctx = FitContext::new(source.backbone.device().clone(), 0);
        ctx.features = cache;
        ctx.on_epoch = Some(&mut record);
        method.fit(source, task, &mut ctx)?;
    }
    let total = start.elapsed().as_secs_f64();
    let train = ends.last().copied().unwrap_or(0.0);
    Ok((train / epochs as f64, total - train))
}

/// Prints linear-probe seconds per epoch with and without the feature cache.
fn probe(args: &BenchArgs) -> Result<()> {
    let spec = BenchConfig::bench_net(1).spec;
    let net = format!("resnet-cifar-20 w16 1x32x32 ({})", spec.id());
    let source = Source::new(Backbone::init(spec, 0, &candle_core::Device::Cpu)?, Provenance::default())?;
    let task = TaskSpec::new("digits", DatasetName::Digits).build(Path::new("embedded"), (1, 32, 32))?;
    let (cached, fill) = probe_epochs(&source, &task, FeatureCache::default(), args.batch)?;
    let (recomputed, _) = probe_epochs(&source, &task, FeatureCache::disabled(), args.batch)?;
    println!(
        "linear-probe epoch, {net}, {} train + {} val digits: cached {:.1} ms (fill {:.2} s once), \
         recomputed {:.1} ms, ratio {:.0}x",
        task.train.len(),
        task.val.len(),
        cached * 1e3,
        fill,
        recomputed * 1e3,
        recomputed / cached
    );
    Ok(())
}
