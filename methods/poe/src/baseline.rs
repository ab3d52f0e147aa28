//! The baselines PoE is compared with on a query, at the consolidated model's size: the same
//! architecture (library part + the query's experts), freshly initialised, trained on the
//! query's labelled data with cross-entropy — either everything (*scratch*) or only the experts
//! on the pool's frozen library (*frozen library + new heads*).

use crate::pool::{sub_seed, Consolidated};
use candle_core::Tensor;
use graft_core::backbone::TunedBackbone;
use graft_core::init::SeededRng;
use graft_core::optim::ParamGroup;
use graft_core::train::{train, Split, TrainConfig, TrainReport};
use graft_core::{Backbone, FitContext, ParamMap, Result, Task, Trainable};
use std::sync::Arc;

/// What a baseline trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// Library part and experts from a fresh initialisation.
    Scratch,
    /// The pool's frozen library, fresh experts.
    FrozenLibrary,
}

/// The consolidated architecture as one trainable network.
struct Net {
    library: Option<TunedBackbone>,
    frozen_library: Backbone,
    tap: String,
    experts: Vec<TunedBackbone>,
    columns: Tensor,
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
            parts.push(e.forward(&f, None, "logits", true)?);
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
        let parts = self.experts.iter().map(|e| e.eval(&f, None, "logits")).collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 1)?.index_select(&self.columns, 1)?.detach())
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
/// report. The given pool is not changed.
pub fn train_baseline(model: &Consolidated, task: &Task, kind: Baseline, cfg: &TrainConfig, seed: u64, ctx: &mut FitContext) -> Result<(Consolidated, TrainReport)> {
    let pool = &model.pool;
    let dev = ctx.device.clone();
    let library = match kind {
        Baseline::Scratch => {
            let fresh = Backbone::init(pool.library.spec().clone(), sub_seed(seed, "baseline-library"), &dev)?;
            Some(TunedBackbone::new(&fresh, "", |_| true)?)
        }
        Baseline::FrozenLibrary => None,
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
    let mut net = Net { library, frozen_library: pool.library.clone(), tap: pool.library_tap.clone(), experts, columns: Tensor::from_vec(cols, model.classes.len(), &dev)? };
    let mut vars = net.library.as_ref().map(|l| l.vars().vars()).unwrap_or_default();
    for e in &net.experts {
        vars.extend(e.vars().vars());
    }
    let x = task.train.images_tensor(&dev)?;
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
