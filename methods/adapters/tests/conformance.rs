//! The residual adapters' rows of the graft-core conformance table, with the trainable counts
//! worked out by hand for the tiny source (resnet-cifar-8, width 4, 1x8x8, 3 classes): 3x3 convs
//! `conv1` 1→4, `layer1.0.conv{1,2}` 4→4, `layer2.0.conv1` 4→8, `layer2.0.conv2` 8→8,
//! `layer3.0.conv1` 8→16, `layer3.0.conv2` 16→16; nine BNs of 4+4+4+8+8+8+16+16+16 = 84
//! channels; 16 pooled features.

use graft_core::conformance::{check, Case};
use graft_core::{Source, Task};
use serde_json::json;

use graft_adapters as _;

/// Series adapters on all seven 3x3 convs: `C_out² + 2·C_out` each =
/// 24 + 24 + 24 + 80 + 80 + 288 + 288.
const SERIES_ALL: usize = 808;
/// Parallel adapters on all seven: `C_out·C_in` = 4 + 16 + 16 + 32 + 64 + 128 + 256.
const PARALLEL_ALL: usize = 516;
/// Domain BNs: γ and β of 84 channels.
const DOMAIN_BN: usize = 168;
/// Head: (16 + 1) × 3.
const HEAD: usize = 51;
/// Stored scalars of the series adapters: `C_out²` and their BNs' four tensors (`4·C_out`) =
/// 688 + 4 · 60.
const SERIES_STORED: usize = 928;
/// Stored scalars of the domain BNs: four tensors of 84 channels.
const DOMAIN_BN_STORED: usize = 336;

/// `conformance::check` saves into a folder named after the method and the process, so two
/// cases of one method must not run at the same time (the tests of a file share a process).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn check_serially(case: &Case) {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    check(case);
}

fn quick() -> serde_json::Value {
    json!({ "train": { "epochs": 2, "batch_size": 16, "lr": 0.05 } })
}

#[test]
fn series_adapters_conform() {
    check_serially(&Case {
        method: "residual-adapter-series",
        config: quick(),
        expected_trainable: |_: &Source, _: &Task| SERIES_ALL + DOMAIN_BN + HEAD,
        // Everything in f32.
        expected_stored_bytes: |_: &Source, _: &Task| 4 * (SERIES_STORED + DOMAIN_BN_STORED + HEAD),
        // 7 adapted 3x3 convs + 9 domain BNs + the head reading the pooled features.
        expected_interconnections: 17,
    });
}

#[test]
fn parallel_adapters_conform() {
    check_serially(&Case {
        method: "residual-adapter-parallel",
        config: quick(),
        expected_trainable: |_: &Source, _: &Task| PARALLEL_ALL + DOMAIN_BN + HEAD,
        expected_stored_bytes: |_: &Source, _: &Task| 4 * (PARALLEL_ALL + DOMAIN_BN_STORED + HEAD),
        expected_interconnections: 17,
    });
}

#[test]
fn series_adapters_without_domain_bn_or_the_stem_conform() {
    check_serially(&Case {
        method: "residual-adapter-series",
        config: json!({ "convs": "all-but-first", "domain_bn": false, "head_lr": 0.01, "train": { "epochs": 2, "batch_size": 16 } }),
        // The stem conv1 (4 channels: 16 + 8) is left out.
        expected_trainable: |_: &Source, _: &Task| SERIES_ALL - 24 + HEAD,
        // conv1's adapter stores 16 + 4·4.
        expected_stored_bytes: |_: &Source, _: &Task| 4 * (SERIES_STORED - 32 + HEAD),
        // 6 adapted convs + the head.
        expected_interconnections: 7,
    });
}

#[test]
fn parallel_adapters_on_named_convs_conform() {
    check_serially(&Case {
        method: "residual-adapter-parallel",
        config: json!({ "convs": { "only": ["layer2.0.conv1", "layer3.0.conv2"] }, "train": { "epochs": 2, "batch_size": 16 } }),
        expected_trainable: |_: &Source, _: &Task| 32 + 256 + DOMAIN_BN + HEAD,
        expected_stored_bytes: |_: &Source, _: &Task| 4 * (32 + 256 + DOMAIN_BN_STORED + HEAD),
        // 2 adapted convs + 9 domain BNs + the head.
        expected_interconnections: 12,
    });
}

#[test]
fn bad_configs_are_rejected_by_key() {
    for method in ["residual-adapter-series", "residual-adapter-parallel"] {
        for (cfg, needle) in [
            (json!({ "convs": { "only": [] } }), "convs.only must name at least one conv"),
            (json!({ "convs": { "only": ["conv1", "conv1"] } }), "convs.only names conv 'conv1' twice"),
            (json!({ "convs": "some" }), "convs"),
            (json!({ "head_lr": 0.0 }), "head_lr must be a positive number"),
            (json!({ "train": { "epochs": 0 } }), "train.epochs"),
        ] {
            let err = graft_core::registry::build(method, Some(&cfg)).err().unwrap_or_else(|| panic!("{method}: {cfg} accepted"));
            assert!(err.to_string().contains(needle), "{method} {cfg}: {err}");
        }
    }
}
