//! The SNOW method: builds the delta for a source, fits it on a task from the cached source
//! taps, and restores fitted models from their stored deltas.

use crate::config::SnowConfig;
use crate::delta::{check_taps, delta_spec, merge_weight_name, stage_output_taps};
use crate::model::{SnowModel, TapPlan};
use crate::net::{pool_index_name, pool_weight_name, Feed, FitData, SnowNet};
use crate::pooling::{ChannelPool, Selection};
use candle_core::{DType, Device, Tensor};
use graft_core::backbone::TunedBackbone;
use graft_core::features::CacheOutcome;
use graft_core::init::SeededRng;
use graft_core::optim::ParamGroup;
use graft_core::train::{train, Split};
use graft_core::{
    Backbone, Delta, FitContext, GraftError, ParamMap, Result, Source, Task, TaskModel, TransferMethod, Trainables,
};
use std::collections::BTreeMap;

/// Prefix of the delta model's parameters in the stored delta.
pub const DELTA_PREFIX: &str = "snow.delta.";

/// The SNOW method.
pub struct Snow {
    /// Its configuration.
    pub config: SnowConfig,
}

/// A freshly initialised fusion conv weight `(c, c + k, 1, 1)`: the identity on the delta's own
/// channels (so the delta starts as if nothing were fused) and PyTorch's default U(±1/√(c+k))
/// on the pooled channels.
pub fn init_merge(rng: &mut SeededRng, c: usize, k: usize, device: &Device) -> Result<Tensor> {
    let bound = 1.0 / ((c + k) as f64).sqrt();
    let pooled = rng.uniform_vec(c * k, -bound, bound);
    let mut w = vec![0f32; c * (c + k)];
    for o in 0..c {
        w[o * (c + k) + o] = 1.0;
        w[o * (c + k) + c..(o + 1) * (c + k)].copy_from_slice(&pooled[o * k..(o + 1) * k]);
    }
    Ok(Tensor::from_vec(w, (c, c + k, 1, 1), device)?)
}

impl Snow {
    /// The subscribed taps (config or every stage's output), in the source's forward order.
    fn tap_names(&self, source: &Backbone) -> Result<Vec<String>> {
        let mut taps = if self.config.taps.is_empty() {
            let all = stage_output_taps(source);
            let keep = match self.config.last_stages {
                0 => all.len(),
                n => n.min(all.len()),
            };
            all[all.len() - keep..].to_vec()
        } else {
            self.config.taps.clone()
        };
        let mut indexed = taps.iter().map(|t| Ok((source.tap_index(t)?, t.clone()))).collect::<Result<Vec<_>>>()?;
        indexed.sort();
        taps = indexed.into_iter().map(|(_, t)| t).collect();
        if taps.is_empty() {
            return Err(GraftError::Config { method: crate::NAME.into(), msg: "no taps to subscribe to".into() });
        }
        Ok(taps)
    }

    /// A randomly initialised delta model for `source` and `classes`, and the tap plan.
    fn layout(&self, source: &Source, classes: usize, seed: u64) -> Result<(Backbone, Vec<TapPlan>)> {
        let spec = delta_spec(source.backbone.spec(), self.config.width_fraction, classes)?;
        let base = Backbone::init(spec, seed, source.backbone.device())?;
        let names = self.tap_names(&source.backbone)?;
        let plans = check_taps(&source.backbone, &base, &names)?
            .into_iter()
            .map(|(tap, source_channels, delta_channels, hw)| {
                let k = self.config.k_for(source_channels);
                if k > source_channels {
                    return Err(GraftError::Config {
                        method: crate::NAME.into(),
                        msg: format!("k = {k} but tap '{tap}' has only {source_channels} source channels"),
                    });
                }
                Ok(TapPlan { tap, source_channels, delta_channels, hw, k })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((base, plans))
    }

    /// The source taps for both splits from the feature cache, or `None` (after saying why)
    /// when they do not fit: then the source runs on every batch.
    fn cached_taps(&self, source: &Source, task: &Task, taps: &[&str], ctx: &FitContext) -> Result<Option<[BTreeMap<String, Tensor>; 2]>> {
        let mut out = Vec::new();
        for split in [&task.train, &task.val] {
            match ctx.features.taps(&source.backbone, &source.hash, split, taps)? {
                CacheOutcome::Ready(f) => out.push(f.taps),
                CacheOutcome::OverBudget(msg) => {
                    if ctx.features.enabled {
                        eprintln!("{}: {msg}", crate::NAME);
                    }
                    return Ok(None);
                }
            }
        }
        let val = out.pop().expect("two splits");
        let train = out.pop().expect("two splits");
        Ok(Some([train, val]))
    }
}

/// `0..n` offset by `start`, as the index tensor the trainer batches.
fn sample_indices(start: usize, n: usize, device: &Device) -> Result<Tensor> {
    let v: Vec<u32> = (start as u32..(start + n) as u32).collect();
    Ok(Tensor::from_vec(v, n, device)?)
}

impl TransferMethod for Snow {
    fn name(&self) -> &str {
        crate::NAME
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn shares_source(&self) -> bool {
        true
    }

    fn fit(&self, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<Box<dyn TaskModel>> {
        task.validate()?;
        let device = ctx.device.clone();
        let (base, plans) = self.layout(source, task.num_classes, ctx.seed)?;
        let delta = TunedBackbone::new(&base, DELTA_PREFIX, |_| true)?;
        let mut rng = SeededRng::derived(ctx.seed, "snow-merge");
        let mut merge = Trainables::new();
        let mut pools = Vec::new();
        for p in &plans {
            merge.insert(merge_weight_name(&p.tap), &init_merge(&mut rng, p.delta_channels, p.k, &device)?)?;
            pools.push(ChannelPool::new(&p.tap, p.source_channels, p.k, self.config.pool_init, &device)?);
        }
        let names: Vec<String> = plans.iter().map(|p| p.tap.clone()).collect();
        let wanted: Vec<&str> = names.iter().map(String::as_str).collect();
        let feed = match self.cached_taps(source, task, &wanted, ctx)? {
            Some(splits) => Feed::Cached(splits),
            None => Feed::Recompute { source: source.backbone.clone(), taps: names.clone() },
        };
        let (n_train, n_val) = (task.train.len(), task.val.len());
        let data = FitData {
            images: [task.train.images_tensor(&device)?, task.val.images_tensor(&device)?],
            n_train,
            feed,
        };
        let mut net = SnowNet { delta, merge, pools, noise_std: self.config.noise_var.sqrt(),
            noise_rng: SeededRng::derived(ctx.seed, "snow-selection-noise"),
            data: Some(data),
        };
        let groups = vec![
            ParamGroup { vars: net.delta_vars(), settings: self.config.train.optim() },
            ParamGroup { vars: net.pool_vars(), settings: self.config.pool_optim.clone() },
        ];
        let (x, vx) = (sample_indices(0, n_train, &device)?, sample_indices(n_train, n_val, &device)?);
        train(
            &mut net,
            groups,
            Split { x: &x, y: &task.train.labels },
            Some(Split { x: &vx, y: &task.val.labels }),
            &self.config.train,
            ctx,
            &format!("{} {}", crate::NAME, task.name),
        )?;
        let selections = net.eval_selections()?;
        Ok(Box::new(SnowModel::new(
            self.config.clone(),
            source.clone(),
            net.delta,
            net.merge,
            selections,
            plans,
            task.num_classes,
        )?))
    }

    fn load(&self, source: &Source, delta: &Delta) -> Result<Box<dyn TaskModel>> {
        delta.check(source, crate::NAME)?;
        let (base, plans) = self.layout(source, delta.num_classes, 0)?;
        let mut expected = 0;
        let delta_tensors: ParamMap =
            delta.tensors.iter().filter(|(n, _)| n.starts_with(DELTA_PREFIX)).map(|(n, t)| (n.clone(), t.clone())).collect();
        for (name, _) in base.params().iter() {
            let key = format!("{DELTA_PREFIX}{name}");
            if !delta_tensors.contains_key(&key) {
                return Err(GraftError::Incompatible(format!("snow delta lacks tensor '{key}'")));
            }
            expected += 1;
        }
        let tuned = TunedBackbone::from_tensors(&base, DELTA_PREFIX, &delta_tensors)?;
        let mut merge = Trainables::new();
        let mut selections = BTreeMap::new();
        for p in &plans {
            let name = merge_weight_name(&p.tap);
            let k = p.k;
            merge.insert(&name, delta.tensor_shaped(&name, &[p.delta_channels, p.delta_channels + k, 1, 1])?)?;
            let index = delta.tensor_shaped(&pool_index_name(&p.tap), &[k])?;
            let weight = delta.tensor_shaped(&pool_weight_name(&p.tap), &[k])?;
            if index.dtype() != DType::U32 || weight.dtype() != DType::F32 {
                return Err(GraftError::Incompatible(format!(
                    "snow delta: '{}' must be u32 and '{}' f32, got {:?} and {:?}",
                    pool_index_name(&p.tap),
                    pool_weight_name(&p.tap),
                    index.dtype(),
                    weight.dtype()
                )));
            }
            let ids = index.to_vec1::<u32>()?;
            if let Some(bad) = ids.iter().find(|&&i| i as usize >= p.source_channels) {
                return Err(GraftError::Incompatible(format!(
                    "snow delta: '{}' selects channel {bad} but tap '{}' has {} source channels",
                    pool_index_name(&p.tap),
                    p.tap,
                    p.source_channels
                )));
            }
            selections.insert(p.tap.clone(), Selection { index: index.clone(), weight: weight.clone() });
            expected += 3;
        }
        if delta.tensors.len() != expected {
            let known: Vec<String> = plans
                .iter()
                .flat_map(|p| [merge_weight_name(&p.tap), pool_index_name(&p.tap), pool_weight_name(&p.tap)])
                .collect();
            let extra: Vec<&String> =
                delta.tensors.keys().filter(|k| !k.starts_with(DELTA_PREFIX) && !known.contains(k)).collect();
            return Err(GraftError::Incompatible(format!(
                "snow delta has {} tensors, expected {expected} for taps {:?}; unexpected: {extra:?}",
                delta.tensors.len(),
                plans.iter().map(|p| &p.tap).collect::<Vec<_>>()
            )));
        }
        Ok(Box::new(SnowModel::new(self.config.clone(), source.clone(), tuned, merge, selections, plans, delta.num_classes)?))
    }
}
