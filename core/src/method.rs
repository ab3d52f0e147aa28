//! The plug-in interface: `TransferMethod` (fits a task model on a frozen source) and `TaskModel`
//! (the fitted per-task delta).

use crate::checkpoint::{
    abbrev, optional_meta_json, parse_safetensors, require_kind, require_meta, write_safetensors, Source, GRAFT_VERSION, KEY_BACKBONE, KEY_KIND, KEY_VERSION,
};
use crate::backbone::{Backbone, BackboneSpec};
use crate::error::{GraftError, Result};
use crate::params::ParamMap;
use crate::train::{CurvePoint, EpochMetrics};
use crate::data::Task;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Metadata key of the method that wrote a delta.
pub const KEY_METHOD: &str = "graft.method";
/// Metadata key of the method's config (JSON).
pub const KEY_CONFIG: &str = "graft.config";
/// Metadata key of the SHA-256 of the source a delta needs.
pub const KEY_SOURCE_HASH: &str = "graft.source_hash";
/// Metadata key of the number of classes of a delta's task.
pub const KEY_NUM_CLASSES: &str = "graft.num_classes";
/// Metadata key saying whether a delta needs its source at inference (`true` or `false`;
/// absent in older deltas, which all need it).
pub const KEY_NEEDS_SOURCE: &str = "graft.needs_source";

/// Metadata key: the task a delta was trained for ([`TaskInfo`] as JSON), so that it can
/// predict on new images with nothing else.
pub const KEY_TASK: &str = "graft.task";

/// What a delta needs to predict on new images: its task's name and class names, and how the
/// task fitted images to the backbone input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskInfo {
    /// The task's name.
    pub name: String,
    /// Class names, indexed by the model's output.
    pub class_names: Vec<String>,
    /// How images were fitted to the backbone's input size: `resize` (bilinear) or `pad`
    /// (centred zero padding), as graft-datasets' `Fit` writes it.
    pub fit: String,
}

/// What a fitted task model costs. Reported for every method in every run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Footprint {
    /// Scalars trained by gradient for this task (BN running statistics excluded).
    pub trainable_params: usize,
    /// Bytes of the stored delta's tensors (what must be kept per task besides the source).
    pub stored_bytes: usize,
    /// Interconnections between frozen and trained modules (the adaptive-attention paper's
    /// count): the distinct points where a trained module reads from or writes into the frozen
    /// network, [`TaskModel::attachments`]'s count (`docs/metrics.md`). 0 when nothing frozen is
    /// used.
    pub interconnections: usize,
    /// FLOPs per image at inference, 2 × multiply–accumulates of convs and linear layers,
    /// including the frozen source parts the model runs.
    pub flops_per_image: u64,
}

/// Everything a method needs besides the source and the task.
pub struct FitContext<'a> {
    /// Device to train on.
    pub device: Device,
    /// Seed of the run; all randomness derives from it.
    pub seed: u64,
    /// Whether to draw a progress bar.
    pub progress: bool,
    /// Called after every epoch with its metrics.
    pub on_epoch: Option<&'a mut dyn FnMut(&EpochMetrics)>,
    /// How frozen-source features are cached for methods that train after a tap.
    pub features: crate::features::FeatureCache,
    /// Evaluate validation accuracy every this many optimiser steps (and before the first and
    /// after the last), giving a convergence curve; `None`: only after every epoch.
    pub eval_every_steps: Option<usize>,
    /// Called with every point of the convergence curve (see `eval_every_steps`).
    pub on_curve: Option<&'a mut dyn FnMut(&CurvePoint)>,
    /// Where artefacts a method prepares once per source (Pool of Experts' pool) are cached.
    pub artefacts: crate::artefact::ArtefactCache,
}

impl<'a> FitContext<'a> {
    /// A context on `device` with `seed`, no progress bar, no callbacks, no per-step evaluation
    /// the default in-memory feature cache and the default artefact cache (`GRAFT_ARTEFACT_DIR`).
    pub fn new(device: Device, seed: u64) -> Self {
        Self {
            device,
            seed,
            progress: false,
            on_epoch: None,
            features: crate::features::FeatureCache::default(),
            eval_every_steps: None,
            on_curve: None,
            artefacts: crate::artefact::ArtefactCache::default(),
        }
    }
}

/// A per-task model fitted by a method on top of a frozen source.
pub trait TaskModel: Send {
    /// Name of the method that made it.
    fn method(&self) -> &str;

    /// Number of output classes.
    fn num_classes(&self) -> usize;

    /// Logits `(n, num_classes)` for `[0, 1]` images `(n, c, h, w)`, in evaluation mode, no graph.
    fn forward(&self, images: &Tensor) -> Result<Tensor>;

    /// The source taps this model reads when it shares the source with other task models
    /// (empty: it runs its own source pass inside [`TaskModel::forward`]).
    fn shared_taps(&self) -> Vec<String> {
        Vec::new()
    }

    /// Logits for `images` given the frozen source's outputs at (at least) the
    /// [`TaskModel::shared_taps`], computed once per batch for many task models. Models that do
    /// not share the source ignore `taps` and run [`TaskModel::forward`].
    fn forward_from_taps(&self, images: &Tensor, taps: &BTreeMap<String, Tensor>) -> Result<Tensor> {
        let _ = taps;
        self.forward(images)
    }

    /// Cost figures of this model; its `interconnections` are [`TaskModel::attachments`]'
    /// count.
    fn footprint(&self) -> Footprint;

    /// Where this model's trained parts meet the frozen network (recorded from its hooks with
    /// [`crate::Attachments::record`] where it has them); empty when it uses nothing frozen.
    fn attachments(&self) -> crate::Attachments;

    /// The trained tensors (what the method changed), by name; BN running statistics included.
    fn delta_tensors(&self) -> Result<ParamMap>;

    /// The method's config as JSON, stored with the delta so `load` can rebuild the method.
    fn config_json(&self) -> serde_json::Value;

    /// Hash of the source this model was fitted on.
    fn source_hash(&self) -> &str;

    /// Whether inference needs the frozen source. `false` for a model that is a whole network of
    /// its own (TLI's student): its delta then loads and runs without the source
    /// ([`TransferMethod::load_standalone`]).
    fn needs_source(&self) -> bool {
        true
    }

    /// The spec of the whole network the delta's tensors form, stored with the delta so a model
    /// that needs no source can be rebuilt from the file alone; `None` for models on a source.
    fn backbone_spec(&self) -> Option<BackboneSpec> {
        None
    }

    /// The task model folded into one plain backbone of the source's architecture, with the
    /// task's head in place of the source's classifier, for methods whose evaluation forward is
    /// the source's forward with replaced parameters (fine-tune, feature extractor, linear probe,
    /// scratch, KSM, Piggyback): its `forward` gives this model's logits, and
    /// [`crate::torch_io::export_state_dict`] writes it for PyTorch. `None` (the default) for
    /// methods that add modules or reroute the network; built with
    /// [`crate::merge::merge_into_backbone`].
    fn merged(&self) -> Result<Option<Backbone>> {
        Ok(None)
    }

    /// Method-specific figures worth recording with the run (e.g. TLI's teacher→student score),
    /// by name; empty by default.
    fn metrics(&self) -> BTreeMap<String, f64> {
        BTreeMap::new()
    }

    /// The delta as a value: tensors plus what is needed to load them again.
    fn delta(&self) -> Result<Delta> {
        Ok(Delta {
            method: self.method().to_string(),
            config: self.config_json(),
            source_hash: self.source_hash().to_string(),
            num_classes: self.num_classes(),
            needs_source: self.needs_source(),
            backbone: self.backbone_spec(),
            task: None,
            tensors: self.delta_tensors()?,
        })
    }

    /// Saves the delta (only what the method trained) to a safetensors file atomically.
    fn save(&self, path: &Path) -> Result<()> {
        self.delta()?.save(path)
    }
}

/// The stored form of a task model: the method's trained tensors plus identification.
#[derive(Clone, Debug)]
pub struct Delta {
    /// Registered method name.
    pub method: String,
    /// The method's config (JSON object).
    pub config: serde_json::Value,
    /// SHA-256 of the source checkpoint it needs.
    pub source_hash: String,
    /// Number of classes of the task.
    pub num_classes: usize,
    /// Whether the model needs the source at inference; `false`: the delta is a whole network
    /// and `source_hash` only records where it came from.
    pub needs_source: bool,
    /// The spec of the network the tensors form, for a delta that is a whole network
    /// (stored as `graft.backbone`, like a source's).
    pub backbone: Option<BackboneSpec>,
    /// The task it was trained for (class names, image fitting), when the writer gave it; the
    /// harness always does.
    pub task: Option<TaskInfo>,
    /// The trained tensors.
    pub tensors: ParamMap,
}

impl Delta {
    /// Bytes of the tensors (what a stored task costs besides the shared source).
    pub fn tensor_bytes(&self) -> usize {
        self.tensors.values().map(|t| t.elem_count() * t.dtype().size_in_bytes()).sum()
    }

    /// Writes the delta as safetensors with method, config and source hash in the metadata.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut meta = BTreeMap::new();
        meta.insert(KEY_KIND.into(), "delta".into());
        meta.insert(KEY_VERSION.into(), GRAFT_VERSION.into());
        meta.insert(KEY_METHOD.into(), self.method.clone());
        meta.insert(KEY_CONFIG.into(), self.config.to_string());
        meta.insert(KEY_SOURCE_HASH.into(), self.source_hash.clone());
        meta.insert(KEY_NUM_CLASSES.into(), self.num_classes.to_string());
        if !self.needs_source {
            meta.insert(KEY_NEEDS_SOURCE.into(), "false".into());
        }
        if let Some(spec) = &self.backbone {
            meta.insert(KEY_BACKBONE.into(), serde_json::to_string(spec).expect("spec serialises"));
        }
        if let Some(task) = &self.task {
            meta.insert(KEY_TASK.into(), serde_json::to_string(task).expect("task info serialises"));
        }
        write_safetensors(path, &self.tensors, &meta)?;
        Ok(())
    }

    /// Reads a delta file, checking that it is one and that its metadata is complete.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| GraftError::io(path, e))?;
        Self::from_bytes(&bytes, path, device)
    }

    /// Reads a delta from memory, checked as [`Delta::load`] checks a file; `path` names it in
    /// errors.
    pub fn from_bytes(bytes: &[u8], path: &Path, device: &Device) -> Result<Self> {
        let file = parse_safetensors(bytes, path, device)?;
        require_kind(&file.metadata, "delta", path)?;
        let method = require_meta(&file.metadata, KEY_METHOD, path)?.to_string();
        let config = serde_json::from_str(require_meta(&file.metadata, KEY_CONFIG, path)?)
            .map_err(|e| GraftError::checkpoint(path, format!("metadata '{KEY_CONFIG}' is not JSON: {e}")))?;
        let source_hash = require_meta(&file.metadata, KEY_SOURCE_HASH, path)?.to_string();
        let num_classes = require_meta(&file.metadata, KEY_NUM_CLASSES, path)?
            .parse()
            .map_err(|e| GraftError::checkpoint(path, format!("metadata '{KEY_NUM_CLASSES}' is not a number: {e}")))?;
        let needs_source = match file.metadata.get(KEY_NEEDS_SOURCE).map(String::as_str) {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(GraftError::checkpoint(
                    path,
                    format!("metadata '{KEY_NEEDS_SOURCE}' must be 'true' or 'false', got '{other}'"),
                ))
            }
        };
        let backbone = optional_meta_json(&file.metadata, KEY_BACKBONE, path, "a valid backbone spec")?;
        let task: Option<TaskInfo> = optional_meta_json(&file.metadata, KEY_TASK, path, "a valid task description")?;
        if let Some(t) = task.as_ref().filter(|t| t.class_names.len() != num_classes) {
            return Err(GraftError::checkpoint(
                path,
                format!("metadata '{KEY_TASK}' names {} classes but '{KEY_NUM_CLASSES}' is {num_classes}", t.class_names.len()),
            ));
        }
        Ok(Self { method, config, source_hash, num_classes, needs_source, backbone, task, tensors: file.tensors })
    }

    /// Checks the delta was made on `source` by `method`.
    pub fn check(&self, source: &Source, method: &str) -> Result<()> {
        if self.method != method {
            return Err(GraftError::Incompatible(format!(
                "delta was written by method '{}', not '{method}'",
                self.method
            )));
        }
        if self.source_hash != source.hash {
            return Err(GraftError::Incompatible(format!(
                "delta needs source {} but the given source is {}",
                abbrev(&self.source_hash, 12),
                source.short_hash()
            )));
        }
        Ok(())
    }

    /// The tensor `name`, or an error naming the missing key and the method.
    pub fn tensor(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| {
            GraftError::Incompatible(format!("delta of method '{}' lacks tensor '{name}'", self.method))
        })
    }

    /// The tensor `name`, which must have `shape`.
    pub fn tensor_shaped(&self, name: &str, shape: &[usize]) -> Result<&Tensor> {
        let t = self.tensor(name)?;
        if t.dims() != shape {
            return Err(GraftError::Incompatible(format!(
                "delta tensor '{name}' has shape {:?}, expected {shape:?}",
                t.dims()
            )));
        }
        Ok(t)
    }
}

/// A parameter-efficient transfer method. Object safe; registered with [`crate::registry`].
pub trait TransferMethod: Send + Sync {
    /// The registered name, e.g. `linear-probe`.
    fn name(&self) -> &str;

    /// The config this instance was built with, as JSON.
    fn config_json(&self) -> serde_json::Value;

    /// Trains a task model for `task` on the frozen `source`. The source is never modified.
    fn fit(&self, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<Box<dyn TaskModel>>;

    /// Rebuilds a task model from its stored delta over `source`.
    fn load(&self, source: &Source, delta: &Delta) -> Result<Box<dyn TaskModel>>;

    /// Rebuilds a task model from a delta that needs no source ([`Delta::needs_source`] false).
    /// The default refuses: the method's models need their source.
    fn load_standalone(&self, delta: &Delta) -> Result<Box<dyn TaskModel>> {
        Err(GraftError::Incompatible(format!(
            "method '{}' needs its source to load a delta (the delta of method '{}' was saved with needs_source = {})",
            self.name(),
            delta.method,
            delta.needs_source
        )))
    }

    /// Whether the method can serve many tasks from one source forward pass.
    fn shares_source(&self) -> bool {
        false
    }

    /// For a method that carries one network from task to task in a continual sequence
    /// (sequential fine-tuning), its sequence operations; `None` (the default): every task's
    /// model is fitted on the frozen source alone and never changes afterwards.
    fn continual(&self) -> Option<&dyn ContinualMethod> {
        None
    }
}

/// How a continual method learns a sequence of tasks with one shared network, so that learning
/// a new task can change (and forget) the earlier ones. The first task of a sequence is fitted
/// with [`TransferMethod::fit`].
pub trait ContinualMethod {
    /// Fits `task` starting from the shared network of `previous` (the delta of the model of
    /// the task learned just before) instead of the source, with a new head.
    fn fit_after(&self, source: &Source, previous: &Delta, task: &Task, ctx: &mut FitContext) -> Result<Box<dyn TaskModel>>;

    /// An earlier task's model as it stands after a later step: the earlier task's own head
    /// (from `earlier`, the delta saved when it was learned) on the shared network of `latest`.
    fn as_of(&self, source: &Source, earlier: &Delta, latest: &Delta) -> Result<Box<dyn TaskModel>>;
}
