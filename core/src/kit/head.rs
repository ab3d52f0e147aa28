//! The task head: a new linear layer on the frozen pooled features.

use crate::backbone::linear;
use crate::error::Result;
use crate::init::{linear_init, SeededRng};
use crate::params::{ParamMap, Trainables};
use candle_core::{Device, Tensor, Var};

/// Stored name of a task head's weight `(classes, features)`.
pub const HEAD_WEIGHT: &str = "head.weight";
/// Stored name of a task head's bias `(classes,)`.
pub const HEAD_BIAS: &str = "head.bias";

/// A new linear head on the pooled features, trained for the task.
pub struct TaskHead {
    vars: Trainables,
}

impl TaskHead {
    /// A head of `classes` outputs on `features` inputs, PyTorch's `nn.Linear` initialisation
    /// from the stream `"head"` of `seed`.
    pub fn new(features: usize, classes: usize, seed: u64, device: &Device) -> Result<Self> {
        let mut rng = SeededRng::derived(seed, "head");
        let (w, b) = linear_init(&mut rng, classes, features, device)?;
        let mut vars = Trainables::new();
        vars.insert(HEAD_WEIGHT, &w)?;
        vars.insert(HEAD_BIAS, &b)?;
        Ok(Self { vars })
    }

    /// Logits of `features` `(n, features)`, in the graph of the head's variables.
    pub fn logits(&self, features: &Tensor) -> Result<Tensor> {
        let w = self.vars.tensor(HEAD_WEIGHT).expect("head weight exists");
        let b = self.vars.tensor(HEAD_BIAS).expect("head bias exists");
        linear(features, &w, &b)
    }

    /// The head's variables (for an optimiser group).
    pub fn vars(&self) -> Vec<Var> {
        self.vars.vars()
    }

    /// Its current values under [`HEAD_WEIGHT`] and [`HEAD_BIAS`].
    pub fn snapshot(&self) -> Result<ParamMap> {
        self.vars.snapshot()
    }

    /// Restores the values in `state` (other keys are ignored).
    pub fn restore(&self, state: &ParamMap) -> Result<()> {
        self.vars.restore(state)
    }

    /// Trainable scalars of a head: `(features + 1) · classes`.
    pub fn params(features: usize, classes: usize) -> usize {
        (features + 1) * classes
    }

    /// Stored bytes of a head (f32): `4 · (features + 1) · classes`.
    pub fn stored_bytes(features: usize, classes: usize) -> usize {
        4 * Self::params(features, classes)
    }

    /// FLOPs per image of a head: `2 · features · classes`.
    pub fn flops(features: usize, classes: usize) -> u64 {
        2 * (features * classes) as u64
    }

    /// The stored tensors' names and shapes.
    pub fn expected(features: usize, classes: usize) -> [(String, Vec<usize>); 2] {
        [(HEAD_WEIGHT.into(), vec![classes, features]), (HEAD_BIAS.into(), vec![classes])]
    }
}

/// Logits of a fitted model's stored head (`tensors` holds [`HEAD_WEIGHT`] and [`HEAD_BIAS`]).
pub fn stored_head_logits(features: &Tensor, tensors: &ParamMap) -> Result<Tensor> {
    linear(features, &tensors[HEAD_WEIGHT], &tensors[HEAD_BIAS])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_has_d_plus_one_times_k_parameters() {
        let head = TaskHead::new(5, 3, 0, &Device::Cpu).unwrap();
        let n: usize = head.vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!((n, TaskHead::params(5, 3), TaskHead::stored_bytes(5, 3), TaskHead::flops(5, 3)), (18, 18, 72, 30));
    }
}
