//! Configuration of KSM.

use graft_core::optim::{OptimizerKind, Schedule};
use graft_core::registry::MethodConfig;
use graft_core::train::TrainConfig;
use serde::{Deserialize, Serialize};

/// Which convolutions get a kernel-wise mask: `"all"` (default), `"all-but-first"` or
/// `{ "only": ["layer1.0.conv1", …] }` (the kit's choice of convs).
pub type MaskedConvs = graft_core::kit::ConvChoice;

/// How the real-valued part `A^s` of the soft mask `M = M^b + A^s` is formed (the paper's exact
/// formula is not known to graft; see `docs/methods/ksm.md`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ScaleKind {
    /// `A^s = 0`: a kernel-wise relaxed binary mask only (ablation; nothing but bits is stored).
    None,
    /// `A^s = κ · (M^r − m₀)`: derived from the real mask itself (κ = `scale_gain`, m₀ =
    /// `mask_init`), so it is exactly 0 at initialisation and costs no extra trainable parameter.
    Mask,
    /// `A^s = S`: a second per-kernel tensor learned alongside `M^r` (init 0, lr `scale_lr`);
    /// doubles the trainable mask parameters.
    Learned,
}

/// The dtype `A^s` is stored in (and rounded to at evaluation, so save→load is exact).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScaleDType {
    /// IEEE half precision, 2 bytes per kernel.
    F16,
    /// Single precision, 4 bytes per kernel.
    F32,
}

impl ScaleDType {
    /// The candle dtype.
    pub fn dtype(self) -> candle_core::DType {
        match self {
            ScaleDType::F16 => candle_core::DType::F16,
            ScaleDType::F32 => candle_core::DType::F32,
        }
    }

    /// Bytes per stored scale.
    pub fn size(self) -> usize {
        self.dtype().size_in_bytes()
    }
}

/// Configuration of KSM. The paper's hyper-parameters are not known to graft; `Default` is the
/// documented choice of `docs/methods/ksm.md` (optimiser and schedule: the Piggyback setting,
/// KSM's comparator).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KsmConfig {
    /// Convolutions that get a kernel-wise mask (one value per `(out, in/groups)` kernel).
    /// Default `all`: every conv, the first one included (graft's choice, as Piggyback).
    pub layers: MaskedConvs,
    /// Initial relaxation temperature τ₀ of the soft binary mask `M^b = σ(2 M^r / τ)` while
    /// training. Default 1e-3 (graft's choice: with `mask_init` 5e-3 the relaxed mask starts at
    /// σ(10) ≈ 0.99995, i.e. at the binary evaluation mask, and still passes a gradient).
    pub tau: f64,
    /// Final temperature τ₁: τ falls geometrically from `tau` to `tau_final` over the training
    /// steps (the trainer's own step and plan). Default 1e-3 = `tau`, a fixed temperature: chosen
    /// over annealing to 1e-5 by the protocol run (`docs/methods/ksm.md`).
    pub tau_final: f64,
    /// Initial value m₀ of every real mask entry `M^r` (must be > 0: every kernel starts kept).
    /// Default 5e-3 (graft's choice: the same distance to the flip point as Piggyback's 1e-2 init
    /// to its 5e-3 threshold).
    pub mask_init: f64,
    /// Formula of the real-valued part `A^s`: `none`, `mask` or `learned`. Default `mask`.
    pub scale: ScaleKind,
    /// κ of `scale = "mask"`: `A^s = κ (M^r − m₀)`. Default 10 (graft's choice, so that Adam's
    /// ~1e-4 steps on `M^r` move a kernel's scale by ~1e-3 per step).
    pub scale_gain: f64,
    /// "Off means off": compose the mask as `M = M^b ⊙ (1 + A^s)` instead of `M^b + A^s`, so a
    /// kernel whose binary part is 0 is exactly 0 rather than an `A^s`-scaled copy of itself.
    /// Default false (the additive form).
    pub gate_scale: bool,
    /// Stored dtype of `A^s` (`f16` or `f32`); evaluation uses the stored, rounded values.
    /// Default `f16`.
    pub scale_dtype: ScaleDType,
    /// Train a per-task copy of every BatchNorm (γ, β, running statistics). paper: yes.
    pub tune_bn: bool,
    /// Learning rate of the new head (`None`: `train.lr`).
    pub head_lr: Option<f64>,
    /// Learning rate of the tuned BatchNorms' γ and β (`None`: `train.lr`).
    pub bn_lr: Option<f64>,
    /// Learning rate of `S` with `scale = "learned"` (`None`: `train.lr`).
    pub scale_lr: Option<f64>,
    /// Training of masks, BN and head. Default: Adam, lr 1e-3 (chosen by the protocol run,
    /// docs/methods/ksm.md), 30 epochs, lr ÷10 after 15 epochs, no weight decay (Piggyback's
    /// schedule; KSM's own is not known to graft).
    pub train: TrainConfig,
}

impl Default for KsmConfig {
    fn default() -> Self {
        // lr 1e-3: chosen by the protocol run (docs/methods/ksm.md).
        let mut train = TrainConfig::default().with(30, OptimizerKind::Adam, 1e-3);
        train.weight_decay = 0.0;
        train.schedule = Schedule::Step { every: 15, gamma: 0.1 };
        Self {
            layers: MaskedConvs::All,
            tau: 1e-3,
            tau_final: 1e-3,
            mask_init: 5e-3,
            scale: ScaleKind::Mask,
            scale_gain: 10.0,
            gate_scale: false,
            scale_dtype: ScaleDType::F16,
            tune_bn: true,
            head_lr: None,
            bn_lr: None,
            scale_lr: None,
            train,
        }
    }
}

fn positive(key: &str, v: f64) -> std::result::Result<(), String> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(format!("{key} must be a positive number, got {v}"))
    }
}

impl MethodConfig for KsmConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        positive("tau", self.tau)?;
        positive("tau_final", self.tau_final)?;
        if self.tau_final > self.tau {
            return Err(format!("tau_final ({}) must not exceed tau ({}): the temperature only falls", self.tau_final, self.tau));
        }
        positive("mask_init", self.mask_init).map_err(|m| format!("{m} (every kernel must start kept: M^r > 0)"))?;
        if self.scale == ScaleKind::Mask {
            positive("scale_gain", self.scale_gain).map_err(|m| format!("{m} (use scale = \"none\" for no scaling)"))?;
        }
        self.layers.validate("layers")?;
        for (key, lr) in [("head_lr", self.head_lr), ("bn_lr", self.bn_lr), ("scale_lr", self.scale_lr)] {
            if let Some(v) = lr {
                positive(key, v)?;
            }
        }
        self.train.validate()
    }
}
