//! Linear probe (FO, "fine-tune the output layer only"): the frozen source's features at a tap,
//! global-average-pooled, into a new linear head. The only trained parameters are the head's.

use crate::model::{fit_plan, load_plan, Plan};
use graft_core::optim::{OptimizerKind, Schedule};
use graft_core::registry::{default_config_json, parse_config, MethodConfig, MethodEntry};
use graft_core::train::TrainConfig;
use graft_core::backbone::FEATURE_TAP;
use graft_core::{Delta, FitContext, Result, Source, Task, TaskModel, TransferMethod};
use serde::{Deserialize, Serialize};

/// Registered name.
pub const NAME: &str = "linear-probe";

/// Configuration of the linear probe.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LinearProbeConfig {
    /// Source tap whose output feeds the head (4-D outputs are global-average-pooled).
    /// Default `pool`, the penultimate features, as in the SNOW paper's FO baseline.
    pub tap: String,
    /// Training of the head; its features are computed once (frozen source) and cached.
    pub train: TrainConfig,
}

impl Default for LinearProbeConfig {
    fn default() -> Self {
        let mut train = TrainConfig::default().with(40, OptimizerKind::Adam, 1e-2);
        train.weight_decay = 0.0;
        train.batch_size = 64;
        train.schedule = Schedule::Cosine;
        Self { tap: FEATURE_TAP.into(), train }
    }
}

impl MethodConfig for LinearProbeConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.tap.is_empty() {
            return Err("tap must name a source tap (e.g. \"pool\")".into());
        }
        self.train.validate()
    }
}

/// The linear-probe method.
pub struct LinearProbe {
    /// Its configuration.
    pub config: LinearProbeConfig,
}

impl LinearProbe {
    fn plan(&self) -> Plan {
        Plan {
            method: NAME,
            config: serde_json::to_value(&self.config).expect("config serialises"),
            frozen_until: Some(self.config.tap.clone()),
        }
    }
}

impl TransferMethod for LinearProbe {
    fn name(&self) -> &str {
        NAME
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn fit(&self, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<Box<dyn TaskModel>> {
        source.backbone.tap_index(&self.config.tap)?;
        fit_plan(self.plan(), source, task, None, &self.config.tap, &self.config.train, ctx)
    }

    fn load(&self, source: &Source, delta: &Delta) -> Result<Box<dyn TaskModel>> {
        let features = source.backbone.tap(&self.config.tap)?.channels;
        delta.tensor_shaped(crate::net::HEAD_WEIGHT, &[delta.num_classes, features])?;
        load_plan(self.plan(), source, delta, None)
    }

    fn shares_source(&self) -> bool {
        true
    }
}

fn build(de: &mut dyn erased_serde::Deserializer) -> Result<Box<dyn TransferMethod>> {
    Ok(Box::new(LinearProbe { config: parse_config(NAME, de)? }))
}

inventory::submit! {
    MethodEntry {
        name: NAME,
        description: "FO baseline: frozen source features at a tap into a new linear head (only the head trains)",
        paper: "baseline (FO in Yoo et al., ICLR 2020)",
        build,
        default_config: default_config_json::<LinearProbeConfig>,
    }
}
