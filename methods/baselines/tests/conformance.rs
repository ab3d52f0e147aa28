//! The baselines' rows of the graft-core conformance table.

use graft_core::conformance::{check, Case};
use graft_core::{Source, Task};
use serde_json::json;

use graft_baselines as _;

fn short() -> serde_json::Value {
    json!({ "train": { "epochs": 2, "batch_size": 16 } })
}

/// Head of a linear layer on `features`: (features + 1) × classes.
fn head(features: usize, task: &Task) -> usize {
    (features + 1) * task.num_classes
}

fn pool_channels(s: &Source) -> usize {
    s.backbone.tap("pool").unwrap().channels
}

/// Trainable scalars of the named backbone parameters (BN running statistics excluded).
fn params_where(s: &Source, keep: impl Fn(&str) -> bool) -> usize {
    s.backbone
        .params()
        .iter()
        .filter(|(k, _)| keep(k) && !graft_core::backbone::is_bn_buffer(k))
        .map(|(_, t)| t.elem_count())
        .sum()
}

/// Stored bytes of the named backbone tensors, BN running statistics included (f32).
fn bytes_where(s: &Source, keep: impl Fn(&str) -> bool) -> usize {
    s.backbone.params().iter().filter(|(k, _)| keep(k)).map(|(_, t)| 4 * t.elem_count()).sum()
}

#[test]
fn linear_probe_conforms() {
    check(&Case {
        method: "linear-probe",
        config: short(),
        expected_trainable: |s, t| head(pool_channels(s), t),
        expected_stored_bytes: |s, t| 4 * head(pool_channels(s), t),
        // The head reads the pooled features.
        expected_interconnections: 1,
    });
}

#[test]
fn feature_extractor_conforms() {
    // The last stage of resnet-cifar lives under `layer3.`.
    check(&Case {
        method: "feature-extractor",
        config: short(),
        expected_trainable: |s, t| params_where(s, |k| k.starts_with("layer3.")) + head(pool_channels(s), t),
        expected_stored_bytes: |s, t| bytes_where(s, |k| k.starts_with("layer3.")) + 4 * head(pool_channels(s), t),
        // The last stage reads the frozen stage2.block0.
        expected_interconnections: 1,
    });
}

#[test]
fn fine_tune_conforms() {
    check(&Case {
        method: "fine-tune",
        config: short(),
        expected_trainable: |s, t| params_where(s, |k| !k.starts_with("fc.")) + head(pool_channels(s), t),
        expected_stored_bytes: |s, t| bytes_where(s, |k| !k.starts_with("fc.")) + 4 * head(pool_channels(s), t),
        // Nothing stays frozen.
        expected_interconnections: 0,
    });
}

#[test]
fn sequential_fine_tune_conforms() {
    // On one task it is fine-tuning: the same counts.
    check(&Case {
        method: "sequential-fine-tune",
        config: short(),
        expected_trainable: |s, t| params_where(s, |k| !k.starts_with("fc.")) + head(pool_channels(s), t),
        expected_stored_bytes: |s, t| bytes_where(s, |k| !k.starts_with("fc.")) + 4 * head(pool_channels(s), t),
        expected_interconnections: 0,
    });
}

/// `Backbone::fine_tuned_bytes`, the yardstick other methods divide their stored bytes by, is
/// exactly what the `fine-tune` baseline stores.
#[test]
fn fine_tuned_bytes_is_what_fine_tune_stores() {
    let source = graft_core::conformance::tiny_source(5);
    let task = graft_core::conformance::tiny_task(5);
    let method = graft_core::registry::build("fine-tune", Some(&json!({ "train": { "epochs": 1, "batch_size": 16 } }))).unwrap();
    let model = method.fit(&source, &task, &mut graft_core::FitContext::new(candle_core::Device::Cpu, 1)).unwrap();
    assert_eq!(model.footprint().stored_bytes, source.backbone.fine_tuned_bytes(task.num_classes));
}

#[test]
fn scratch_conforms() {
    check(&Case {
        method: "scratch",
        config: short(),
        expected_trainable: |s, t| params_where(s, |k| !k.starts_with("fc.")) + head(pool_channels(s), t),
        expected_stored_bytes: |s, t| bytes_where(s, |k| !k.starts_with("fc.")) + 4 * head(pool_channels(s), t),
        // Nothing stays frozen.
        expected_interconnections: 0,
    });
}

#[test]
fn all_four_baselines_are_registered_once() {
    let names: Vec<_> = graft_core::registry::methods().iter().map(|e| e.name).collect();
    for m in ["linear-probe", "feature-extractor", "fine-tune", "scratch", "sequential-fine-tune"] {
        assert!(names.contains(&m), "{m} not registered: {names:?}");
        assert!(graft_core::registry::find(m).is_ok());
    }
}

#[test]
fn a_partial_train_table_keeps_the_methods_other_defaults() {
    let m = graft_core::registry::build("fine-tune", Some(&json!({ "train": { "epochs": 3 } }))).unwrap();
    let c = m.config_json();
    let d = graft_baselines::FineTuneConfig::default();
    assert_eq!(c["train"]["epochs"], 3);
    assert_eq!(c["train"]["lr"], d.train.lr);
    assert_eq!(c["train"]["optimizer"], json!(d.train.optimizer));
}

#[test]
fn a_linear_probe_on_an_earlier_tap_says_it_has_no_plain_weights_form() {
    let source = graft_core::conformance::tiny_source(7);
    let task = graft_core::conformance::tiny_task(7);
    let config = json!({ "tap": "stage2.block0", "train": { "epochs": 1, "batch_size": 16 } });
    let method = graft_core::registry::build("linear-probe", Some(&config)).unwrap();
    let model = method.fit(&source, &task, &mut graft_core::FitContext::new(candle_core::Device::Cpu, 1)).unwrap();
    let err = model.merged().err().expect("no merged form").to_string();
    assert!(err.contains("linear-probe's head reads tap 'stage2.block0', not the pooled features 'pool'"), "{err}");
}
