//! Serving many task models over one frozen source: for the models that share it
//! ([`TaskModel::shared_taps`]), the source runs once per batch and every model reads the taps
//! it needs from that one pass; the others run their own forward.

use crate::checkpoint::Source;
use crate::error::{GraftError, Result};
use crate::method::TaskModel;
use candle_core::Tensor;
use std::collections::BTreeMap;

/// A batch server for several task models fitted on the same source.
pub struct SharedServing<'a> {
    source: &'a Source,
    models: &'a [Box<dyn TaskModel>],
    /// The union of the taps the sharing models read, in forward order.
    taps: Vec<String>,
}

impl<'a> SharedServing<'a> {
    /// A server for `models`, all fitted on `source`; errors name a model whose source hash
    /// differs or whose taps the source lacks.
    pub fn new(source: &'a Source, models: &'a [Box<dyn TaskModel>]) -> Result<Self> {
        let mut taps: Vec<(usize, String)> = Vec::new();
        for (i, m) in models.iter().enumerate() {
            if m.source_hash() != source.hash {
                return Err(GraftError::Incompatible(format!(
                    "task model {i} ({}) was fitted on source {}, not {}",
                    m.method(),
                    crate::checkpoint::abbrev(m.source_hash(), 12),
                    source.short_hash()
                )));
            }
            for t in m.shared_taps() {
                let index = source.backbone.tap_index(&t)?;
                if !taps.iter().any(|(_, name)| *name == t) {
                    taps.push((index, t));
                }
            }
        }
        taps.sort();
        Ok(Self { source, models, taps: taps.into_iter().map(|(_, t)| t).collect() })
    }

    /// The source taps computed once per batch (empty when no model shares the source).
    pub fn taps(&self) -> &[String] {
        &self.taps
    }

    /// The logits of every model for the `[0, 1]` image batch, in model order.
    pub fn forward(&self, images: &Tensor) -> Result<Vec<Tensor>> {
        let taps: BTreeMap<String, Tensor> = match self.taps.last() {
            Some(deepest) => {
                let wanted: Vec<&str> = self.taps.iter().map(String::as_str).collect();
                self.source.backbone.run(images, None, deepest, &wanted, &crate::NoHooks)?.taps
            }
            None => BTreeMap::new(),
        };
        self.models
            .iter()
            .map(|m| if m.shared_taps().is_empty() { m.forward(images) } else { m.forward_from_taps(images, &taps) })
            .collect()
    }
}
