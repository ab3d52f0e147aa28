//! Configuration of Piggyback.

use graft_core::optim::{OptimizerKind, Schedule};
use graft_core::registry::MethodConfig;
use graft_core::train::TrainConfig;
use serde::{Deserialize, Serialize};

/// Which convolutions get a mask: `"all"` (default), `"all-but-first"` or
/// `{ "only": ["layer1.0.conv1", …] }` (the kit's choice of convs).
pub type MaskedConvs = graft_core::kit::ConvChoice;

/// Configuration of Piggyback. `Default` is the paper's setting where it is known (see
/// `docs/methods/piggyback.md` for the source of every value).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PiggybackConfig {
    /// Convolutions that get an element-wise mask. Default `all` (paper: all layers except the
    /// classifier; graft's linear layers before the head, VGG's fc6/fc7, stay frozen).
    pub layers: MaskedConvs,
    /// Initial value of every real-valued mask entry `m`. paper: 1e-2, §3.
    pub mask_init: f64,
    /// Binarisation threshold τ: the forward pass uses `1[m > τ]`. paper: 5e-3, §3.
    pub threshold: f64,
    /// Train a per-task copy of every BatchNorm (γ, β, running statistics) alongside the masks.
    /// Default true, chosen by the protocol run (docs/methods/piggyback.md); the paper's method
    /// learns masks and the classifier only (`false`).
    pub tune_bn: bool,
    /// Learning rate of the new head (`None`: `train.lr`). paper: the same optimiser as the masks.
    pub head_lr: Option<f64>,
    /// Learning rate of the tuned BatchNorms' γ and β (`None`: `train.lr`); used with `tune_bn`.
    pub bn_lr: Option<f64>,
    /// Training of the masks (and head, BN). Default: Adam, lr 1e-3 (chosen by the protocol
    /// run; paper: 1e-4), 30 epochs, lr ÷10 after 15 epochs, no weight decay on the masks (paper).
    pub train: TrainConfig,
}

impl Default for PiggybackConfig {
    fn default() -> Self {
        // lr 1e-3 and per-task BN: chosen by the protocol run (docs/methods/piggyback.md).
        let mut train = TrainConfig::default().with(30, OptimizerKind::Adam, 1e-3);
        train.weight_decay = 0.0;
        train.schedule = Schedule::Step { every: 15, gamma: 0.1 };
        Self { layers: MaskedConvs::All, mask_init: 1e-2, threshold: 5e-3, tune_bn: true, head_lr: None, bn_lr: None, train }
    }
}

fn positive_lr(key: &str, lr: Option<f64>) -> std::result::Result<(), String> {
    match lr {
        Some(v) if !(v > 0.0 && v.is_finite()) => Err(format!("{key} must be a positive number, got {v}")),
        _ => Ok(()),
    }
}

impl MethodConfig for PiggybackConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if !self.threshold.is_finite() {
            return Err(format!("threshold must be a finite number, got {}", self.threshold));
        }
        if !self.mask_init.is_finite() || self.mask_init <= self.threshold {
            return Err(format!(
                "mask_init must be a finite number above threshold ({}), got {}: every weight would start masked out",
                self.threshold, self.mask_init
            ));
        }
        self.layers.validate("layers")?;
        positive_lr("head_lr", self.head_lr)?;
        positive_lr("bn_lr", self.bn_lr)?;
        self.train.validate()
    }
}
