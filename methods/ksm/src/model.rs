//! KSM's trainable network (kernel-wise real masks `M^r`, optional learned scales `S`,
//! per-task BN, new head, trained through the exact relaxation of [`crate::mask`]) and its task
//! model (binary kernel masks unpacked from bits plus the stored scales, applied once to the
//! frozen weights).

use crate::config::{KsmConfig, ScaleKind};
use crate::error::KsmError;
use crate::mask::{apply_kernel_mask, eval_mask, hard_binary, rounded_scale, scale_part, soft_mask};
use crate::{NAME, PREFIX};
use candle_core::{DType, Tensor};
use graft_core::backbone::{TunedBackbone, FEATURE_TAP};
use graft_core::bitpack::{pack_mask, packed_len, unpack_mask};
use graft_core::init::SeededRng;
use graft_core::kit::{groups, kept_fraction, train_on_task, DomainBns, ExpectedTensors, OverriddenSource, TaskHead};
use graft_core::optim::ParamGroup;
use graft_core::{Attachments, Backbone, FitContext, Footprint, Hooks, ParamMap, Result, Source, Task, TaskModel, Trainable, Trainables};
use std::collections::BTreeMap;

/// A conv weight KSM masks kernel by kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskedConv {
    /// Conv module name, e.g. `layer1.0.conv1`.
    pub conv: String,
    /// Its weight's parameter name, `<conv>.weight`.
    pub weight: String,
    /// The weight's shape `(out, in/groups, k, k)`.
    pub weight_shape: Vec<usize>,
}

impl MaskedConv {
    /// The kernel-wise mask's shape `(out, in/groups)`.
    pub fn mask_shape(&self) -> Vec<usize> {
        self.weight_shape[..2].to_vec()
    }

    /// Kernels (= mask entries): `out · in/groups`.
    pub fn kernels(&self) -> usize {
        self.weight_shape[0] * self.weight_shape[1]
    }

    /// Name of the stored bit-packed `M^b`, `ksm.<conv>.mask_bits`.
    pub fn bits_key(&self) -> String {
        format!("{PREFIX}{}.mask_bits", self.conv)
    }

    /// Name of the stored `A^s`, `ksm.<conv>.scale`.
    pub fn scale_key(&self) -> String {
        format!("{PREFIX}{}.scale", self.conv)
    }

    /// Name of the real mask `M^r` while training, `ksm.<conv>.mask_real`.
    pub fn real_key(&self) -> String {
        format!("{PREFIX}{}.mask_real", self.conv)
    }

    /// Name of the learned scale `S` while training (`scale = "learned"`), `ksm.<conv>.scale_real`.
    pub fn learned_key(&self) -> String {
        format!("{PREFIX}{}.scale_real", self.conv)
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
    /// How `A^s` is formed.
    pub scale: ScaleKind,
    /// Bytes per stored scale.
    pub scale_bytes: usize,
}

impl Layout {
    /// Resolves `config` on `backbone`; an unknown conv in `layers.only` is an error listing the
    /// backbone's convs.
    pub fn new(config: &KsmConfig, backbone: &Backbone) -> Result<Self> {
        let chosen = config.layers.select(backbone.convs()).map_err(|e| KsmError::UnknownConv { name: e.name, available: e.available })?;
        let masked = chosen
            .into_iter()
            .map(|c| MaskedConv { conv: c.conv.name.clone(), weight: c.conv.weight_name(), weight_shape: c.conv.weight_shape().to_vec() })
            .collect();
        Ok(Self {
            masked,
            bns: DomainBns::all_if(config.tune_bn, backbone),
            features: backbone.feature_tap()?.channels,
            scale: config.scale,
            scale_bytes: config.scale_dtype.size(),
        })
    }

    /// Kernels over all masked convs, `K = Σ_masked out · in/groups`.
    pub fn kernels(&self) -> usize {
        self.masked.iter().map(MaskedConv::kernels).sum()
    }

    /// The documented trainable-parameter count for `classes` task classes:
    /// `K · (1 + [scale = learned]) + Σ_tunedBN 2·C + (d + 1)·k`.
    pub fn trainable_params(&self, classes: usize) -> usize {
        let per_kernel = if self.scale == ScaleKind::Learned { 2 } else { 1 };
        per_kernel * self.kernels() + self.bns.trainable_params() + TaskHead::params(self.features, classes)
    }

    /// The documented stored bytes for `classes` task classes:
    /// `Σ_masked ceil(K_c / 8) + [scale ≠ none] · K · s + Σ_tunedBN 4·C·4 + (d + 1)·k·4`,
    /// `s` = 2 (f16) or 4 (f32).
    pub fn stored_bytes(&self, classes: usize) -> usize {
        let bits: usize = self.masked.iter().map(|m| packed_len(m.kernels())).sum();
        let scales = if self.scale == ScaleKind::None { 0 } else { self.kernels() * self.scale_bytes };
        bits + scales + self.bns.stored_bytes() + TaskHead::stored_bytes(self.features, classes)
    }

    /// Every stored tensor's name, dtype and shape (bits, scales, BN, head).
    fn expected_tensors(&self, classes: usize, scale_dtype: DType) -> ExpectedTensors {
        let mut out = ExpectedTensors::new();
        for m in &self.masked {
            out.packed_mask(m.bits_key(), packed_len(m.kernels()));
            if self.scale != ScaleKind::None {
                out.typed(m.scale_key(), scale_dtype, m.mask_shape());
            }
        }
        out.f32_all(self.bns.expected(PREFIX));
        out.f32_all(TaskHead::expected(self.features, classes));
        out
    }
}

/// The network trained by [`fit`]: frozen backbone, kernel-wise soft masks, per-task BN, head.
pub struct KsmNet {
    masks: KernelMasks,
    /// The frozen backbone with the tuned BNs' γ, β (trainable) and running statistics.
    tuned: TunedBackbone,
    head: TaskHead,
}

/// The kernel-wise masks of a [`KsmNet`] and their temperature schedule.
struct KernelMasks {
    layout: Layout,
    config: KsmConfig,
    /// Masked weight name → its conv's entry in `layout.masked`.
    by_weight: BTreeMap<String, usize>,
    /// `M^r` per masked conv.
    real: Trainables,
    /// `S` per masked conv (`scale = "learned"` only).
    learned: Trainables,
    /// The trainer's current optimiser step and the steps it plans in all (the temperature
    /// schedule), as [`Trainable::begin_step`] gives them.
    step: usize,
    total_steps: usize,
}

/// The outer hooks of [`KsmNet`]'s forward: `W ⊙ M` for the masked conv weights (the soft mask
/// while training, the evaluation mask otherwise). The tuned BNs come from the [`TunedBackbone`]
/// before these hooks are asked; everything else stays frozen.
struct MaskHooks<'a> {
    masks: &'a KernelMasks,
    train: bool,
}

impl Hooks for MaskHooks<'_> {
    fn param(&self, name: &str, frozen: &Tensor) -> Result<Option<Tensor>> {
        let Some(&i) = self.masks.by_weight.get(name) else { return Ok(None) };
        let m = if self.train { self.masks.soft_mask(i)? } else { self.masks.eval_mask(i)? };
        Ok(Some(apply_kernel_mask(frozen, &m)?))
    }
}

impl KsmNet {
    /// A fresh net: every `M^r` entry `mask_init`, `S = 0`, BNs from the source, a seeded head.
    /// The temperature schedule follows the trainer's steps ([`Trainable::begin_step`]).
    pub fn new(config: &KsmConfig, base: &Backbone, layout: Layout, classes: usize, seed: u64) -> Result<Self> {
        let device = base.device().clone();
        let (mut real, mut learned) = (Trainables::new(), Trainables::new());
        let mut by_weight = BTreeMap::new();
        for (i, m) in layout.masked.iter().enumerate() {
            real.insert(m.real_key(), &Tensor::full(config.mask_init as f32, m.mask_shape(), &device)?)?;
            if config.scale == ScaleKind::Learned {
                learned.insert(m.learned_key(), &Tensor::zeros(m.mask_shape(), DType::F32, &device)?)?;
            }
            by_weight.insert(m.weight.clone(), i);
        }
        let tuned = layout.bns.tuned(base, PREFIX)?;
        let head = TaskHead::new(layout.features, classes, seed, &device)?;
        let masks = KernelMasks { layout, config: config.clone(), by_weight, real, learned, step: 0, total_steps: 1 };
        Ok(Self { masks, tuned, head })
    }

    /// The temperature at the trainer's current step: `τ₀ · (τ₁ / τ₀)^(step / (total − 1))`,
    /// from `tau` at the first planned step to `tau_final` at the last. A run stopped early by
    /// `patience` ends before `tau_final`.
    pub fn tau(&self) -> f64 {
        self.masks.tau()
    }

    /// The optimiser groups: masks at `train.lr`, learned scales at `scale_lr`, BN at `bn_lr`,
    /// head at `head_lr` (each `None` falls back to `train.lr`).
    pub fn param_groups(&self) -> Vec<ParamGroup> {
        let config = &self.masks.config;
        groups(
            &config.train,
            vec![
                (self.masks.real.vars(), None),
                (self.masks.learned.vars(), config.scale_lr),
                (self.tuned.vars().vars(), config.bn_lr),
                (self.head.vars(), config.head_lr),
            ],
        )
    }

    /// The tensors a task stores: bit-packed `1[M^r > 0]` and `A^s` (stored dtype) per masked
    /// conv, tuned BN, head.
    pub fn delta_tensors(&self) -> Result<ParamMap> {
        let mut out = ParamMap::new();
        for (i, m) in self.masks.layout.masked.iter().enumerate() {
            out.insert(m.bits_key(), pack_mask(&m.bits_key(), &hard_binary(&self.masks.real_mask(i))?)?);
            if let Some(s) = self.masks.scale(i)? {
                out.insert(m.scale_key(), s.detach().to_dtype(self.masks.config.scale_dtype.dtype())?);
            }
        }
        out.extend(self.tuned.tensors()?);
        out.extend(self.head.snapshot()?);
        Ok(out)
    }
}

impl KernelMasks {
    /// The temperature at the current step (see [`KsmNet::tau`]).
    fn tau(&self) -> f64 {
        let (t0, t1) = (self.config.tau, self.config.tau_final);
        if self.total_steps <= 1 || t0 == t1 {
            return t0;
        }
        let p = (self.step as f64 / (self.total_steps - 1) as f64).min(1.0);
        t0 * (t1 / t0).powf(p)
    }

    /// `M^r` of masked conv `i` (as used in the graph).
    fn real_mask(&self, i: usize) -> Tensor {
        self.real.tensor(&self.layout.masked[i].real_key()).expect("every masked conv has M^r")
    }

    /// `A^s` of masked conv `i` (in the graph), `None` for `scale = "none"`.
    fn scale(&self, i: usize) -> Result<Option<Tensor>> {
        let learned = self.learned.tensor(&self.layout.masked[i].learned_key());
        scale_part(self.config.scale, &self.real_mask(i), learned.as_ref(), self.config.scale_gain, self.config.mask_init)
    }

    /// The training soft mask of masked conv `i`.
    fn soft_mask(&self, i: usize) -> Result<Tensor> {
        soft_mask(&self.real_mask(i), self.scale(i)?.as_ref(), self.tau(), self.config.gate_scale)
    }

    /// The evaluation mask of masked conv `i`: binary part and the stored (rounded) scale.
    fn eval_parts(&self, i: usize) -> Result<(Tensor, Option<Tensor>)> {
        let scale = self.scale(i)?.map(|s| rounded_scale(&s, self.config.scale_dtype)).transpose()?;
        Ok((hard_binary(&self.real_mask(i))?, scale))
    }

    fn eval_mask(&self, i: usize) -> Result<Tensor> {
        let (b, s) = self.eval_parts(i)?;
        eval_mask(&b, s.as_ref(), self.config.gate_scale)
    }
}

impl Trainable for KsmNet {
    fn train_logits(&mut self, x: &Tensor, _rng: &mut SeededRng) -> Result<Tensor> {
        let hooks = MaskHooks { masks: &self.masks, train: true };
        let f = self.tuned.forward_with(x, None, FEATURE_TAP, true, &hooks)?;
        self.head.logits(&f)
    }

    fn eval_logits(&self, x: &Tensor) -> Result<Tensor> {
        let f = self.tuned.eval_with(x, None, FEATURE_TAP, &MaskHooks { masks: &self.masks, train: false })?;
        Ok(self.head.logits(&f)?.detach())
    }

    fn begin_step(&mut self, step: usize, total: usize) -> Result<()> {
        self.masks.step = step;
        self.masks.total_steps = total;
        Ok(())
    }

    fn after_step(&mut self) -> Result<()> {
        self.tuned.apply_bn_stats()
    }

    fn state(&self) -> Result<ParamMap> {
        let mut s = self.masks.real.snapshot()?;
        s.extend(self.masks.learned.snapshot()?);
        s.extend(self.tuned.tensors()?);
        s.extend(self.head.snapshot()?);
        Ok(s)
    }

    fn set_state(&mut self, state: &ParamMap) -> Result<()> {
        self.masks.real.restore(state)?;
        self.masks.learned.restore(state)?;
        self.tuned.set_tensors(state)?;
        self.head.restore(state)
    }
}

/// Trains KSM on `task` over the frozen `source` and returns the task model.
pub fn fit(config: &KsmConfig, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<KsmModel> {
    task.validate()?;
    let layout = Layout::new(config, &source.backbone)?;
    let mut net = KsmNet::new(config, &source.backbone, layout, task.num_classes, ctx.seed)?;
    let groups = net.param_groups();
    train_on_task(&mut net, groups, task, &config.train, ctx, NAME)?;
    // The fitted model is built from exactly what is stored, so save→load cannot change it.
    KsmModel::from_tensors(config.clone(), source, net.delta_tensors()?, task.num_classes)
}

/// The evaluation mask of one conv: `M = M^b + A^s`.
#[derive(Clone, Debug)]
pub struct EvalMask {
    /// `M^b = 1[M^r > 0]`, f32 0s and 1s of shape `(out, in/groups)`.
    pub binary: Tensor,
    /// `A^s` as stored, converted to f32 (`None` for `scale = "none"`).
    pub scale: Option<Tensor>,
}

/// A fitted KSM task: the frozen source with kernel-wise soft masks on the chosen conv weights,
/// per-task BN and a new head.
pub struct KsmModel {
    config: KsmConfig,
    layout: Layout,
    num_classes: usize,
    tensors: ParamMap,
    masks: BTreeMap<String, EvalMask>,
    eval: OverriddenSource,
}

impl KsmModel {
    /// Rebuilds a task model from stored tensors (a delta's, or a fresh fit's). Every expected
    /// tensor must be present with its dtype and shape, nothing else may be; the error names
    /// each offending tensor.
    pub fn from_tensors(config: KsmConfig, source: &Source, tensors: ParamMap, num_classes: usize) -> Result<Self> {
        let backbone = &source.backbone;
        let layout = Layout::new(&config, backbone)?;
        let expected = layout.expected_tensors(num_classes, config.scale_dtype.dtype());
        let context = format!("config: {}", serde_json::to_string(&config).unwrap_or_default());
        expected.check(&tensors, &context).map_err(KsmError::Delta)?;
        let device = backbone.device();
        let mut masks = BTreeMap::new();
        let mut overrides = ParamMap::new();
        for m in &layout.masked {
            let binary = unpack_mask(&m.bits_key(), &tensors[&m.bits_key()], &m.mask_shape(), device)?;
            let scale = match tensors.get(&m.scale_key()) {
                Some(s) => Some(s.to_device(device)?.to_dtype(DType::F32)?),
                None => None,
            };
            let mask = eval_mask(&binary, scale.as_ref(), config.gate_scale)?;
            overrides.insert(m.weight.clone(), apply_kernel_mask(backbone.param(&m.weight)?, &mask)?);
            masks.insert(m.weight.clone(), EvalMask { binary, scale });
        }
        overrides.extend(layout.bns.overrides(PREFIX, &tensors));
        let eval = OverriddenSource::new(source, overrides, &tensors)?;
        Ok(Self { config, layout, num_classes, tensors, masks, eval })
    }

    /// The evaluation masks (`M^b` exactly binary, `A^s` as stored), by weight name.
    pub fn eval_masks(&self) -> &BTreeMap<String, EvalMask> {
        &self.masks
    }

    /// The parameters the evaluation forward replaces, by backbone name: `W ⊙ (M^b + A^s)` for
    /// masked weights, the per-task BN tensors.
    pub fn effective_params(&self) -> &ParamMap {
        self.eval.overrides()
    }

    /// What the config resolved to on the source.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The config the model was fitted with.
    pub fn config(&self) -> &KsmConfig {
        &self.config
    }

    /// Stored bytes as a fraction of a full fine-tuned copy ([`Backbone::fine_tuned_bytes`]).
    pub fn fraction_of_fine_tune(&self) -> f64 {
        self.eval.source().backbone.fine_tuned_fraction(self.footprint().stored_bytes, self.num_classes)
    }

    /// Fraction of kernels kept (`M^b = 1`) over all masked convs.
    pub fn kept_fraction(&self) -> Result<f64> {
        kept_fraction(self.masks.values().map(|m| &m.binary))
    }
}

impl TaskModel for KsmModel {
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

    /// The source with `W ⊙ M` folded into the masked weights, the task's BNs and its head.
    fn merged(&self) -> Result<Option<Backbone>> {
        Ok(Some(self.eval.merged()?))
    }
}
