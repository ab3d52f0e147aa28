//! Learning test on real data: pretrain a small source on UCI digits 0–4, transfer to digits
//! 5–9 (five new classes, chance = 20 %) with every baseline.

use candle_core::Device;
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::pretrain::pretrain;
use graft_core::train::{accuracy, Split, TrainConfig};
use graft_core::{registry, FitContext, Source, Task};
use graft_datasets::{DatasetName, TaskSpec};
use serde_json::json;
use std::path::Path;

use graft_baselines as _;

fn digits_task(name: &str, classes: &[u32]) -> Task {
    let mut spec = TaskSpec::new(name, DatasetName::Digits);
    spec.classes = Some(classes.to_vec());
    spec.build(Path::new("unused: digits are embedded"), (1, 8, 8)).unwrap()
}

fn source() -> Source {
    let spec = BackboneSpec { arch: Arch::ResnetCifar { depth: 8, width: 8 }, input: InputSpec::new(1, 8, 8), num_classes: 5 };
    let cfg = TrainConfig { epochs: 10, batch_size: 32, lr: 0.05, ..TrainConfig::default() };
    let (source, _) = pretrain(spec, &digits_task("digits-0to4", &[0, 1, 2, 3, 4]), &cfg, &mut FitContext::new(Device::Cpu, 0)).unwrap();
    assert!(source.provenance.test_accuracy > 0.9, "source only reached {}", source.provenance.test_accuracy);
    source
}

fn transfer(source: &Source, target: &Task, method: &str, epochs: usize) -> f32 {
    let m = registry::build(method, Some(&json!({ "train": { "epochs": epochs, "batch_size": 32 } }))).unwrap();
    let model = m.fit(source, target, &mut FitContext::new(Device::Cpu, 1)).unwrap();
    let x = target.test.images_tensor(&Device::Cpu).unwrap();
    accuracy(&|x| model.forward(x), Split { x: &x, y: &target.test.labels }, 256).unwrap()
}

#[test]
fn every_baseline_beats_chance_on_new_digit_classes() {
    let source = source();
    // Deep copies of the values (tensors share storage, so a clone would follow any mutation).
    let values = |s: &Source| -> Vec<Vec<u32>> {
        s.backbone.params().values().map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f32::to_bits).collect()).collect()
    };
    let before = values(&source);
    let target = digits_task("digits-5to9", &[5, 6, 7, 8, 9]);
    let lp = transfer(&source, &target, "linear-probe", 30);
    let fe = transfer(&source, &target, "feature-extractor", 10);
    let ft = transfer(&source, &target, "fine-tune", 10);
    eprintln!("digits 0-4 -> 5-9: linear-probe {lp:.3}, feature-extractor {fe:.3}, fine-tune {ft:.3}");
    // Chance is 0.2; a frozen 5-class digit source still separates new digits well.
    assert!(lp > 0.6, "linear-probe {lp}");
    assert!(fe > 0.8, "feature-extractor {fe}");
    assert!(ft > 0.8, "fine-tune {ft}");
    // The source was shared by all three fits and never changed.
    assert!(values(&source) == before, "a baseline modified the frozen source");
}

/// Logits of `method` fitted with the given feature cache.
fn fitted_logits(source: &Source, target: &Task, method: &str, cache: graft_core::features::FeatureCache) -> Vec<f32> {
    let m = registry::build(method, Some(&json!({ "train": { "epochs": 2, "batch_size": 32 } }))).unwrap();
    let mut ctx = FitContext::new(Device::Cpu, 1);
    let what = format!("{method} with {cache:?}");
    ctx.features = cache;
    let model = m.fit(source, target, &mut ctx).unwrap_or_else(|e| panic!("{what}: {e}"));
    let x = target.test.images_tensor(&Device::Cpu).unwrap();
    model.forward(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn cached_features_train_the_same_model_as_recomputing_the_source() {
    use graft_core::features::{CacheDType, FeatureCache};
    let spec = BackboneSpec { arch: Arch::ResnetCifar { depth: 8, width: 4 }, input: InputSpec::new(1, 8, 8), num_classes: 5 };
    let backbone = graft_core::Backbone::init(spec, 3, &Device::Cpu).unwrap();
    let source = Source::new(backbone, graft_core::Provenance::default()).unwrap();
    let target = digits_task("digits-5to9", &[5, 6, 7, 8, 9]);
    for method in ["linear-probe", "feature-extractor"] {
        let cached = fitted_logits(&source, &target, method, FeatureCache::default());
        let recomputed = fitted_logits(&source, &target, method, FeatureCache::disabled());
        // Per-image kernels make a frozen forward independent of the batch it is in.
        assert_eq!(cached, recomputed, "{method}: cached and recomputed training differ");
        let tight = FeatureCache { budget_bytes: 1024, ..FeatureCache::default() };
        assert_eq!(fitted_logits(&source, &target, method, tight), cached, "{method}: over-budget fallback differs");
        let half = fitted_logits(&source, &target, method, FeatureCache { dtype: CacheDType::F16, ..FeatureCache::default() });
        let err = half.iter().zip(&cached).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 0.05, "{method}: f16 cache moved logits by {err}");
    }
}
