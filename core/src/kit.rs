//! Parts shared by methods that change a frozen backbone per task (adapters, attention; masks
//! next): the task head on the pooled features, per-task ("domain") BatchNorms, and the check of
//! a stored delta's tensors. Each method crate keeps only its paper's modules.

use crate::backbone::{linear, Backbone, TunedBackbone, BN_PARAMS};
use crate::error::Result;
use crate::data::Task;
use crate::init::{linear_init, SeededRng};
use crate::method::FitContext;
use crate::optim::ParamGroup;
use crate::params::{ParamMap, Trainables};
use crate::train::{train, Split, TrainConfig, TrainReport, Trainable};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::BTreeMap;

/// The tap whose output (global-average-pooled features) feeds a task head.
pub const FEATURE_TAP: &str = "pool";
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

    /// The stored tensors' names and shapes.
    pub fn expected(features: usize, classes: usize) -> [(String, Vec<usize>); 2] {
        [(HEAD_WEIGHT.into(), vec![classes, features]), (HEAD_BIAS.into(), vec![classes])]
    }
}

/// Logits of a fitted model's stored head (`tensors` holds [`HEAD_WEIGHT`] and [`HEAD_BIAS`]).
pub fn stored_head_logits(features: &Tensor, tensors: &ParamMap) -> Result<Tensor> {
    linear(features, &tensors[HEAD_WEIGHT], &tensors[HEAD_BIAS])
}

/// The BatchNorms a task keeps its own copy of (γ, β trained; running statistics updated from
/// the task's batches), stored as `<prefix><bn>.{weight,bias,running_mean,running_var}`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DomainBns {
    /// BN module names with their channels, in the backbone's order.
    pub bns: Vec<(String, usize)>,
}

impl DomainBns {
    /// Every BatchNorm of `backbone`.
    pub fn all(backbone: &Backbone) -> Result<Self> {
        let bns = backbone
            .bn_names()
            .into_iter()
            .map(|bn| Ok((bn.clone(), backbone.param(&format!("{bn}.weight"))?.elem_count())))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { bns })
    }

    /// No domain BN (the frozen ones are used as they are).
    pub fn none() -> Self {
        Self::default()
    }

    /// Trainable scalars: `Σ 2·C`.
    pub fn trainable_params(&self) -> usize {
        self.bns.iter().map(|(_, c)| 2 * c).sum()
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

/// The optimiser groups of a method on a frozen backbone: its own `modules` and the tuned
/// (domain) BNs at `train`'s settings, the head at `head_lr` (`None`: `train.lr`).
pub fn param_groups(train: &TrainConfig, head_lr: Option<f64>, mut modules: Vec<Var>, tuned: &TunedBackbone, head: &TaskHead) -> Vec<ParamGroup> {
    let base = train.optim();
    let mut head_settings = base.clone();
    head_settings.lr = head_lr.unwrap_or(base.lr);
    modules.extend(tuned.vars().vars());
    vec![ParamGroup { vars: modules, settings: base }, ParamGroup { vars: head.vars(), settings: head_settings }]
}

/// Trains `net` on `task`'s training split (images on `ctx.device`), validating on its
/// validation split, with the progress label `<method> <task>`.
pub fn train_on_task(net: &mut dyn Trainable, groups: Vec<ParamGroup>, task: &Task, cfg: &TrainConfig, ctx: &mut FitContext, method: &str) -> Result<TrainReport> {
    let device = ctx.device.clone();
    let (x, vx) = (task.train.images_tensor(&device)?, task.val.images_tensor(&device)?);
    let label = format!("{method} {}", task.name);
    train(net, groups, Split { x: &x, y: &task.train.labels }, Some(Split { x: &vx, y: &task.val.labels }), cfg, ctx, &label)
}

/// Checks stored `tensors` against the `expected` f32 names and shapes: every one present with
/// its shape, nothing else. The error lists every offending tensor (and `context`, e.g. the
/// config, after unexpected ones).
pub fn check_stored_tensors(expected: &BTreeMap<String, Vec<usize>>, tensors: &ParamMap, context: &str) -> std::result::Result<(), String> {
    let mut problems = Vec::new();
    for (name, shape) in expected {
        match tensors.get(name) {
            None => problems.push(format!("missing tensor '{name}' (f32 {shape:?})")),
            Some(t) if t.dtype() != DType::F32 || t.dims() != shape.as_slice() => {
                problems.push(format!("tensor '{name}' is {:?} {:?}, expected f32 {shape:?}", t.dtype(), t.dims()))
            }
            Some(_) => {}
        }
    }
    let extra: Vec<&String> = tensors.keys().filter(|k| !expected.contains_key(*k)).collect();
    if !extra.is_empty() {
        problems.push(format!("unexpected tensors {extra:?} ({context})"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_tensors_are_checked_by_name_shape_and_dtype() {
        let dev = Device::Cpu;
        let expected = BTreeMap::from([("a".to_string(), vec![2]), ("b".to_string(), vec![1, 3])]);
        let good = ParamMap::from([
            ("a".to_string(), Tensor::zeros(2, DType::F32, &dev).unwrap()),
            ("b".to_string(), Tensor::zeros((1, 3), DType::F32, &dev).unwrap()),
        ]);
        assert!(check_stored_tensors(&expected, &good, "cfg").is_ok());
        let mut bad = good.clone();
        bad.insert("b".into(), Tensor::zeros((3, 1), DType::F32, &dev).unwrap());
        bad.insert("c".into(), Tensor::zeros(1, DType::F32, &dev).unwrap());
        bad.remove("a");
        let err = check_stored_tensors(&expected, &bad, "cfg").unwrap_err();
        assert!(err.contains("missing tensor 'a'"), "{err}");
        assert!(err.contains("tensor 'b' is F32 [3, 1], expected f32 [1, 3]"), "{err}");
        assert!(err.contains("unexpected tensors [\"c\"] (cfg)"), "{err}");
    }

    #[test]
    fn a_head_has_d_plus_one_times_k_parameters() {
        let head = TaskHead::new(5, 3, 0, &Device::Cpu).unwrap();
        let n: usize = head.vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!((n, TaskHead::params(5, 3)), (18, 18));
    }
}
