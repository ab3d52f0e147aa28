//! graft-ksm: **KSM**, kernel-wise soft masks (Yang, He, Zhang, Fan, "KSM: Fast Multiple Task
//! Adaption via Kernel-wise Soft Mask Learning", CVPR 2021), registered as `ksm`.
//!
//! The source's weights `W` stay frozen. Per task and per masked conv, a real mask `M^r` holds
//! one value per kernel `(out, in/groups)`. The task's conv uses `W ⊙ M`, broadcast over the
//! `k × k` kernel, with the soft mask `M = M^b + A^s`: a binary part `M^b`, relaxed while
//! training to the two-way softmax `σ(2 M^r / τ)` (exactly differentiable, no straight-through
//! estimator; τ anneals geometrically from `tau` to `tau_final`) and exactly `1[M^r > 0]` at
//! evaluation, plus a real scaling part `A^s` derived from
//! `M^r` (or learned beside it, [`ScaleKind`]). Per-task BatchNorm (a
//! [`graft_core::backbone::TunedBackbone`]) and a new head train too. A task stores `M^b` as bits
//! ([`graft_core::bitpack`], 8 kernels per byte), `A^s` (f16 by default), BN and head.
//!
//! See `docs/methods/ksm.md` for the equations, the choices where the paper is not known to
//! graft, and the defaults.

#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod mask;
pub mod model;

pub use config::{KsmConfig, MaskedConvs, ScaleDType, ScaleKind};
pub use error::KsmError;
pub use model::{EvalMask, KsmModel, Layout, MaskedConv};

use graft_core::registry::{default_config_json, parse_config, MethodEntry};
use graft_core::{Delta, FitContext, Result, Source, Task, TaskModel, TransferMethod};

/// Registered name.
pub const NAME: &str = "ksm";
/// Prefix of every stored tensor but the head's.
pub const PREFIX: &str = "ksm.";

/// The KSM method.
pub struct Ksm {
    /// Its configuration.
    pub config: KsmConfig,
}

impl Ksm {
    /// [`TransferMethod::fit`] with the concrete model type (its masks can be inspected).
    pub fn fit_model(&self, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<KsmModel> {
        model::fit(&self.config, source, task, ctx)
    }

    /// [`TransferMethod::load`] with the concrete model type.
    pub fn load_model(&self, source: &Source, delta: &Delta) -> Result<KsmModel> {
        delta.check(source, NAME)?;
        KsmModel::from_tensors(self.config.clone(), source, delta.tensors.clone(), delta.num_classes)
    }
}

impl TransferMethod for Ksm {
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
    Ok(Box::new(Ksm { config: parse_config(NAME, de)? }))
}

inventory::submit! {
    MethodEntry {
        name: NAME,
        description: "KSM: kernel-wise soft masks (relaxed binary + real scale) on the frozen source's conv weights, per-task BN and a new head",
        paper: "Yang, He, Zhang, Fan, CVPR 2021",
        build,
        default_config: default_config_json::<KsmConfig>,
    }
}
