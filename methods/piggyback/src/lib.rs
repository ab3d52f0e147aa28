//! graft-piggyback: **Piggyback** (Mallya, Davis, Lazebnik, "Piggyback: Adapting a Single
//! Network to Multiple Tasks by Learning to Mask Weights", ECCV 2018), registered as `piggyback`.
//!
//! The source's weights `W` stay frozen. Per task and per masked conv, a real-valued mask `m` of
//! `W`'s shape (init 1e-2) is thresholded into a binary mask `B = 1[m > τ]` (τ = 5e-3), and the
//! task's conv uses `W ⊙ B`. The threshold's gradient is replaced by the identity (a
//! straight-through estimator, [`mask::binarize_ste`]), so `m` trains by Adam through `B`. A new
//! head (and, with `tune_bn`, a per-task copy of every BatchNorm) trains alongside. A task stores
//! its masks as bits ([`graft_core::bitpack`], 8 weights per byte), its BN if tuned, and its head.
//!
//! See `docs/methods/piggyback.md` for the equations, defaults and their sources.

#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod mask;
pub mod model;

pub use config::{MaskedConvs, PiggybackConfig};
pub use error::PiggybackError;
pub use model::{Layout, MaskedConv, PiggybackModel};

use graft_core::registry::{default_config_json, parse_config, MethodEntry};
use graft_core::{Delta, FitContext, Result, Source, Task, TaskModel, TransferMethod};

/// Registered name.
pub const NAME: &str = "piggyback";
/// Prefix of every stored tensor but the head's.
pub const PREFIX: &str = "piggyback.";

/// The Piggyback method.
pub struct Piggyback {
    /// Its configuration.
    pub config: PiggybackConfig,
}

impl Piggyback {
    /// [`TransferMethod::fit`] with the concrete model type (its masks can be inspected).
    pub fn fit_model(&self, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<PiggybackModel> {
        model::fit(&self.config, source, task, ctx)
    }

    /// [`TransferMethod::load`] with the concrete model type.
    pub fn load_model(&self, source: &Source, delta: &Delta) -> Result<PiggybackModel> {
        delta.check(source, NAME)?;
        PiggybackModel::from_tensors(self.config.clone(), source, delta.tensors.clone(), delta.num_classes)
    }
}

impl TransferMethod for Piggyback {
    fn name(&self) -> &str {
        NAME
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn fit(&self, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<Box<dyn TaskModel>> {
        Ok(Box::new(self.fit_model(source, task, ctx)?))
    }

    fn load(&self, source: &Source, delta: &Delta) -> Result<Box<dyn TaskModel>> {
        Ok(Box::new(self.load_model(source, delta)?))
    }
}

fn build(de: &mut dyn erased_serde::Deserializer) -> Result<Box<dyn TransferMethod>> {
    Ok(Box::new(Piggyback { config: parse_config(NAME, de)? }))
}

inventory::submit! {
    MethodEntry {
        name: NAME,
        description: "Piggyback: element-wise binary masks (straight-through estimator) on the frozen source's conv weights, plus a new head",
        paper: "Mallya, Davis, Lazebnik, ECCV 2018",
        build,
        default_config: default_config_json::<PiggybackConfig>,
    }
}
