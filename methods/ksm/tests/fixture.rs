//! KSM's stored format and logits, pinned by deltas saved before the core kit (issue 17)
//! takes over its head, BN and tensor checks: they must still load to the same logits, and a fit
//! must still store the same tensors.

use graft_core::conformance::check_fixture;
use serde_json::json;
use std::path::PathBuf;

use graft_ksm as _;

fn cases() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("ksm", json!({ "head_lr": 1e-2, "tau_final": 1e-5, "train": { "epochs": 2, "batch_size": 16, "lr": 1e-3 } })),
        ("ksm-learned-scale", json!({ "scale": "learned", "scale_dtype": "f32", "tau_final": 1e-5, "train": { "epochs": 2, "batch_size": 16, "lr": 1e-4 } })),
    ]
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn saved_deltas_load_to_the_same_logits_and_fits_store_the_same_tensors() {
    for (name, config) in cases() {
        check_fixture("ksm", &config, &dir(), name, false);
    }
}

/// Rewrites the fixtures — only when the stored format is meant to change:
/// `cargo test -p graft-ksm --test fixture -- --ignored`.
#[test]
#[ignore]
fn write_fixtures() {
    for (name, config) in cases() {
        check_fixture("ksm", &config, &dir(), name, true);
    }
}
