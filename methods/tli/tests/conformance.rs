//! TLI's rows of the graft-core conformance table, its config errors, and the student that runs
//! without its teacher.

use graft_core::backbone::{count_params, Arch, BackboneSpec};
use graft_core::conformance::{check, tiny_source, tiny_task, Case};
use graft_core::{registry, Backbone, FitContext, Source, Task};
use serde_json::json;

use graft_tli as _;

/// The documented count: every parameter of the student (conv and linear weights and biases,
/// BN affine parameters) on the source's input with the task's classes. The tiny source is
/// resnet-cifar-8 width 4 on 1x8x8; the student wrn-10-1 (16/32/64 channels, one pre-activation
/// block per stage): stem 16·1·9 = 144; stage 1: BN 32 + conv 16·16·9 = 2304 + BN 32 + conv 2304;
/// stage 2: BN 32 + conv 32·16·9 = 4608 + BN 64 + conv 32·32·9 = 9216 + shortcut 32·16 = 512;
/// stage 3: BN 64 + conv 64·32·9 = 18432 + BN 128 + conv 36864 + shortcut 2048; final BN 128;
/// fc 64·3 + 3 = 195.
fn wrn_10_1_params(_: &Source, _: &Task) -> usize {
    144 + (32 + 2304 + 32 + 2304) + (32 + 4608 + 64 + 9216 + 512) + (64 + 18432 + 128 + 36864 + 2048) + 128 + 195
}

/// The documented stored bytes: the whole student in f32, its BNs' running statistics included
/// (2·C per BN, as many as their γ and β: 32 + 32 + 32 + 64 + 64 + 128 + 128 = 480).
fn wrn_10_1_bytes(s: &Source, t: &Task) -> usize {
    4 * (wrn_10_1_params(s, t) + 480)
}

#[test]
fn the_hand_count_is_the_structure_count() {
    let spec = BackboneSpec { arch: "wrn-10-1".parse::<Arch>().unwrap(), input: tiny_source(7).backbone.spec().input.clone(), num_classes: 3 };
    let (_, layers) = Backbone::describe(&spec).unwrap();
    assert_eq!(count_params(&layers), wrn_10_1_params(&tiny_source(7), &tiny_task(7)));
}

#[test]
fn tli_conforms() {
    check(&Case { method: "tli", config: json!({ "student": "wrn-10-1", "train": { "epochs": 2, "batch_size": 16 } }), expected_trainable: wrn_10_1_params, expected_stored_bytes: wrn_10_1_bytes, expected_interconnections: 0 });
}

#[test]
fn tli_with_kaiming_and_blended_injection_conforms() {
    check(&Case {
        method: "tli",
        config: json!({ "student": "wrn-10-1", "init": "kaiming", "train": { "epochs": 1, "batch_size": 16 } }),
        expected_trainable: wrn_10_1_params,
        expected_stored_bytes: wrn_10_1_bytes,
        expected_interconnections: 0,
    });
    check(&Case {
        method: "tli",
        config: json!({ "student": "wrn-10-1", "blend_top": 3, "lambda": 0.5, "train": { "epochs": 1, "batch_size": 16 } }),
        expected_trainable: wrn_10_1_params,
        expected_stored_bytes: wrn_10_1_bytes,
        expected_interconnections: 0,
    });
}

#[test]
fn tli_is_registered_once_and_does_not_share_its_source() {
    assert!(registry::find("tli").is_ok());
    assert!(!registry::build("tli", None).unwrap().shares_source());
}

#[test]
fn bad_configs_name_the_key() {
    for (cfg, needle) in [
        (json!({ "student": "alexnet" }), "student"),
        (json!({ "student": "resnet19" }), "resnet depth"),
        (json!({ "init": "orthogonal" }), "orthogonal"),
        (json!({ "lambda": 1.5 }), "lambda"),
        (json!({ "blend_top": 0 }), "blend_top"),
        (json!({ "blend_temperature": 0.0 }), "blend_temperature"),
        (json!({ "train": { "lr": -1.0 } }), "train.lr"),
    ] {
        let err = registry::build("tli", Some(&cfg)).err().unwrap_or_else(|| panic!("{cfg} accepted"));
        assert!(err.to_string().contains(needle), "{cfg}: {err}");
    }
    // `xavier` is read as xavier-uniform.
    let m = registry::build("tli", Some(&json!({ "init": "xavier" }))).unwrap();
    assert_eq!(m.config_json()["init"], "xavier-uniform");
}

#[test]
fn a_student_too_large_for_the_input_is_refused_before_training() {
    // VGG's five 2x2 max pools do not fit an 8x8 input.
    let m = registry::build("tli", Some(&json!({ "student": "vgg11-bn-d16-p1", "train": { "epochs": 1 } }))).unwrap();
    let err = m.fit(&tiny_source(7), &tiny_task(7), &mut FitContext::new(candle_core::Device::Cpu, 0)).err().unwrap().to_string();
    assert!(err.contains("vgg11-bn-d16-p1") && err.contains("too small"), "{err}");
}

#[test]
fn a_delta_without_the_student_spec_or_with_another_student_is_refused() {
    let m = registry::build("tli", Some(&json!({ "student": "wrn-10-1", "train": { "epochs": 1 } }))).unwrap();
    let source = tiny_source(7);
    let model = m.fit(&source, &tiny_task(7), &mut FitContext::new(candle_core::Device::Cpu, 0)).unwrap();
    let mut delta = model.delta().unwrap();
    assert!(!delta.needs_source);
    assert_eq!(delta.backbone.as_ref().map(|s| s.id()), Some("wrn-10-1".to_string()));
    let other = registry::build("tli", Some(&json!({ "student": "wrn-10-2" }))).unwrap();
    let err = other.load_standalone(&delta).err().unwrap().to_string();
    assert!(err.contains("wrn-10-1") && err.contains("wrn-10-2"), "{err}");
    delta.backbone = None;
    let err = m.load_standalone(&delta).err().unwrap().to_string();
    assert!(err.contains("graft.backbone"), "{err}");
}
