//! `registry::duplicate_names` reports a name that two entries register (the method crates'
//! registration tests cannot see a clash: each links one crate; the harness, which links them
//! all, lists every name once — `harness/tests/cli.rs`).

use graft_core::registry::{duplicate_names, methods, MethodEntry};
use graft_core::{GraftError, Result, TransferMethod};

fn refuse(_: &mut dyn graft_core::erased_serde::Deserializer) -> Result<Box<dyn TransferMethod>> {
    Err(GraftError::Data("a registration test entry".into()))
}

fn no_config() -> serde_json::Value {
    serde_json::json!({})
}

graft_core::inventory::submit! {
    MethodEntry { name: "registered-twice", description: "first", paper: "test", build: refuse, default_config: no_config }
}
graft_core::inventory::submit! {
    MethodEntry { name: "registered-twice", description: "second", paper: "test", build: refuse, default_config: no_config }
}
graft_core::inventory::submit! {
    MethodEntry { name: "registered-once", description: "only", paper: "test", build: refuse, default_config: no_config }
}

#[test]
fn a_name_registered_twice_is_reported_once_and_others_are_not() {
    assert_eq!(duplicate_names(), ["registered-twice"]);
    assert_eq!(methods().iter().filter(|e| e.name == "registered-twice").count(), 2);
}
