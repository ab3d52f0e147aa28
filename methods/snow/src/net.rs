//! The network SNOW trains: the delta model, the fusion convs and the channel-pooling weights,
//! fed by the frozen source's taps (cached per split, or recomputed per batch).

use crate::delta::{eval_fusions, pooled_maps, EvalFusionHooks, Fusion};
use crate::pooling::{ChannelPool, Selection};
use candle_core::{Tensor, Var};
use graft_core::backbone::{TunedBackbone, LOGITS_TAP};
use graft_core::init::SeededRng;
use graft_core::{Backbone, GraftError, NoHooks, ParamMap, Result, Trainable, Trainables};
use std::collections::BTreeMap;

/// The name under which a tap's channel-pooling weights are stored.
pub fn pool_weight_name(tap: &str) -> String {
    format!("snow.pool.{tap}.weight")
}

/// The name under which a tap's selected channel indices are stored.
pub fn pool_index_name(tap: &str) -> String {
    format!("snow.pool.{tap}.index")
}

/// Where the source features of a training or validation batch come from.
pub enum Feed {
    /// The source's taps for every image, cached once: `[train, val]`.
    Cached([BTreeMap<String, Tensor>; 2]),
    /// The frozen source runs on every batch (the features did not fit the cache budget).
    Recompute {
        /// The frozen source.
        source: Backbone,
        /// The subscribed taps, in forward order.
        taps: Vec<String>,
    },
}

/// The fitting data, addressed by sample index: the trainer passes index batches, training
/// indices `0..n_train`, validation indices after them.
pub struct FitData {
    /// `[train, val]` images.
    pub images: [Tensor; 2],
    /// Training images (the offset of the validation indices).
    pub n_train: usize,
    /// The source features.
    pub feed: Feed,
}

impl FitData {
    /// Images and source taps of a batch of sample indices (all from one split).
    fn batch(&self, x: &Tensor) -> Result<(Tensor, BTreeMap<String, Tensor>)> {
        let idx = x.to_vec1::<u32>()?;
        let n_train = self.n_train as u32;
        let split = usize::from(idx.first().is_some_and(|&i| i >= n_train));
        if idx.iter().any(|&i| usize::from(i >= n_train) != split) {
            return Err(GraftError::Data("snow: a batch mixes training and validation samples".into()));
        }
        let offset = if split == 1 { n_train } else { 0 };
        let local: Vec<u32> = idx.iter().map(|&i| i - offset).collect();
        let ids = Tensor::from_vec(local, idx.len(), x.device())?;
        let images = self.images[split].index_select(&ids, 0)?;
        let taps = match &self.feed {
            Feed::Cached(splits) => splits[split]
                .iter()
                .map(|(k, v)| Ok((k.clone(), v.index_select(&ids, 0)?)))
                .collect::<Result<_>>()?,
            Feed::Recompute { source, taps } => {
                let wanted: Vec<&str> = taps.iter().map(String::as_str).collect();
                let deepest = taps.last().map(String::as_str).unwrap_or(LOGITS_TAP);
                source.run(&images, None, deepest, &wanted, &NoHooks)?.taps
            }
        };
        Ok((images, taps))
    }
}

/// Delta model + fusion convs + channel pooling, as trained.
pub struct SnowNet {
    /// The delta model (every parameter trainable, `snow.delta.` prefix).
    pub delta: TunedBackbone,
    /// The fusion convs (`snow.merge.<tap>.weight`).
    pub merge: Trainables,
    /// One channel pooling per subscribed tap, in forward order.
    pub pools: Vec<ChannelPool>,
    /// Standard deviation of the selection noise while training, σ.
    pub noise_std: f64,
    /// The selection noise's own random stream (from the run seed), so that the noise never
    /// draws from the trainer's shuffling stream: `noise_var = 0` keeps the data order.
    pub noise_rng: SeededRng,
    /// Set while fitting.
    pub data: Option<FitData>,
}

impl SnowNet {
    fn data(&self) -> Result<&FitData> {
        self.data.as_ref().ok_or_else(|| GraftError::Data("snow: the network has no fitting data".into()))
    }

    /// The evaluation selections (top-K of w, no noise) by tap.
    pub fn eval_selections(&self) -> Result<BTreeMap<String, Selection>> {
        self.pools.iter().map(|p| Ok((p.tap.clone(), p.eval_selection()?))).collect()
    }

    /// Every trained variable of the delta and the fusion convs (one optimiser group).
    pub fn delta_vars(&self) -> Vec<Var> {
        let mut v = self.delta.vars().vars();
        v.extend(self.merge.vars());
        v
    }

    /// The channel-pooling weights (their own optimiser group).
    pub fn pool_vars(&self) -> Vec<Var> {
        self.pools.iter().map(|p| p.weight.clone()).collect()
    }
}

impl Trainable for SnowNet {
    fn train_logits(&mut self, x: &Tensor, _trainer_rng: &mut SeededRng) -> Result<Tensor> {
        let (images, taps) = self.data()?.batch(x)?;
        let mut selections = BTreeMap::new();
        for p in &self.pools {
            selections.insert(p.tap.clone(), p.train_selection(self.noise_std, &mut self.noise_rng)?);
        }
        let pooled = pooled_maps(&selections, &taps)?;
        let fusion = Fusion { pooled: &pooled, merge: &self.merge };
        self.delta.forward_with(&images, None, LOGITS_TAP, true, &fusion)
    }

    fn eval_logits(&self, x: &Tensor) -> Result<Tensor> {
        let (images, taps) = self.data()?.batch(x)?;
        let fusions = eval_fusions(&self.merge, &self.eval_selections()?)?;
        self.delta.eval_with(&images, None, LOGITS_TAP, &EvalFusionHooks { fusions: &fusions, taps: &taps })
    }

    fn after_step(&mut self) -> Result<()> {
        self.delta.apply_bn_stats()
    }

    fn state(&self) -> Result<ParamMap> {
        let mut s = self.delta.tensors()?;
        s.extend(self.merge.snapshot()?);
        for p in &self.pools {
            s.insert(pool_weight_name(&p.tap), p.weight.as_tensor().detach().copy()?);
        }
        Ok(s)
    }

    fn set_state(&mut self, state: &ParamMap) -> Result<()> {
        self.delta.set_tensors(state)?;
        self.merge.restore(state)?;
        for p in &self.pools {
            if let Some(w) = state.get(&pool_weight_name(&p.tap)) {
                p.weight.set(w)?;
            }
        }
        Ok(())
    }
}
