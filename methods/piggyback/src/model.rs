//! Piggyback's trainable network (real-valued masks + optional per-task BN + head, trained through
//! the straight-through binarisation) and its task model (binary masks unpacked from the stored
//! bits, applied once to the frozen weights).

use crate::config::PiggybackConfig;
use crate::error::PiggybackError;
use crate::mask::{apply_mask, binarize, binarize_ste};
use crate::{NAME, PREFIX};
use candle_core::Tensor;
use graft_core::backbone::{TunedBackbone, FEATURE_TAP};
use graft_core::bitpack::{pack_mask, packed_len, unpack_mask};
use graft_core::init::SeededRng;
use graft_core::kit::{groups, kept_fraction, train_on_task, DomainBns, ExpectedTensors, OverriddenSource, TaskHead};
use graft_core::optim::ParamGroup;
use graft_core::{Attachments, Backbone, FitContext, Footprint, Hooks, ParamMap, Result, Source, Task, TaskModel, Trainable, Trainables};
use std::collections::BTreeMap;

/// A conv weight Piggyback masks.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskedConv {
    /// Conv module name, e.g. `layer1.0.conv1`.
    pub conv: String,
    /// Its weight's parameter name, `<conv>.weight`.
    pub weight: String,
    /// The weight's shape `(out, in/groups, k, k)`, which is also the mask's.
    pub shape: Vec<usize>,
}

impl MaskedConv {
    /// Name of the stored bit-packed mask, `piggyback.<conv>.mask_bits`.
    pub fn bits_key(&self) -> String {
        format!("{PREFIX}{}.mask_bits", self.conv)
    }

    /// Name of the real-valued mask variable while training, `piggyback.<conv>.mask`.
    pub fn real_key(&self) -> String {
        format!("{PREFIX}{}.mask", self.conv)
    }

    /// Mask entries (= weight entries).
    pub fn entries(&self) -> usize {
        self.shape.iter().product()
    }
}

/// What a config resolves to on one backbone: the masked convs, the tuned BNs and the head size.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Masked convs in forward order.
    pub masked: Vec<MaskedConv>,
    /// Tuned BatchNorms (none unless `tune_bn`).
    pub bns: DomainBns,
    /// Channels at [`FEATURE_TAP`] (the head's input).
    pub features: usize,
}

impl Layout {
    /// Resolves `config` on `backbone`; an unknown conv in `layers.only` is an error listing the
    /// backbone's convs.
    pub fn new(config: &PiggybackConfig, backbone: &Backbone) -> Result<Self> {
        let chosen =
            config.layers.select(backbone.convs()).map_err(|e| PiggybackError::UnknownConv { name: e.name, available: e.available })?;
        let masked = chosen
            .into_iter()
            .map(|c| MaskedConv { conv: c.conv.name.clone(), weight: c.conv.weight_name(), shape: c.conv.weight_shape().to_vec() })
            .collect();
        Ok(Self { masked, bns: DomainBns::all_if(config.tune_bn, backbone), features: backbone.feature_tap()?.channels })
    }

    /// The documented trainable-parameter count for `classes` task classes:
    /// `Σ_masked |W| + Σ_tunedBN 2·C + (d + 1)·k`.
    pub fn trainable_params(&self, classes: usize) -> usize {
        let masks: usize = self.masked.iter().map(MaskedConv::entries).sum();
        masks + self.bns.trainable_params() + TaskHead::params(self.features, classes)
    }

    /// The documented stored bytes for `classes` task classes:
    /// `Σ_masked ceil(|W| / 8) + Σ_tunedBN 4·C·4 + (d + 1)·k·4`.
    pub fn stored_bytes(&self, classes: usize) -> usize {
        let masks: usize = self.masked.iter().map(|m| packed_len(m.entries())).sum();
        masks + self.bns.stored_bytes() + TaskHead::stored_bytes(self.features, classes)
    }

    /// Every stored tensor's name, dtype and shape (masks, BN, head).
    fn expected_tensors(&self, classes: usize) -> ExpectedTensors {
        let mut out = ExpectedTensors::new();
        for m in &self.masked {
            out.packed_mask(m.bits_key(), packed_len(m.entries()));
        }
        out.f32_all(self.bns.expected(PREFIX));
        out.f32_all(TaskHead::expected(self.features, classes));
        out
    }
}

/// The network trained by [`fit`]: frozen backbone, real-valued masks binarised with the
/// straight-through estimator, optional per-task BN, new head.
pub struct PiggybackNet {
    layout: Layout,
    masks: WeightMasks,
    /// The frozen backbone with the tuned BNs' γ, β (trainable) and running statistics.
    tuned: TunedBackbone,
    head: TaskHead,
}

/// The real-valued masks of a [`PiggybackNet`].
struct WeightMasks {
    threshold: f64,
    /// Masked weight name → its real-valued mask's key in `real`.
    by_weight: BTreeMap<String, String>,
    real: Trainables,
}

/// The outer hooks of [`PiggybackNet`]'s forward: `W ⊙ B` for the masked conv weights (through
/// the straight-through estimator while training). The tuned BNs come from the
/// [`TunedBackbone`] before these hooks are asked; everything else stays frozen.
struct MaskHooks<'a> {
    masks: &'a WeightMasks,
    train: bool,
}

impl Hooks for MaskHooks<'_> {
    fn param(&self, name: &str, frozen: &Tensor) -> Result<Option<Tensor>> {
        let Some(key) = self.masks.by_weight.get(name) else { return Ok(None) };
        let m = self.masks.real.tensor(key).expect("every masked weight has a mask");
        let threshold = self.masks.threshold;
        let b = if self.train { binarize_ste(&m, threshold)? } else { binarize(&m, threshold)? };
        Ok(Some(apply_mask(frozen, &b)?))
    }
}

impl PiggybackNet {
    /// A fresh net: every mask entry `mask_init`, BNs from the source, a seeded new head.
    pub fn new(config: &PiggybackConfig, base: &Backbone, layout: Layout, classes: usize, seed: u64) -> Result<Self> {
        let device = base.device().clone();
        let mut real = Trainables::new();
        let mut by_weight = BTreeMap::new();
        for m in &layout.masked {
            real.insert(m.real_key(), &Tensor::full(config.mask_init as f32, m.shape.as_slice(), &device)?)?;
            by_weight.insert(m.weight.clone(), m.real_key());
        }
        let tuned = layout.bns.tuned(base, PREFIX)?;
        let head = TaskHead::new(layout.features, classes, seed, &device)?;
        let masks = WeightMasks { threshold: config.threshold, by_weight, real };
        Ok(Self { layout, masks, tuned, head })
    }

    /// The optimiser groups: masks at `train.lr`, BN at `bn_lr`, head at `head_lr`.
    pub fn param_groups(&self, config: &PiggybackConfig) -> Vec<ParamGroup> {
        groups(
            &config.train,
            vec![(self.masks.real.vars(), None), (self.tuned.vars().vars(), config.bn_lr), (self.head.vars(), config.head_lr)],
        )
    }

    /// The tensors a task stores: bit-packed `1[m > τ]` per masked conv, tuned BN, head.
    pub fn delta_tensors(&self) -> Result<ParamMap> {
        let mut out = ParamMap::new();
        for m in &self.layout.masked {
            let real = self.masks.real.tensor(&m.real_key()).expect("every masked conv has a mask");
            out.insert(m.bits_key(), pack_mask(&m.bits_key(), &binarize(&real, self.masks.threshold)?)?);
        }
        out.extend(self.tuned.tensors()?);
        out.extend(self.head.snapshot()?);
        Ok(out)
    }
}

impl Trainable for PiggybackNet {
    fn train_logits(&mut self, x: &Tensor, _rng: &mut SeededRng) -> Result<Tensor> {
        let hooks = MaskHooks { masks: &self.masks, train: true };
        let f = self.tuned.forward_with(x, None, FEATURE_TAP, true, &hooks)?;
        self.head.logits(&f)
    }

    fn eval_logits(&self, x: &Tensor) -> Result<Tensor> {
        let f = self.tuned.eval_with(x, None, FEATURE_TAP, &MaskHooks { masks: &self.masks, train: false })?;
        Ok(self.head.logits(&f)?.detach())
    }

    fn after_step(&mut self) -> Result<()> {
        self.tuned.apply_bn_stats()
    }

    fn state(&self) -> Result<ParamMap> {
        let mut s = self.masks.real.snapshot()?;
        s.extend(self.tuned.tensors()?);
        s.extend(self.head.snapshot()?);
        Ok(s)
    }

    fn set_state(&mut self, state: &ParamMap) -> Result<()> {
        self.masks.real.restore(state)?;
        self.tuned.set_tensors(state)?;
        self.head.restore(state)
    }
}

/// Trains Piggyback on `task` over the frozen `source` and returns the task model.
pub fn fit(config: &PiggybackConfig, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<PiggybackModel> {
    task.validate()?;
    let layout = Layout::new(config, &source.backbone)?;
    let mut net = PiggybackNet::new(config, &source.backbone, layout, task.num_classes, ctx.seed)?;
    let groups = net.param_groups(config);
    train_on_task(&mut net, groups, task, &config.train, ctx, NAME)?;
    // The fitted model is built from exactly what is stored, so save→load cannot change it.
    PiggybackModel::from_tensors(config.clone(), source, net.delta_tensors()?, task.num_classes)
}

/// A fitted Piggyback task: the frozen source with binary masks on the chosen conv weights,
/// optional per-task BN, and a new head.
pub struct PiggybackModel {
    config: PiggybackConfig,
    layout: Layout,
    num_classes: usize,
    tensors: ParamMap,
    masks: BTreeMap<String, Tensor>,
    eval: OverriddenSource,
}

impl PiggybackModel {
    /// Rebuilds a task model from stored tensors (a delta's, or a fresh fit's). Every expected
    /// tensor must be present with its dtype and shape, nothing else may be; the error names
    /// each offending tensor.
    pub fn from_tensors(config: PiggybackConfig, source: &Source, tensors: ParamMap, num_classes: usize) -> Result<Self> {
        let backbone = &source.backbone;
        let layout = Layout::new(&config, backbone)?;
        let expected = layout.expected_tensors(num_classes);
        let context = format!("config: {}", serde_json::to_string(&config).unwrap_or_default());
        expected.check(&tensors, &context).map_err(PiggybackError::Delta)?;
        let device = backbone.device();
        let mut masks = BTreeMap::new();
        let mut overrides = ParamMap::new();
        for m in &layout.masked {
            let mask = unpack_mask(&m.bits_key(), &tensors[&m.bits_key()], &m.shape, device)?;
            overrides.insert(m.weight.clone(), apply_mask(backbone.param(&m.weight)?, &mask)?);
            masks.insert(m.weight.clone(), mask);
        }
        overrides.extend(layout.bns.overrides(PREFIX, &tensors));
        let eval = OverriddenSource::new(source, overrides, &tensors)?;
        Ok(Self { config, layout, num_classes, tensors, masks, eval })
    }

    /// The binary mask (0s and 1s, the weight's shape) applied at evaluation, by weight name.
    pub fn eval_masks(&self) -> &BTreeMap<String, Tensor> {
        &self.masks
    }

    /// The parameters the evaluation forward replaces, by backbone name: `W ⊙ B` for masked
    /// weights, the per-task BN tensors when tuned.
    pub fn effective_params(&self) -> &ParamMap {
        self.eval.overrides()
    }

    /// What the config resolved to on the source.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The config the model was fitted with.
    pub fn config(&self) -> &PiggybackConfig {
        &self.config
    }

    /// Stored bytes as a fraction of a full fine-tuned copy ([`Backbone::fine_tuned_bytes`]).
    pub fn fraction_of_fine_tune(&self) -> f64 {
        self.eval.source().backbone.fine_tuned_fraction(self.footprint().stored_bytes, self.num_classes)
    }

    /// Fraction of masked weights kept (`B = 1`) over all masked convs.
    pub fn kept_fraction(&self) -> Result<f64> {
        kept_fraction(self.masks.values())
    }
}

impl TaskModel for PiggybackModel {
    fn method(&self) -> &str {
        NAME
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn forward(&self, images: &Tensor) -> Result<Tensor> {
        self.eval.forward(images)
    }

    fn footprint(&self) -> Footprint {
        Footprint {
            trainable_params: self.layout.trainable_params(self.num_classes),
            stored_bytes: self.tensors.values().map(|t| t.elem_count() * t.dtype().size_in_bytes()).sum(),
            interconnections: self.eval.attachments().count(),
            flops_per_image: self.eval.flops_per_image(),
        }
    }

    /// One per masked conv (its weight replaced), one per tuned BN, and the head reading the
    /// pooled features.
    fn attachments(&self) -> Attachments {
        self.eval.attachments().clone()
    }

    fn delta_tensors(&self) -> Result<ParamMap> {
        self.tensors.iter().map(|(k, v)| Ok((k.clone(), v.copy()?))).collect()
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn source_hash(&self) -> &str {
        &self.eval.source().hash
    }

    /// The source with `W ⊙ B` folded into the masked weights, the task's BNs and its head.
    fn merged(&self) -> Result<Option<Backbone>> {
        Ok(Some(self.eval.merged()?))
    }
}
