//! Per-task ("domain") BatchNorms: a task's own γ, β and running statistics for chosen BNs of
//! the frozen backbone.

use crate::backbone::{Backbone, TunedBackbone, BN_PARAMS};
use crate::error::Result;
use crate::params::ParamMap;

/// The BatchNorms a task keeps its own copy of (γ, β trained; running statistics updated from
/// the task's batches), stored as `<prefix><bn>.{weight,bias,running_mean,running_var}`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DomainBns {
    /// BN module names with their channels, in the backbone's order.
    pub bns: Vec<(String, usize)>,
}

impl DomainBns {
    /// Every BatchNorm of `backbone`.
    pub fn all(backbone: &Backbone) -> Self {
        Self { bns: backbone.bns() }
    }

    /// Every BatchNorm of `backbone` when `tuned`, none otherwise.
    pub fn all_if(tuned: bool, backbone: &Backbone) -> Self {
        if tuned {
            Self::all(backbone)
        } else {
            Self::none()
        }
    }

    /// No domain BN (the frozen ones are used as they are).
    pub fn none() -> Self {
        Self::default()
    }

    /// How many BNs.
    pub fn len(&self) -> usize {
        self.bns.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.bns.is_empty()
    }

    /// Trainable scalars: `Σ 2·C`.
    pub fn trainable_params(&self) -> usize {
        self.bns.iter().map(|(_, c)| 2 * c).sum()
    }

    /// Stored bytes (four f32 tensors of `C` each): `Σ 16·C`.
    pub fn stored_bytes(&self) -> usize {
        self.bns.iter().map(|(_, c)| 16 * c).sum()
    }

    /// Whether the backbone parameter `name` is γ or β of one of these BNs.
    pub fn is_affine(&self, name: &str) -> bool {
        name.strip_suffix(".weight").or_else(|| name.strip_suffix(".bias")).is_some_and(|bn| self.bns.iter().any(|(b, _)| b == bn))
    }

    /// The frozen `base` with these BNs' γ, β trainable and their running statistics tracked, under
    /// `prefix`.
    pub fn tuned(&self, base: &Backbone, prefix: &str) -> Result<TunedBackbone> {
        TunedBackbone::new(base, prefix, |name| self.is_affine(name))
    }

    /// The stored tensors' names and shapes.
    pub fn expected(&self, prefix: &str) -> Vec<(String, Vec<usize>)> {
        self.bns.iter().flat_map(|(bn, c)| BN_PARAMS.iter().map(move |p| (format!("{prefix}{bn}.{p}"), vec![*c]))).collect()
    }

    /// The backbone parameters a fitted model replaces, from its stored `tensors`.
    pub fn overrides(&self, prefix: &str, tensors: &ParamMap) -> ParamMap {
        let mut out = ParamMap::new();
        for (bn, _) in &self.bns {
            for p in BN_PARAMS {
                if let Some(t) = tensors.get(&format!("{prefix}{bn}.{p}")) {
                    out.insert(format!("{bn}.{p}"), t.clone());
                }
            }
        }
        out
    }
}
