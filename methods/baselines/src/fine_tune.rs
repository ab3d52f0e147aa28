//! Fine-tuning (FT): every backbone parameter is a trainable copy initialised from the source;
//! BatchNorm runs in training mode; the source `fc` is replaced by a new head.

use crate::model::{body_tensors, fit_plan, load_plan, Plan};
use crate::net::Body;
use graft_core::backbone::{TunedBackbone, FEATURE_TAP};
use graft_core::optim::OptimizerKind;
use graft_core::registry::{default_config_json, parse_config, MethodConfig, MethodEntry};
use graft_core::train::TrainConfig;
use graft_core::{Backbone, Delta, FitContext, Result, Source, Task, TaskModel, TransferMethod};
use serde::{Deserialize, Serialize};

/// Registered name.
pub const NAME: &str = "fine-tune";
/// Prefix of the tuned backbone parameters in the stored delta.
pub const PREFIX: &str = "fine-tune.";

/// Configuration of fine-tuning.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FineTuneConfig {
    /// Training of all weights and the head.
    pub train: TrainConfig,
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        Self { train: TrainConfig::default().with(20, OptimizerKind::Sgd, 0.05) }
    }
}

impl MethodConfig for FineTuneConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        self.train.validate()
    }
}

/// True for the backbone parameters a full-network method trains: all but the source head
/// (the units after the `pool` tap: `fc` for ResNets, `classifier.1` for MobileNetV2,
/// `classifier.6` for VGG).
pub fn is_body_param(backbone: &Backbone, name: &str) -> bool {
    !backbone.head_params().iter().any(|h| h == name)
}

/// Fits a whole-network model starting from `start` (the source for FT, a random init for
/// scratch) and returns it.
pub fn fit_whole(
    method: &'static str,
    prefix: &str,
    config: serde_json::Value,
    train: &TrainConfig,
    start: &Backbone,
    source: &Source,
    task: &Task,
    ctx: &mut FitContext,
) -> Result<Box<dyn TaskModel>> {
    let head = start.head_params();
    let tuned = TunedBackbone::new(start, prefix, |n| !head.iter().any(|h| h == n))?;
    let body = Body { tuned, from: None, to: FEATURE_TAP.into() };
    let plan = Plan { method, config, frozen_until: None };
    fit_plan(plan, source, task, Some(body), FEATURE_TAP, train, ctx)
}

/// Restores a whole-network model saved by [`fit_whole`].
pub fn load_whole(method: &'static str, prefix: &str, config: serde_json::Value, source: &Source, delta: &Delta) -> Result<Box<dyn TaskModel>> {
    let tuned = TunedBackbone::from_tensors(&source.backbone, prefix, &body_tensors(delta))?;
    let body = Body { tuned, from: None, to: FEATURE_TAP.into() };
    let plan = Plan { method, config, frozen_until: None };
    load_plan(plan, source, delta, Some(body))
}

/// The fine-tuning method.
pub struct FineTune {
    /// Its configuration.
    pub config: FineTuneConfig,
}

impl TransferMethod for FineTune {
    fn name(&self) -> &str {
        NAME
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn fit(&self, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<Box<dyn TaskModel>> {
        fit_whole(NAME, PREFIX, self.config_json(), &self.config.train, &source.backbone, source, task, ctx)
    }

    fn load(&self, source: &Source, delta: &Delta) -> Result<Box<dyn TaskModel>> {
        load_whole(NAME, PREFIX, self.config_json(), source, delta)
    }
}

fn build(de: &mut dyn erased_serde::Deserializer) -> Result<Box<dyn TransferMethod>> {
    Ok(Box::new(FineTune { config: parse_config(NAME, de)? }))
}

inventory::submit! {
    MethodEntry {
        name: NAME,
        description: "FT baseline: every weight of the source is trained (BN in training mode) with a new head",
        paper: "baseline (FT in Yoo et al., ICLR 2020)",
        build,
        default_config: default_config_json::<FineTuneConfig>,
    }
}
