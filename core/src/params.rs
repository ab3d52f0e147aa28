//! Named parameter collections: frozen tensors and trainable variables.

use crate::error::Result;
use candle_core::{Tensor, Var};
use std::collections::BTreeMap;

/// Frozen parameters by name (safetensors key), e.g. `layer1.0.conv1.weight`.
pub type ParamMap = BTreeMap<String, Tensor>;

/// The trainable variables of a task model, by name. What sits here is exactly what a method trains.
#[derive(Clone, Default)]
pub struct Trainables {
    vars: BTreeMap<String, Var>,
}

impl Trainables {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a trainable variable initialised with a copy of `init` (never aliasing it).
    pub fn insert(&mut self, name: impl Into<String>, init: &Tensor) -> Result<Var> {
        let var = Var::from_tensor(&init.copy()?.detach())?;
        self.vars.insert(name.into(), var.clone());
        Ok(var)
    }

    /// The variable called `name`.
    pub fn get(&self, name: &str) -> Option<&Var> {
        self.vars.get(name)
    }

    /// The variable's tensor as used in a graph (so gradients reach it).
    pub fn tensor(&self, name: &str) -> Option<Tensor> {
        self.vars.get(name).map(|v| v.as_tensor().clone())
    }

    /// Every variable, sorted by name.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.values().cloned().collect()
    }

    /// Variables whose name starts with `prefix`.
    pub fn vars_with_prefix(&self, prefix: &str) -> Vec<Var> {
        self.vars.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v.clone()).collect()
    }

    /// Names of every variable, sorted.
    pub fn names(&self) -> Vec<String> {
        self.vars.keys().cloned().collect()
    }

    /// Total number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// True when there is no variable.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Detached copies of every variable's current value.
    pub fn snapshot(&self) -> Result<ParamMap> {
        let mut out = ParamMap::new();
        for (k, v) in &self.vars {
            out.insert(k.clone(), v.as_tensor().detach().copy()?);
        }
        Ok(out)
    }

    /// Sets each variable to the value of the same name in `values` (names absent there are kept).
    pub fn restore(&self, values: &ParamMap) -> Result<()> {
        for (k, v) in &self.vars {
            if let Some(t) = values.get(k) {
                v.set(t)?;
            }
        }
        Ok(())
    }

    /// Builds a collection from saved tensors (e.g. a loaded delta).
    pub fn from_map(values: &ParamMap) -> Result<Self> {
        let mut t = Self::new();
        for (k, v) in values {
            t.insert(k.clone(), v)?;
        }
        Ok(t)
    }
}
