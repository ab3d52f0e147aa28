//! What an attention config resolves to on a backbone ([`Layout`]), the network trained for a
//! domain ([`AttentionNet`]) and the fitted task model ([`AttentionModel`]).

use crate::config::{AttentionConfig, AttentionTaps};
use crate::error::AttentionError;
use crate::gate::{apply, GateShape};
use crate::{NAME, PREFIX};
use candle_core::Tensor;
use graft_core::backbone::{TapInfo, TunedBackbone};
use graft_core::init::SeededRng;
use graft_core::kit::{param_groups, stored_head_logits, train_on_task, DomainBns, ExpectedTensors, ModuleValues, TaskHead, FEATURE_TAP};
use graft_core::optim::ParamGroup;
use graft_core::{Attachments, Backbone, FitContext, Footprint, Hooks, ParamMap, Result, Source, Task, TaskModel, Trainable, Trainables};
use std::collections::BTreeMap;

/// Stored name of tensor `suffix` of the module after `tap`: `adaptive-attention.<tap>.<suffix>`.
pub fn gate_key(tap: &str, suffix: &str) -> String {
    format!("{PREFIX}{tap}.{suffix}")
}

/// The taps after which `blocks` inserts a module: the stages' units that hold a conv
/// ([`Backbone::block_taps`]).
pub fn block_taps(backbone: &Backbone) -> Vec<String> {
    backbone.block_taps()
}

/// What a config resolves to on one backbone: the modules and their taps, the domain BNs, the
/// head.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// The taps with a module, in forward order, and each module's shape.
    pub gates: Vec<(TapInfo, GateShape)>,
    /// Domain BatchNorms; none unless `domain_bn`.
    pub bns: DomainBns,
    /// Channels at [`FEATURE_TAP`] (the head's input).
    pub features: usize,
}

impl Layout {
    /// Resolves `config` on `backbone`. A tap in `taps.only` that the backbone lacks, or whose
    /// output is not a feature map before the pooled features, is an error listing the block
    /// taps.
    pub fn new(config: &AttentionConfig, backbone: &Backbone) -> Result<Self> {
        let blocks = block_taps(backbone);
        let names = match &config.taps {
            AttentionTaps::Blocks if blocks.is_empty() => return Err(AttentionError::NoBlockTaps.into()),
            AttentionTaps::Blocks => blocks.clone(),
            AttentionTaps::Only(names) => names.clone(),
        };
        let pool = backbone.tap_index(FEATURE_TAP)?;
        let mut gates = Vec::new();
        for name in &names {
            let map_before_pool = backbone.tap_index(name).ok().filter(|&i| i < pool && !backbone.units()[i].unit.is_flat());
            if map_before_pool.is_none() {
                return Err(AttentionError::UnknownTap { name: name.clone(), available: blocks }.into());
            }
            let tap = backbone.tap(name)?;
            let shape = GateShape {
                channels: tap.channels,
                hidden: tap.channels.div_ceil(config.reduction),
                spatial: config.spatial.then_some(config.spatial_kernel),
                placement: config.placement,
            };
            gates.push((tap, shape));
        }
        gates.sort_by_key(|(t, _)| backbone.tap_index(&t.name).unwrap_or(usize::MAX));
        Ok(Self { gates, bns: DomainBns::all_if(config.domain_bn, backbone), features: backbone.feature_tap()?.channels })
    }

    /// The documented trainable-parameter count for `classes` classes:
    /// `Σ_modules params + Σ_domainBN 2·C + (d + 1)·k` ([`GateShape::params`]).
    pub fn trainable_params(&self, classes: usize) -> usize {
        let gates: usize = self.gates.iter().map(|(_, g)| g.params()).sum();
        gates + self.bns.trainable_params() + TaskHead::params(self.features, classes)
    }

    /// FLOPs per image the modules add.
    pub fn gate_flops(&self) -> u64 {
        self.gates.iter().map(|(t, g)| g.flops(t.hw)).sum()
    }

    /// Every stored tensor's name and shape (modules, domain BNs, head).
    fn expected_tensors(&self, classes: usize) -> ExpectedTensors {
        let mut out = ExpectedTensors::new();
        for (tap, g) in &self.gates {
            for (suffix, shape) in g.tensors() {
                out.f32(gate_key(&tap.name, suffix), shape);
            }
        }
        out.f32_all(self.bns.expected(PREFIX));
        out.f32_all(TaskHead::expected(self.features, classes));
        out
    }

    fn by_tap(&self) -> BTreeMap<String, GateShape> {
        self.gates.iter().map(|(t, g)| (t.name.clone(), g.clone())).collect()
    }
}

/// The hooks of a forward pass with attention: each chosen tap's output goes through its
/// module; a fitted model's domain BNs replace the frozen ones.
struct GateHooks<'a> {
    by_tap: &'a BTreeMap<String, GateShape>,
    values: ModuleValues<'a>,
    overrides: Option<&'a ParamMap>,
}

impl Hooks for GateHooks<'_> {
    fn param(&self, name: &str, _frozen: &Tensor) -> Result<Option<Tensor>> {
        Ok(self.overrides.and_then(|o| o.get(name).cloned()))
    }

    fn tap_output(&self, tap: &str, x: Tensor) -> Result<Tensor> {
        let Some(shape) = self.by_tap.get(tap) else { return Ok(x) };
        let get = |suffix: &str| -> Result<Tensor> {
            let key = gate_key(tap, suffix);
            self.values.get(&key).ok_or_else(|| AttentionError::Delta(format!("missing tensor '{key}'")).into())
        };
        apply(shape, &x, &get)
    }
}

/// The network trained by [`fit`]: frozen backbone, attention modules, domain BNs, new head.
pub struct AttentionNet {
    by_tap: BTreeMap<String, GateShape>,
    gates: Trainables,
    /// The frozen backbone with the domain BNs' γ, β (trainable) and running statistics.
    tuned: TunedBackbone,
    head: TaskHead,
}

impl AttentionNet {
    /// A fresh net whose modules are the identity ([`GateShape::init`]), BNs from the source, a
    /// seeded new head.
    pub fn new(base: &Backbone, layout: &Layout, classes: usize, seed: u64) -> Result<Self> {
        let device = base.device().clone();
        let mut rng = SeededRng::derived(seed, "attention");
        let mut gates = Trainables::new();
        for (tap, g) in &layout.gates {
            for (suffix, t) in g.init(&mut rng, &device)? {
                gates.insert(gate_key(&tap.name, suffix), &t)?;
            }
        }
        let tuned = layout.bns.tuned(base, PREFIX)?;
        let head = TaskHead::new(layout.features, classes, seed, &device)?;
        Ok(Self { by_tap: layout.by_tap(), gates, tuned, head })
    }

    /// The optimiser groups: modules and domain BNs at `train.lr`, the head at `head_lr`.
    pub fn param_groups(&self, config: &AttentionConfig) -> Vec<ParamGroup> {
        param_groups(&config.train, config.head_lr, self.gates.vars(), &self.tuned, &self.head)
    }
}

impl Trainable for AttentionNet {
    fn train_logits(&mut self, x: &Tensor, _rng: &mut SeededRng) -> Result<Tensor> {
        let hooks = GateHooks { by_tap: &self.by_tap, values: ModuleValues::Training { vars: &self.gates, buffers: &ParamMap::new() }, overrides: None };
        let f = self.tuned.forward_with(x, None, FEATURE_TAP, true, &hooks)?;
        self.head.logits(&f)
    }

    fn eval_logits(&self, x: &Tensor) -> Result<Tensor> {
        let hooks = GateHooks { by_tap: &self.by_tap, values: ModuleValues::Training { vars: &self.gates, buffers: &ParamMap::new() }, overrides: None };
        let f = self.tuned.eval_with(x, None, FEATURE_TAP, &hooks)?;
        Ok(self.head.logits(&f)?.detach())
    }

    fn after_step(&mut self) -> Result<()> {
        self.tuned.apply_bn_stats()
    }

    fn state(&self) -> Result<ParamMap> {
        let mut s = self.gates.snapshot()?;
        s.extend(self.tuned.tensors()?);
        s.extend(self.head.snapshot()?);
        Ok(s)
    }

    fn set_state(&mut self, state: &ParamMap) -> Result<()> {
        self.gates.restore(state)?;
        self.tuned.set_tensors(state)?;
        self.head.restore(state)
    }
}

/// Trains attention modules on `task` over the frozen `source` and returns the task model.
pub fn fit(config: &AttentionConfig, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<AttentionModel> {
    task.validate()?;
    let layout = Layout::new(config, &source.backbone)?;
    let mut net = AttentionNet::new(&source.backbone, &layout, task.num_classes, ctx.seed)?;
    let groups = net.param_groups(config);
    train_on_task(&mut net, groups, task, &config.train, ctx, NAME)?;
    // The fitted model is built from exactly what is stored, so save→load cannot change it.
    AttentionModel::from_tensors(config.clone(), source, net.state()?, task.num_classes)
}

/// A fitted domain: the frozen source with its attention modules, domain BNs and head.
pub struct AttentionModel {
    config: AttentionConfig,
    source: Source,
    layout: Layout,
    by_tap: BTreeMap<String, GateShape>,
    num_classes: usize,
    tensors: ParamMap,
    overrides: ParamMap,
    attachments: Attachments,
}

impl AttentionModel {
    /// Rebuilds a task model from stored tensors (a delta's, or a fresh fit's). Every expected
    /// tensor must be present with its shape and nothing else may be; the error names each
    /// offending tensor.
    pub fn from_tensors(config: AttentionConfig, source: &Source, tensors: ParamMap, num_classes: usize) -> Result<Self> {
        let backbone = &source.backbone;
        let layout = Layout::new(&config, backbone)?;
        let context = format!("config: {}", serde_json::to_string(&config).unwrap_or_default());
        layout.expected_tensors(num_classes).check(&tensors, &context).map_err(AttentionError::Delta)?;
        let device = backbone.device();
        let tensors: ParamMap = tensors.into_iter().map(|(k, v)| Ok((k, v.to_device(device)?))).collect::<Result<_>>()?;
        let overrides = layout.bns.overrides(PREFIX, &tensors);
        let by_tap = layout.by_tap();
        let mut model = Self { by_tap, config, source: source.clone(), layout, num_classes, tensors, overrides, attachments: Attachments::none() };
        model.attachments = Attachments::record(backbone, None, FEATURE_TAP, &model.hooks())?.with_read("head", FEATURE_TAP);
        Ok(model)
    }

    /// The hooks of the evaluation forward: the stored modules, the domain BNs.
    fn hooks(&self) -> GateHooks<'_> {
        GateHooks { by_tap: &self.by_tap, values: ModuleValues::Fitted(&self.tensors), overrides: Some(&self.overrides) }
    }

    /// What the config resolved to on the source.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The config the model was fitted with.
    pub fn config(&self) -> &AttentionConfig {
        &self.config
    }
}

impl TaskModel for AttentionModel {
    fn method(&self) -> &str {
        NAME
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn forward(&self, images: &Tensor) -> Result<Tensor> {
        let f = self.source.backbone.run(images, None, FEATURE_TAP, &[], &self.hooks())?.output;
        Ok(stored_head_logits(&f, &self.tensors)?.detach())
    }

    /// Trainable: the layout's formula; stored: every tensor of the delta; interconnections: the
    /// recorded attachments; FLOPs: the frozen pass to the features, the modules and the head.
    fn footprint(&self) -> Footprint {
        let bb = &self.source.backbone;
        Footprint {
            trainable_params: self.layout.trainable_params(self.num_classes),
            stored_bytes: self.tensors.values().map(|t| t.elem_count() * t.dtype().size_in_bytes()).sum(),
            interconnections: self.attachments.count(),
            flops_per_image: bb.flops_between(None, FEATURE_TAP).unwrap_or(0)
                + self.layout.gate_flops()
                + TaskHead::flops(self.layout.features, self.num_classes),
        }
    }

    /// One per module (the output at its tap changed), one per domain BN, and the head reading
    /// the pooled features (recorded from the evaluation hooks).
    fn attachments(&self) -> Attachments {
        self.attachments.clone()
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
