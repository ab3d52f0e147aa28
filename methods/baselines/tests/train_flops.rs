//! The trainer's measured FLOPs per training image (`EpochMetrics::train_flops_per_image`),
//! checked against counts worked out from the backbone's layer list.

use candle_core::Device;
use graft_core::backbone::LayerKind;
use graft_core::train::EpochMetrics;
use graft_core::{registry, FitContext, Source};
use serde_json::json;

use graft_baselines as _;

/// The per-epoch training FLOPs of `method` fitted for one epoch on the tiny task.
fn train_flops(method: &str, source: &Source) -> f64 {
    let task = graft_core::conformance::tiny_task(2);
    let m = registry::build(method, Some(&json!({ "train": { "epochs": 1, "batch_size": 16 } }))).unwrap();
    let mut epochs: Vec<EpochMetrics> = Vec::new();
    let mut on_epoch = |e: &EpochMetrics| epochs.push(e.clone());
    let mut ctx = FitContext::new(Device::Cpu, 0);
    ctx.on_epoch = Some(&mut on_epoch);
    m.fit(source, &task, &mut ctx).unwrap();
    epochs[0].train_flops_per_image.expect("measured")
}

#[test]
fn fine_tuning_costs_three_conv_passes_less_the_first_convs_input_gradient() {
    let source = graft_core::conformance::tiny_source(1);
    let convs: Vec<u64> = source
        .backbone
        .structure()
        .iter()
        .filter(|l| matches!(l.kind, LayerKind::Conv(_)))
        .map(|l| l.flops)
        .collect();
    let all: u64 = convs.iter().sum();
    // Forward, input gradient and weight gradient of every conv, except the input gradient of
    // the first (the images need none).
    let want = (3 * all - convs[0]) as f64;
    assert_eq!(train_flops("fine-tune", &source), want);
    assert_eq!(train_flops("scratch", &source), want);
}

#[test]
fn a_linear_probe_on_cached_features_runs_no_convolution_per_step() {
    let source = graft_core::conformance::tiny_source(1);
    assert_eq!(train_flops("linear-probe", &source), 0.0);
}

#[test]
fn the_feature_extractor_pays_for_its_last_stage_only() {
    let source = graft_core::conformance::tiny_source(1);
    let stage: Vec<(String, u64)> = source
        .backbone
        .structure()
        .iter()
        .filter(|l| matches!(l.kind, LayerKind::Conv(_)) && l.name.starts_with("layer3."))
        .map(|l| (l.name.clone(), l.flops))
        .collect();
    let all: u64 = stage.iter().map(|(_, f)| f).sum();
    // The stage's input is cached and needs no gradient: the convs reading it (the first conv
    // and the shortcut of its first block) skip their input gradient.
    let reading_input: u64 = stage.iter().filter(|(n, _)| n == "layer3.0.conv1" || n.starts_with("layer3.0.shortcut") || n.starts_with("layer3.0.downsample")).map(|(_, f)| f).sum();
    assert!(reading_input > 0, "{stage:?}");
    assert_eq!(train_flops("feature-extractor", &source), (3 * all - reading_input) as f64);
}
