//! Throughput of the bench net: the figures `graft bench` prints and `bench/pytorch_peer.py`
//! reproduces in PyTorch.
//!
//! A training step is what fine-tuning does each batch: forward with batch-statistics
//! BatchNorm, cross-entropy, backward through every layer, an SGD step (momentum 0.9, weight
//! decay 5e-4) on every parameter and the running-statistics update. Inference is the frozen
//! forward in evaluation mode, which builds no autograd graph.

use crate::backbone::{Arch, Backbone, BackboneSpec, InputSpec, TunedBackbone, LOGITS_TAP};
use crate::error::Result;
use crate::init::SeededRng;
use crate::optim::{OptimizerKind, OptimizerSettings, Optimizer, ParamGroup};
use candle_core::{Device, Tensor};
use std::time::Instant;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The network (the bench net is resnet-cifar-20, width 16).
    pub spec: BackboneSpec,
    /// Images per step.
    pub batch: usize,
    /// Least wall time spent on each figure, after warm-up.
    pub min_seconds: f64,
}

impl BenchConfig {
    /// The bench net for `channels x 32 x 32` inputs: resnet-cifar-20, width 16, 10 classes,
    /// batch 128.
    pub fn bench_net(channels: usize) -> Self {
        Self {
            spec: BackboneSpec {
                arch: Arch::ResnetCifar { depth: 20, width: 16 },
                input: InputSpec::new(channels, 32, 32),
                num_classes: 10,
            },
            batch: 128,
            min_seconds: 5.0,
        }
    }
}

/// Measured throughput.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// Training images per second.
    pub train_img_s: f64,
    /// Achieved training GFLOP/s, counting a step as 3× the forward FLOPs.
    pub train_gflops: f64,
    /// Inference images per second.
    pub infer_img_s: f64,
    /// Achieved inference GFLOP/s.
    pub infer_gflops: f64,
    /// Forward FLOPs per image (2 × multiply–accumulates).
    pub flops_per_image: u64,
}

/// Seconds per call of `f`, after two warm-up calls, over at least `min_seconds` and 3 calls.
fn seconds_per_call(min_seconds: f64, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    f()?;
    let (start, mut calls) = (Instant::now(), 0u32);
    loop {
        f()?;
        calls += 1;
        let t = start.elapsed().as_secs_f64();
        if t >= min_seconds && calls >= 3 {
            return Ok(t / f64::from(calls));
        }
    }
}

/// Measures training and inference throughput of `cfg.spec` on random data.
pub fn run(cfg: &BenchConfig) -> Result<BenchResult> {
    let dev = Device::Cpu;
    let backbone = Backbone::init(cfg.spec.clone(), 0, &dev)?;
    let what = format!("a training step of {} on a batch of {}", cfg.spec.id(), cfg.batch);
    crate::memory::check_fits(&what, crate::memory::training_activation_bytes(backbone.structure(), cfg.batch), "--batch", None)?;
    let (c, h, w) = cfg.spec.input.shape();
    let mut rng = SeededRng::new(1);
    let x = rng.uniform((cfg.batch, c, h, w), 0.0, 1.0, &dev)?;
    let labels: Vec<u32> = (0..cfg.batch).map(|i| (i % cfg.spec.num_classes) as u32).collect();
    let y = Tensor::from_vec(labels, cfg.batch, &dev)?;
    let flops = backbone.flops_per_image();

    let mut tuned = TunedBackbone::new(&backbone, "", |_| true)?;
    let settings = OptimizerSettings {
        optimizer: OptimizerKind::Sgd,
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 5e-4,
        ..OptimizerSettings::default()
    };
    let mut opt = Optimizer::new(vec![ParamGroup { vars: tuned.vars().vars(), settings }])?;
    let train = seconds_per_call(cfg.min_seconds, || {
        let logits = tuned.forward(&x, None, LOGITS_TAP, true)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        let grads = loss.backward()?;
        opt.step(&grads, 1.0)?;
        tuned.apply_bn_stats()
    })?;
    let infer = seconds_per_call(cfg.min_seconds, || {
        backbone.forward(&x)?;
        Ok(())
    })?;
    let per_s = |t: f64| cfg.batch as f64 / t;
    Ok(BenchResult {
        train_img_s: per_s(train),
        train_gflops: per_s(train) * 3.0 * flops as f64 / 1e9,
        infer_img_s: per_s(infer),
        infer_gflops: per_s(infer) * flops as f64 / 1e9,
        flops_per_image: flops,
    })
}

/// The process's peak resident memory in bytes (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
