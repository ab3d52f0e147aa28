//! Piggyback's rows of the graft-core conformance table.

use graft_core::conformance::{check, Case};
use graft_core::{Source, Task};
use serde_json::json;

use graft_piggyback as _;

/// Head of a linear layer on the pooled features: (d + 1) × k.
fn head(s: &Source, t: &Task) -> usize {
    (s.backbone.tap("pool").unwrap().channels + 1) * t.num_classes
}

/// Scalars of the masked conv weights (one mask entry per weight), skipping the first `skip`.
fn conv_weights(s: &Source, skip: usize) -> usize {
    s.backbone.convs().iter().skip(skip).map(|c| c.conv.weight_shape().iter().product::<usize>()).sum()
}

/// γ and β of every BatchNorm: 2 · C each.
fn bn_affine(s: &Source) -> usize {
    s.backbone.bn_names().iter().map(|bn| 2 * s.backbone.param(&format!("{bn}.weight")).unwrap().elem_count()).sum()
}

/// Bytes of the bit-packed masks: one bit per weight, each conv's rounded up to whole bytes.
fn mask_bytes(s: &Source, skip: usize) -> usize {
    s.backbone.convs().iter().skip(skip).map(|c| c.conv.weight_shape().iter().product::<usize>().div_ceil(8)).sum()
}

/// Bytes of the tuned BNs (γ, β, running mean and variance in f32: 16 · C each) and of the head
/// (f32).
fn bn_bytes(s: &Source) -> usize {
    8 * bn_affine(s)
}

/// `conformance::check` saves into a folder named after the method and the process, so two
/// cases of one method must not run at the same time (the tests of a file share a process).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn check_serially(case: &Case) {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    check(case);
}

#[test]
fn piggyback_conforms() {
    check_serially(&Case {
        method: "piggyback",
        // The paper's form: masks and head only.
        config: json!({ "tune_bn": false, "train": { "epochs": 2, "batch_size": 16 } }),
        expected_trainable: |s, t| conv_weights(s, 0) + head(s, t),
        expected_stored_bytes: |s, t| mask_bytes(s, 0) + 4 * head(s, t),
        // 9 masked convs + the head reading the pooled features.
        expected_interconnections: 10,
    });
}

#[test]
fn piggyback_with_per_task_bn_conforms() {
    check_serially(&Case {
        method: "piggyback",
        config: json!({ "tune_bn": true, "head_lr": 1e-2, "train": { "epochs": 2, "batch_size": 16, "lr": 1e-3 } }),
        expected_trainable: |s, t| conv_weights(s, 0) + bn_affine(s) + head(s, t),
        expected_stored_bytes: |s, t| mask_bytes(s, 0) + bn_bytes(s) + 4 * head(s, t),
        // 9 masked convs + 9 tuned BNs + the head.
        expected_interconnections: 19,
    });
}

#[test]
fn piggyback_all_but_first_conforms() {
    check_serially(&Case {
        method: "piggyback",
        config: json!({ "layers": "all-but-first", "tune_bn": false, "train": { "epochs": 1, "batch_size": 16 } }),
        expected_trainable: |s, t| conv_weights(s, 1) + head(s, t),
        expected_stored_bytes: |s, t| mask_bytes(s, 1) + 4 * head(s, t),
        // 8 masked convs + the head.
        expected_interconnections: 9,
    });
}

#[test]
fn piggyback_is_registered_once_with_the_documented_defaults() {
    let names: Vec<_> = graft_core::registry::methods().iter().map(|e| e.name).collect();
    assert!(names.contains(&"piggyback"), "{names:?}");
    let c = graft_core::registry::build("piggyback", None).unwrap().config_json();
    // The paper's mask settings and optimiser ...
    assert_eq!(c["mask_init"], 1e-2);
    assert_eq!(c["threshold"], 5e-3);
    assert_eq!(c["train"]["optimizer"], "adam");
    assert_eq!(c["train"]["weight_decay"], 0.0);
    // ... with the learning rate and per-task BN the protocol run chose (docs/methods/piggyback.md).
    assert_eq!(c["train"]["lr"], 1e-3);
    assert_eq!(c["tune_bn"], true);
}

#[test]
fn bad_configs_are_rejected_by_key() {
    for (cfg, key) in [
        (json!({ "threshold": 0.02 }), "mask_init"),
        (json!({ "head_lr": -1.0 }), "head_lr"),
        (json!({ "layers": { "only": [] } }), "layers.only"),
        (json!({ "layers": "some" }), "layers"),
    ] {
        let err = graft_core::registry::build("piggyback", Some(&cfg)).err().unwrap_or_else(|| panic!("{cfg} accepted"));
        assert!(err.to_string().contains(key), "{cfg}: {err}");
    }
}
