//! SNOW's configuration. Defaults are the paper-reproduction settings of a public
//! re-implementation (not confirmed from the paper itself); see `docs/methods/snow.md`.

use graft_core::optim::{OptimizerKind, OptimizerSettings};
use graft_core::registry::MethodConfig;
use graft_core::train::TrainConfig;
use serde::{Deserialize, Serialize};

/// Configuration of SNOW.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SnowConfig {
    /// Width of the delta model as a fraction of the source's channels. Default 1/4, chosen by
    /// the protocol run (paper: 1/8, §3). Rounded per family and never below one channel (or
    /// widen factor 1).
    pub width_fraction: f64,
    /// Source taps the delta subscribes to; empty = the outputs of the last `last_stages` stages
    /// (the last block of each).
    pub taps: Vec<String>,
    /// With `taps` empty: subscribe to the outputs of this many stages, counted from the last;
    /// 0 = every stage (the paper's choice for ResNet-50). Works on any architecture.
    pub last_stages: usize,
    /// Source channels selected at every tap, K (re-implementation: 8, "M = 8"). When given it
    /// overrides `k_fraction`; `null` (the default) uses `k_fraction`.
    pub k: Option<usize>,
    /// K at each tap as a fraction of the tap's source channels, `max(1, round(k_fraction · C))`,
    /// so one setting fits any source width (used when `k` is `null`).
    pub k_fraction: f64,
    /// Variance σ² of the Gaussian noise added to the channel weights before top-K selection
    /// during training (re-implementation: 1e-3). 0 disables the noise.
    pub noise_var: f64,
    /// Initial value of every channel-pooling weight w (graft's choice: 1.0, so that the
    /// first selections are drawn by the noise alone and pooled maps start at source scale).
    pub pool_init: f64,
    /// Optimiser of the channel-pooling weights (re-implementation: SGD lr 1.0, momentum 0.9,
    /// weight decay 1e-4); the schedule of `train` scales it too.
    pub pool_optim: OptimizerSettings,
    /// Training of the delta model, the fusion convs and the head (graft's choice: SGD lr 0.1,
    /// momentum 0.9, weight decay 5e-4, cosine, 15 epochs); the source taps are cached.
    pub train: TrainConfig,
}

impl Default for SnowConfig {
    fn default() -> Self {
        let pool_optim = OptimizerSettings {
            optimizer: OptimizerKind::Sgd,
            lr: 1.0,
            momentum: 0.9,
            weight_decay: 1e-4,
            ..OptimizerSettings::default()
        };
        Self {
            // width 1/4, K = 1/2 of each stage output's channels, every stage: chosen by the
            // protocol run (docs/methods/snow.md).
            width_fraction: 0.25,
            taps: Vec::new(),
            last_stages: 0,
            k: None,
            k_fraction: 0.5,
            noise_var: 1e-3,
            pool_init: 1.0,
            pool_optim,
            train: TrainConfig::default().with(15, OptimizerKind::Sgd, 0.1),
        }
    }
}

impl SnowConfig {
    /// K at a tap with `channels` source channels: `k`, or `max(1, round(k_fraction · C))`.
    pub fn k_for(&self, channels: usize) -> usize {
        self.k.unwrap_or_else(|| ((self.k_fraction * channels as f64).round() as usize).clamp(1, channels.max(1)))
    }
}

impl MethodConfig for SnowConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if !(self.width_fraction > 0.0 && self.width_fraction <= 1.0) {
            return Err(format!("width_fraction must be in (0, 1], got {}", self.width_fraction));
        }
        if self.k == Some(0) {
            return Err("k must be at least 1 (or null to use k_fraction)".into());
        }
        if !(self.k_fraction > 0.0 && self.k_fraction <= 1.0) {
            return Err(format!("k_fraction must be in (0, 1], got {}", self.k_fraction));
        }
        if self.last_stages > 0 && !self.taps.is_empty() {
            return Err("give `taps` or `last_stages`, not both".into());
        }
        if !(self.noise_var >= 0.0 && self.noise_var.is_finite()) {
            return Err(format!("noise_var must be a finite number >= 0, got {}", self.noise_var));
        }
        if !self.pool_init.is_finite() {
            return Err(format!("pool_init must be finite, got {}", self.pool_init));
        }
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.taps {
            if !seen.insert(t) {
                return Err(format!("taps lists '{t}' twice"));
            }
        }
        self.pool_optim.validate().map_err(|m| format!("pool_optim.{m}"))?;
        self.train.validate()
    }
}
