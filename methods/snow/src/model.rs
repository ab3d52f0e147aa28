//! The fitted SNOW task model: the delta, its fusion convs and a fixed channel selection per
//! tap, served from one source pass that many task models can share.

use crate::config::SnowConfig;
use crate::delta::{eval_fusions, merge_conv, EvalFusion, EvalFusionHooks};
use crate::net::{pool_index_name, pool_weight_name};
use crate::pooling::Selection;
use candle_core::Tensor;
use graft_core::backbone::{TunedBackbone, LOGITS_TAP};
use graft_core::{Attachments, Footprint, NoHooks, ParamMap, Result, Source, TaskModel, Trainables};
use std::collections::BTreeMap;

/// A subscribed tap: its name, the source's and the delta's channels there, and its size.
#[derive(Clone, Debug, PartialEq)]
pub struct TapPlan {
    /// Tap name.
    pub tap: String,
    /// Source channels at the tap (the length of its pooling weight vector).
    pub source_channels: usize,
    /// Delta channels at the tap.
    pub delta_channels: usize,
    /// Spatial size of the tap's maps.
    pub hw: (usize, usize),
    /// Source channels selected at the tap, K.
    pub k: usize,
}

/// A SNOW task model.
pub struct SnowModel {
    /// The config it was fitted with.
    config: SnowConfig,
    /// The frozen source it reads.
    source: Source,
    /// The trained delta model.
    delta: TunedBackbone,
    /// The fusion convs.
    merge: Trainables,
    /// The evaluation selection of every subscribed tap.
    selections: BTreeMap<String, Selection>,
    /// The subscribed taps, in forward order.
    taps: Vec<TapPlan>,
    /// Task classes.
    num_classes: usize,
    /// The selections folded into the fusion weights (what `forward` runs).
    fusions: BTreeMap<String, EvalFusion>,
}

impl SnowModel {
    /// The model from its parts; folds the selections into the fusion weights for serving.
    pub fn new(
        config: SnowConfig,
        source: Source,
        delta: TunedBackbone,
        merge: Trainables,
        selections: BTreeMap<String, Selection>,
        taps: Vec<TapPlan>,
        num_classes: usize,
    ) -> Result<Self> {
        let fusions = eval_fusions(&merge, &selections)?;
        Ok(Self { config, source, delta, merge, selections, taps, num_classes, fusions })
    }

    /// The selected source channels and their weights, by tap.
    pub fn selections(&self) -> &BTreeMap<String, Selection> {
        &self.selections
    }

    /// The subscribed taps, in forward order.
    pub fn taps(&self) -> &[TapPlan] {
        &self.taps
    }

    /// The deepest subscribed tap: the source runs up to here.
    fn deepest(&self) -> &str {
        self.taps.last().map(|t| t.tap.as_str()).unwrap_or("stem")
    }
}

impl TaskModel for SnowModel {
    fn method(&self) -> &str {
        crate::NAME
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn forward(&self, images: &Tensor) -> Result<Tensor> {
        let wanted: Vec<&str> = self.taps.iter().map(|t| t.tap.as_str()).collect();
        let taps = self.source.backbone.run(images, None, self.deepest(), &wanted, &NoHooks)?.taps;
        self.forward_from_taps(images, &taps)
    }

    fn shared_taps(&self) -> Vec<String> {
        self.taps.iter().map(|t| t.tap.clone()).collect()
    }

    fn forward_from_taps(&self, images: &Tensor, taps: &BTreeMap<String, Tensor>) -> Result<Tensor> {
        self.delta.eval_with(images, None, LOGITS_TAP, &EvalFusionHooks { fusions: &self.fusions, taps })
    }

    fn footprint(&self) -> Footprint {
        let pools: usize = self.taps.iter().map(|t| t.source_channels).sum();
        let merge_flops: u64 = self
            .taps
            .iter()
            .map(|t| {
                let c = merge_conv(&t.tap, t.delta_channels, t.k);
                2 * (c.in_channels * c.out_channels * t.hw.0 * t.hw.1) as u64
            })
            .sum();
        let stored_bytes = self
            .delta_tensors()
            .map(|s| s.values().map(|t| t.elem_count() * t.dtype().size_in_bytes()).sum())
            .unwrap_or(0);
        Footprint {
            trainable_params: self.delta.vars().num_params() + self.merge.num_params() + pools,
            stored_bytes,
            interconnections: self.attachments().count(),
            flops_per_image: self.source.backbone.flops_between(None, self.deepest()).unwrap_or(0)
                + self.delta.base().flops_per_image()
                + merge_flops,
        }
    }

    /// The delta network reads the frozen source at every subscribed tap.
    fn attachments(&self) -> Attachments {
        Attachments::reading("delta net", self.taps.iter().map(|t| t.tap.as_str()))
    }

    fn delta_tensors(&self) -> Result<ParamMap> {
        let mut s = self.delta.tensors()?;
        s.extend(self.merge.snapshot()?);
        for (tap, sel) in &self.selections {
            s.insert(pool_index_name(tap), sel.index.copy()?);
            s.insert(pool_weight_name(tap), sel.weight.copy()?);
        }
        Ok(s)
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn source_hash(&self) -> &str {
        &self.source.hash
    }
}
