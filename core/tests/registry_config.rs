//! The method registry and config reading, through two dummy methods registered in this file
//! exactly as a method crate registers itself.

use graft_core::registry::{self, MethodConfig, MethodEntry};
use graft_core::{Delta, FitContext, GraftError, Source, Task, TaskModel, TrainConfig, TransferMethod};
use serde::{Deserialize, Serialize};
use serde_json::json;

const NAME: &str = "test-dummy";
const NAME_B: &str = "test-dummy-b";

/// Config of the dummy method.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct DummyConfig {
    /// A non-negative rate.
    alpha: f64,
    /// A count.
    steps: usize,
    /// Taps to read.
    taps: Vec<String>,
    /// The shared training settings, as method configs carry them.
    train: TrainConfig,
}

impl Default for DummyConfig {
    fn default() -> Self {
        Self { alpha: 0.5, steps: 3, taps: vec!["stage2.block0".into()], train: TrainConfig::default() }
    }
}

impl MethodConfig for DummyConfig {
    fn validate(&self) -> Result<(), String> {
        if self.alpha < 0.0 {
            return Err(format!("alpha must be >= 0, got {}", self.alpha));
        }
        self.train.validate()
    }
}

struct Dummy {
    name: &'static str,
    config: DummyConfig,
}

impl TransferMethod for Dummy {
    fn name(&self) -> &str {
        self.name
    }
    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap()
    }
    fn fit(&self, _source: &Source, _task: &Task, _ctx: &mut FitContext) -> graft_core::Result<Box<dyn TaskModel>> {
        Err(GraftError::Incompatible("the dummy method does not fit".into()))
    }
    fn load(&self, _source: &Source, _delta: &Delta) -> graft_core::Result<Box<dyn TaskModel>> {
        Err(GraftError::Incompatible("the dummy method does not load".into()))
    }
}

fn build_dummy(de: &mut dyn graft_core::erased_serde::Deserializer) -> graft_core::Result<Box<dyn TransferMethod>> {
    let config = registry::parse_config::<DummyConfig>(NAME, de)?;
    Ok(Box::new(Dummy { name: NAME, config }))
}

fn dummy_default_config() -> serde_json::Value {
    registry::default_config_json::<DummyConfig>()
}

fn build_dummy_b(de: &mut dyn graft_core::erased_serde::Deserializer) -> graft_core::Result<Box<dyn TransferMethod>> {
    let config = registry::parse_config::<DummyConfig>(NAME_B, de)?;
    Ok(Box::new(Dummy { name: NAME_B, config }))
}

graft_core::inventory::submit! {
    graft_core::registry::MethodEntry {
        name: NAME,
        description: "a dummy method for the registry tests",
        paper: "baseline",
        build: build_dummy,
        default_config: dummy_default_config,
    }
}

graft_core::inventory::submit! {
    graft_core::registry::MethodEntry {
        name: NAME_B,
        description: "a second dummy method",
        paper: "baseline",
        build: build_dummy_b,
        default_config: dummy_default_config,
    }
}

/// The `Config` error of building `NAME` from `config`.
fn config_err(config: serde_json::Value) -> (String, String) {
    match registry::build(NAME, Some(&config)) {
        Ok(m) => panic!("config {config} was accepted: {}", m.config_json()),
        Err(GraftError::Config { method, msg }) => (method, msg),
        Err(other) => panic!("expected GraftError::Config, got {other:?}"),
    }
}

/// The part of a config error before the appended defaults.
fn without_defaults(msg: &str) -> &str {
    msg.split("; defaults:").next().unwrap()
}

fn defaults_json() -> String {
    serde_json::to_string(&DummyConfig::default()).unwrap()
}

#[test]
fn find_finds_registered_methods() {
    let e: &MethodEntry = registry::find(NAME).unwrap();
    assert_eq!(e.name, NAME);
    assert_eq!(e.description, "a dummy method for the registry tests");
    assert_eq!(registry::find(NAME_B).unwrap().name, NAME_B);
    let names: Vec<&str> = registry::methods().iter().map(|e| e.name).collect();
    assert!(names.contains(&NAME) && names.contains(&NAME_B), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "methods() is sorted by name");
}

#[test]
fn unknown_method_lists_registered_names() {
    let e = match registry::find("test-dumy") {
        Ok(_) => panic!("found a method that is not registered"),
        Err(e) => e,
    };
    match &e {
        GraftError::UnknownMethod { name, available } => {
            assert_eq!(name, "test-dumy");
            assert!(available.iter().any(|n| n == NAME) && available.iter().any(|n| n == NAME_B), "{available:?}");
        }
        other => panic!("expected UnknownMethod, got {other:?}"),
    }
    let m = e.to_string();
    assert!(m.contains("test-dumy") && m.contains(NAME) && m.contains(NAME_B), "{m}");
    let m = registry::build("nope", None).err().expect("built an unknown method").to_string();
    assert!(m.contains("nope") && m.contains(NAME), "{m}");
}

#[test]
fn duplicate_names_is_empty() {
    assert_eq!(registry::duplicate_names(), Vec::<&str>::new());
}

#[test]
fn default_config_equals_default() {
    let e = registry::find(NAME).unwrap();
    let d = (e.default_config)();
    assert_eq!(d, serde_json::to_value(DummyConfig::default()).unwrap());
    assert_eq!(serde_json::from_value::<DummyConfig>(d.clone()).unwrap(), DummyConfig::default());
    // Building with no config, an empty object and the defaults all give the defaults.
    for cfg in [None, Some(json!({})), Some(d.clone())] {
        let m = registry::build(NAME, cfg.as_ref()).unwrap();
        assert_eq!(m.name(), NAME);
        assert_eq!(m.config_json(), d, "config {cfg:?}");
    }
    // A partial config keeps the other defaults, including inside `train`.
    let m = registry::build(NAME, Some(&json!({"steps": 7, "train": {"epochs": 2, "lr": 0.1}}))).unwrap();
    let got: DummyConfig = serde_json::from_value(m.config_json()).unwrap();
    let want = DummyConfig {
        steps: 7,
        train: TrainConfig { epochs: 2, lr: 0.1, ..Default::default() },
        ..Default::default()
    };
    assert_eq!(got, want);
}

#[test]
fn unknown_key_is_named_with_valid_keys_and_defaults() {
    let (method, msg) = config_err(json!({"alpha": 1.0, "alpah": 2.0}));
    assert_eq!(method, NAME);
    assert!(without_defaults(&msg).contains("alpah"), "bad key missing: {msg}");
    for key in ["alpha", "steps", "taps", "train"] {
        assert!(without_defaults(&msg).contains(&format!("`{key}`")), "valid key '{key}' not listed: {msg}");
    }
    assert!(msg.contains(&defaults_json()), "defaults missing: {msg}");
    let full = registry::build(NAME, Some(&json!({"alpah": 2.0}))).err().unwrap().to_string();
    assert!(full.contains(NAME) && full.contains("alpah"), "{full}");
}

#[test]
fn unknown_key_inside_train_lists_the_train_keys() {
    let (_, msg) = config_err(json!({"train": {"epochs": 2, "epoch": 3}}));
    assert!(without_defaults(&msg).contains("`epoch`"), "bad key missing: {msg}");
    for key in ["epochs", "batch_size", "lr", "momentum", "schedule", "patience"] {
        assert!(without_defaults(&msg).contains(&format!("`{key}`")), "valid key '{key}' not listed: {msg}");
    }
}

#[test]
fn unknown_key_inside_train_is_rejected() {
    let (_, msg) = config_err(json!({"train": {"epochs": 2, "epoch": 3}}));
    assert!(without_defaults(&msg).contains("`epoch`"), "bad key missing: {msg}");
    assert!(msg.contains(&defaults_json()), "defaults missing: {msg}");
    // Top-level optimiser keys belong inside `train`.
    let (_, msg) = config_err(json!({"lr": 0.1}));
    assert!(without_defaults(&msg).contains("`lr`"), "{msg}");
}

#[test]
fn wrong_type_is_an_error() {
    for cfg in [json!({"alpha": "fast"}), json!({"steps": -1}), json!({"taps": "stem"}), json!({"train": {"epochs": 1.5}}), json!(3)] {
        let (method, msg) = config_err(cfg.clone());
        assert_eq!(method, NAME);
        assert!(msg.contains("invalid"), "{cfg}: {msg}");
        assert!(msg.contains(&defaults_json()), "{cfg}: defaults missing: {msg}");
    }
}

#[test]
fn wrong_type_names_the_key() {
    // Look before the defaults, which name every key anyway.
    let (_, msg) = config_err(json!({"alpha": "fast"}));
    let problem = without_defaults(&msg);
    assert!(problem.contains("alpha"), "key missing: {problem}");
    let (_, msg) = config_err(json!({"train": {"batch_size": "big"}}));
    let problem = without_defaults(&msg);
    assert!(problem.contains("batch_size"), "key missing: {problem}");
}

#[test]
fn validate_errors_name_the_key() {
    let (method, msg) = config_err(json!({"alpha": -1.0}));
    assert_eq!(method, NAME);
    assert!(msg.contains("alpha") && msg.contains("-1"), "{msg}");
    let (_, msg) = config_err(json!({"train": {"epochs": 0}}));
    assert!(msg.contains("train.epochs"), "{msg}");
    let (_, msg) = config_err(json!({"train": {"lr": -0.1}}));
    assert!(msg.contains("train.lr"), "{msg}");
    // The error's Display names the method too.
    let full = registry::build(NAME, Some(&json!({"alpha": -2}))).err().unwrap().to_string();
    assert!(full.contains(NAME) && full.contains("alpha"), "{full}");
}

#[test]
fn config_round_trips_through_the_registry() {
    let cfg = json!({"alpha": 0.25, "steps": 9, "taps": ["stem", "pool"],
                     "train": {"epochs": 4, "batch_size": 8, "optimizer": "adamw", "lr": 0.003,
                               "schedule": {"step": {"every": 2, "gamma": 0.5}}, "patience": 2}});
    let m = registry::build(NAME, Some(&cfg)).unwrap();
    let back = m.config_json();
    let m2 = registry::build(NAME, Some(&back)).unwrap();
    assert_eq!(m2.config_json(), back, "a method's stored config rebuilds the same method");
    let parsed: DummyConfig = serde_json::from_value(back).unwrap();
    assert_eq!(parsed.alpha, 0.25);
    assert_eq!(parsed.taps, vec!["stem".to_string(), "pool".to_string()]);
    assert_eq!(parsed.train.optimizer, graft_core::optim::OptimizerKind::Adamw);
    assert_eq!(parsed.train.schedule, graft_core::optim::Schedule::Step { every: 2, gamma: 0.5 });
    assert_eq!(parsed.train.patience, Some(2));
}
