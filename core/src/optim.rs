//! Optimisers with PyTorch semantics: SGD (momentum, Nesterov, L2 weight decay), Adam, AdamW;
//! each parameter group has its own settings and the schedule scales every group's rate.

use crate::error::{GraftError, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

/// Which update rule.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with optional momentum and Nesterov; weight decay added to the gradient.
    Sgd,
    /// Adam (Kingma & Ba 2015); weight decay added to the gradient (L2).
    Adam,
    /// AdamW (Loshchilov & Hutter 2019); decoupled weight decay.
    Adamw,
}

/// Settings of one optimiser (or one parameter group).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerSettings {
    /// Update rule: `sgd`, `adam` or `adamw`.
    pub optimizer: OptimizerKind,
    /// Base learning rate (before the schedule).
    pub lr: f64,
    /// SGD momentum (0 = none).
    pub momentum: f64,
    /// Nesterov momentum (SGD only).
    pub nesterov: bool,
    /// Weight decay (L2 for sgd/adam, decoupled for adamw).
    pub weight_decay: f64,
    /// Adam β₁.
    pub beta1: f64,
    /// Adam β₂.
    pub beta2: f64,
    /// Adam ε.
    pub eps: f64,
}

impl Default for OptimizerSettings {
    fn default() -> Self {
        Self {
            optimizer: OptimizerKind::Sgd,
            lr: 0.05,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 5e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl OptimizerSettings {
    /// Checks ranges; the message names the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("lr must be a positive number, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(format!("momentum must be in [0, 1), got {}", self.momentum));
        }
        if self.weight_decay < 0.0 {
            return Err(format!("weight_decay must be >= 0, got {}", self.weight_decay));
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return Err(format!("beta1 and beta2 must be in [0, 1), got {} and {}", self.beta1, self.beta2));
        }
        if self.nesterov && self.momentum == 0.0 {
            return Err("nesterov needs momentum > 0".into());
        }
        Ok(())
    }
}

/// A set of variables trained with one setting.
pub struct ParamGroup {
    /// The variables.
    pub vars: Vec<Var>,
    /// Their optimiser settings.
    pub settings: OptimizerSettings,
}

struct VarState {
    var: Var,
    m: Option<Tensor>,
    v: Option<Tensor>,
}

struct GroupState {
    settings: OptimizerSettings,
    vars: Vec<VarState>,
}

/// An optimiser over parameter groups.
pub struct Optimizer {
    groups: Vec<GroupState>,
    step: usize,
}

impl Optimizer {
    /// An optimiser for `groups`; every group's settings are validated.
    pub fn new(groups: Vec<ParamGroup>) -> Result<Self> {
        let mut out = Vec::new();
        for g in groups {
            g.settings
                .validate()
                .map_err(|m| GraftError::Config { method: "optimizer".into(), msg: m })?;
            out.push(GroupState {
                settings: g.settings,
                vars: g.vars.into_iter().map(|var| VarState { var, m: None, v: None }).collect(),
            });
        }
        Ok(Self { groups: out, step: 0 })
    }

    /// Number of scalars being optimised.
    pub fn num_params(&self) -> usize {
        self.groups.iter().flat_map(|g| &g.vars).map(|v| v.var.elem_count()).sum()
    }

    /// Applies one update with every group's rate multiplied by `lr_factor`. Variables without a
    /// gradient (not used in the loss) are left unchanged.
    pub fn step(&mut self, grads: &GradStore, lr_factor: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        for g in &mut self.groups {
            let s = &g.settings;
            let lr = s.lr * lr_factor;
            for st in &mut g.vars {
                let Some(grad) = grads.get(st.var.as_tensor()) else { continue };
                let w = st.var.as_tensor();
                match s.optimizer {
                    OptimizerKind::Sgd => {
                        let mut d = if s.weight_decay > 0.0 { (grad + (w * s.weight_decay)?)? } else { grad.clone() };
                        if s.momentum > 0.0 {
                            let buf = match &st.m {
                                Some(b) => ((b * s.momentum)? + &d)?,
                                None => d.clone(),
                            };
                            d = if s.nesterov { (&d + (&buf * s.momentum)?)? } else { buf.clone() };
                            st.m = Some(buf);
                        }
                        st.var.set(&(w - (d * lr)?)?)?;
                    }
                    OptimizerKind::Adam | OptimizerKind::Adamw => {
                        let decoupled = s.optimizer == OptimizerKind::Adamw;
                        let g2 = if !decoupled && s.weight_decay > 0.0 { (grad + (w * s.weight_decay)?)? } else { grad.clone() };
                        let m = match &st.m {
                            Some(m) => ((m * s.beta1)? + (&g2 * (1.0 - s.beta1))?)?,
                            None => (&g2 * (1.0 - s.beta1))?,
                        };
                        let v = match &st.v {
                            Some(v) => ((v * s.beta2)? + (g2.sqr()? * (1.0 - s.beta2))?)?,
                            None => (g2.sqr()? * (1.0 - s.beta2))?,
                        };
                        let mhat = (&m / (1.0 - s.beta1.powi(t)))?;
                        let vhat = (&v / (1.0 - s.beta2.powi(t)))?;
                        let upd = (mhat / (vhat.sqrt()? + s.eps)?)?;
                        let base = if decoupled && s.weight_decay > 0.0 { (w * (1.0 - lr * s.weight_decay))? } else { w.clone() };
                        st.var.set(&(base - (upd * lr)?)?)?;
                        st.m = Some(m);
                        st.v = Some(v);
                    }
                }
            }
        }
        Ok(())
    }
}

/// How the learning rate changes over training.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Fixed rate.
    Constant,
    /// Cosine annealing from the base rate to 0 over all steps.
    Cosine,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between decays.
        every: usize,
        /// Decay factor.
        gamma: f64,
    },
}

impl Schedule {
    /// The factor applied to base rates at `step` of `total` steps (`steps_per_epoch` per epoch),
    /// after `warmup` linear warm-up steps.
    pub fn factor(&self, step: usize, total: usize, steps_per_epoch: usize, warmup: usize) -> f64 {
        if step < warmup {
            return (step + 1) as f64 / warmup as f64;
        }
        match self {
            Schedule::Constant => 1.0,
            Schedule::Cosine => {
                let span = total.saturating_sub(warmup).max(1) as f64;
                let p = (step - warmup) as f64 / span;
                0.5 * (1.0 + (std::f64::consts::PI * p).cos())
            }
            Schedule::Step { every, gamma } => {
                let epoch = step / steps_per_epoch.max(1);
                gamma.powi((epoch / (*every).max(1)) as i32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn quad_step(settings: OptimizerSettings, steps: usize) -> Vec<f32> {
        // Minimise 0.5 * ||w - 3||² from w = 0.
        let w = Var::from_tensor(&Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu).unwrap()).unwrap();
        let mut opt = Optimizer::new(vec![ParamGroup { vars: vec![w.clone()], settings }]).unwrap();
        for _ in 0..steps {
            let loss = ((w.as_tensor() - 3.0).unwrap().sqr().unwrap().sum_all().unwrap() * 0.5).unwrap();
            let g = loss.backward().unwrap();
            opt.step(&g, 1.0).unwrap();
        }
        w.as_tensor().to_vec1::<f32>().unwrap()
    }

    #[test]
    fn sgd_momentum_matches_hand_computation() {
        let s = OptimizerSettings { lr: 0.1, momentum: 0.5, weight_decay: 0.0, ..Default::default() };
        // step1: g=-3, buf=-3, w=0.3; step2: g=-2.7, buf=-1.5-2.7=-4.2, w=0.3+0.42=0.72
        let w = quad_step(s, 2);
        assert!((w[0] - 0.72).abs() < 1e-6, "{w:?}");
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        let s = OptimizerSettings { optimizer: OptimizerKind::Adam, lr: 0.01, weight_decay: 0.0, ..Default::default() };
        let w = quad_step(s, 1);
        assert!((w[0] - 0.01).abs() < 1e-6, "{w:?}");
    }

    #[test]
    fn all_optimizers_converge_on_a_quadratic() {
        for kind in [OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::Adamw] {
            let s = OptimizerSettings { optimizer: kind, lr: 0.1, weight_decay: 0.0, ..Default::default() };
            let w = quad_step(s, 300);
            assert!((w[0] - 3.0).abs() < 0.05, "{kind:?}: {w:?}");
        }
    }

    #[test]
    fn cosine_goes_from_one_to_zero_and_step_decays() {
        let c = Schedule::Cosine;
        assert!((c.factor(0, 100, 10, 0) - 1.0).abs() < 1e-12);
        assert!(c.factor(99, 100, 10, 0) < 0.01);
        let s = Schedule::Step { every: 2, gamma: 0.1 };
        assert_eq!(s.factor(19, 100, 10, 0), 1.0);
        assert!((s.factor(20, 100, 10, 0) - 0.1).abs() < 1e-12);
        assert!((Schedule::Constant.factor(0, 100, 10, 4) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn invalid_settings_name_the_key() {
        let s = OptimizerSettings { lr: -1.0, ..Default::default() };
        assert!(s.validate().unwrap_err().contains("lr"));
        let s = OptimizerSettings { momentum: 1.5, ..Default::default() };
        assert!(s.validate().unwrap_err().contains("momentum"));
    }
}
