//! Feature extractor (FE): the source is frozen up to the input of its last stage; the last stage
//! (a trainable copy initialised from the source, BN included) and a new head are trained.

use crate::model::{body_tensors, fit_plan, load_plan, Plan};
use crate::net::Body;
use graft_core::backbone::{TunedBackbone, FEATURE_TAP};
use graft_core::optim::OptimizerKind;
use graft_core::registry::{default_config_json, parse_config, MethodConfig, MethodEntry};
use graft_core::train::TrainConfig;
use graft_core::{Backbone, Delta, FitContext, Result, Source, Task, TaskModel, TransferMethod};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Registered name.
pub const NAME: &str = "feature-extractor";
/// Prefix of the tuned backbone parameters in the stored delta.
pub const PREFIX: &str = "feature-extractor.";

/// Configuration of the feature extractor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureExtractorConfig {
    /// Training of the last stage and the head (the frozen part's output is cached).
    pub train: TrainConfig,
}

impl Default for FeatureExtractorConfig {
    fn default() -> Self {
        Self { train: TrainConfig::default().with(30, OptimizerKind::Sgd, 0.05) }
    }
}

impl MethodConfig for FeatureExtractorConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        self.train.validate()
    }
}

/// The feature-extractor method.
pub struct FeatureExtractor {
    /// Its configuration.
    pub config: FeatureExtractorConfig,
}

/// Names of the parameters of the units after `boundary` up to `pool` (the last stage).
fn last_stage_params(backbone: &Backbone, boundary: &str) -> Result<BTreeSet<String>> {
    let start = backbone.tap_index(boundary)? + 1;
    let end = backbone.tap_index(FEATURE_TAP)?;
    Ok(backbone.units()[start..end].iter().flat_map(|u| u.unit.param_shapes()).map(|(n, _)| n).collect())
}

impl FeatureExtractor {
    fn plan(&self, boundary: &str) -> Plan {
        Plan {
            method: NAME,
            config: serde_json::to_value(&self.config).expect("config serialises"),
            frozen_until: Some(boundary.to_string()),
        }
    }
}

impl TransferMethod for FeatureExtractor {
    fn name(&self) -> &str {
        NAME
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn fit(&self, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<Box<dyn TaskModel>> {
        let boundary = source.backbone.last_stage_input_tap();
        let trainable = last_stage_params(&source.backbone, &boundary)?;
        let tuned = TunedBackbone::new(&source.backbone, PREFIX, |n| trainable.contains(n))?;
        let body = Body { tuned, from: Some(boundary.clone()), to: FEATURE_TAP.into() };
        fit_plan(self.plan(&boundary), source, task, Some(body), FEATURE_TAP, &self.config.train, ctx)
    }

    fn load(&self, source: &Source, delta: &Delta) -> Result<Box<dyn TaskModel>> {
        let boundary = source.backbone.last_stage_input_tap();
        let tuned = TunedBackbone::from_tensors(&source.backbone, PREFIX, &body_tensors(delta))?;
        let body = Body { tuned, from: Some(boundary.clone()), to: FEATURE_TAP.into() };
        load_plan(self.plan(&boundary), source, delta, Some(body))
    }
}

fn build(de: &mut dyn erased_serde::Deserializer) -> Result<Box<dyn TransferMethod>> {
    Ok(Box::new(FeatureExtractor { config: parse_config(NAME, de)? }))
}

inventory::submit! {
    MethodEntry {
        name: NAME,
        description: "FE baseline: frozen source up to its last stage; the last stage and a new head train",
        paper: "baseline (FE in Yoo et al., ICLR 2020)",
        build,
        default_config: default_config_json::<FeatureExtractorConfig>,
    }
}
