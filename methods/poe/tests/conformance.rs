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

#[test]
fn poe_conforms() {
    check(&Case { method: "poe", config: tiny_config(), expected_trainable: |_, _| 0 });
}

#[test]
fn poe_conforms_with_a_fixed_pool_seed_and_without_the_l1_term() {
    let mut c = tiny_config();
    c["pool_seed"] = json!(5);
    c["expert"]["alpha"] = json!(0.0);
    check(&Case { method: "poe", config: c, expected_trainable: |_, _| 0 });
}
