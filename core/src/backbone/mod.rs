//! Frozen CNN backbones with named taps, a structured view of their convolutions, and forward
//! passes that accept per-parameter overrides and module injection.

mod graph;
pub mod mobilenetv2;
mod ops;
pub mod resnet;
mod resnet_cifar;
mod spec;
mod structure;
mod tuning;
pub mod vgg;
pub mod wrn;

pub use graph::{is_bn_buffer, Act, ConvDef, Unit, UnitDef, BN_PARAMS};
pub use ops::{
    activate, adaptive_avg_pool2d, add, add_act, add_relu, argmax, batch_moments, batch_norm, batch_norm_act,
    batch_norm_act_train, conv2d, conv_bn_act_eval, global_avg_pool, linear, max_pool2d, relu, relu6,
    updated_running_stats, BN_EPS, BN_MOMENTUM,
};
pub use spec::{Arch, BackboneSpec, InputSpec, IMAGENET_MEAN, IMAGENET_STD};
pub use structure::{count_flops, count_params, Layer, LayerKind};
pub use tuning::TunedBackbone;
pub use vgg::VggConfig;

use crate::error::{GraftError, Result};
use crate::init::{kaiming_conv, linear_init, xavier_normal, xavier_uniform, SeededRng, WeightInit};
use crate::params::ParamMap;
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;

/// The tap where every family publishes the features a task head reads: the global-average-pooled
/// maps (ResNets, WRN, MobileNetV2) or the penultimate classifier layer (VGG).
pub const FEATURE_TAP: &str = "pool";
/// The tap of the source head's logits, the last unit of every family.
pub const LOGITS_TAP: &str = "logits";

/// A stage of a backbone: the consecutive units whose taps are named `stage<i>.<unit>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    /// Stage name, e.g. `stage2`.
    pub name: String,
    /// Its units' taps in forward order, e.g. `stage2.block0`, `stage2.block1`.
    pub taps: Vec<String>,
}

/// The stage a tap belongs to (`stage2` for `stage2.block1`), if it is in one.
fn stage_of(tap: &str) -> Option<&str> {
    let (stage, _) = tap.split_once('.')?;
    let index = stage.strip_prefix("stage")?;
    (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())).then_some(stage)
}

/// What a method may change in a backbone's forward pass. Every default leaves the backbone as is.
pub trait Hooks {
    /// A replacement for the parameter `name` (weight override, e.g. `W ⊙ M`, or a trainable copy),
    /// given its frozen value; `None` uses the frozen value.
    fn param(&self, name: &str, frozen: &Tensor) -> Result<Option<Tensor>> {
        let _ = (name, frozen);
        Ok(None)
    }

    /// Whether the BatchNorm module `bn` (e.g. `layer1.0.bn1`) normalises with batch statistics
    /// (training mode) instead of its running statistics.
    fn bn_uses_batch_stats(&self, bn: &str) -> bool {
        let _ = bn;
        false
    }

    /// Replaces the output published at `tap` (module injection after a tap); the default keeps it.
    fn tap_output(&self, tap: &str, x: Tensor) -> Result<Tensor> {
        let _ = tap;
        Ok(x)
    }

    /// Whether [`Hooks::conv_output`] changes the output of the conv module `conv` (e.g.
    /// `layer1.0.conv1`); when true the conv and its BN run unfused.
    fn alters_conv(&self, conv: &str) -> bool {
        let _ = conv;
        false
    }

    /// Replaces the output `y` of conv `conv` (before its BN) given the conv's input `x`:
    /// residual adapters in series read `y`, in parallel `x`. Called only for the convs for which
    /// [`Hooks::alters_conv`] is true; the default keeps `y`.
    fn conv_output(&self, conv: &ConvDef, x: &Tensor, y: Tensor) -> Result<Tensor> {
        let _ = (conv, x);
        Ok(y)
    }
}

/// The hooks of a plain frozen forward pass.
pub struct NoHooks;
impl Hooks for NoHooks {}

/// Batch statistics a BatchNorm saw in training mode, for updating its running statistics.
#[derive(Clone, Debug)]
pub struct BnBatchStats {
    /// BatchNorm module name.
    pub bn: String,
    /// Per-channel batch mean.
    pub mean: Tensor,
    /// Per-channel biased batch variance.
    pub var: Tensor,
    /// Values per channel the statistics were computed over (`n·h·w`).
    pub count: usize,
}

/// The result of [`Backbone::run`].
#[derive(Debug)]
pub struct ForwardOutput {
    /// Output of the last unit run.
    pub output: Tensor,
    /// The requested taps' outputs.
    pub taps: BTreeMap<String, Tensor>,
    /// Statistics of every BatchNorm that ran in training mode.
    pub bn_stats: Vec<BnBatchStats>,
}

/// A tap: a named point of the forward pass whose output methods can read.
#[derive(Clone, Debug, PartialEq)]
pub struct TapInfo {
    /// Tap name, e.g. `stage2.block0`.
    pub name: String,
    /// Channels (or features) of the output.
    pub channels: usize,
    /// Total downsampling from the input.
    pub reduction: usize,
    /// Output spatial size.
    pub hw: (usize, usize),
}

/// One convolution of the backbone, as seen by weight-override methods (KSM, Piggyback, FT).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvInfo {
    /// The conv's geometry and name.
    pub conv: ConvDef,
    /// The BatchNorm that follows it, if any.
    pub bn: Option<String>,
    /// The tap of the unit the conv belongs to.
    pub tap: String,
    /// Input spatial size seen by this conv.
    pub input_hw: (usize, usize),
}

/// A backbone: spec, executable structure and its (frozen) parameters.
#[derive(Clone)]
pub struct Backbone {
    spec: BackboneSpec,
    units: Vec<UnitDef>,
    layers: Vec<Layer>,
    params: ParamMap,
    device: Device,
}

/// Builds the units of `spec` (checked) and their structural description.
pub(crate) fn build_units(spec: &BackboneSpec) -> Result<(Vec<UnitDef>, Vec<Layer>)> {
    spec.validate_sizes()?;
    let i = &spec.input;
    let (c, k) = (i.channels, spec.num_classes);
    let units = match &spec.arch {
        Arch::ResnetCifar { depth, width } => resnet_cifar::build(*depth, *width, c, k),
        Arch::Wrn { depth, widen } => wrn::build(*depth, *widen, c, k),
        Arch::WrnTop { depth, widen, from_stage } => wrn::build_top(*depth, *widen, *from_stage, c, k),
        Arch::Resnet { depth, width } => resnet::build(*depth, *width, c, k),
        Arch::Mobilenetv2 { width_mult } => mobilenetv2::build(*width_mult, c, k),
        Arch::Vgg { config, width_div, pool } => vgg::build(*config, *width_div, *pool, c, k),
    };
    structure::expand(i.shape(), units).map_err(|e| match e {
        GraftError::Backbone(m) => GraftError::Backbone(format!("{} on a {}x{}x{} input: {m}", spec.id(), c, i.height, i.width)),
        other => other,
    })
}

impl Backbone {
    /// The units and structural description of `spec` without allocating parameters (cheap
    /// even for torchvision-size networks); errors like [`BackboneSpec::validate`].
    pub fn describe(spec: &BackboneSpec) -> Result<(Vec<UnitDef>, Vec<Layer>)> {
        build_units(spec)
    }

    /// A randomly initialised backbone (Kaiming-normal convs, BN at identity, PyTorch-default fc).
    pub fn init(spec: BackboneSpec, seed: u64, device: &Device) -> Result<Self> {
        Self::init_with(spec, seed, WeightInit::Kaiming, device)
    }

    /// A randomly initialised backbone whose conv and linear weights follow `scheme` (BN at
    /// identity). Kaiming gives exactly [`Backbone::init`]'s values.
    pub fn init_with(spec: BackboneSpec, seed: u64, scheme: WeightInit, device: &Device) -> Result<Self> {
        let (units, layers) = build_units(&spec)?;
        let what = format!("{} ({} parameters)", spec.id(), count_params(&layers));
        crate::memory::check_fits(&what, crate::memory::parameter_bytes(&layers), "the architecture's width or depth", None)?;
        let mut rng = SeededRng::derived(seed, "backbone-init");
        let mut params = ParamMap::new();
        let xavier = |rng: &mut SeededRng, shape: &[usize]| match scheme {
            WeightInit::XavierNormal => xavier_normal(rng, shape, 1.0, device),
            _ => xavier_uniform(rng, shape, 1.0, device),
        };
        for u in &units {
            for (conv, _) in u.unit.convs() {
                let [o, i, kh, kw] = conv.weight_shape();
                let w = match scheme {
                    WeightInit::Kaiming => kaiming_conv(&mut rng, o, i, kh, kw, device)?,
                    _ => xavier(&mut rng, &[o, i, kh, kw])?,
                };
                params.insert(conv.weight_name(), w);
                if conv.bias {
                    params.insert(format!("{}.bias", conv.name), Tensor::zeros(o, DType::F32, device)?);
                }
            }
            for (bn, c) in u.unit.bns() {
                params.insert(format!("{bn}.weight"), Tensor::ones(c, DType::F32, device)?);
                params.insert(format!("{bn}.bias"), Tensor::zeros(c, DType::F32, device)?);
                params.insert(format!("{bn}.running_mean"), Tensor::zeros(c, DType::F32, device)?);
                params.insert(format!("{bn}.running_var"), Tensor::ones(c, DType::F32, device)?);
            }
            if let Unit::Linear { name, in_features, out_features, .. } = &u.unit {
                let (w, b) = match scheme {
                    WeightInit::Kaiming => linear_init(&mut rng, *out_features, *in_features, device)?,
                    _ => (xavier(&mut rng, &[*out_features, *in_features])?, Tensor::zeros(*out_features, DType::F32, device)?),
                };
                params.insert(format!("{name}.weight"), w);
                params.insert(format!("{name}.bias"), b);
            }
        }
        Ok(Self { spec, units, layers, params, device: device.clone() })
    }

    /// A backbone from existing parameters; every expected name must be present with the right
    /// shape and dtype f32, and nothing else. The error lists every mismatch.
    pub fn from_params(spec: BackboneSpec, params: ParamMap, device: &Device) -> Result<Self> {
        let (units, layers) = build_units(&spec)?;
        let expected: Vec<(String, Vec<usize>)> = units.iter().flat_map(|u| u.unit.param_shapes()).collect();
        let mut problems = Vec::new();
        for (name, shape) in &expected {
            match params.get(name) {
                None => problems.push(format!("missing key '{name}' (expected shape {shape:?})")),
                Some(t) if t.dims() != shape.as_slice() => {
                    problems.push(format!("key '{name}': shape {:?} in file, expected {shape:?}", t.dims()))
                }
                Some(t) if t.dtype() != DType::F32 => {
                    problems.push(format!("key '{name}': dtype {:?} in file, expected F32", t.dtype()))
                }
                _ => {}
            }
        }
        let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
        for name in params.keys() {
            if !known.contains(name.as_str()) && !crate::torch_io::is_bn_step_counter(name) {
                problems.push(format!("unexpected key '{name}'"));
            }
        }
        if !problems.is_empty() {
            return Err(GraftError::Backbone(format!(
                "parameters do not fit {}: {}",
                spec.id(),
                problems.join("; ")
            )));
        }
        let params = params
            .into_iter()
            .filter(|(k, _)| known.contains(k.as_str()))
            .map(|(k, v)| Ok((k, v.to_device(device)?.detach())))
            .collect::<Result<ParamMap>>()?;
        Ok(Self { spec, units, layers, params, device: device.clone() })
    }

    /// The spec this backbone was built from.
    pub fn spec(&self) -> &BackboneSpec {
        &self.spec
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The units of the forward pass in order.
    pub fn units(&self) -> &[UnitDef] {
        &self.units
    }

    /// The structural description: every elementary layer in forward order (layer 0 is the
    /// input), with the layers it reads, its shapes, parameters and FLOPs, and the merges.
    pub fn structure(&self) -> &[Layer] {
        &self.layers
    }

    /// Per-image shape of a tap's output: `[c, h, w]`, or `[features]` for flat taps (`pool`,
    /// `logits`, classifier layers).
    pub fn tap_shape(&self, tap: &str) -> Result<Vec<usize>> {
        let u = &self.units[self.tap_index(tap)?];
        Ok(if u.unit.is_flat() { vec![u.channels] } else { vec![u.channels, u.hw.0, u.hw.1] })
    }

    /// Every BatchNorm module name in forward order (including those no conv precedes).
    pub fn bn_names(&self) -> Vec<String> {
        self.layers.iter().filter(|l| l.kind == LayerKind::BatchNorm).map(|l| l.name.clone()).collect()
    }

    /// Every BatchNorm module in forward order with its channels.
    pub fn bns(&self) -> Vec<(String, usize)> {
        self.layers.iter().filter(|l| l.kind == LayerKind::BatchNorm).map(|l| (l.name.clone(), l.output_shape[0])).collect()
    }

    /// The features a task head reads ([`FEATURE_TAP`]): their tap with its width.
    pub fn feature_tap(&self) -> Result<TapInfo> {
        self.tap(FEATURE_TAP)
    }

    /// The stages in forward order (units outside a stage, such as the stem, the pooled
    /// features and the logits, belong to none).
    pub fn stages(&self) -> Vec<Stage> {
        let mut stages: Vec<Stage> = Vec::new();
        for u in &self.units {
            let Some(name) = stage_of(&u.tap) else { continue };
            match stages.last_mut() {
                Some(s) if s.name == name => s.taps.push(u.tap.clone()),
                _ => stages.push(Stage { name: name.to_string(), taps: vec![u.tap.clone()] }),
            }
        }
        stages
    }

    /// The taps of the stages' units that hold a conv (blocks; not VGG's pooling units), in
    /// forward order: where modules that follow a block attach.
    pub fn block_taps(&self) -> Vec<String> {
        self.units.iter().filter(|u| stage_of(&u.tap).is_some() && !u.unit.convs().is_empty()).map(|u| u.tap.clone()).collect()
    }

    /// Names of the parameters of the source head: the units after the `pool` tap (`fc.weight`,
    /// `fc.bias` for ResNets; `classifier.6.*` for VGG; `classifier.1.*` for MobileNetV2).
    pub fn head_params(&self) -> Vec<String> {
        let start = self.units.iter().position(|u| u.tap == FEATURE_TAP).map_or(self.units.len(), |i| i + 1);
        self.units[start..].iter().flat_map(|u| u.unit.param_shapes()).map(|(n, _)| n).collect()
    }

    /// Bytes of a full fine-tuned copy for a `classes`-way task, as the `fine-tune` baseline
    /// stores it: every tensor except the source head (BN running statistics included) plus a
    /// new f32 head on the `pool` features. The yardstick for a method's stored bytes.
    pub fn fine_tuned_bytes(&self, classes: usize) -> usize {
        let head: std::collections::BTreeSet<String> = self.head_params().into_iter().collect();
        let body: usize = self
            .params
            .iter()
            .filter(|(k, _)| !head.contains(*k))
            .map(|(_, t)| t.elem_count() * t.dtype().size_in_bytes())
            .sum();
        let features = self.feature_tap().map(|t| t.channels).unwrap_or(0);
        body + 4 * (features + 1) * classes
    }

    /// `stored_bytes` as a fraction of [`Backbone::fine_tuned_bytes`] (0.05 = 5 % of a copy).
    pub fn fine_tuned_fraction(&self, stored_bytes: usize, classes: usize) -> f64 {
        stored_bytes as f64 / self.fine_tuned_bytes(classes).max(1) as f64
    }

    /// Every parameter and BN buffer by name.
    pub fn params(&self) -> &ParamMap {
        &self.params
    }

    /// One parameter by name.
    pub fn param(&self, name: &str) -> Result<&Tensor> {
        self.params.get(name).ok_or_else(|| GraftError::Backbone(format!("{} has no parameter '{name}'", self.spec.id())))
    }

    /// Number of scalar parameters (BN running statistics excluded).
    pub fn num_params(&self) -> usize {
        self.params.iter().filter(|(k, _)| !is_bn_buffer(k)).map(|(_, t)| t.elem_count()).sum()
    }

    /// Every tap in forward order.
    pub fn taps(&self) -> Vec<TapInfo> {
        self.units
            .iter()
            .map(|u| TapInfo { name: u.tap.clone(), channels: u.channels, reduction: u.reduction, hw: u.hw })
            .collect()
    }

    /// Position of `tap` in the forward order, or an error listing the taps.
    pub fn tap_index(&self, tap: &str) -> Result<usize> {
        self.units.iter().position(|u| u.tap == tap).ok_or_else(|| GraftError::UnknownTap {
            tap: tap.to_string(),
            available: self.units.iter().map(|u| u.tap.clone()).collect(),
        })
    }

    /// Information about one tap.
    pub fn tap(&self, tap: &str) -> Result<TapInfo> {
        Ok(self.taps().swap_remove(self.tap_index(tap)?))
    }

    /// The tap whose output is the input of the last stage (the units named `stage<last>.…`),
    /// e.g. `stage2.block<n-1>` for resnet-cifar; feature extractors train from there on.
    pub fn last_stage_input_tap(&self) -> String {
        let first = match self.stages().pop() {
            Some(last) => self.units.iter().position(|u| u.tap == last.taps[0]).expect("a stage's taps are units"),
            None => self.units.len() - 2,
        };
        self.units[first.saturating_sub(1)].tap.clone()
    }

    /// Every convolution with the BN that directly follows it, in forward order. The input size
    /// of each is that of the layer it reads in [`Backbone::structure`] (a shortcut conv reads
    /// the block input, or the pre-activated input in a pre-activation block).
    pub fn convs(&self) -> Vec<ConvInfo> {
        let bn_after: BTreeMap<&str, Option<&str>> =
            self.units.iter().flat_map(|u| u.unit.convs()).map(|(c, bn)| (c.name.as_str(), bn)).collect();
        self.layers
            .iter()
            .filter_map(|l| match &l.kind {
                LayerKind::Conv(conv) => Some(ConvInfo {
                    conv: conv.clone(),
                    bn: bn_after.get(conv.name.as_str()).copied().flatten().map(str::to_string),
                    tap: l.tap.clone(),
                    input_hw: (l.input_shapes[0][1], l.input_shapes[0][2]),
                }),
                _ => None,
            })
            .collect()
    }

    /// Analytic FLOPs per image (2 × multiply–accumulates of convs and linear layers; BN,
    /// activations, additions and pooling are not counted) of the units after `from` up to and
    /// including `to`: the sum of [`Layer::flops`] over their layers.
    pub fn flops_between(&self, from: Option<&str>, to: &str) -> Result<u64> {
        let (start, end) = self.unit_range(from, to)?;
        let taps: std::collections::HashSet<&str> = self.units[start..=end].iter().map(|u| u.tap.as_str()).collect();
        Ok(self.layers.iter().filter(|l| taps.contains(l.tap.as_str())).map(|l| l.flops).sum())
    }

    /// FLOPs per image of the whole network, input to logits.
    pub fn flops_per_image(&self) -> u64 {
        self.flops_between(None, LOGITS_TAP).unwrap_or(0)
    }

    fn unit_range(&self, from: Option<&str>, to: &str) -> Result<(usize, usize)> {
        let end = self.tap_index(to)?;
        let start = match from {
            None => 0,
            Some(f) => self.tap_index(f)? + 1,
        };
        if start > end {
            return Err(GraftError::Backbone(format!(
                "cannot run from tap '{}' to tap '{to}': '{to}' comes first",
                from.unwrap_or("input")
            )));
        }
        Ok((start, end))
    }

    /// Normalises `[0, 1]` images with the spec's mean/std, checking their shape.
    pub fn normalize(&self, images: &Tensor) -> Result<Tensor> {
        let i = &self.spec.input;
        let dims = images.dims();
        if dims.len() != 4 || dims[1..] != [i.channels, i.height, i.width] {
            return Err(GraftError::Backbone(format!(
                "{} expects images of shape (n, {}, {}, {}), got {:?}",
                self.spec.id(),
                i.channels,
                i.height,
                i.width,
                dims
            )));
        }
        let mean = Tensor::from_slice(&i.mean, (1, i.channels, 1, 1), images.device())?;
        let std = Tensor::from_slice(&i.std, (1, i.channels, 1, 1), images.device())?;
        Ok(images.broadcast_sub(&mean)?.broadcast_div(&std)?)
    }

    /// Runs the units after tap `from` (or from the images when `None`) up to and including tap
    /// `to`. `x` is the `[0, 1]` image batch or the output of `from`. The outputs of the taps in
    /// `collect` are returned too. Gradients flow only into tensors the hooks supply.
    pub fn run(&self, x: &Tensor, from: Option<&str>, to: &str, collect: &[&str], hooks: &dyn Hooks) -> Result<ForwardOutput> {
        let (start, end) = self.unit_range(from, to)?;
        for c in collect {
            let i = self.tap_index(c)?;
            if i < start || i > end {
                return Err(GraftError::Backbone(format!("tap '{c}' is outside the requested range '{}'..'{to}'", from.unwrap_or("input"))));
            }
        }
        let mut h = match from {
            None => self.normalize(x)?,
            Some(f) => {
                let expected = self.tap_shape(f)?;
                if x.dims().get(1..) != Some(expected.as_slice()) {
                    return Err(GraftError::Backbone(format!(
                        "input for running from tap '{f}' must have shape (n, {expected:?}), got {:?}",
                        x.dims()
                    )));
                }
                x.clone()
            }
        };
        let mut taps = BTreeMap::new();
        let mut bn_stats = Vec::new();
        for u in &self.units[start..=end] {
            h = self.run_unit(&u.unit, &h, hooks, &mut bn_stats)?;
            h = hooks.tap_output(&u.tap, h)?;
            if collect.contains(&u.tap.as_str()) {
                taps.insert(u.tap.clone(), h.clone());
            }
        }
        Ok(ForwardOutput { output: h, taps, bn_stats })
    }

    /// Logits of the source head for `[0, 1]` images, frozen, in evaluation mode.
    pub fn forward(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.run(images, None, LOGITS_TAP, &[], &NoHooks)?.output)
    }

    /// The frozen output of `tap` for all `images`, computed in batches of `batch_size` with no
    /// graph kept.
    pub fn features(&self, images: &Tensor, tap: &str, batch_size: usize) -> Result<Tensor> {
        let n = images.dim(0)?;
        let mut parts = Vec::new();
        let mut i = 0;
        while i < n {
            let len = batch_size.max(1).min(n - i);
            let x = images.narrow(0, i, len)?;
            parts.push(self.run(&x, None, tap, &[], &NoHooks)?.output.detach());
            i += len;
        }
        if parts.is_empty() {
            let mut shape = vec![0];
            shape.extend(self.tap_shape(tap)?);
            return Ok(Tensor::zeros(shape, DType::F32, &self.device)?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    fn p(&self, name: &str, hooks: &dyn Hooks) -> Result<Tensor> {
        let frozen = self.param(name)?;
        Ok(hooks.param(name, frozen)?.unwrap_or_else(|| frozen.clone()))
    }

    /// A convolution with its (possibly overridden) weight and bias, and its output hook.
    fn conv(&self, x: &Tensor, conv: &ConvDef, hooks: &dyn Hooks) -> Result<Tensor> {
        let w = self.p(&conv.weight_name(), hooks)?;
        let b = if conv.bias { Some(self.p(&format!("{}.bias", conv.name), hooks)?) } else { None };
        let y = conv2d(x, &w, b.as_ref(), conv)?;
        if hooks.alters_conv(&conv.name) {
            return hooks.conv_output(conv, x, y);
        }
        Ok(y)
    }

    /// conv → BN → activation: the one place a conv and its BN run, so fused kernels can take
    /// over the whole sequence.
    fn conv_bn(
        &self,
        x: &Tensor,
        conv: &ConvDef,
        bn: &str,
        act: Act,
        hooks: &dyn Hooks,
        stats: &mut Vec<BnBatchStats>,
    ) -> Result<Tensor> {
        let gamma = self.p(&format!("{bn}.weight"), hooks)?;
        let beta = self.p(&format!("{bn}.bias"), hooks)?;
        if hooks.bn_uses_batch_stats(bn) {
            let y = self.conv(x, conv, hooks)?;
            return self.bn_train(&y, bn, &gamma, &beta, act, stats);
        }
        if hooks.alters_conv(&conv.name) {
            // Something runs between the conv and its BN: no folding.
            let y = self.conv(x, conv, hooks)?;
            return self.bn_act(&y, bn, act, hooks, stats);
        }
        // Fixed statistics: the BN folds into the conv (bias and activation inside the kernel).
        let w = self.p(&conv.weight_name(), hooks)?;
        let b = if conv.bias { Some(self.p(&format!("{}.bias", conv.name), hooks)?) } else { None };
        let mean = self.p(&format!("{bn}.running_mean"), hooks)?;
        let var = self.p(&format!("{bn}.running_var"), hooks)?;
        conv_bn_act_eval(x, &w, b.as_ref(), conv, [&gamma, &beta, &mean, &var], act)
    }

    /// BN → activation: every BatchNorm that does not follow a conv (pre-activation blocks) runs
    /// here, in training mode when the hooks ask for it.
    fn bn_act(&self, y: &Tensor, bn: &str, act: Act, hooks: &dyn Hooks, stats: &mut Vec<BnBatchStats>) -> Result<Tensor> {
        let gamma = self.p(&format!("{bn}.weight"), hooks)?;
        let beta = self.p(&format!("{bn}.bias"), hooks)?;
        if hooks.bn_uses_batch_stats(bn) {
            return self.bn_train(y, bn, &gamma, &beta, act, stats);
        }
        let mean = self.p(&format!("{bn}.running_mean"), hooks)?;
        let var = self.p(&format!("{bn}.running_var"), hooks)?;
        batch_norm_act(y, &mean, &var, &gamma, &beta, act)
    }

    /// Training-mode BN → activation, recording the batch statistics for the running update.
    fn bn_train(&self, y: &Tensor, bn: &str, gamma: &Tensor, beta: &Tensor, act: Act, stats: &mut Vec<BnBatchStats>) -> Result<Tensor> {
        let (out, mean, var) = batch_norm_act_train(y, gamma, beta, act)?;
        let count = y.elem_count() / y.dim(1)?;
        stats.push(BnBatchStats { bn: bn.to_string(), mean, var, count });
        Ok(out)
    }

    fn run_unit(&self, unit: &Unit, x: &Tensor, hooks: &dyn Hooks, stats: &mut Vec<BnBatchStats>) -> Result<Tensor> {
        match unit {
            Unit::Conv { conv } => self.conv(x, conv, hooks),
            Unit::ConvBnAct { conv, bn, act } => self.conv_bn(x, conv, bn, *act, hooks, stats),
            Unit::BasicBlock { conv1, bn1, conv2, bn2, downsample } => {
                let h = self.conv_bn(x, conv1, bn1, Act::Relu, hooks, stats)?;
                let h = self.conv_bn(&h, conv2, bn2, Act::None, hooks, stats)?;
                let shortcut = match downsample {
                    Some((c, b)) => self.conv_bn(x, c, b, Act::None, hooks, stats)?,
                    None => x.clone(),
                };
                add_relu(&h, &shortcut)
            }
            Unit::Bottleneck { conv1, bn1, conv2, bn2, conv3, bn3, downsample } => {
                let h = self.conv_bn(x, conv1, bn1, Act::Relu, hooks, stats)?;
                let h = self.conv_bn(&h, conv2, bn2, Act::Relu, hooks, stats)?;
                let h = self.conv_bn(&h, conv3, bn3, Act::None, hooks, stats)?;
                let shortcut = match downsample {
                    Some((c, b)) => self.conv_bn(x, c, b, Act::None, hooks, stats)?,
                    None => x.clone(),
                };
                add_relu(&h, &shortcut)
            }
            Unit::PreActBlock { bn1, conv1, bn2, conv2, shortcut } => {
                let a = self.bn_act(x, bn1, Act::Relu, hooks, stats)?;
                let h = self.conv_bn(&a, conv1, bn2, Act::Relu, hooks, stats)?;
                let h = self.conv(&h, conv2, hooks)?;
                let s = match shortcut {
                    Some(c) => self.conv(&a, c, hooks)?,
                    None => x.clone(),
                };
                add(&h, &s)
            }
            Unit::InvertedResidual { expand, dw, project, residual } => {
                let mut h = x.clone();
                if let Some((c, b)) = expand {
                    h = self.conv_bn(&h, c, b, Act::Relu6, hooks, stats)?;
                }
                h = self.conv_bn(&h, &dw.0, &dw.1, Act::Relu6, hooks, stats)?;
                h = self.conv_bn(&h, &project.0, &project.1, Act::None, hooks, stats)?;
                if *residual {
                    add(&h, x)
                } else {
                    Ok(h)
                }
            }
            Unit::BnAct { bn, act, .. } => self.bn_act(x, bn, *act, hooks, stats),
            Unit::MaxPool { kernel, stride, padding, .. } => max_pool2d(x, *kernel, *stride, *padding),
            Unit::GlobalAvgPool => global_avg_pool(x),
            Unit::AvgPoolFlatten { out } => Ok(adaptive_avg_pool2d(x, *out)?.flatten_from(1)?),
            Unit::Linear { name, act, .. } => {
                let w = self.p(&format!("{name}.weight"), hooks)?;
                let b = self.p(&format!("{name}.bias"), hooks)?;
                activate(&linear(x, &w, &b)?, *act)
            }
        }
    }
}

