//! What a residual adapter config resolves to on a backbone ([`Layout`]), the network trained for
//! a domain ([`AdapterNet`]) and the fitted task model ([`AdapterModel`]).

use crate::adapter::{parallel, series_eval, series_train, Placement};
use crate::config::AdapterConfig;
use crate::error::AdapterError;
use candle_core::{DType, Tensor};
use graft_core::backbone::{updated_running_stats, ConvDef, ConvInfo, TunedBackbone, BN_PARAMS};
use graft_core::init::SeededRng;
use graft_core::kit::{param_groups, stored_head_logits, train_on_task, DomainBns, ExpectedTensors, ModuleValues, TaskHead, FEATURE_TAP};
use graft_core::optim::ParamGroup;
use graft_core::{Attachments, Backbone, FitContext, Footprint, Hooks, ParamMap, Result, Source, Task, TaskModel, Trainable, Trainables};
use std::cell::RefCell;
use std::collections::BTreeSet;

/// Stored name of the 1x1 weight of the adapter on `conv`: `<method>.<conv>.adapter.weight`.
pub fn weight_key(placement: Placement, conv: &str) -> String {
    format!("{}{conv}.adapter.weight", placement.prefix())
}

/// Stored name of tensor `p` (γ `weight`, β `bias`, `running_mean`, `running_var`) of a series
/// adapter's own BN: `<method>.<conv>.adapter_bn.<p>`.
pub fn bn_key(placement: Placement, conv: &str, p: &str) -> String {
    format!("{}{conv}.adapter_bn.{p}", placement.prefix())
}

/// What a config resolves to on one backbone: the adapted convs, the domain BNs and the head.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Series or parallel.
    pub placement: Placement,
    /// The adapted 3x3 convs in forward order, with their input sizes.
    pub adapted: Vec<ConvInfo>,
    /// Domain BatchNorms (every BN of the backbone); none unless `domain_bn`.
    pub bns: DomainBns,
    /// Channels at [`FEATURE_TAP`] (the head's input).
    pub features: usize,
}

impl Layout {
    /// Resolves `config` on `backbone`. A conv in `convs.only` that is not one of the backbone's
    /// 3x3 convs is an error listing them.
    pub fn new(config: &AdapterConfig, placement: Placement, backbone: &Backbone) -> Result<Self> {
        let candidates: Vec<ConvInfo> = backbone.convs().into_iter().filter(|c| c.conv.kernel == 3).collect();
        let adapted = config.convs.select(candidates).map_err(|e| AdapterError::UnknownConv { name: e.name, available: e.available })?;
        if adapted.is_empty() {
            return Err(AdapterError::NothingToAdapt.into());
        }
        let bns = DomainBns::all_if(config.domain_bn, backbone);
        Ok(Self { placement, adapted, bns, features: backbone.feature_tap()?.channels })
    }

    /// The documented trainable-parameter count for `classes` classes:
    /// `Σ_adapted (C_out² + 2·C_out | C_out·C_in) + Σ_domainBN 2·C + (d + 1)·k`.
    pub fn trainable_params(&self, classes: usize) -> usize {
        let adapters: usize = self.adapted.iter().map(|c| self.placement.trainable_params(&c.conv)).sum();
        adapters + self.bns.trainable_params() + TaskHead::params(self.features, classes)
    }

    /// FLOPs per image the adapters add to the frozen forward pass.
    pub fn adapter_flops(&self) -> u64 {
        self.adapted.iter().map(|c| self.placement.flops(&c.conv, c.conv.output_hw(c.input_hw.0, c.input_hw.1))).sum()
    }

    /// Every stored tensor's name and shape (adapters, their BNs, domain BNs, head).
    fn expected_tensors(&self, classes: usize) -> ExpectedTensors {
        let mut out = ExpectedTensors::new();
        for c in &self.adapted {
            out.f32(weight_key(self.placement, &c.conv.name), self.placement.weight_shape(&c.conv).to_vec());
            if self.placement == Placement::Series {
                for p in BN_PARAMS {
                    out.f32(bn_key(self.placement, &c.conv.name, p), vec![c.conv.out_channels]);
                }
            }
        }
        out.f32_all(self.bns.expected(&self.placement.prefix()));
        out.f32_all(TaskHead::expected(self.features, classes));
        out
    }
}

/// Batch statistics of a series adapter's BN seen in one training forward.
struct AdapterBnStats {
    conv: String,
    mean: Tensor,
    var: Tensor,
    count: usize,
}

/// The hooks of a forward pass with adapters: each adapted conv's output goes through its
/// adapter; a fitted model's domain BNs replace the frozen ones.
struct AdapterHooks<'a> {
    placement: Placement,
    adapted: &'a BTreeSet<String>,
    values: ModuleValues<'a>,
    /// Domain BN tensors by backbone parameter name (fitted models; while training the
    /// [`TunedBackbone`] supplies them).
    overrides: Option<&'a ParamMap>,
    train: bool,
    seen: RefCell<Vec<AdapterBnStats>>,
}

impl AdapterHooks<'_> {
    /// The adapter tensor `key` (trained or stored).
    fn get(&self, key: &str) -> Result<Tensor> {
        self.values.get(key).ok_or_else(|| AdapterError::Delta(format!("missing tensor '{key}'")).into())
    }
}

impl Hooks for AdapterHooks<'_> {
    fn param(&self, name: &str, _frozen: &Tensor) -> Result<Option<Tensor>> {
        Ok(self.overrides.and_then(|o| o.get(name).cloned()))
    }

    fn alters_conv(&self, conv: &str) -> bool {
        self.adapted.contains(conv)
    }

    fn conv_output(&self, conv: &ConvDef, x: &Tensor, y: Tensor) -> Result<Tensor> {
        let w = self.get(&weight_key(self.placement, &conv.name))?;
        match self.placement {
            Placement::Parallel => parallel(x, &y, &w, conv.stride),
            Placement::Series => {
                let bn = |p: &str| self.get(&bn_key(self.placement, &conv.name, p));
                if self.train {
                    let (out, mean, var) = series_train(&y, &w, &bn("weight")?, &bn("bias")?)?;
                    let count = y.elem_count() / y.dim(1)?;
                    self.seen.borrow_mut().push(AdapterBnStats { conv: conv.name.clone(), mean, var, count });
                    Ok(out)
                } else {
                    series_eval(&y, &w, [&bn("weight")?, &bn("bias")?, &bn("running_mean")?, &bn("running_var")?])
                }
            }
        }
    }
}

/// The hooks of an [`AdapterNet`]'s forward pass (the [`TunedBackbone`] supplies the domain BNs).
fn training_hooks<'a>(
    placement: Placement,
    adapted: &'a BTreeSet<String>,
    vars: &'a Trainables,
    stats: &'a ParamMap,
    train: bool,
) -> AdapterHooks<'a> {
    AdapterHooks { placement, adapted, values: ModuleValues::Training { vars, buffers: stats }, overrides: None, train, seen: RefCell::new(Vec::new()) }
}

/// The network trained by [`fit`]: frozen backbone, adapters, domain BNs, new head.
pub struct AdapterNet {
    layout: Layout,
    adapted: BTreeSet<String>,
    /// Adapter weights and series BNs' γ, β.
    adapters: Trainables,
    /// Series BNs' running statistics.
    stats: ParamMap,
    pending: Vec<AdapterBnStats>,
    /// The frozen backbone with the domain BNs' γ, β (trainable) and running statistics.
    tuned: TunedBackbone,
    head: TaskHead,
}

impl AdapterNet {
    /// A fresh net whose adapters are the identity: parallel `A = 0`; series `A` Kaiming-normal
    /// (fan-in `C_out`) under a BN with `γ = 0, β = 0`. BNs from the source, a seeded new head.
    pub fn new(base: &Backbone, layout: Layout, classes: usize, seed: u64) -> Result<Self> {
        let device = base.device().clone();
        let mut rng = SeededRng::derived(seed, "adapters");
        let mut adapters = Trainables::new();
        let mut stats = ParamMap::new();
        for c in &layout.adapted {
            let placement = layout.placement;
            let shape = placement.weight_shape(&c.conv);
            let name = &c.conv.name;
            match layout.placement {
                Placement::Parallel => {
                    adapters.insert(weight_key(placement, name), &Tensor::zeros(shape.as_slice(), DType::F32, &device)?)?;
                }
                Placement::Series => {
                    let n: usize = shape.iter().product();
                    let std = (2.0 / shape[1] as f64).sqrt();
                    let w = rng.normal_vec(n, std);
                    adapters.insert(weight_key(placement, name), &Tensor::from_vec(w, shape.as_slice(), &device)?)?;
                    let ch = c.conv.out_channels;
                    adapters.insert(bn_key(placement, name, "weight"), &Tensor::zeros(ch, DType::F32, &device)?)?;
                    adapters.insert(bn_key(placement, name, "bias"), &Tensor::zeros(ch, DType::F32, &device)?)?;
                    stats.insert(bn_key(placement, name, "running_mean"), Tensor::zeros(ch, DType::F32, &device)?);
                    stats.insert(bn_key(placement, name, "running_var"), Tensor::ones(ch, DType::F32, &device)?);
                }
            }
        }
        let tuned = layout.bns.tuned(base, &layout.placement.prefix())?;
        let head = TaskHead::new(layout.features, classes, seed, &device)?;
        let adapted = layout.adapted.iter().map(|c| c.conv.name.clone()).collect();
        Ok(Self { layout, adapted, adapters, stats, pending: Vec::new(), tuned, head })
    }

    /// The optimiser groups: adapters and domain BNs at `train.lr`, the head at `head_lr`.
    pub fn param_groups(&self, config: &AdapterConfig) -> Vec<ParamGroup> {
        param_groups(&config.train, config.head_lr, self.adapters.vars(), &self.tuned, &self.head)
    }
}

impl Trainable for AdapterNet {
    fn train_logits(&mut self, x: &Tensor, _rng: &mut SeededRng) -> Result<Tensor> {
        let hooks = training_hooks(self.layout.placement, &self.adapted, &self.adapters, &self.stats, true);
        let f = self.tuned.forward_with(x, None, FEATURE_TAP, true, &hooks)?;
        self.pending = hooks.seen.into_inner();
        self.head.logits(&f)
    }

    fn eval_logits(&self, x: &Tensor) -> Result<Tensor> {
        let hooks = training_hooks(self.layout.placement, &self.adapted, &self.adapters, &self.stats, false);
        let f = self.tuned.eval_with(x, None, FEATURE_TAP, &hooks)?;
        Ok(self.head.logits(&f)?.detach())
    }

    fn after_step(&mut self) -> Result<()> {
        self.tuned.apply_bn_stats()?;
        for s in std::mem::take(&mut self.pending) {
            let p = self.layout.placement;
            let (km, kv) = (bn_key(p, &s.conv, "running_mean"), bn_key(p, &s.conv, "running_var"));
            let (m, v) = updated_running_stats(&self.stats[&km], &self.stats[&kv], &s.mean, &s.var, s.count)?;
            self.stats.insert(km, m);
            self.stats.insert(kv, v);
        }
        Ok(())
    }

    fn state(&self) -> Result<ParamMap> {
        let mut s = self.adapters.snapshot()?;
        for (k, v) in &self.stats {
            s.insert(k.clone(), v.copy()?);
        }
        s.extend(self.tuned.tensors()?);
        s.extend(self.head.snapshot()?);
        Ok(s)
    }

    fn set_state(&mut self, state: &ParamMap) -> Result<()> {
        self.adapters.restore(state)?;
        for (k, v) in self.stats.iter_mut() {
            if let Some(t) = state.get(k) {
                *v = t.clone();
            }
        }
        self.tuned.set_tensors(state)?;
        self.head.restore(state)
    }
}

/// Trains adapters of `placement` on `task` over the frozen `source` and returns the task model.
pub fn fit(config: &AdapterConfig, placement: Placement, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<AdapterModel> {
    task.validate()?;
    let layout = Layout::new(config, placement, &source.backbone)?;
    let mut net = AdapterNet::new(&source.backbone, layout, task.num_classes, ctx.seed)?;
    let groups = net.param_groups(config);
    train_on_task(&mut net, groups, task, &config.train, ctx, placement.method_name())?;
    // The fitted model is built from exactly what is stored, so save→load cannot change it.
    AdapterModel::from_tensors(config.clone(), placement, source, net.state()?, task.num_classes)
}

/// A fitted domain: the frozen source with its adapters, domain BNs and head.
pub struct AdapterModel {
    config: AdapterConfig,
    source: Source,
    layout: Layout,
    adapted: BTreeSet<String>,
    num_classes: usize,
    tensors: ParamMap,
    overrides: ParamMap,
    attachments: Attachments,
}

impl AdapterModel {
    /// Rebuilds a task model from stored tensors (a delta's, or a fresh fit's). Every expected
    /// tensor must be present with its shape and nothing else may be; the error names each
    /// offending tensor.
    pub fn from_tensors(config: AdapterConfig, placement: Placement, source: &Source, tensors: ParamMap, num_classes: usize) -> Result<Self> {
        let backbone = &source.backbone;
        let layout = Layout::new(&config, placement, backbone)?;
        let expected = layout.expected_tensors(num_classes);
        let context = format!("config: {}", serde_json::to_string(&config).unwrap_or_default());
        expected.check(&tensors, &context).map_err(AdapterError::Delta)?;
        let device = backbone.device();
        let tensors: ParamMap = tensors.into_iter().map(|(k, v)| Ok((k, v.to_device(device)?))).collect::<Result<_>>()?;
        let overrides = layout.bns.overrides(&placement.prefix(), &tensors);
        let adapted = layout.adapted.iter().map(|c| c.conv.name.clone()).collect();
        let mut model = Self { config, source: source.clone(), layout, adapted, num_classes, tensors, overrides, attachments: Attachments::none() };
        model.attachments = Attachments::record(backbone, None, FEATURE_TAP, &model.hooks())?.with_read("head", FEATURE_TAP);
        Ok(model)
    }

    /// The hooks of the evaluation forward: the stored adapters, the domain BNs.
    fn hooks(&self) -> AdapterHooks<'_> {
        AdapterHooks {
            placement: self.layout.placement,
            adapted: &self.adapted,
            values: ModuleValues::Fitted(&self.tensors),
            overrides: Some(&self.overrides),
            train: false,
            seen: RefCell::new(Vec::new()),
        }
    }

    /// What the config resolved to on the source.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The config the model was fitted with.
    pub fn config(&self) -> &AdapterConfig {
        &self.config
    }
}

impl TaskModel for AdapterModel {
    fn method(&self) -> &str {
        self.layout.placement.method_name()
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn forward(&self, images: &Tensor) -> Result<Tensor> {
        let hooks = self.hooks();
        let f = self.source.backbone.run(images, None, FEATURE_TAP, &[], &hooks)?.output;
        Ok(stored_head_logits(&f, &self.tensors)?.detach())
    }

    /// Trainable: the layout's formula; stored: every tensor of the delta; interconnections: the
    /// recorded attachments; FLOPs: the frozen pass to the features, the adapters and the head.
    fn footprint(&self) -> Footprint {
        let bb = &self.source.backbone;
        Footprint {
            trainable_params: self.layout.trainable_params(self.num_classes),
            stored_bytes: self.tensors.values().map(|t| t.elem_count() * t.dtype().size_in_bytes()).sum(),
            interconnections: self.attachments.count(),
            flops_per_image: bb.flops_between(None, FEATURE_TAP).unwrap_or(0)
                + self.layout.adapter_flops()
                + TaskHead::flops(self.layout.features, self.num_classes),
        }
    }

    /// One per adapted conv (its output replaced), one per domain BN, and the head reading the
    /// pooled features (recorded from the evaluation hooks).
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
