//! Adaptive attention's rows of the graft-core conformance table, with the trainable counts
//! worked out by hand for the tiny source (resnet-cifar-8, width 4, 1x8x8, 3 classes): block taps
//! `stage1.block0` (4 channels), `stage2.block0` (8), `stage3.block0` (16); nine BNs of 84
//! channels; 16 pooled features.

use graft_core::conformance::{check, Case};
use graft_core::{Source, Task};
use serde_json::json;

use graft_attention as _;

/// Multiplicative channel gates at r = 16 (one hidden unit each): `2·C·1 + 1 + C` =
/// 13 + 25 + 49.
const GATES: usize = 87;
/// Domain BNs: γ and β of 84 channels.
const DOMAIN_BN: usize = 168;
/// Head: (16 + 1) × 3.
const HEAD: usize = 51;
/// Stored scalars of the domain BNs: four tensors of 84 channels.
const DOMAIN_BN_STORED: usize = 336;

/// `conformance::check` saves into a folder named after the method and the process, so two
/// cases of one method must not run at the same time (the tests of a file share a process).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn check_serially(case: &Case) {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    check(case);
}

#[test]
fn attention_conforms() {
    check_serially(&Case {
        method: "adaptive-attention",
        // r = 16 (the counts below were worked out at it; the default is now 4).
        config: json!({ "reduction": 16, "train": { "epochs": 2, "batch_size": 16, "lr": 0.05 } }),
        expected_trainable: |_: &Source, _: &Task| GATES + DOMAIN_BN + HEAD,
        // Everything in f32; the gates store no buffer.
        expected_stored_bytes: |_: &Source, _: &Task| 4 * (GATES + DOMAIN_BN_STORED + HEAD),
        // 3 block taps + 9 domain BNs + the head reading the pooled features.
        expected_interconnections: 13,
    });
}

#[test]
fn residual_attention_with_spatial_gates_and_no_domain_bn_conforms() {
    check_serially(&Case {
        method: "adaptive-attention",
        config: json!({ "reduction": 16, "placement": "residual", "spatial": true, "spatial_kernel": 3, "domain_bn": false, "head_lr": 0.01, "train": { "epochs": 2, "batch_size": 16 } }),
        // Each module adds γ (C) and a spatial gate of 2·3² + 1 plus its scalar γ: 13 + 4 + 20,
        // 25 + 8 + 20, 49 + 16 + 20.
        expected_trainable: |_: &Source, _: &Task| 37 + 53 + 85 + HEAD,
        expected_stored_bytes: |_: &Source, _: &Task| 4 * (37 + 53 + 85 + HEAD),
        // 3 modules + the head (no domain BN).
        expected_interconnections: 4,
    });
}

#[test]
fn attention_at_one_named_tap_conforms() {
    check_serially(&Case {
        method: "adaptive-attention",
        config: json!({ "taps": { "only": ["stage3.block0"] }, "reduction": 2, "train": { "epochs": 2, "batch_size": 16 } }),
        // C = 16, 8 hidden units: 2·16·8 + 8 + 16.
        expected_trainable: |_: &Source, _: &Task| 280 + DOMAIN_BN + HEAD,
        expected_stored_bytes: |_: &Source, _: &Task| 4 * (280 + DOMAIN_BN_STORED + HEAD),
        // 1 module + 9 domain BNs + the head.
        expected_interconnections: 11,
    });
}

#[test]
fn bad_configs_are_rejected_by_key() {
    for (cfg, needle) in [
        (json!({ "reduction": 0 }), "reduction must be at least 1"),
        (json!({ "spatial_kernel": 4 }), "spatial_kernel must be odd"),
        (json!({ "taps": { "only": [] } }), "taps.only must name at least one tap"),
        (json!({ "taps": { "only": ["stem", "stem"] } }), "taps.only names tap 'stem' twice"),
        (json!({ "placement": "additive" }), "placement"),
        (json!({ "head_lr": -1.0 }), "head_lr must be a positive number"),
        (json!({ "train": { "batch_size": 0 } }), "train.batch_size"),
    ] {
        let err = graft_core::registry::build("adaptive-attention", Some(&cfg)).err().unwrap_or_else(|| panic!("{cfg} accepted"));
        assert!(err.to_string().contains(needle), "{cfg}: {err}");
    }
}
