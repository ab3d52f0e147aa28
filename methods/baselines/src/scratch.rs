//! Training from scratch: the source's architecture and input normalisation with a fresh seeded
//! Kaiming initialisation; every weight and a new head train. The lower bound of transfer.

use crate::fine_tune::{fit_whole, load_whole};
use graft_core::optim::OptimizerKind;
use graft_core::registry::{default_config_json, parse_config, MethodConfig, MethodEntry};
use graft_core::train::TrainConfig;
use graft_core::{Backbone, Delta, FitContext, Result, Source, Task, TaskModel, TransferMethod};
use serde::{Deserialize, Serialize};

/// Registered name.
pub const NAME: &str = "scratch";
/// Prefix of the trained backbone parameters in the stored delta.
pub const PREFIX: &str = "scratch.";

/// Configuration of training from scratch.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScratchConfig {
    /// Training of all weights and the head.
    pub train: TrainConfig,
}

impl Default for ScratchConfig {
    fn default() -> Self {
        Self { train: TrainConfig::default().with(20, OptimizerKind::Sgd, 0.05) }
    }
}

impl MethodConfig for ScratchConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        self.train.validate()
    }
}

/// The scratch baseline.
pub struct Scratch {
    /// Its configuration.
    pub config: ScratchConfig,
}

impl TransferMethod for Scratch {
    fn name(&self) -> &str {
        NAME
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn fit(&self, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<Box<dyn TaskModel>> {
        let fresh = Backbone::init(source.backbone.spec().clone(), ctx.seed, &ctx.device)?;
        fit_whole(NAME, PREFIX, self.config_json(), &self.config.train, &fresh, source, task, ctx)
    }

    fn load(&self, source: &Source, delta: &Delta) -> Result<Box<dyn TaskModel>> {
        // Every parameter the model uses is in the delta, so the source only provides the shapes.
        load_whole(NAME, PREFIX, self.config_json(), source, delta)
    }
}

fn build(de: &mut dyn erased_serde::Deserializer) -> Result<Box<dyn TransferMethod>> {
    Ok(Box::new(Scratch { config: parse_config(NAME, de)? }))
}

inventory::submit! {
    MethodEntry {
        name: NAME,
        description: "Scratch baseline: the source's architecture, randomly initialised, fully trained",
        paper: "baseline",
        build,
        default_config: default_config_json::<ScratchConfig>,
    }
}
