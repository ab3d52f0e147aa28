//! The trainer every method uses: seeded shuffling, optimiser groups, schedule, NaN/inf guard,
//! progress bar, per-epoch metrics, early stopping with best-state restore.

use crate::backbone::argmax;
use crate::error::{GraftError, Result};
use crate::init::SeededRng;
use crate::method::FitContext;
use crate::optim::{Optimizer, OptimizerKind, OptimizerSettings, ParamGroup, Schedule};
use crate::params::ParamMap;
use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Training-loop settings shared by all methods (a `train` table in a method's config).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Passes over the training split.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Update rule: `sgd`, `adam` or `adamw`.
    pub optimizer: OptimizerKind,
    /// Base learning rate (before the schedule).
    pub lr: f64,
    /// SGD momentum (0 = none).
    pub momentum: f64,
    /// Nesterov momentum (SGD only).
    pub nesterov: bool,
    /// Weight decay (L2 for sgd/adam, decoupled for adamw).
    pub weight_decay: f64,
    /// Adam β₁.
    pub beta1: f64,
    /// Adam β₂.
    pub beta2: f64,
    /// Adam ε.
    pub eps: f64,
    /// Learning-rate schedule: `constant`, `cosine` or `{ step = { every, gamma } }`.
    pub schedule: Schedule,
    /// Linear warm-up steps before the schedule.
    pub warmup_steps: usize,
    /// Stop after this many epochs without validation-accuracy improvement and restore the best
    /// epoch's state (`None`: train all epochs, keep the last state).
    pub patience: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        let o = OptimizerSettings::default();
        Self {
            epochs: 10,
            batch_size: 64,
            optimizer: o.optimizer,
            lr: o.lr,
            momentum: o.momentum,
            nesterov: o.nesterov,
            weight_decay: o.weight_decay,
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
            schedule: Schedule::Cosine,
            warmup_steps: 0,
            patience: None,
        }
    }
}

impl TrainConfig {
    /// Checks ranges; messages name the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.epochs == 0 {
            return Err("train.epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return Err("train.batch_size must be at least 1".into());
        }
        if let Schedule::Step { every: 0, .. } = self.schedule {
            return Err("train.schedule.step.every must be at least 1".into());
        }
        self.optim().validate().map_err(|m| format!("train.{m}"))
    }

    /// The optimiser settings of the main parameter group.
    pub fn optim(&self) -> OptimizerSettings {
        OptimizerSettings {
            optimizer: self.optimizer,
            lr: self.lr,
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
        }
    }

    /// This config with `epochs`, `lr` and `optimizer` replaced (for method defaults).
    pub fn with(mut self, epochs: usize, optimizer: OptimizerKind, lr: f64) -> Self {
        self.epochs = epochs;
        self.optimizer = optimizer;
        self.lr = lr;
        self
    }
}

/// A model the trainer can optimise.
pub trait Trainable {
    /// Logits for a training batch, keeping the graph to the trainable variables.
    fn train_logits(&mut self, x: &Tensor, rng: &mut SeededRng) -> Result<Tensor>;
    /// Logits in evaluation mode, no graph.
    fn eval_logits(&self, x: &Tensor) -> Result<Tensor>;
    /// The training loss of a batch: `logits` from [`Trainable::train_logits`], `labels` the
    /// batch's `(n,)` u32 labels and `batch` the positions of its samples in the training split
    /// (so a method can look up per-sample targets it prepared, e.g. a teacher's logits for
    /// distillation). The default is mean cross-entropy on the labels.
    fn loss(&self, logits: &Tensor, labels: &Tensor, batch: &[usize]) -> Result<Tensor> {
        let _ = batch;
        Ok(candle_nn::loss::cross_entropy(logits, labels)?)
    }
    /// Called before each training batch with the trainer's optimiser step (from 0) and the
    /// steps it plans in all (`epochs · ceil(n / batch_size)`), so a schedule the model owns
    /// (KSM's temperature) follows the trainer's own count. Does nothing by default.
    fn begin_step(&mut self, step: usize, total: usize) -> Result<()> {
        let _ = (step, total);
        Ok(())
    }
    /// Called after each optimiser step (e.g. to update BN running statistics).
    fn after_step(&mut self) -> Result<()> {
        Ok(())
    }
    /// Everything that defines the model's current state (variables and buffers).
    fn state(&self) -> Result<ParamMap>;
    /// Restores a state returned by [`Trainable::state`].
    fn set_state(&mut self, state: &ParamMap) -> Result<()>;
}

/// Inputs and labels of one split; inputs are images or cached features, first dim = samples.
#[derive(Clone, Copy)]
pub struct Split<'a> {
    /// Inputs `(n, ...)`.
    pub x: &'a Tensor,
    /// Labels, one per input.
    pub y: &'a [u32],
}

/// Metrics of one epoch, passed to the per-epoch callback and kept in the report.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EpochMetrics {
    /// Epoch (from 0).
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f32,
    /// Training accuracy (on the augmented/noisy labels seen).
    pub train_acc: f32,
    /// Validation accuracy, if a validation split was given.
    pub val_acc: Option<f32>,
    /// Learning-rate factor at the end of the epoch.
    pub lr_factor: f64,
    /// Training images per second.
    pub images_per_sec: f32,
    /// Seconds since training started.
    pub elapsed_sec: f32,
    /// FLOPs per training image of the epoch's optimiser steps (forward and backward): 2 × the
    /// multiply–accumulates graft's conv kernels counted during the steps, divided by the images
    /// (validation passes excluded). `None` in records written before it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_flops_per_image: Option<f64>,
}

/// One point of a convergence curve: validation accuracy after `step` optimiser steps.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CurvePoint {
    /// Optimiser steps taken so far (0: the initialisation, before any update).
    pub step: usize,
    /// Epoch the step falls in (from 0).
    pub epoch: usize,
    /// Accuracy on the validation split, in [0, 1].
    pub val_acc: f32,
    /// Mean training loss over the steps since the previous point (null at step 0).
    pub train_loss: Option<f32>,
    /// Seconds since training started (evaluation time included).
    pub elapsed_sec: f32,
}

/// Summary of a training run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct TrainReport {
    /// Metrics per epoch.
    pub epochs: Vec<EpochMetrics>,
    /// Epoch whose state was kept.
    pub best_epoch: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Validation accuracy against step, when the context asked for it
    /// ([`FitContext::eval_every_steps`]).
    pub curve: Vec<CurvePoint>,
    /// Wall-clock seconds.
    pub seconds: f32,
}

/// Classification accuracy of `forward` on a split, evaluated in batches.
pub fn accuracy(forward: &dyn Fn(&Tensor) -> Result<Tensor>, split: Split, batch_size: usize) -> Result<f32> {
    let n = split.y.len();
    if n == 0 {
        return Ok(0.0);
    }
    let preds = predict(forward, split.x, batch_size)?;
    let correct = preds.iter().zip(split.y).filter(|(p, y)| p == y).count();
    Ok(correct as f32 / n as f32)
}

/// Predicted classes of `forward` for all inputs, in batches.
pub fn predict(forward: &dyn Fn(&Tensor) -> Result<Tensor>, x: &Tensor, batch_size: usize) -> Result<Vec<u32>> {
    let n = x.dim(0)?;
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let len = batch_size.max(1).min(n - i);
        out.extend(argmax(&forward(&x.narrow(0, i, len)?)?)?);
        i += len;
    }
    Ok(out)
}

/// The inputs at `idx` and their labels, as a vector and as a tensor.
fn batch_of(x: &Tensor, y: &[u32], idx: &[usize], device: &Device) -> Result<(Tensor, Vec<u32>, Tensor)> {
    let ids: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
    let ids = Tensor::from_vec(ids, idx.len(), device)?;
    let xb = x.index_select(&ids, 0)?;
    let labels: Vec<u32> = idx.iter().map(|&i| y[i]).collect();
    let yb = Tensor::from_slice(&labels, idx.len(), device)?;
    Ok((xb, labels, yb))
}

/// Trains `model` on `train`, optimising `groups`, and evaluates on `val` after every epoch.
/// A loss this many times the first step's (or 1, if that was smaller) counts as divergence.
pub const DIVERGENCE_FACTOR: f32 = 1e3;

/// The name of the first tensor of `state` holding a NaN or an infinity.
fn first_non_finite(state: &ParamMap) -> Result<Option<String>> {
    for (name, t) in state {
        if t.dtype() != candle_core::DType::F32 {
            continue;
        }
        let finite = t.flatten_all()?.to_vec1::<f32>()?.iter().all(|v| v.is_finite());
        if !finite {
            return Ok(Some(name.clone()));
        }
    }
    Ok(None)
}

/// `label` names the run in the progress bar. A NaN or infinite loss stops with an error.
pub fn train(
    model: &mut dyn Trainable,
    groups: Vec<ParamGroup>,
    train: Split,
    val: Option<Split>,
    cfg: &TrainConfig,
    ctx: &mut FitContext,
    label: &str,
) -> Result<TrainReport> {
    cfg.validate().map_err(|m| GraftError::Config { method: label.to_string(), msg: m })?;
    let n = train.y.len();
    if n == 0 || train.x.dim(0)? != n {
        return Err(GraftError::Data(format!(
            "{label}: training inputs have {} rows but there are {n} labels",
            train.x.dims().first().copied().unwrap_or(0)
        )));
    }
    let device = ctx.device.clone();
    let mut opt = Optimizer::new(groups)?;
    let mut rng = SeededRng::derived(ctx.seed, "trainer");
    let steps_per_epoch = n.div_ceil(cfg.batch_size);
    let total = steps_per_epoch * cfg.epochs;
    let bar = if ctx.progress {
        let b = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{prefix:>24} [{bar:30}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b.set_prefix(label.to_string());
        b
    } else {
        ProgressBar::hidden()
    };
    let start = Instant::now();
    let mut report = TrainReport::default();
    let mut best: Option<(f32, usize, ParamMap)> = None;
    let mut since_best = 0;
    let mut step = 0;
    let curve_val = match (ctx.eval_every_steps, val) {
        (Some(every), Some(v)) if every > 0 && !v.y.is_empty() => Some((every, v)),
        _ => None,
    };
    let mut curve_loss = (0f64, 0usize);
    let mut curve = Vec::new();
    let mut curve_point = |model: &dyn Trainable, step: usize, epoch: usize, loss: &mut (f64, usize), ctx: &mut FitContext| -> Result<()> {
        let Some((_, v)) = curve_val else { return Ok(()) };
        let eval = |x: &Tensor| model.eval_logits(x);
        let p = CurvePoint {
            step,
            epoch,
            val_acc: accuracy(&eval, v, 256)?,
            train_loss: (loss.1 > 0).then(|| (loss.0 / loss.1 as f64) as f32),
            elapsed_sec: start.elapsed().as_secs_f32(),
        };
        *loss = (0.0, 0);
        if let Some(cb) = ctx.on_curve.as_mut() {
            cb(&p);
        }
        curve.push(p);
        Ok(())
    };
    curve_point(&*model, 0, 0, &mut curve_loss, ctx)?;
    let mut first_loss: Option<f32> = None;
    for epoch in 0..cfg.epochs {
        let epoch_start = Instant::now();
        let order = rng.permutation(n);
        let (mut loss_sum, mut correct) = (0f64, 0usize);
        let mut factor = 1.0;
        let (macs_at_start, mut macs_evaluating) = (crate::kernels::flop_count::macs(), 0u64);
        for (b, idx) in order.chunks(cfg.batch_size).enumerate() {
            factor = cfg.schedule.factor(step, total, steps_per_epoch, cfg.warmup_steps);
            let (xb, labels, yb) = batch_of(train.x, train.y, idx, &device)?;
            model.begin_step(step, total)?;
            let logits = model.train_logits(&xb, &mut rng)?;
            let loss = model.loss(&logits, &yb, idx)?;
            let lv = loss.to_scalar::<f32>()?;
            if !lv.is_finite() {
                bar.abandon();
                return Err(GraftError::NonFiniteLoss { epoch, step: b, loss: lv });
            }
            let first = *first_loss.get_or_insert(lv);
            if lv > DIVERGENCE_FACTOR * first.max(1.0) {
                bar.abandon();
                let detail = format!("the loss is {lv:e}, more than {DIVERGENCE_FACTOR:e} times the first step's {first:.4}");
                return Err(GraftError::Diverged { epoch, step: b, detail });
            }
            let grads = loss.backward()?;
            opt.step(&grads, factor)?;
            model.after_step()?;
            loss_sum += lv as f64 * idx.len() as f64;
            correct += argmax(&logits)?.iter().zip(&labels).filter(|(p, y)| p == y).count();
            step += 1;
            bar.inc(1);
            curve_loss = (curve_loss.0 + lv as f64, curve_loss.1 + 1);
            if curve_val.is_some_and(|(every, _)| step % every == 0) {
                let before = crate::kernels::flop_count::macs();
                curve_point(&*model, step, epoch, &mut curve_loss, ctx)?;
                macs_evaluating += crate::kernels::flop_count::macs() - before;
            }
        }
        let step_macs = crate::kernels::flop_count::macs() - macs_at_start - macs_evaluating;
        if let Some(name) = first_non_finite(&model.state()?)? {
            bar.abandon();
            return Err(GraftError::Diverged { epoch, step: steps_per_epoch.saturating_sub(1), detail: format!("'{name}' holds a NaN or infinite value") });
        }
        let eval = |x: &Tensor| model.eval_logits(x);
        let val_acc = match val {
            Some(v) if !v.y.is_empty() => Some(accuracy(&eval, v, 256)?),
            _ => None,
        };
        let m = EpochMetrics {
            epoch,
            train_loss: (loss_sum / n as f64) as f32,
            train_acc: correct as f32 / n as f32,
            val_acc,
            lr_factor: factor,
            images_per_sec: n as f32 / epoch_start.elapsed().as_secs_f32().max(1e-9),
            elapsed_sec: start.elapsed().as_secs_f32(),
            train_flops_per_image: Some(2.0 * step_macs as f64 / n.max(1) as f64),
        };
        bar.set_message(format!(
            "loss {:.3} acc {:.3}{} {:.0} img/s",
            m.train_loss,
            m.train_acc,
            m.val_acc.map(|a| format!(" val {a:.3}")).unwrap_or_default(),
            m.images_per_sec
        ));
        if let Some(cb) = ctx.on_epoch.as_mut() {
            cb(&m);
        }
        report.epochs.push(m);
        report.best_epoch = epoch;
        if let (Some(patience), Some(acc)) = (cfg.patience, val_acc) {
            if best.as_ref().is_none_or(|(b, _, _)| acc > *b) {
                best = Some((acc, epoch, model.state()?));
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= patience {
                    report.stopped_early = true;
                    break;
                }
            }
        }
    }
    if curve_val.is_some_and(|(every, _)| step % every != 0) {
        let epoch = report.epochs.len().saturating_sub(1);
        curve_point(&*model, step, epoch, &mut curve_loss, ctx)?;
    }
    report.curve = curve;
    if let Some((_, epoch, state)) = best {
        model.set_state(&state)?;
        report.best_epoch = epoch;
    }
    bar.finish_and_clear();
    report.seconds = start.elapsed().as_secs_f32();
    Ok(report)
}
