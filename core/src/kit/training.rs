//! Training a method on a frozen backbone: its optimiser groups and the fit driver.

use super::head::TaskHead;
use crate::backbone::TunedBackbone;
use crate::data::Task;
use crate::error::Result;
use crate::method::FitContext;
use crate::optim::ParamGroup;
use crate::train::{train, Split, TrainConfig, TrainReport, Trainable};
use candle_core::Var;

/// Optimiser groups at `train`'s settings, one per `(variables, learning rate)` part (`None`:
/// `train.lr`), in the given order; parts without variables are dropped.
pub fn groups(train: &TrainConfig, parts: Vec<(Vec<Var>, Option<f64>)>) -> Vec<ParamGroup> {
    let base = train.optim();
    parts
        .into_iter()
        .filter(|(vars, _)| !vars.is_empty())
        .map(|(vars, lr)| {
            let mut settings = base.clone();
            settings.lr = lr.unwrap_or(base.lr);
            ParamGroup { vars, settings }
        })
        .collect()
}

/// The optimiser groups of a method on a frozen backbone: its own `modules` and the tuned
/// (domain) BNs at `train`'s settings, the head at `head_lr` (`None`: `train.lr`).
pub fn param_groups(train: &TrainConfig, head_lr: Option<f64>, mut modules: Vec<Var>, tuned: &TunedBackbone, head: &TaskHead) -> Vec<ParamGroup> {
    modules.extend(tuned.vars().vars());
    groups(train, vec![(modules, None), (head.vars(), head_lr)])
}

/// Trains `net` on `task`'s training split (images on `ctx.device`), validating on its
/// validation split, with the progress label `<method> <task>`.
pub fn train_on_task(net: &mut dyn Trainable, groups: Vec<ParamGroup>, task: &Task, cfg: &TrainConfig, ctx: &mut FitContext, method: &str) -> Result<TrainReport> {
    let device = ctx.device.clone();
    let (x, vx) = (task.train.images_tensor(&device)?, task.val.images_tensor(&device)?);
    let label = format!("{method} {}", task.name);
    train(net, groups, Split { x: &x, y: &task.train.labels }, Some(Split { x: &vx, y: &task.val.labels }), cfg, ctx, &label)
}
