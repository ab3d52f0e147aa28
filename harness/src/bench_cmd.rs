//! `graft bench`: training and inference throughput of the bench net, in the format that
//! `bench/pytorch_peer.py` prints for PyTorch.

use crate::cli::BenchArgs;
use anyhow::{bail, Result};
use graft_core::backbone::{Arch, InputSpec};
use graft_core::bench::{self, BenchConfig};

/// Runs the benchmark for every requested input and prints one line per figure.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.batch == 0 || args.seconds <= 0.0 {
        bail!("--batch must be at least 1 and --seconds positive");
    }
    let channels = if args.channels.is_empty() { vec![1, 3] } else { args.channels.clone() };
    println!(
        "graft {}, {} threads, batch {}",
        env!("CARGO_PKG_VERSION"),
        rayon::current_num_threads(),
        args.batch
    );
    for c in channels {
        let mut cfg = BenchConfig::bench_net(c);
        cfg.spec.arch = Arch::ResnetCifar { depth: args.depth, width: args.width };
        cfg.spec.input = InputSpec::new(c, 32, 32);
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
    Ok(())
}
