//! The conformance table for `poe`: a pool prepared on the tiny task's images with two primitive
//! tasks covering the tiny source's three classes. A query trains nothing: 0 trainable params.

use graft_core::conformance::{check, Case};
use serde_json::json;
// Linking the crate registers `poe`.
use graft_poe as _;

fn tiny_config() -> serde_json::Value {
    json!({
        "groups": [{"name": "top", "classes": [0]}, {"name": "rest", "classes": [1, 2]}],
        "library": {"depth": 10, "train": {"epochs": 1, "batch_size": 16}},
        "expert": {"train": {"epochs": 1, "batch_size": 16}},
        "data": "task"
    })
}

/// The tiny task's three classes need both experts ("top": 0, "rest": 1, 2), each reading the
/// library.
const POE_EXPERTS: usize = 2;

#[test]
fn poe_conforms() {
    check(&Case { method: "poe", config: tiny_config(), expected_trainable: |_, _| 0, expected_stored_bytes: |_, _| QUERY_BYTES, expected_interconnections: POE_EXPERTS });
}

#[test]
fn poe_conforms_with_a_fixed_pool_seed_and_without_the_l1_term() {
    let mut c = tiny_config();
    c["pool_seed"] = json!(5);
    c["expert"]["alpha"] = json!(0.0);
    check(&Case { method: "poe", config: c, expected_trainable: |_, _| 0, expected_stored_bytes: |_, _| QUERY_BYTES, expected_interconnections: POE_EXPERTS });
}

/// The library part of the tiny pool, counted by hand: WRN-10-1 (one pre-activation block per
/// stage, 16/32 channels) on the tiny source's 1x8x8 input, stem and first two stages: stem conv
/// 16·1·9 = 144; stage 1: BN 2·16 + conv 16·16·9 = 2304, twice; stage 2: BN 32 + conv 32·16·9 =
/// 4608 + BN 64 + conv 32·32·9 = 9216 + 1x1 shortcut 32·16 = 512.
const TINY_LIBRARY: usize = 144 + 2 * (32 + 2304) + (32 + 4608 + 64 + 9216 + 512);

/// One tiny expert over `k` classes, by hand: the last WRN stage at 0.25 of the library's 64
/// channels (16) reading the library's 32 channels: BN 64 + conv 16·32·9 = 4608 + BN 32 + conv
/// 16·16·9 = 2304 + shortcut 16·32 = 512; final BN 32; fc 16·k + k.
fn tiny_expert(k: usize) -> usize {
    64 + 4608 + 32 + 2304 + 512 + 32 + 16 * k + k
}

/// Scratch and multi-teacher KD train the whole consolidated model: library part plus the
/// experts of `top` (1 class) and `rest` (2 classes), which together answer the tiny task.
fn whole_model(_: &graft_core::Source, _: &graft_core::Task) -> usize {
    TINY_LIBRARY + tiny_expert(1) + tiny_expert(2)
}

/// The frozen-library baseline trains only the experts.
fn experts_only(_: &graft_core::Source, _: &graft_core::Task) -> usize {
    tiny_expert(1) + tiny_expert(2)
}

/// A query stores its classes (three u32) and the pool's SHA-256 (32 bytes).
const QUERY_BYTES: usize = 4 * 3 + 32;

/// The baselines store the class list and the whole consolidated model in f32 with its BNs'
/// running statistics (as many as their γ and β: library 32 + 32 + 32 + 64 = 160, each expert
/// 64 + 32 + 32 = 128).
fn model_bytes(s: &graft_core::Source, t: &graft_core::Task) -> usize {
    4 * 3 + 4 * (whole_model(s, t) + 160 + 2 * 128)
}

/// The baselines' config: the same pool as `poe`'s, one short training epoch on the query.
fn baseline_config() -> serde_json::Value {
    json!({ "pool": tiny_config(), "train": { "epochs": 1, "batch_size": 16 } })
}

#[test]
fn the_hand_counts_are_the_pool_counts() {
    use graft_core::conformance::tiny_source;
    use graft_poe::config::PoeConfig;
    let c: PoeConfig = serde_json::from_value(tiny_config()).unwrap();
    let pool = graft_poe::pool::Pool::untrained(&tiny_source(3), &c.groups, &c.library, &c.expert, 0).unwrap();
    assert_eq!(pool.library_params(), TINY_LIBRARY);
    let experts: Vec<usize> = pool.experts.iter().map(|e| e.net.num_params()).collect();
    assert_eq!(experts, vec![tiny_expert(1), tiny_expert(2)]);
}

#[test]
fn the_scratch_baseline_conforms() {
    check(&Case { method: "poe-scratch", config: baseline_config(), expected_trainable: whole_model, expected_stored_bytes: model_bytes, expected_interconnections: 0 });
}

#[test]
fn the_frozen_library_baseline_conforms() {
    check(&Case { method: "poe-frozen-library", config: baseline_config(), expected_trainable: experts_only, expected_stored_bytes: model_bytes, expected_interconnections: POE_EXPERTS });
}

#[test]
fn the_multi_teacher_kd_baseline_conforms() {
    check(&Case { method: "poe-multi-kd", config: baseline_config(), expected_trainable: whole_model, expected_stored_bytes: model_bytes, expected_interconnections: 0 });
}

#[test]
fn baseline_configs_reject_unknown_keys_and_name_them() {
    for name in ["poe-scratch", "poe-frozen-library", "poe-multi-kd"] {
        let mut c = baseline_config();
        c["pool"]["library"]["depht"] = json!(10);
        let err = graft_core::registry::build(name, Some(&c)).err().expect("unknown key refused").to_string();
        assert!(err.contains("depht"), "{name}: {err}");
    }
}
