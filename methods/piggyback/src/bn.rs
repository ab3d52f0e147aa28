//! Per-task BatchNorm: trainable copies of the selected BNs' affine parameters (γ, β) and their
//! own running statistics. While fitting, the tuned BNs normalise with batch statistics and fold
//! them into the running statistics after every step (momentum 0.1, unbiased variance, as
//! PyTorch); at evaluation they use the stored running statistics.

use graft_core::backbone::{updated_running_stats, BnBatchStats, BN_PARAMS};
use graft_core::{Backbone, ParamMap, Result, Trainables};
use candle_core::{Tensor, Var};
use std::collections::BTreeSet;

/// Trainable affine parameters and running statistics of the tuned BatchNorms, named
/// `<prefix><bn>.{weight,bias,running_mean,running_var}`.
pub struct BnStore {
    prefix: String,
    vars: Trainables,
    buffers: ParamMap,
    bns: BTreeSet<String>,
    pending: Vec<BnBatchStats>,
}

impl BnStore {
    /// Tunes the BatchNorms `bns` of `base`, starting from the source's values.
    pub fn new(base: &Backbone, prefix: &str, bns: &[String]) -> Result<Self> {
        let mut vars = Trainables::new();
        let mut buffers = ParamMap::new();
        for bn in bns {
            for p in ["weight", "bias"] {
                vars.insert(format!("{prefix}{bn}.{p}"), base.param(&format!("{bn}.{p}"))?)?;
            }
            for p in ["running_mean", "running_var"] {
                buffers.insert(format!("{prefix}{bn}.{p}"), base.param(&format!("{bn}.{p}"))?.copy()?);
            }
        }
        let bns = bns.iter().cloned().collect();
        Ok(Self { prefix: prefix.to_string(), vars, buffers, bns, pending: Vec::new() })
    }

    /// Whether the BatchNorm module `bn` is tuned.
    pub fn is_tuned(&self, bn: &str) -> bool {
        self.bns.contains(bn)
    }

    /// The tuned value of the backbone parameter `name` (`<bn>.weight`, …), if its BN is tuned.
    pub fn param(&self, name: &str) -> Option<Tensor> {
        let key = format!("{}{name}", self.prefix);
        self.vars.tensor(&key).or_else(|| self.buffers.get(&key).cloned())
    }

    /// The trainable variables (γ and β of every tuned BN).
    pub fn vars(&self) -> Vec<Var> {
        self.vars.vars()
    }

    /// Number of trained scalars: `2 · channels` per tuned BN.
    pub fn num_trainable(&self) -> usize {
        self.vars.num_params()
    }

    /// Keeps the batch statistics of a training forward for [`BnStore::apply_stats`].
    pub fn record(&mut self, stats: Vec<BnBatchStats>) {
        self.pending = stats;
    }

    /// Folds the recorded batch statistics into the running statistics.
    pub fn apply_stats(&mut self) -> Result<()> {
        for s in std::mem::take(&mut self.pending) {
            let km = format!("{}{}.running_mean", self.prefix, s.bn);
            let kv = format!("{}{}.running_var", self.prefix, s.bn);
            let (Some(rm), Some(rv)) = (self.buffers.get(&km), self.buffers.get(&kv)) else { continue };
            let (m, v) = updated_running_stats(rm, rv, &s.mean, &s.var, s.count)?;
            self.buffers.insert(km, m);
            self.buffers.insert(kv, v);
        }
        Ok(())
    }

    /// Detached copies of every tuned tensor, under their stored names.
    pub fn tensors(&self) -> Result<ParamMap> {
        let mut out = self.vars.snapshot()?;
        for (k, v) in &self.buffers {
            out.insert(k.clone(), v.copy()?);
        }
        Ok(out)
    }

    /// Restores values returned by [`BnStore::tensors`].
    pub fn set_tensors(&mut self, values: &ParamMap) -> Result<()> {
        self.vars.restore(values)?;
        for (k, v) in values {
            if let Some(slot) = self.buffers.get_mut(k) {
                *slot = v.clone();
            }
        }
        Ok(())
    }
}

/// The stored names and shapes of tuned BatchNorm `bn` with `channels` channels: its four
/// tensors under `prefix`, paired with the backbone parameter each replaces.
pub fn stored_bn_tensors(prefix: &str, bn: &str, channels: usize) -> Vec<(String, String, Vec<usize>)> {
    BN_PARAMS.iter().map(|p| (format!("{prefix}{bn}.{p}"), format!("{bn}.{p}"), vec![channels])).collect()
}
