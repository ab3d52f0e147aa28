//! A backbone with some parameters turned into trainable copies (fine-tuning, feature
//! extraction, training from scratch, pretraining). The frozen backbone itself is never changed.

use super::{is_bn_buffer, updated_running_stats, Backbone, BnBatchStats, Hooks};
use crate::error::{GraftError, Result};
use crate::params::{ParamMap, Trainables};
use candle_core::Tensor;
use std::collections::BTreeSet;

/// Trainable copies of a selected subset of a backbone's parameters.
///
/// Variables are named `<prefix><param>` (e.g. `fine-tune.layer1.0.conv1.weight`). A BatchNorm
/// whose affine parameters are trainable is *tuned*: it uses batch statistics in training and
/// keeps its own running statistics (stored under the same prefix).
pub struct TunedBackbone {
    base: Backbone,
    prefix: String,
    vars: Trainables,
    buffers: ParamMap,
    tuned_bns: BTreeSet<String>,
    pending: Vec<BnBatchStats>,
}

/// The tuned values first, then the caller's `outer` hooks for everything else.
struct TuneHooks<'a> {
    tuned: &'a TunedBackbone,
    train: bool,
    outer: &'a dyn Hooks,
}

impl Hooks for TuneHooks<'_> {
    fn param(&self, name: &str, frozen: &Tensor) -> Result<Option<Tensor>> {
        let key = format!("{}{name}", self.tuned.prefix);
        if let Some(t) = self.tuned.vars.tensor(&key) {
            return Ok(Some(t));
        }
        match self.tuned.buffers.get(&key) {
            Some(t) => Ok(Some(t.clone())),
            None => self.outer.param(name, frozen),
        }
    }

    fn bn_uses_batch_stats(&self, bn: &str) -> bool {
        (self.train && self.tuned.tuned_bns.contains(bn)) || self.outer.bn_uses_batch_stats(bn)
    }

    fn tap_output(&self, tap: &str, x: Tensor) -> Result<Tensor> {
        self.outer.tap_output(tap, x)
    }

    fn alters_conv(&self, conv: &str) -> bool {
        self.outer.alters_conv(conv)
    }

    fn conv_output(&self, conv: &super::ConvDef, x: &Tensor, y: Tensor) -> Result<Tensor> {
        self.outer.conv_output(conv, x, y)
    }
}

impl TunedBackbone {
    /// Makes every parameter for which `select(name)` is true trainable, starting from its
    /// current (frozen) value. BN running statistics follow their BN's affine parameters.
    pub fn new(base: &Backbone, prefix: &str, select: impl Fn(&str) -> bool) -> Result<Self> {
        let mut vars = Trainables::new();
        let mut buffers = ParamMap::new();
        let mut tuned_bns = BTreeSet::new();
        let bn_names: BTreeSet<String> =
            base.bn_names().into_iter().collect();
        for (name, t) in base.params() {
            if is_bn_buffer(name) || !select(name) {
                continue;
            }
            vars.insert(format!("{prefix}{name}"), t)?;
            if let Some(module) = name.strip_suffix(".weight").or_else(|| name.strip_suffix(".bias")) {
                if bn_names.contains(module) && tuned_bns.insert(module.to_string()) {
                    for b in ["running_mean", "running_var"] {
                        let key = format!("{module}.{b}");
                        buffers.insert(format!("{prefix}{key}"), base.param(&key)?.copy()?);
                    }
                }
            }
        }
        Ok(Self { base: base.clone(), prefix: prefix.to_string(), vars, buffers, tuned_bns, pending: Vec::new() })
    }

    /// Rebuilds a tuned backbone from saved tensors (as returned by [`TunedBackbone::tensors`]).
    /// Every tensor must name a parameter of `base` (after the prefix) with the same shape.
    pub fn from_tensors(base: &Backbone, prefix: &str, tensors: &ParamMap) -> Result<Self> {
        let mut selected = BTreeSet::new();
        for (key, t) in tensors {
            let name = key.strip_prefix(prefix).ok_or_else(|| {
                GraftError::Incompatible(format!("tensor '{key}' does not start with the prefix '{prefix}'"))
            })?;
            let frozen = base.param(name).map_err(|_| {
                GraftError::Incompatible(format!("tensor '{key}': the backbone has no parameter '{name}'"))
            })?;
            if frozen.dims() != t.dims() {
                return Err(GraftError::Incompatible(format!(
                    "tensor '{key}' has shape {:?}, the backbone's '{name}' is {:?}",
                    t.dims(),
                    frozen.dims()
                )));
            }
            selected.insert(name.to_string());
        }
        let mut tuned = Self::new(base, prefix, |n| selected.contains(n))?;
        for (key, t) in tensors {
            if let Some(v) = tuned.vars.get(key) {
                v.set(&t.to_device(base.device())?)?;
            } else if tuned.buffers.contains_key(key) {
                tuned.buffers.insert(key.clone(), t.to_device(base.device())?);
            } else {
                return Err(GraftError::Incompatible(format!(
                    "tensor '{key}' is a BN running statistic whose BN is not tuned"
                )));
            }
        }
        Ok(tuned)
    }

    /// The frozen backbone underneath.
    pub fn base(&self) -> &Backbone {
        &self.base
    }

    /// The trainable variables.
    pub fn vars(&self) -> &Trainables {
        &self.vars
    }

    /// Names of the BatchNorms that are tuned.
    pub fn tuned_bns(&self) -> &BTreeSet<String> {
        &self.tuned_bns
    }

    /// Runs from tap `from` (or the images) to tap `to`. In training mode tuned BNs use batch
    /// statistics, which are kept until [`TunedBackbone::apply_bn_stats`].
    pub fn forward(&mut self, x: &Tensor, from: Option<&str>, to: &str, train: bool) -> Result<Tensor> {
        self.forward_with(x, from, to, train, &super::NoHooks)
    }

    /// [`TunedBackbone::forward`] with further hooks: parameters that are not tuned come from
    /// `outer` (or stay frozen), and `outer` may replace tap outputs (a side network fusing
    /// features into this backbone, as SNOW does).
    pub fn forward_with(&mut self, x: &Tensor, from: Option<&str>, to: &str, train: bool, outer: &dyn Hooks) -> Result<Tensor> {
        let out = self.base.run(x, from, to, &[], &TuneHooks { tuned: self, train, outer })?;
        if train {
            self.pending = out.bn_stats;
        }
        Ok(out.output)
    }

    /// Evaluation-mode forward (running statistics everywhere), detached from any graph.
    pub fn eval(&self, x: &Tensor, from: Option<&str>, to: &str) -> Result<Tensor> {
        self.eval_with(x, from, to, &super::NoHooks)
    }

    /// [`TunedBackbone::eval`] with further hooks, as in [`TunedBackbone::forward_with`].
    pub fn eval_with(&self, x: &Tensor, from: Option<&str>, to: &str, outer: &dyn Hooks) -> Result<Tensor> {
        Ok(self.base.run(x, from, to, &[], &TuneHooks { tuned: self, train: false, outer })?.output.detach())
    }

    /// Folds the batch statistics of the last training forward into the running statistics.
    pub fn apply_bn_stats(&mut self) -> Result<()> {
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

    /// Trainable variables and tuned BN buffers, detached: what a task model stores.
    pub fn tensors(&self) -> Result<ParamMap> {
        let mut out = self.vars.snapshot()?;
        for (k, v) in &self.buffers {
            out.insert(k.clone(), v.copy()?);
        }
        Ok(out)
    }

    /// Restores values returned by [`TunedBackbone::tensors`].
    pub fn set_tensors(&mut self, values: &ParamMap) -> Result<()> {
        self.vars.restore(values)?;
        for (k, v) in values {
            if self.buffers.contains_key(k) {
                self.buffers.insert(k.clone(), v.clone());
            }
        }
        Ok(())
    }

    /// The tuned values (trainable variables and tuned BN buffers, detached) by the base
    /// backbone's parameter names, without the prefix.
    pub fn overrides(&self) -> Result<ParamMap> {
        Ok(self
            .tensors()?
            .into_iter()
            .map(|(k, v)| (k.strip_prefix(&self.prefix).map(str::to_string).unwrap_or(k), v))
            .collect())
    }

    /// A plain frozen backbone with the tuned values merged in (fast evaluation, export).
    pub fn merged(&self) -> Result<Backbone> {
        let mut params = self.base.params().clone();
        params.extend(self.overrides()?);
        Backbone::from_params(self.base.spec().clone(), params, self.base.device())
    }
}
