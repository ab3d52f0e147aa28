//! Sequential fine-tuning: the forgetting baseline of the continual-learning comparisons. One
//! network is fine-tuned task after task: each new task starts from the network the previous
//! task left (a new head per task, the trunk carried over), so learning it changes what every
//! earlier task's head reads, and the earlier tasks are forgotten. On a single task (a suite's
//! grid) it is exactly fine-tuning.

use crate::fine_tune::{fit_whole, load_whole, FineTuneConfig};
use crate::model::body_tensors;
use graft_core::registry::{default_config_json, parse_config, MethodEntry};
use graft_core::{Backbone, ContinualMethod, Delta, FitContext, GraftError, Result, Source, Task, TaskModel, TransferMethod};

/// Registered name.
pub const NAME: &str = "sequential-fine-tune";
/// Prefix of the shared network's parameters in the stored delta.
pub const PREFIX: &str = "sequential-fine-tune.";

/// Its configuration: fine-tuning's (the schedule of every task of the sequence).
pub type SequentialFineTuneConfig = FineTuneConfig;

/// The sequential fine-tuning method.
pub struct SequentialFineTune {
    /// Its configuration.
    pub config: SequentialFineTuneConfig,
}

impl SequentialFineTune {
    /// `delta`'s tensors, checked to be a sequential fine-tuning delta on `source`.
    fn checked<'a>(&self, source: &Source, delta: &'a Delta, role: &str) -> Result<&'a Delta> {
        if delta.method != NAME {
            return Err(GraftError::Incompatible(format!("the {role} delta was written by '{}', not '{NAME}'", delta.method)));
        }
        if delta.source_hash != source.hash {
            return Err(GraftError::Incompatible(format!(
                "the {role} delta was trained on source {}, not this one ({})",
                graft_core::checkpoint::abbrev(&delta.source_hash, 12),
                graft_core::checkpoint::abbrev(&source.hash, 12)
            )));
        }
        Ok(delta)
    }
}

impl TransferMethod for SequentialFineTune {
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

    fn continual(&self) -> Option<&dyn ContinualMethod> {
        Some(self)
    }
}

impl ContinualMethod for SequentialFineTune {
    fn fit_after(&self, source: &Source, previous: &Delta, task: &Task, ctx: &mut FitContext) -> Result<Box<dyn TaskModel>> {
        let previous = self.checked(source, previous, "previous")?;
        // The source's parameters with the previous task's trunk laid over them; the source's
        // own head stays (it is never trained: every task gets a new head).
        let mut params = source.backbone.params().clone();
        for (key, t) in body_tensors(previous) {
            let name = key.strip_prefix(PREFIX).ok_or_else(|| {
                GraftError::Incompatible(format!("the previous delta's tensor '{key}' does not start with '{PREFIX}'"))
            })?;
            params.insert(name.to_string(), t.to_device(source.backbone.device())?);
        }
        let start = Backbone::from_params(source.backbone.spec().clone(), params, source.backbone.device())?;
        fit_whole(NAME, PREFIX, self.config_json(), &self.config.train, &start, source, task, ctx)
    }

    fn as_of(&self, source: &Source, earlier: &Delta, latest: &Delta) -> Result<Box<dyn TaskModel>> {
        let earlier = self.checked(source, earlier, "earlier")?;
        let latest = self.checked(source, latest, "latest")?;
        let mut combined = earlier.clone();
        combined.tensors.retain(|k, _| k.starts_with("head."));
        combined.tensors.extend(body_tensors(latest));
        self.load(source, &combined)
    }
}

fn build(de: &mut dyn erased_serde::Deserializer) -> Result<Box<dyn TransferMethod>> {
    Ok(Box::new(SequentialFineTune { config: parse_config(NAME, de)? }))
}

inventory::submit! {
    MethodEntry {
        name: NAME,
        description: "Forgetting baseline: one network fine-tuned task after task (a new head per task, the trunk carried over); on one task, fine-tuning",
        paper: "baseline (sequential fine-tuning, e.g. Mallya & Lazebnik's Piggyback comparisons)",
        build,
        default_config: default_config_json::<SequentialFineTuneConfig>,
    }
}
