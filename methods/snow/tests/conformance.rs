//! SNOW's rows of the graft-core conformance table.

use graft_core::backbone::{Arch, BackboneSpec};
use graft_core::conformance::{check, Case};
use graft_core::{Backbone, Source, Task};
use serde_json::json;

use graft_snow as _;

/// The documented count: every delta parameter + one fusion conv (c_d × (c_d + K)) per tap + one
/// pooling weight per source channel per tap. The tiny source is resnet-cifar-8 width 4, so the
/// delta at 1/8 is resnet-cifar-8 width 1 (channels 1/2/4 at the three stage taps; source 4/8/16).
fn expected(k: usize) -> fn(&Source, &Task) -> usize {
    fn count(s: &Source, t: &Task, k: usize) -> usize {
        let spec = BackboneSpec { arch: Arch::ResnetCifar { depth: 8, width: 1 }, input: s.backbone.spec().input.clone(), num_classes: t.num_classes };
        let delta = Backbone::init(spec, 0, s.backbone.device()).unwrap().num_params();
        let fusion: usize = [1, 2, 4].iter().map(|c| c * (c + k)).sum();
        let pools = 4 + 8 + 16;
        delta + fusion + pools
    }
    match k {
        4 => |s, t| count(s, t, 4),
        2 => |s, t| count(s, t, 2),
        _ => unreachable!("add a row"),
    }
}

/// The documented stored bytes (`docs/methods/snow.md`): `4 · (P(delta) + B(delta) + Σ_taps
/// c_d (c_d + K)) + Σ_taps 8 K` (B: the delta's BN running statistics; per tap K u32 indices and K
/// f32 weights).
fn expected_bytes(k: usize) -> fn(&Source, &Task) -> usize {
    fn bytes(s: &Source, t: &Task, k: usize) -> usize {
        let spec = BackboneSpec { arch: Arch::ResnetCifar { depth: 8, width: 1 }, input: s.backbone.spec().input.clone(), num_classes: t.num_classes };
        let delta = Backbone::init(spec, 0, s.backbone.device()).unwrap();
        let buffers: usize =
            delta.params().iter().filter(|(n, _)| graft_core::backbone::is_bn_buffer(n)).map(|(_, t)| t.elem_count()).sum();
        let fusion: usize = [1, 2, 4].iter().map(|c| c * (c + k)).sum();
        4 * (delta.num_params() + buffers + fusion) + 3 * 8 * k
    }
    match k {
        4 => |s, t| bytes(s, t, 4),
        2 => |s, t| bytes(s, t, 2),
        _ => unreachable!("add a row"),
    }
}

#[test]
fn snow_conforms() {
    check(&Case { method: "snow", config: json!({ "k": 4, "train": { "epochs": 2, "batch_size": 16 } }), expected_trainable: expected(4),
        expected_stored_bytes: expected_bytes(4),
        // The delta net reads the three stage outputs.
        expected_interconnections: 3,
    });
}

#[test]
fn snow_without_noise_conforms() {
    check(&Case {
        method: "snow",
        config: json!({ "k": 2, "noise_var": 0.0, "train": { "epochs": 1, "batch_size": 16 } }),
        expected_trainable: expected(2),
        expected_stored_bytes: expected_bytes(2),
        expected_interconnections: 3,
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
        (json!({ "width_fraction": 1.5 }), "width_fraction"),
        (json!({ "noise_var": -1.0 }), "noise_var"),
        (json!({ "pool_optim": { "lr": 0.0 } }), "pool_optim.lr"),
        (json!({ "taps": ["stage1.block0", "stage1.block0"] }), "twice"),
    ] {
        let err = graft_core::registry::build("snow", Some(&cfg)).err().unwrap_or_else(|| panic!("{cfg} accepted"));
        assert!(err.to_string().contains(needle), "{cfg}: {err}");
    }
}
