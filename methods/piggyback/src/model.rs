//! Piggyback's trainable network (real-valued masks + optional per-task BN + head, trained through
//! the straight-through binarisation) and its task model (binary masks unpacked from the stored
//! bits, applied once to the frozen weights).

use crate::config::{MaskedConvs, PiggybackConfig};
use crate::error::PiggybackError;
use crate::mask::{apply_mask, binarize, binarize_ste};
use crate::{NAME, PREFIX};
use candle_core::{DType, Tensor};
use graft_core::backbone::{linear, TunedBackbone, BN_PARAMS};
use graft_core::bitpack::{pack_mask, packed_len, unpack_mask};
use graft_core::init::{linear_init, SeededRng};
use graft_core::optim::ParamGroup;
use graft_core::train::{train, Split};
use graft_core::{Backbone, FitContext, Footprint, Hooks, ParamMap, Result, Source, Task, TaskModel, Trainable, Trainables};
use std::collections::{BTreeMap, BTreeSet};

/// Name of the new head's weight `(classes, features)`.
pub const HEAD_WEIGHT: &str = "head.weight";
/// Name of the new head's bias `(classes,)`.
pub const HEAD_BIAS: &str = "head.bias";
/// The tap whose output (global-average-pooled features) feeds the new head.
pub const FEATURE_TAP: &str = "pool";

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
    /// Tuned BatchNorms with their channels (empty unless `tune_bn`).
    pub bns: Vec<(String, usize)>,
    /// Channels at [`FEATURE_TAP`] (the head's input).
    pub features: usize,
}

impl Layout {
    /// Resolves `config` on `backbone`; an unknown conv in `layers.only` is an error listing the
    /// backbone's convs.
    pub fn new(config: &PiggybackConfig, backbone: &Backbone) -> Result<Self> {
        let convs = backbone.convs();
        let chosen: Vec<_> = match &config.layers {
            MaskedConvs::All => convs.iter().collect(),
            MaskedConvs::AllButFirst => convs.iter().skip(1).collect(),
            MaskedConvs::Only(names) => {
                let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
                if let Some(missing) = names.iter().find(|n| !convs.iter().any(|c| &c.conv.name == *n)) {
                    return Err(PiggybackError::UnknownConv {
                        name: missing.clone(),
                        available: convs.iter().map(|c| c.conv.name.clone()).collect(),
                    }
                    .into());
                }
                convs.iter().filter(|c| wanted.contains(c.conv.name.as_str())).collect()
            }
        };
        let masked = chosen
            .into_iter()
            .map(|c| MaskedConv { conv: c.conv.name.clone(), weight: c.conv.weight_name(), shape: c.conv.weight_shape().to_vec() })
            .collect();
        let bns = if config.tune_bn {
            backbone
                .bn_names()
                .into_iter()
                .map(|bn| Ok((bn.clone(), backbone.param(&format!("{bn}.weight"))?.elem_count())))
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        Ok(Self { masked, bns, features: backbone.tap(FEATURE_TAP)?.channels })
    }

    /// The documented trainable-parameter count for `classes` task classes:
    /// `Σ_masked |W| + Σ_tunedBN 2·C + (d + 1)·k`.
    pub fn trainable_params(&self, classes: usize) -> usize {
        let masks: usize = self.masked.iter().map(MaskedConv::entries).sum();
        let bn: usize = self.bns.iter().map(|(_, c)| 2 * c).sum();
        masks + bn + (self.features + 1) * classes
    }

    /// The documented stored bytes for `classes` task classes:
    /// `Σ_masked ceil(|W| / 8) + Σ_tunedBN 4·C·4 + (d + 1)·k·4`.
    pub fn stored_bytes(&self, classes: usize) -> usize {
        let masks: usize = self.masked.iter().map(|m| packed_len(m.entries())).sum();
        let bn: usize = self.bns.iter().map(|(_, c)| 16 * c).sum();
        masks + bn + 4 * (self.features + 1) * classes
    }

    /// Whether the backbone parameter `name` is γ or β of a tuned BatchNorm (what
    /// [`TunedBackbone`] makes trainable; their running statistics follow).
    pub fn is_tuned_bn_affine(&self, name: &str) -> bool {
        name.strip_suffix(".weight")
            .or_else(|| name.strip_suffix(".bias"))
            .is_some_and(|bn| self.bns.iter().any(|(b, _)| b == bn))
    }

    /// Every stored tensor's name, dtype and shape (masks, BN, head), sorted by name.
    fn expected_tensors(&self, classes: usize) -> BTreeMap<String, (DType, Vec<usize>)> {
        let mut out = BTreeMap::new();
        for m in &self.masked {
            out.insert(m.bits_key(), (DType::U8, vec![packed_len(m.entries())]));
        }
        for (bn, c) in &self.bns {
            for (key, _) in stored_bn_tensors(bn) {
                out.insert(key, (DType::F32, vec![*c]));
            }
        }
        out.insert(HEAD_WEIGHT.into(), (DType::F32, vec![classes, self.features]));
        out.insert(HEAD_BIAS.into(), (DType::F32, vec![classes]));
        out
    }
}

/// The stored names of tuned BatchNorm `bn`'s four tensors, `piggyback.<bn>.{weight,bias,
/// running_mean,running_var}` (as [`TunedBackbone`] names them), paired with the backbone parameter
/// each replaces.
fn stored_bn_tensors(bn: &str) -> impl Iterator<Item = (String, String)> + '_ {
    BN_PARAMS.iter().map(move |p| (format!("{PREFIX}{bn}.{p}"), format!("{bn}.{p}")))
}

/// The network trained by [`fit`]: frozen backbone, real-valued masks binarised with the
/// straight-through estimator, optional per-task BN, new head.
pub struct PiggybackNet {
    layout: Layout,
    masks: WeightMasks,
    /// The frozen backbone with the tuned BNs' γ, β (trainable) and running statistics.
    tuned: TunedBackbone,
    head: Trainables,
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
        let tuned = TunedBackbone::new(base, PREFIX, |name| layout.is_tuned_bn_affine(name))?;
        let mut rng = SeededRng::derived(seed, "head");
        let (w, b) = linear_init(&mut rng, classes, layout.features, &device)?;
        let mut head = Trainables::new();
        head.insert(HEAD_WEIGHT, &w)?;
        head.insert(HEAD_BIAS, &b)?;
        let masks = WeightMasks { threshold: config.threshold, by_weight, real };
        Ok(Self { layout, masks, tuned, head })
    }

    /// The optimiser groups: masks at `train.lr`, BN at `bn_lr`, head at `head_lr`.
    pub fn param_groups(&self, config: &PiggybackConfig) -> Vec<ParamGroup> {
        let base = config.train.optim();
        let with_lr = |lr: Option<f64>| {
            let mut s = base.clone();
            s.lr = lr.unwrap_or(base.lr);
            s
        };
        let mut groups = vec![ParamGroup { vars: self.masks.real.vars(), settings: base.clone() }];
        if !self.layout.bns.is_empty() {
            groups.push(ParamGroup { vars: self.tuned.vars().vars(), settings: with_lr(config.bn_lr) });
        }
        groups.push(ParamGroup { vars: self.head.vars(), settings: with_lr(config.head_lr) });
        groups.retain(|g| !g.vars.is_empty());
        groups
    }

    /// The new head on the features at [`FEATURE_TAP`].
    fn head_logits(&self, features: &Tensor) -> Result<Tensor> {
        let w = self.head.tensor(HEAD_WEIGHT).expect("head weight exists");
        let b = self.head.tensor(HEAD_BIAS).expect("head bias exists");
        linear(features, &w, &b)
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
        self.head_logits(&f)
    }

    fn eval_logits(&self, x: &Tensor) -> Result<Tensor> {
        let f = self.tuned.eval_with(x, None, FEATURE_TAP, &MaskHooks { masks: &self.masks, train: false })?;
        Ok(self.head_logits(&f)?.detach())
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
    let device = ctx.device.clone();
    let (x, vx) = (task.train.images_tensor(&device)?, task.val.images_tensor(&device)?);
    let label = format!("{NAME} {}", task.name);
    train(
        &mut net,
        groups,
        Split { x: &x, y: &task.train.labels },
        Some(Split { x: &vx, y: &task.val.labels }),
        &config.train,
        ctx,
        &label,
    )?;
    // The fitted model is built from exactly what is stored, so save→load cannot change it.
    PiggybackModel::from_tensors(config.clone(), source, net.delta_tensors()?, task.num_classes)
}

/// Parameter overrides of an evaluation forward pass.
struct Overrides<'a>(&'a ParamMap);

impl Hooks for Overrides<'_> {
    fn param(&self, name: &str, _frozen: &Tensor) -> Result<Option<Tensor>> {
        Ok(self.0.get(name).cloned())
    }
}

/// A fitted Piggyback task: the frozen source with binary masks on the chosen conv weights,
/// optional per-task BN, and a new head.
pub struct PiggybackModel {
    config: PiggybackConfig,
    source: Source,
    layout: Layout,
    num_classes: usize,
    tensors: ParamMap,
    masks: BTreeMap<String, Tensor>,
    overrides: ParamMap,
    head: (Tensor, Tensor),
}

impl PiggybackModel {
    /// Rebuilds a task model from stored tensors (a delta's, or a fresh fit's). Every expected
    /// tensor must be present with its dtype and shape, nothing else may be; the error names
    /// each offending tensor.
    pub fn from_tensors(config: PiggybackConfig, source: &Source, tensors: ParamMap, num_classes: usize) -> Result<Self> {
        let backbone = &source.backbone;
        let layout = Layout::new(&config, backbone)?;
        let expected = layout.expected_tensors(num_classes);
        let mut problems = Vec::new();
        for (name, (dtype, shape)) in &expected {
            match tensors.get(name) {
                None => problems.push(format!("missing tensor '{name}' ({dtype:?} {shape:?})")),
                // Packed masks get their own, more specific check below.
                Some(_) if *dtype == DType::U8 => {}
                Some(t) if t.dtype() != *dtype || t.dims() != shape.as_slice() => problems.push(format!(
                    "tensor '{name}' is {:?} {:?}, expected {dtype:?} {shape:?}",
                    t.dtype(),
                    t.dims()
                )),
                Some(_) => {}
            }
        }
        let extra: Vec<&String> = tensors.keys().filter(|k| !expected.contains_key(*k)).collect();
        if !extra.is_empty() {
            problems.push(format!("unexpected tensors {extra:?} (config: {})", serde_json::to_string(&config).unwrap_or_default()));
        }
        if !problems.is_empty() {
            return Err(PiggybackError::Delta(problems.join("; ")).into());
        }
        let device = backbone.device();
        let mut masks = BTreeMap::new();
        let mut overrides = ParamMap::new();
        for m in &layout.masked {
            let mask = unpack_mask(&m.bits_key(), &tensors[&m.bits_key()], &m.shape, device)?;
            overrides.insert(m.weight.clone(), apply_mask(backbone.param(&m.weight)?, &mask)?);
            masks.insert(m.weight.clone(), mask);
        }
        for (bn, _) in &layout.bns {
            for (key, param) in stored_bn_tensors(bn) {
                overrides.insert(param, tensors[&key].to_device(device)?);
            }
        }
        let head = (tensors[HEAD_WEIGHT].to_device(device)?, tensors[HEAD_BIAS].to_device(device)?);
        Ok(Self { config, source: source.clone(), layout, num_classes, tensors, masks, overrides, head })
    }

    /// The binary mask (0s and 1s, the weight's shape) applied at evaluation, by weight name.
    pub fn eval_masks(&self) -> &BTreeMap<String, Tensor> {
        &self.masks
    }

    /// The parameters the evaluation forward replaces, by backbone name: `W ⊙ B` for masked
    /// weights, the per-task BN tensors when tuned.
    pub fn effective_params(&self) -> &ParamMap {
        &self.overrides
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
        self.source.backbone.fine_tuned_fraction(self.footprint().stored_bytes, self.num_classes)
    }

    /// Fraction of masked weights kept (`B = 1`) over all masked convs.
    pub fn kept_fraction(&self) -> Result<f64> {
        let (mut kept, mut total) = (0f64, 0usize);
        for m in self.masks.values() {
            kept += m.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            total += m.elem_count();
        }
        Ok(kept / total.max(1) as f64)
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
        let f = self.source.backbone.run(images, None, FEATURE_TAP, &[], &Overrides(&self.overrides))?.output;
        Ok(linear(&f, &self.head.0, &self.head.1)?.detach())
    }

    fn footprint(&self) -> Footprint {
        let bb = &self.source.backbone;
        Footprint {
            trainable_params: self.layout.trainable_params(self.num_classes),
            stored_bytes: self.tensors.values().map(|t| t.elem_count() * t.dtype().size_in_bytes()).sum(),
            interconnections: self.layout.masked.len() + self.layout.bns.len(),
            flops_per_image: bb.flops_between(None, FEATURE_TAP).unwrap_or(0) + 2 * (self.layout.features * self.num_classes) as u64,
        }
    }

    fn delta_tensors(&self) -> Result<ParamMap> {
        self.tensors.iter().map(|(k, v)| Ok((k.clone(), v.copy()?))).collect()
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn source_hash(&self) -> &str {
        &self.source.hash
    }
}
