//! graft-attention: **adaptive attention for multiple domains** (after Aswani, Kanse, Bhatnagar,
//! Sethi, "Memory-efficient adaptive attention for multiple domain learning", arXiv 2110.10969),
//! registered as `adaptive-attention`.
//!
//! The source's weights stay frozen. Per domain, a small attention module — a channel gate
//! `σ(W₂·ReLU(W₁·GAP(h)))` with reduction `r`, optionally followed by a spatial gate — is
//! inserted after chosen taps (every block by default), meeting the features multiplicatively
//! or residually ([`gate`]); with, by default, a domain copy of every BatchNorm and a new head.
//! Modules start as the identity. The paper's exact module is not known to us: the defaults are
//! chosen for about an order of magnitude fewer trainable parameters than residual adapters in
//! series on the same backbone (see `docs/methods/adaptive-attention.md`).

#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod gate;
pub mod model;

pub use config::{AttentionConfig, AttentionTaps, GatePlacement};
pub use error::AttentionError;
pub use gate::GateShape;
pub use model::{AttentionModel, AttentionNet, Layout};

use graft_core::registry::{default_config_json, parse_config, MethodEntry};
use graft_core::{Delta, FitContext, Result, Source, Task, TaskModel, TransferMethod};

/// Registered name.
pub const NAME: &str = "adaptive-attention";
/// Prefix of every stored tensor but the head's.
pub const PREFIX: &str = "adaptive-attention.";

/// The adaptive-attention method.
pub struct AdaptiveAttention {
    /// Its configuration.
    pub config: AttentionConfig,
}

impl AdaptiveAttention {
    /// [`TransferMethod::fit`] with the concrete model type.
    pub fn fit_model(&self, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<AttentionModel> {
        model::fit(&self.config, source, task, ctx)
    }

    /// [`TransferMethod::load`] with the concrete model type.
    pub fn load_model(&self, source: &Source, delta: &Delta) -> Result<AttentionModel> {
        delta.check(source, NAME)?;
        AttentionModel::from_tensors(self.config.clone(), source, delta.tensors.clone(), delta.num_classes)
    }
}

impl TransferMethod for AdaptiveAttention {
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
    Ok(Box::new(AdaptiveAttention { config: parse_config(NAME, de)? }))
}

inventory::submit! {
    MethodEntry {
        name: NAME,
        description: "Adaptive attention: small per-domain channel (optionally spatial) attention modules after the frozen source's blocks, domain BNs and a new head",
        paper: "Aswani, Kanse, Bhatnagar, Sethi, arXiv 2110.10969",
        build,
        default_config: default_config_json::<AttentionConfig>,
    }
}
