//! The task model all four baselines produce, and the fitting procedure they share.

use crate::net::{Body, FrozenPrefix, Net};
use graft_core::features::CacheOutcome;
use graft_core::ImageSet;
use graft_core::optim::ParamGroup;
use graft_core::train::{train, Split, TrainConfig};
use graft_core::backbone::FEATURE_TAP;
use graft_core::merge::merge_into_backbone;
use graft_core::{Attachments, Backbone, Delta, FitContext, Footprint, GraftError, ParamMap, Result, Source, Task, TaskModel, Trainable};
use candle_core::Tensor;

/// How a baseline splits the network between the frozen source and what it trains.
pub struct Plan {
    /// Registered method name.
    pub method: &'static str,
    /// The method's config as JSON (stored with the delta).
    pub config: serde_json::Value,
    /// Frozen source tap whose output is the trainable net's input (`None`: images).
    pub frozen_until: Option<String>,
}

/// A fitted baseline: frozen source up to a tap, then the trained net.
pub struct BaselineModel {
    plan: Plan,
    source: Source,
    net: Net,
    num_classes: usize,
}

impl BaselineModel {
    /// The input of the trainable net for `[0, 1]` images: frozen source features or the images.
    fn net_input(&self, images: &Tensor) -> Result<Tensor> {
        match &self.plan.frozen_until {
            Some(tap) => Ok(self.source.backbone.run(images, None, tap, &[], &graft_core::NoHooks)?.output.detach()),
            None => Ok(images.clone()),
        }
    }
}

impl TaskModel for BaselineModel {
    fn method(&self) -> &str {
        self.plan.method
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn forward(&self, images: &Tensor) -> Result<Tensor> {
        self.net.eval_logits(&self.net_input(images)?)
    }

    fn footprint(&self) -> Footprint {
        let stored_bytes = self
            .net
            .state()
            .map(|s| s.values().map(|t| t.elem_count() * t.dtype().size_in_bytes()).sum())
            .unwrap_or(0);
        let head = self.net.head.num_params();
        let to = self.net.body.as_ref().map(|b| b.to.clone()).or_else(|| self.plan.frozen_until.clone());
        let body_flops = to.map(|t| self.source.backbone.flops_between(None, &t).unwrap_or(0)).unwrap_or(0);
        Footprint {
            trainable_params: self.net.num_trainable(),
            stored_bytes,
            interconnections: self.attachments().count(),
            flops_per_image: body_flops + 2 * head as u64,
        }
    }

    /// The trained net reads the frozen source's output at `frozen_until`; nothing when the
    /// whole network trains (fine-tune, scratch).
    fn attachments(&self) -> Attachments {
        Attachments::reading("trained net", self.plan.frozen_until.as_deref())
    }

    fn delta_tensors(&self) -> Result<ParamMap> {
        self.net.state()
    }

    fn config_json(&self) -> serde_json::Value {
        self.plan.config.clone()
    }

    fn source_hash(&self) -> &str {
        &self.source.hash
    }

    /// The source (or the tuned copy's base) with the tuned values and the new head in place of
    /// the classifier. Only when the head reads the pooled features: a linear probe on an
    /// earlier tap has no plain-weights form.
    fn merged(&self) -> Result<Option<Backbone>> {
        let reads = self.net.body.as_ref().map(|b| b.to.as_str()).or(self.plan.frozen_until.as_deref());
        if reads != Some(FEATURE_TAP) {
            return Err(GraftError::Incompatible(format!(
                "{}'s head reads tap '{}', not the pooled features '{FEATURE_TAP}', so the task has no plain-weights form",
                self.plan.method,
                reads.unwrap_or("images")
            )));
        }
        let (base, overrides) = match &self.net.body {
            Some(b) => (b.tuned.base(), b.tuned.overrides()?),
            None => (&self.source.backbone, ParamMap::new()),
        };
        let (w, b) = self.net.head_tensors();
        Ok(Some(merge_into_backbone(base, &overrides, &w, &b)?))
    }
}

/// The frozen source's output at `tap` for every image of a split, from the feature cache;
/// `None` (after saying why, unless caching is off) when the features do not fit its budget.
fn cached_features(source: &Source, tap: &str, images: &ImageSet, ctx: &FitContext, method: &str) -> Result<Option<Tensor>> {
    match ctx.features.taps(&source.backbone, &source.hash, images, &[tap])? {
        CacheOutcome::Ready(f) => Ok(Some(f.get(tap)?.clone())),
        CacheOutcome::OverBudget(msg) => {
            if ctx.features.enabled {
                eprintln!("{method}: {msg}");
            }
            Ok(None)
        }
    }
}

/// Trains `body` + a new head on `task` as `plan` says and returns the task model.
pub fn fit_plan(
    plan: Plan,
    source: &Source,
    task: &Task,
    body: Option<Body>,
    feature_tap: &str,
    train_cfg: &TrainConfig,
    ctx: &mut FitContext,
) -> Result<Box<dyn TaskModel>> {
    task.validate()?;
    let device = ctx.device.clone();
    let features = source.backbone.tap(feature_tap)?.channels;
    let mut net = Net::new(body, features, task.num_classes, ctx.seed, &device)?;
    let cached = match &plan.frozen_until {
        Some(tap) => match cached_features(source, tap, &task.train, ctx, plan.method)? {
            Some(x) => cached_features(source, tap, &task.val, ctx, plan.method)?.map(|vx| (x, vx)),
            None => None,
        },
        None => None,
    };
    let (x, vx) = match cached {
        Some(splits) => splits,
        None => {
            // Images, run through the frozen part (if any) on every batch.
            net.prefix = plan.frozen_until.clone().map(|tap| FrozenPrefix { backbone: source.backbone.clone(), tap });
            (task.train.images_tensor(&device)?, task.val.images_tensor(&device)?)
        }
    };
    let groups = vec![ParamGroup { vars: net.all_vars(), settings: train_cfg.optim() }];
    let label = format!("{} {}", plan.method, task.name);
    train(
        &mut net,
        groups,
        Split { x: &x, y: &task.train.labels },
        Some(Split { x: &vx, y: &task.val.labels }),
        train_cfg,
        ctx,
        &label,
    )?;
    // The model runs its frozen part itself from now on (see `net_input`).
    net.prefix = None;
    Ok(Box::new(BaselineModel { plan, source: source.clone(), net, num_classes: task.num_classes }))
}

/// Restores a task model from its delta, with `body` rebuilt by the caller from the same tensors.
pub fn load_plan(plan: Plan, source: &Source, delta: &Delta, body: Option<Body>) -> Result<Box<dyn TaskModel>> {
    delta.check(source, plan.method)?;
    let net = Net::from_tensors(body, &delta.tensors)?;
    let classes = net.head.get(crate::net::HEAD_WEIGHT).map(|v| v.dims()[0]).unwrap_or(0);
    if classes != delta.num_classes {
        return Err(graft_core::GraftError::Incompatible(format!(
            "stored head has {classes} outputs but the delta says {} classes",
            delta.num_classes
        )));
    }
    Ok(Box::new(BaselineModel { plan, source: source.clone(), net, num_classes: delta.num_classes }))
}

/// The delta's tensors that belong to the body (everything but the head).
pub fn body_tensors(delta: &Delta) -> ParamMap {
    delta.tensors.iter().filter(|(k, _)| !k.starts_with("head.")).map(|(k, v)| (k.clone(), v.clone())).collect()
}
