//! KSM's rows of the graft-core conformance table.

use graft_core::conformance::{check, Case};
use graft_core::{Source, Task};
use serde_json::json;

use graft_ksm as _;

/// Head of a linear layer on the pooled features: (d + 1) × k.
fn head(s: &Source, t: &Task) -> usize {
    (s.backbone.tap("pool").unwrap().channels + 1) * t.num_classes
}

/// Kernels `out · in/groups` of the masked convs (one `M^r` entry each), skipping the first `skip`.
fn kernels(s: &Source, skip: usize) -> usize {
    s.backbone.convs().iter().skip(skip).map(|c| c.conv.weight_shape()[0] * c.conv.weight_shape()[1]).sum()
}

/// γ and β of every BatchNorm: 2 · C each.
fn bn_affine(s: &Source) -> usize {
    s.backbone.bn_names().iter().map(|bn| 2 * s.backbone.param(&format!("{bn}.weight")).unwrap().elem_count()).sum()
}

/// Bytes of the bit-packed `M^b`: one bit per kernel, each conv's rounded up to whole bytes.
fn bit_bytes(s: &Source, skip: usize) -> usize {
    s.backbone.convs().iter().skip(skip).map(|c| (c.conv.weight_shape()[0] * c.conv.weight_shape()[1]).div_ceil(8)).sum()
}

/// Bytes of the tuned BNs: γ, β, running mean and variance in f32, 16 · C each.
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
fn ksm_conforms() {
    // Default: A^s derived from M^r (no extra parameter), per-task BN.
    check_serially(&Case {
        method: "ksm",
        config: json!({ "head_lr": 1e-2, "train": { "epochs": 2, "batch_size": 16, "lr": 1e-3 } }),
        expected_trainable: |s, t| kernels(s, 0) + bn_affine(s) + head(s, t),
        // Bits, f16 scales (2 bytes per kernel), BN, f32 head.
        expected_stored_bytes: |s, t| bit_bytes(s, 0) + 2 * kernels(s, 0) + bn_bytes(s) + 4 * head(s, t),
        // 9 masked convs + 9 tuned BNs + the head reading the pooled features.
        expected_interconnections: 19,
    });
}

#[test]
fn ksm_with_gated_scales_conforms() {
    // "Off means off": the same tensors as the default, composed as M^b ⊙ (1 + A^s).
    check_serially(&Case {
        method: "ksm",
        config: json!({ "gate_scale": true, "head_lr": 1e-2, "train": { "epochs": 2, "batch_size": 16, "lr": 1e-3 } }),
        expected_trainable: |s, t| kernels(s, 0) + bn_affine(s) + head(s, t),
        expected_stored_bytes: |s, t| bit_bytes(s, 0) + 2 * kernels(s, 0) + bn_bytes(s) + 4 * head(s, t),
        expected_interconnections: 19,
    });
}

#[test]
fn ksm_with_learned_scales_conforms() {
    check_serially(&Case {
        method: "ksm",
        config: json!({ "scale": "learned", "scale_dtype": "f32", "train": { "epochs": 2, "batch_size": 16 } }),
        expected_trainable: |s, t| 2 * kernels(s, 0) + bn_affine(s) + head(s, t),
        // f32 scales: 4 bytes per kernel.
        expected_stored_bytes: |s, t| bit_bytes(s, 0) + 4 * kernels(s, 0) + bn_bytes(s) + 4 * head(s, t),
        expected_interconnections: 19,
    });
}

#[test]
fn ksm_binary_only_without_bn_conforms() {
    check_serially(&Case {
        method: "ksm",
        config: json!({ "scale": "none", "tune_bn": false, "layers": "all-but-first", "train": { "epochs": 1, "batch_size": 16 } }),
        expected_trainable: |s, t| kernels(s, 1) + head(s, t),
        // Bits only, and the head.
        expected_stored_bytes: |s, t| bit_bytes(s, 1) + 4 * head(s, t),
        // 8 masked convs (all but conv1), no BN, the head.
        expected_interconnections: 9,
    });
}

#[test]
fn ksm_on_named_convs_conforms() {
    check_serially(&Case {
        method: "ksm",
        config: json!({ "layers": { "only": ["layer3.0.conv1", "layer3.0.conv2"] }, "train": { "epochs": 1, "batch_size": 16 } }),
        expected_trainable: |s, t| {
            let k = |n: &str| s.backbone.param(n).unwrap().dims()[..2].iter().product::<usize>();
            k("layer3.0.conv1.weight") + k("layer3.0.conv2.weight") + bn_affine(s) + head(s, t)
        },
        expected_stored_bytes: |s, t| {
            let k = |n: &str| s.backbone.param(n).unwrap().dims()[..2].iter().product::<usize>();
            let (k1, k2) = (k("layer3.0.conv1.weight"), k("layer3.0.conv2.weight"));
            k1.div_ceil(8) + k2.div_ceil(8) + 2 * (k1 + k2) + bn_bytes(s) + 4 * head(s, t)
        },
        // 2 masked convs + 9 tuned BNs + the head.
        expected_interconnections: 12,
    });
}

#[test]
fn ksm_is_registered_once() {
    let names: Vec<_> = graft_core::registry::methods().iter().map(|e| e.name).collect();
    assert!(names.contains(&"ksm"), "{names:?}");
    let c = graft_core::registry::build("ksm", None).unwrap().config_json();
    assert_eq!(c["scale"], "mask");
    assert_eq!(c["scale_dtype"], "f16");
    assert_eq!(c["tune_bn"], true);
}

#[test]
fn bad_configs_are_rejected_by_key() {
    for (cfg, key) in [
        (json!({ "tau": 0.0 }), "tau"),
        (json!({ "tau_final": 1e-2 }), "tau_final"),
        (json!({ "mask_init": -1e-3 }), "mask_init"),
        (json!({ "scale_gain": 0.0 }), "scale_gain"),
        (json!({ "scale": "softmax" }), "scale"),
        (json!({ "scale_dtype": "bf16" }), "scale_dtype"),
        (json!({ "layers": { "only": ["conv1", "conv1"] } }), "layers.only"),
        (json!({ "scale_lr": 0.0 }), "scale_lr"),
    ] {
        let err = graft_core::registry::build("ksm", Some(&cfg)).err().unwrap_or_else(|| panic!("{cfg} accepted"));
        assert!(err.to_string().contains(key), "{cfg}: {err}");
    }
}

#[test]
fn an_unknown_conv_is_named_with_the_available_ones_at_fit_time() {
    let m = graft_core::registry::build("ksm", Some(&json!({ "layers": { "only": ["layer9.conv"] } }))).unwrap();
    let source = graft_core::conformance::tiny_source(1);
    let task = graft_core::conformance::tiny_task(1);
    let err = m.fit(&source, &task, &mut graft_core::FitContext::new(candle_core::Device::Cpu, 0)).err().expect("fit accepted it").to_string();
    assert!(err.contains("layer9.conv") && err.contains("layer1.0.conv1"), "{err}");
}
