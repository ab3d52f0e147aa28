//! The baselines PoE is compared with on a query, at the consolidated model's size: the same
//! architecture (library part + the query's experts), freshly initialised and trained on the
//! query's training images — with cross-entropy, either everything (*scratch*) or only the
//! experts on the pool's frozen library (*frozen library + new heads*), or everything by
//! *multi-teacher KD*: one teacher per chosen primitive task, the oracle's logits of that
//! task's classes, each distilled into the student's outputs for those classes by conditional
//! KD and the losses summed.

use crate::loss::conditional_kd;
use crate::pool::{sub_seed, Consolidated};
use candle_core::Tensor;
use graft_core::backbone::{TunedBackbone, LOGITS_TAP};
use graft_core::init::SeededRng;
use graft_core::optim::ParamGroup;
use graft_core::train::{train, Split, TrainConfig, TrainReport};
use graft_core::{Backbone, FitContext, GraftError, ParamMap, Result, Source, Task, Trainable};
use std::sync::Arc;

/// What a baseline trains.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Baseline {
    /// Library part and experts from a fresh initialisation, cross-entropy on the labels.
    Scratch,
    /// The pool's frozen library, fresh experts, cross-entropy on the labels.
    FrozenLibrary,
    /// Library part and experts from a fresh initialisation, distilled from the oracle: for
    /// every chosen primitive task `H`, conditional KD of the student's logits of `H`'s classes
    /// towards the oracle's (`T`, `α` as the experts'); the per-task losses are summed. Labels
    /// are not read.
    MultiTeacherKd {
        /// Temperature T.
        temperature: f64,
        /// Weight α of the L1 term.
        alpha: f64,
    },
}

impl Baseline {
    /// Whether the library part trains (and so starts from a fresh initialisation).
    pub fn trains_library(&self) -> bool {
        !matches!(self, Baseline::FrozenLibrary)
    }
}

/// Multi-teacher KD targets: the oracle's logits of the model's classes for every training
/// image, in output order, and the output columns of every primitive task.
struct KdTargets {
    teacher: Tensor,
    groups: Vec<Tensor>,
    temperature: f64,
    alpha: f64,
}

/// The consolidated architecture as one trainable network.
struct Net {
    library: Option<TunedBackbone>,
    frozen_library: Backbone,
    tap: String,
    experts: Vec<TunedBackbone>,
    columns: Tensor,
    kd: Option<KdTargets>,
}

impl Net {
    /// Training-mode logits (tuned BNs on batch statistics).
    fn train_forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let f = match &mut self.library {
            Some(l) => l.forward(x, None, &self.tap, true)?,
            None => self.frozen_library.run(x, None, &self.tap, &[], &graft_core::NoHooks)?.output,
        };
        let mut parts = Vec::new();
        for e in &mut self.experts {
            parts.push(e.forward(&f, None, LOGITS_TAP, true)?);
        }
        Ok(Tensor::cat(&parts, 1)?.index_select(&self.columns, 1)?)
    }
}

impl Trainable for Net {
    fn train_logits(&mut self, x: &Tensor, _rng: &mut SeededRng) -> Result<Tensor> {
        self.train_forward(x)
    }
    fn eval_logits(&self, x: &Tensor) -> Result<Tensor> {
        let f = match &self.library {
            Some(l) => l.eval(x, None, &self.tap)?,
            None => self.frozen_library.run(x, None, &self.tap, &[], &graft_core::NoHooks)?.output,
        };
        let parts = self.experts.iter().map(|e| e.eval(&f, None, LOGITS_TAP)).collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 1)?.index_select(&self.columns, 1)?.detach())
    }
    fn loss(&self, logits: &Tensor, labels: &Tensor, batch: &[usize]) -> Result<Tensor> {
        let Some(kd) = &self.kd else {
            return Ok(candle_nn::loss::cross_entropy(logits, labels)?);
        };
        let ids: Vec<u32> = batch.iter().map(|&i| i as u32).collect();
        let teacher = kd.teacher.index_select(&Tensor::from_vec(ids, batch.len(), logits.device())?, 0)?;
        let mut total: Option<Tensor> = None;
        for cols in &kd.groups {
            let l = conditional_kd(&logits.index_select(cols, 1)?, &teacher.index_select(cols, 1)?, kd.temperature, kd.alpha)?;
            total = Some(match total {
                None => l,
                Some(t) => (t + l)?,
            });
        }
        Ok(total.expect("a consolidated model has at least one expert"))
    }
    fn after_step(&mut self) -> Result<()> {
        if let Some(l) = &mut self.library {
            l.apply_bn_stats()?;
        }
        for e in &mut self.experts {
            e.apply_bn_stats()?;
        }
        Ok(())
    }
    fn state(&self) -> Result<ParamMap> {
        let mut s = ParamMap::new();
        if let Some(l) = &self.library {
            s.extend(l.tensors()?.into_iter().map(|(k, v)| (format!("library.{k}"), v)));
        }
        for (i, e) in self.experts.iter().enumerate() {
            s.extend(e.tensors()?.into_iter().map(|(k, v)| (format!("expert{i}.{k}"), v)));
        }
        Ok(s)
    }
    fn set_state(&mut self, state: &ParamMap) -> Result<()> {
        let pick = |p: &str| -> ParamMap { state.iter().filter_map(|(k, v)| k.strip_prefix(p).map(|n| (n.to_string(), v.clone()))).collect() };
        if let Some(l) = &mut self.library {
            l.set_tensors(&pick("library."))?;
        }
        for (i, e) in self.experts.iter_mut().enumerate() {
            e.set_tensors(&pick(&format!("expert{i}.")))?;
        }
        Ok(())
    }
}

/// Trains `kind` at the size of `model` on `task` (whose labels are the indices of
/// `model.classes`) and returns it as a consolidated model over a new pool, with the training
/// report. The given pool is not changed. `oracle` is the teacher of
/// [`Baseline::MultiTeacherKd`] (the other kinds do not read it).
pub fn train_baseline(
    model: &Consolidated,
    task: &Task,
    kind: Baseline,
    cfg: &TrainConfig,
    seed: u64,
    oracle: Option<&Source>,
    ctx: &mut FitContext,
) -> Result<(Consolidated, TrainReport)> {
    let pool = &model.pool;
    let dev = ctx.device.clone();
    let library = if kind.trains_library() {
        let fresh = Backbone::init(pool.library.spec().clone(), sub_seed(seed, "baseline-library"), &dev)?;
        Some(TunedBackbone::new(&fresh, "", |_| true)?)
    } else {
        None
    };
    let experts = model
        .experts
        .iter()
        .map(|&i| {
            let e = &pool.experts[i];
            let fresh = Backbone::init(e.net.spec().clone(), sub_seed(seed, &format!("baseline-{}", e.name)), &dev)?;
            TunedBackbone::new(&fresh, "", |_| true)
        })
        .collect::<Result<Vec<_>>>()?;
    let concat: Vec<u32> = model.experts.iter().flat_map(|&i| pool.experts[i].classes.iter().copied()).collect();
    let cols: Vec<u32> = model.classes.iter().map(|c| concat.iter().position(|x| x == c).expect("in the union") as u32).collect();
    let x = task.train.images_tensor(&dev)?;
    let kd = match kind {
        Baseline::MultiTeacherKd { temperature, alpha } => {
            let oracle = oracle.ok_or_else(|| GraftError::Config { method: crate::NAME.into(), msg: "multi-teacher KD needs the oracle".into() })?;
            pool.check_oracle(oracle)?;
            let ids = Tensor::from_slice(&model.classes, model.classes.len(), &dev)?;
            let teacher = oracle.backbone.features(&x, LOGITS_TAP, 256)?.index_select(&ids, 1)?;
            let groups = model
                .experts
                .iter()
                .map(|&i| {
                    let cols: Vec<u32> = pool.experts[i].classes.iter().map(|c| model.classes.iter().position(|x| x == c).expect("in the union") as u32).collect();
                    Ok(Tensor::from_vec(cols.clone(), cols.len(), &dev)?)
                })
                .collect::<Result<Vec<_>>>()?;
            Some(KdTargets { teacher, groups, temperature, alpha })
        }
        _ => None,
    };
    let mut net = Net { library, frozen_library: pool.library.clone(), tap: pool.library_tap.clone(), experts, columns: Tensor::from_vec(cols, model.classes.len(), &dev)?, kd };
    let mut vars = net.library.as_ref().map(|l| l.vars().vars()).unwrap_or_default();
    for e in &net.experts {
        vars.extend(e.vars().vars());
    }
    let vx = task.val.images_tensor(&dev)?;
    let report = train(
        &mut net,
        vec![ParamGroup { vars, settings: cfg.optim() }],
        Split { x: &x, y: &task.train.labels },
        Some(Split { x: &vx, y: &task.val.labels }),
        cfg,
        ctx,
        &format!("poe baseline {kind:?}"),
    )?;
    let mut trained = (**pool).clone();
    if let Some(l) = &net.library {
        trained.library = l.merged()?;
    }
    for (k, &i) in model.experts.iter().enumerate() {
        trained.experts[i].net = net.experts[k].merged()?;
    }
    let names: Vec<String> = model.experts.iter().map(|&i| pool.experts[i].name.clone()).collect();
    Ok((Consolidated::new(Arc::new(trained), &names, Some(&model.classes))?, report))
}
