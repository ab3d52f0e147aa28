//! Where a forward pass finds a method's tensors: the trainable variables while training, or a
//! fitted model's stored tensors; and the hooks that replace frozen parameters.

use crate::backbone::Hooks;
use crate::error::Result;
use crate::params::{ParamMap, Trainables};
use candle_core::Tensor;

/// The values of a method's modules in one forward pass.
pub enum ModuleValues<'a> {
    /// While training: the variables (in the graph), then non-trained tensors such as BN
    /// running statistics.
    Training {
        /// The trainable variables.
        vars: &'a Trainables,
        /// Tensors that are not trained by gradient (may be empty).
        buffers: &'a ParamMap,
    },
    /// A fitted model: its stored tensors.
    Fitted(&'a ParamMap),
}

impl ModuleValues<'_> {
    /// The tensor stored or trained under `key`, if there is one.
    pub fn get(&self, key: &str) -> Option<Tensor> {
        match self {
            ModuleValues::Training { vars, buffers } => vars.tensor(key).or_else(|| buffers.get(key).cloned()),
            ModuleValues::Fitted(map) => map.get(key).cloned(),
        }
    }
}

/// Hooks that replace the frozen parameters named in a map (a fitted model's masked weights,
/// domain BNs) and change nothing else.
pub struct ParamOverrides<'a>(pub &'a ParamMap);

impl Hooks for ParamOverrides<'_> {
    fn param(&self, name: &str, _frozen: &Tensor) -> Result<Option<Tensor>> {
        Ok(self.0.get(name).cloned())
    }
}
