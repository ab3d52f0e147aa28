//! The evaluation model of a method that replaces frozen parameters (masked conv weights, domain
//! BatchNorms): the source run with those parameters swapped in, then the stored task head.

use super::head::{TaskHead, HEAD_BIAS, HEAD_WEIGHT};
use super::values::ParamOverrides;
use crate::attach::Attachments;
use crate::backbone::{linear, FEATURE_TAP};
use crate::checkpoint::Source;
use crate::error::Result;
use crate::params::ParamMap;
use candle_core::Tensor;

/// The frozen source with some parameters replaced and a task head on its pooled features.
pub struct OverriddenSource {
    source: Source,
    overrides: ParamMap,
    head: (Tensor, Tensor),
    attachments: Attachments,
}

impl OverriddenSource {
    /// `source` with the parameters in `overrides` (by backbone name) replaced, and the head
    /// stored in `tensors` under [`HEAD_WEIGHT`] and [`HEAD_BIAS`]. The attachments are recorded
    /// from the overrides plus the head reading [`FEATURE_TAP`].
    pub fn new(source: &Source, overrides: ParamMap, tensors: &ParamMap) -> Result<Self> {
        let device = source.backbone.device();
        let overrides: ParamMap = overrides.into_iter().map(|(k, v)| Ok((k, v.to_device(device)?))).collect::<Result<_>>()?;
        let head = (tensors[HEAD_WEIGHT].to_device(device)?, tensors[HEAD_BIAS].to_device(device)?);
        let attachments =
            Attachments::record(&source.backbone, None, FEATURE_TAP, &ParamOverrides(&overrides))?.with_read("head", FEATURE_TAP);
        Ok(Self { source: source.clone(), overrides, head, attachments })
    }

    /// Logits for `[0, 1]` images, no graph.
    pub fn forward(&self, images: &Tensor) -> Result<Tensor> {
        let f = self.source.backbone.run(images, None, FEATURE_TAP, &[], &ParamOverrides(&self.overrides))?.output;
        Ok(linear(&f, &self.head.0, &self.head.1)?.detach())
    }

    /// The source with the replaced parameters and the head folded in: one plain backbone whose
    /// forward is [`OverriddenSource::forward`] (see [`crate::merge::merge_into_backbone`]).
    pub fn merged(&self) -> Result<crate::Backbone> {
        crate::merge::merge_into_backbone(&self.source.backbone, &self.overrides, &self.head.0, &self.head.1)
    }

    /// The replaced parameters, by backbone name.
    pub fn overrides(&self) -> &ParamMap {
        &self.overrides
    }

    /// The source.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Where the replaced parameters and the head meet the frozen network.
    pub fn attachments(&self) -> &Attachments {
        &self.attachments
    }

    /// FLOPs per image: the source up to the pooled features, then the head.
    pub fn flops_per_image(&self) -> u64 {
        let (classes, features) = (self.head.0.dims()[0], self.head.0.dims()[1]);
        self.source.backbone.flops_between(None, FEATURE_TAP).unwrap_or(0) + TaskHead::flops(features, classes)
    }
}

/// The fraction of entries equal to 1 over binary `masks` (0s and 1s): what a masking method
/// keeps of the frozen weights.
pub fn kept_fraction<'a>(masks: impl IntoIterator<Item = &'a Tensor>) -> Result<f64> {
    let (mut kept, mut total) = (0f64, 0usize);
    for m in masks {
        kept += m.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        total += m.elem_count();
    }
    Ok(kept / total.max(1) as f64)
}
