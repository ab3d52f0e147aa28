//! SNOW's rows of the graft-core conformance table.

use graft_core::backbone::{Arch, BackboneSpec};
use graft_core::conformance::{check, Case};
use graft_core::{Backbone, Source, Task};
use serde_json::json;

use graft_snow as _;

/// The tiny source is resnet-cifar-8 width 4, so the delta at 1/8 is resnet-cifar-8 width 1:
/// per stage tap (delta channels c_d, source channels C) = (1, 4), (2, 8), (4, 16).
const STAGES: [(usize, usize); 3] = [(1, 4), (2, 8), (4, 16)];

fn delta_net(s: &Source, t: &Task) -> Backbone {
    let spec = BackboneSpec { arch: Arch::ResnetCifar { depth: 8, width: 1 }, input: s.backbone.spec().input.clone(), num_classes: t.num_classes };
    Backbone::init(spec, 0, s.backbone.device()).unwrap()
}

/// The documented count: every delta parameter + one fusion conv (c_d × (c_d + K)) per tap + one
/// pooling weight per source channel per tap; `taps` lists (c_d, C, K) per subscribed tap.
fn count(s: &Source, t: &Task, taps: &[(usize, usize, usize)]) -> usize {
    let fusion: usize = taps.iter().map(|(c, _, k)| c * (c + k)).sum();
    let pools: usize = taps.iter().map(|(_, source, _)| source).sum();
    delta_net(s, t).num_params() + fusion + pools
}

/// The documented stored bytes (`docs/methods/snow.md`): `4 · (P(delta) + B(delta) + Σ_taps
/// c_d (c_d + K)) + Σ_taps 8 K` (B: the delta's BN running statistics; per tap K u32 indices and K
/// f32 weights).
fn bytes(s: &Source, t: &Task, taps: &[(usize, usize, usize)]) -> usize {
    let delta = delta_net(s, t);
    let buffers: usize = delta.params().iter().filter(|(n, _)| graft_core::backbone::is_bn_buffer(n)).map(|(_, t)| t.elem_count()).sum();
    let fusion: usize = taps.iter().map(|(c, _, k)| c * (c + k)).sum();
    4 * (delta.num_params() + buffers + fusion) + taps.iter().map(|(_, _, k)| 8 * k).sum::<usize>()
}

/// Every stage tap with one K.
fn all_stages(k: usize) -> Vec<(usize, usize, usize)> {
    STAGES.iter().map(|&(c, source)| (c, source, k)).collect()
}

/// `k_fraction = 0.25` on the last two stages: K = round(0.25 · 8) = 2 and round(0.25 · 16) = 4.
const LAST_TWO_QUARTER: [(usize, usize, usize); 2] = [(2, 8, 2), (4, 16, 4)];

#[test]
fn snow_conforms() {
    check(&Case { method: "snow", config: json!({ "k": 4, "train": { "epochs": 2, "batch_size": 16 } }), expected_trainable: |s, t| count(s, t, &all_stages(4)),
        expected_stored_bytes: |s, t| bytes(s, t, &all_stages(4)),
        // The delta net reads the three stage outputs.
        expected_interconnections: 3,
    });
}

#[test]
fn snow_without_noise_conforms() {
    check(&Case {
        method: "snow",
        config: json!({ "k": 2, "noise_var": 0.0, "train": { "epochs": 1, "batch_size": 16 } }),
        expected_trainable: |s, t| count(s, t, &all_stages(2)),
        expected_stored_bytes: |s, t| bytes(s, t, &all_stages(2)),
        expected_interconnections: 3,
    });
}

#[test]
fn snow_with_k_as_a_fraction_on_the_last_two_stages_conforms() {
    check(&Case {
        method: "snow",
        config: json!({ "k_fraction": 0.25, "last_stages": 2, "train": { "epochs": 1, "batch_size": 16 } }),
        expected_trainable: |s, t| count(s, t, &LAST_TWO_QUARTER),
        expected_stored_bytes: |s, t| bytes(s, t, &LAST_TWO_QUARTER),
        // The delta net reads the outputs of stages 2 and 3.
        expected_interconnections: 2,
    });
}

#[test]
fn snow_is_registered_once_and_shares_its_source() {
    assert!(graft_core::registry::find("snow").is_ok());
    assert!(graft_core::registry::build("snow", None).unwrap().shares_source());
}

#[test]
fn bad_configs_name_the_key() {
    for (cfg, needle) in [
        (json!({ "k": 0 }), "k must be"),
        (json!({ "k_fraction": 0.0 }), "k_fraction"),
        (json!({ "last_stages": 2, "taps": ["stage1.block0"] }), "not both"),
        (json!({ "width_fraction": 1.5 }), "width_fraction"),
        (json!({ "noise_var": -1.0 }), "noise_var"),
        (json!({ "pool_optim": { "lr": 0.0 } }), "pool_optim.lr"),
        (json!({ "taps": ["stage1.block0", "stage1.block0"] }), "twice"),
    ] {
        let err = graft_core::registry::build("snow", Some(&cfg)).err().unwrap_or_else(|| panic!("{cfg} accepted"));
        assert!(err.to_string().contains(needle), "{cfg}: {err}");
    }
}
