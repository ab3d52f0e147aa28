//! The TLI task model: a whole student network, trained end to end, that runs without the
//! teacher (its delta is every tensor of the student plus the student's spec).

use candle_core::Tensor;
use graft_core::pretrain::WholeNet;
use graft_core::{Attachments, Backbone, BackboneSpec, Footprint, ParamMap, Result, TaskModel, Trainable};
use std::collections::BTreeMap;

/// Registered name.
pub const NAME: &str = "tli";
/// Prefix of the student's tensors in the stored delta.
pub const PREFIX: &str = "tli.";

/// The student while it trains: every parameter trainable under `tli.`, BatchNorm in training
/// mode (core's whole-network trainable, as pretraining uses).
pub type StudentNet = WholeNet;

/// The student of `backbone` with every parameter trainable under [`PREFIX`].
pub fn student_net(backbone: &Backbone) -> Result<StudentNet> {
    WholeNet::new(backbone, PREFIX)
}

/// What the injection did, kept with the model and recorded with the run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InjectionSummary {
    /// TLI score of the source (teacher) for the student, in [0, 1].
    pub score: f64,
    /// Student tensors that received teacher values.
    pub injected_tensors: usize,
    /// Student tensors that kept their own initialisation (unmatched, or the task head).
    pub kept_tensors: usize,
}

/// A fitted TLI student.
pub struct TliModel {
    net: StudentNet,
    config: serde_json::Value,
    source_hash: String,
    num_classes: usize,
    summary: InjectionSummary,
}

impl TliModel {
    /// A model from a trained student.
    pub fn new(net: StudentNet, config: serde_json::Value, source_hash: String, num_classes: usize, summary: InjectionSummary) -> Self {
        Self { net, config, source_hash, num_classes, summary }
    }

    /// The student as a plain network (trained values merged in), e.g. for export.
    pub fn student(&self) -> Result<Backbone> {
        self.net.tuned.merged()
    }

    /// What the injection did.
    pub fn summary(&self) -> &InjectionSummary {
        &self.summary
    }
}

impl TaskModel for TliModel {
    fn method(&self) -> &str {
        NAME
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn forward(&self, images: &Tensor) -> Result<Tensor> {
        self.net.eval_logits(images)
    }

    /// The student itself: a whole network of its own architecture, head included.
    fn merged(&self) -> Result<Option<Backbone>> {
        Ok(Some(self.student()?))
    }

    fn footprint(&self) -> Footprint {
        let student = self.net.tuned.base();
        let stored_bytes = self
            .net
            .tuned
            .tensors()
            .map(|s| s.values().map(|t| t.elem_count() * t.dtype().size_in_bytes()).sum())
            .unwrap_or(0);
        Footprint {
            trainable_params: self.net.tuned.vars().num_params(),
            stored_bytes,
            interconnections: self.attachments().count(),
            flops_per_image: student.flops_per_image(),
        }
    }

    /// None: the student is a network of its own, trained whole.
    fn attachments(&self) -> Attachments {
        Attachments::none()
    }

    fn delta_tensors(&self) -> Result<ParamMap> {
        self.net.tuned.tensors()
    }

    fn config_json(&self) -> serde_json::Value {
        self.config.clone()
    }

    fn source_hash(&self) -> &str {
        &self.source_hash
    }

    fn needs_source(&self) -> bool {
        false
    }

    fn backbone_spec(&self) -> Option<BackboneSpec> {
        Some(self.net.tuned.base().spec().clone())
    }

    fn metrics(&self) -> BTreeMap<String, f64> {
        BTreeMap::from([
            ("tli_score".to_string(), self.summary.score),
            ("tli_injected_tensors".to_string(), self.summary.injected_tensors as f64),
            ("tli_kept_tensors".to_string(), self.summary.kept_tensors as f64),
        ])
    }
}
