//! The two trainings of pool preparation as [`Trainable`]s: a student network distilled from
//! the oracle's logits (the library's network), and an expert distilled by conditional KD from
//! the oracle's logits of its classes. Both look up their targets by sample position through
//! the trainer's loss hook.

use crate::loss::{conditional_kd, kd_loss};
use candle_core::Tensor;
use graft_core::backbone::{TunedBackbone, LOGITS_TAP};
use graft_core::init::SeededRng;
use graft_core::{ParamMap, Result, Trainable};

/// What a distilled network is trained towards.
#[derive(Clone, Copy, Debug)]
pub enum Objective {
    /// Plain KD at temperature `T` (the library's network).
    Kd {
        /// Temperature T.
        temperature: f64,
    },
    /// Conditional KD (an expert).
    Conditional {
        /// Temperature T.
        temperature: f64,
        /// Weight α of the L1 term.
        alpha: f64,
    },
}

/// A network, all of whose parameters train, distilled towards per-sample teacher logits.
pub struct Distilled {
    /// The network (every parameter a trainable copy; BN in training mode).
    pub tuned: TunedBackbone,
    /// Teacher logits of every training sample, `(n, k)` (for an expert: the oracle's logits
    /// of its classes, `z_O[H]`).
    pub teacher: Tensor,
    /// The loss.
    pub objective: Objective,
}

impl Trainable for Distilled {
    fn train_logits(&mut self, x: &Tensor, _rng: &mut SeededRng) -> Result<Tensor> {
        self.tuned.forward(x, None, LOGITS_TAP, true)
    }

    fn eval_logits(&self, x: &Tensor) -> Result<Tensor> {
        self.tuned.eval(x, None, LOGITS_TAP)
    }

    fn loss(&self, logits: &Tensor, _labels: &Tensor, batch: &[usize]) -> Result<Tensor> {
        let ids: Vec<u32> = batch.iter().map(|&i| i as u32).collect();
        let ids = Tensor::from_vec(ids, batch.len(), logits.device())?;
        let target = self.teacher.index_select(&ids, 0)?;
        match self.objective {
            Objective::Kd { temperature } => kd_loss(logits, &target, temperature),
            Objective::Conditional { temperature, alpha } => conditional_kd(logits, &target, temperature, alpha),
        }
    }

    fn after_step(&mut self) -> Result<()> {
        self.tuned.apply_bn_stats()
    }

    fn state(&self) -> Result<ParamMap> {
        self.tuned.tensors()
    }

    fn set_state(&mut self, state: &ParamMap) -> Result<()> {
        self.tuned.set_tensors(state)
    }
}
