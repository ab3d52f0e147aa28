//! The pool: a frozen library (the lower part of a small WRN distilled from the oracle) and one
//! expert per primitive task (the small WRN's last stage at a fraction of its width, BN, FC,
//! trained by conditional KD). Built once per oracle, saved as one safetensors file, extended
//! one expert at a time, and consolidated into task models without training.

use crate::config::{ExpertConfig, LibraryConfig, PrimitiveTask};
use crate::distill::{Distilled, Objective};
use crate::error::PoeError;
use candle_core::{Device, Tensor};
use graft_core::backbone::{argmax, Arch, BackboneSpec, InputSpec, TunedBackbone, LOGITS_TAP};
use graft_core::checkpoint::{
    read_safetensors, require_kind, require_meta, sha256_hex, to_safetensors_bytes, write_atomic, GRAFT_VERSION, KEY_KIND,
    KEY_VERSION,
};
use graft_core::optim::ParamGroup;
use graft_core::train::{train, Split, TrainConfig};
use graft_core::{Backbone, FitContext, GraftError, NoHooks, ParamMap, Result, Source};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// `graft.kind` of a pool file.
pub const KIND: &str = "poe-pool";
/// File name of the pool inside a pool directory.
pub const POOL_FILE: &str = "pool.safetensors";
const KEY_ORACLE: &str = "graft.poe.oracle";
const KEY_LIBRARY: &str = "graft.poe.library";
const KEY_LIBRARY_TAP: &str = "graft.poe.library_tap";
const KEY_EXPERTS: &str = "graft.poe.experts";
/// Images per forward pass while computing teacher logits and library features.
const BATCH: usize = 256;

/// One expert: the network of a primitive task, reading the library's tap.
#[derive(Clone)]
pub struct Expert {
    /// The primitive task's name.
    pub name: String,
    /// The oracle's class ids it outputs, ascending (its logit `j` is class `classes[j]`).
    pub classes: Vec<u32>,
    /// The network (`wrn-top`: last stage, BN → ReLU, pool, fc over `classes`).
    pub net: Backbone,
}

/// How an expert is described in the pool file's metadata.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpertMeta {
    name: String,
    classes: Vec<u32>,
    spec: BackboneSpec,
}

/// A pool of experts distilled from one oracle.
#[derive(Clone)]
pub struct Pool {
    /// SHA-256 of the oracle checkpoint it was distilled from.
    pub oracle_hash: String,
    /// The library's whole small network; only the units up to `library_tap` are part of the
    /// pool (stored and run).
    pub library: Backbone,
    /// The library's output tap (the end of its second stage).
    pub library_tap: String,
    /// The experts, in the order they were added.
    pub experts: Vec<Expert>,
}

/// The spec of the library's small WRN for an oracle: same input, same classes.
pub fn library_spec(oracle: &BackboneSpec, cfg: &LibraryConfig) -> BackboneSpec {
    BackboneSpec { arch: Arch::Wrn { depth: cfg.depth, widen: cfg.widen }, input: oracle.input.clone(), num_classes: oracle.num_classes }
}

/// The spec of an expert over `classes` classes reading `library`'s `tap`: the last WRN stage
/// at `width` times the library network's width.
pub fn expert_spec(library: &Backbone, tap: &str, width: f64, classes: usize) -> Result<BackboneSpec> {
    let Arch::Wrn { depth, widen } = library.spec().arch else {
        return Err(PoeError::Pool(format!("the library must be a WRN, got {}", library.spec().id())).into());
    };
    let shape = library.tap_shape(tap)?;
    let mut input = InputSpec::new(shape[0], shape[1], shape[2]);
    input.mean = vec![0.0; shape[0]];
    input.std = vec![1.0; shape[0]];
    let spec = BackboneSpec { arch: Arch::WrnTop { depth, widen: widen as f64 * width, from_stage: 3 }, input, num_classes: classes };
    spec.validate()?;
    Ok(spec)
}

/// Trains every parameter of `net` on inputs `x` towards `teacher` logits; returns the trained
/// network (BN running statistics updated).
fn distill(net: &Backbone, x: &Tensor, teacher: Tensor, objective: Objective, cfg: &TrainConfig, ctx: &mut FitContext, label: &str) -> Result<Backbone> {
    let tuned = TunedBackbone::new(net, "", |_| true)?;
    // Labels only feed the trainer's agreement figure: the teacher's argmax.
    let labels = argmax(&teacher)?;
    let mut model = Distilled { tuned, teacher, objective };
    let groups = vec![ParamGroup { vars: model.tuned.vars().vars(), settings: cfg.optim() }];
    train(&mut model, groups, Split { x, y: &labels }, None, cfg, ctx, label)?;
    model.tuned.merged()
}

/// A seed for the stream `label` of `seed` (FNV-1a of the label mixed in), so the library and
/// every expert draw independently and an expert's draws do not depend on the other experts.
pub fn sub_seed(seed: u64, label: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in label.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    seed ^ h
}

/// The oracle's logits of `classes` (columns of `logits` in that order).
fn columns(logits: &Tensor, classes: &[u32]) -> Result<Tensor> {
    let ids = Tensor::from_slice(classes, classes.len(), logits.device())?;
    Ok(logits.index_select(&ids, 1)?)
}

impl Pool {
    /// Distils a pool from `oracle` on `images` (`(n, c, h, w)` in `[0, 1]`): the library's
    /// network by KD, then one expert per group by conditional KD on the frozen library's
    /// features. Every random draw derives from `seed`.
    pub fn build(
        oracle: &Source,
        images: &Tensor,
        groups: &[PrimitiveTask],
        library: &LibraryConfig,
        expert: &ExpertConfig,
        seed: u64,
        ctx: &mut FitContext,
    ) -> Result<Self> {
        let logits = oracle.backbone.features(images, LOGITS_TAP, BATCH)?;
        let spec = library_spec(oracle.backbone.spec(), library);
        let init = Backbone::init(spec, sub_seed(seed, "poe-library"), &ctx.device)?;
        let trained = distill(&init, images, logits, Objective::Kd { temperature: library.temperature }, &library.train, &mut FitContext::new(ctx.device.clone(), seed), "poe library")?;
        let library_tap = trained.last_stage_input_tap();
        let mut pool = Self { oracle_hash: oracle.hash.clone(), library: trained, library_tap, experts: Vec::new() };
        for g in groups {
            pool.add_expert(oracle, images, g, expert, seed, ctx)?;
        }
        Ok(pool)
    }

    /// A pool of the architecture [`Pool::build`] gives for `oracle`, freshly initialised from
    /// `seed` and untrained: the shape of the same-size baselines, and the shell a stored
    /// baseline's tensors are loaded into.
    pub fn untrained(oracle: &Source, groups: &[PrimitiveTask], library: &LibraryConfig, expert: &ExpertConfig, seed: u64) -> Result<Self> {
        let device = oracle.backbone.device();
        let library_net = Backbone::init(library_spec(oracle.backbone.spec(), library), sub_seed(seed, "poe-library"), device)?;
        let library_tap = library_net.last_stage_input_tap();
        let mut pool = Self { oracle_hash: oracle.hash.clone(), library: library_net, library_tap, experts: Vec::new() };
        for g in groups {
            let classes = pool.new_group_classes(oracle, g)?;
            let spec = expert_spec(&pool.library, &pool.library_tap, expert.width, classes.len())?;
            let net = Backbone::init(spec, sub_seed(seed, &format!("poe-expert-{}", g.name)), device)?;
            pool.experts.push(Expert { name: g.name.clone(), classes, net });
        }
        Ok(pool)
    }

    /// The sorted classes of a group about to be added, or why it cannot be: another oracle, a
    /// name already in the pool, a class the oracle does not have or another expert serves.
    fn new_group_classes(&self, oracle: &Source, group: &PrimitiveTask) -> Result<Vec<u32>> {
        self.check_oracle(oracle)?;
        if self.experts.iter().any(|e| e.name == group.name) {
            return Err(PoeError::Pool(format!("the pool already has an expert for '{}'", group.name)).into());
        }
        let k = oracle.backbone.spec().num_classes as u32;
        let mut classes = group.classes.clone();
        classes.sort_unstable();
        classes.dedup();
        for c in &classes {
            if *c >= k {
                return Err(PoeError::Pool(format!("primitive task '{}': class {c} is not one of the oracle's {k} classes", group.name)).into());
            }
            if let Some(e) = self.experts.iter().find(|e| e.classes.contains(c)) {
                return Err(PoeError::Pool(format!("primitive task '{}': class {c} is already served by expert '{}'", group.name, e.name)).into());
            }
        }
        Ok(classes)
    }

    /// Trains the expert of `group` on `images` and adds it; the library and the other experts
    /// are not touched. Refuses another oracle, a name already in the pool, and classes the
    /// oracle does not have or another expert already serves.
    pub fn add_expert(&mut self, oracle: &Source, images: &Tensor, group: &PrimitiveTask, cfg: &ExpertConfig, seed: u64, ctx: &mut FitContext) -> Result<()> {
        let classes = self.new_group_classes(oracle, group)?;
        let logits = oracle.backbone.features(images, LOGITS_TAP, BATCH)?;
        let features = self.library.features(images, &self.library_tap, BATCH)?;
        let spec = expert_spec(&self.library, &self.library_tap, cfg.width, classes.len())?;
        let init = Backbone::init(spec, sub_seed(seed, &format!("poe-expert-{}", group.name)), &ctx.device)?;
        let objective = Objective::Conditional { temperature: cfg.temperature, alpha: cfg.alpha };
        let mut ectx = FitContext::new(ctx.device.clone(), sub_seed(seed, &format!("poe-train-{}", group.name)));
        ectx.progress = ctx.progress;
        let net = distill(&init, &features, columns(&logits, &classes)?, objective, &cfg.train, &mut ectx, &format!("poe expert {}", group.name))?;
        self.experts.push(Expert { name: group.name.clone(), classes, net });
        Ok(())
    }

    /// Refuses an oracle other than the pool's, naming both hashes.
    pub fn check_oracle(&self, oracle: &Source) -> Result<()> {
        if oracle.hash != self.oracle_hash {
            return Err(PoeError::OracleMismatch { pool: self.oracle_hash.clone(), given: oracle.hash.clone() }.into());
        }
        Ok(())
    }

    /// Names of the primitive tasks, in the order the experts were added.
    pub fn names(&self) -> Vec<String> {
        self.experts.iter().map(|e| e.name.clone()).collect()
    }

    /// The expert of primitive task `name`, or an error listing the known ones.
    pub fn expert(&self, name: &str) -> Result<&Expert> {
        self.experts
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| PoeError::UnknownPrimitiveTask { name: name.to_string(), known: self.names() }.into())
    }

    /// Names of the library's parameters that are part of the pool (units up to its tap).
    pub fn library_param_names(&self) -> Vec<String> {
        let end = self.library.tap_index(&self.library_tap).unwrap_or(0);
        self.library.units()[..=end].iter().flat_map(|u| u.unit.param_shapes()).map(|(n, _)| n).collect()
    }

    /// Every stored tensor: `library.<param>` and `expert.<name>.<param>`.
    pub fn tensors(&self) -> Result<ParamMap> {
        let mut out = ParamMap::new();
        for n in self.library_param_names() {
            out.insert(format!("library.{n}"), self.library.param(&n)?.clone());
        }
        for e in &self.experts {
            for (n, t) in e.net.params() {
                out.insert(format!("expert.{}.{n}", e.name), t.clone());
            }
        }
        Ok(out)
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        let experts: Vec<ExpertMeta> =
            self.experts.iter().map(|e| ExpertMeta { name: e.name.clone(), classes: e.classes.clone(), spec: e.net.spec().clone() }).collect();
        BTreeMap::from([
            (KEY_KIND.to_string(), KIND.to_string()),
            (KEY_VERSION.to_string(), GRAFT_VERSION.to_string()),
            (KEY_ORACLE.to_string(), self.oracle_hash.clone()),
            (KEY_LIBRARY.to_string(), serde_json::to_string(self.library.spec()).expect("spec serialises")),
            (KEY_LIBRARY_TAP.to_string(), self.library_tap.clone()),
            (KEY_EXPERTS.to_string(), serde_json::to_string(&experts).expect("experts serialise")),
        ])
    }

    /// The pool file's bytes (deterministic: same pool, same bytes).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        to_safetensors_bytes(&self.tensors()?, &self.metadata())
    }

    /// SHA-256 of the pool file: the identity task models reference.
    pub fn hash(&self) -> Result<String> {
        Ok(sha256_hex(&self.to_bytes()?))
    }

    /// Writes the pool file atomically; returns its hash.
    pub fn save(&self, path: &Path) -> Result<String> {
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes)?;
        Ok(sha256_hex(&bytes))
    }

    /// Reads a pool file, checking names and shapes of every tensor.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let file = read_safetensors(path, device)?;
        require_kind(&file.metadata, KIND, path)?;
        let meta = |k: &str| require_meta(&file.metadata, k, path);
        let json_err = |k: &str, e: serde_json::Error| GraftError::checkpoint(path, format!("metadata '{k}' is invalid: {e}"));
        let oracle_hash = meta(KEY_ORACLE)?.to_string();
        let spec: BackboneSpec = serde_json::from_str(meta(KEY_LIBRARY)?).map_err(|e| json_err(KEY_LIBRARY, e))?;
        let library_tap = meta(KEY_LIBRARY_TAP)?.to_string();
        let experts_meta: Vec<ExpertMeta> = serde_json::from_str(meta(KEY_EXPERTS)?).map_err(|e| json_err(KEY_EXPERTS, e))?;
        let take = |prefix: &str| -> ParamMap {
            file.tensors.iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone()))).collect()
        };
        // Only the lower part is stored: the rest of the library's network is never run, so it
        // is filled with a fixed initialisation to make the network complete.
        let mut params = Backbone::init(spec.clone(), 0, device)?.params().clone();
        let stored = take("library.");
        let shell = Self { oracle_hash: oracle_hash.clone(), library: Backbone::init(spec.clone(), 0, device)?, library_tap: library_tap.clone(), experts: vec![] };
        let expected = shell.library_param_names();
        for n in &expected {
            let t = stored.get(n).ok_or_else(|| GraftError::checkpoint(path, format!("missing tensor 'library.{n}'")))?;
            params.insert(n.clone(), t.clone());
        }
        if let Some(extra) = stored.keys().find(|k| !expected.contains(k)) {
            return Err(GraftError::checkpoint(path, format!("unexpected tensor 'library.{extra}'")));
        }
        let library = Backbone::from_params(spec, params, device).map_err(|e| GraftError::checkpoint(path, e.to_string()))?;
        let mut experts = Vec::new();
        for m in experts_meta {
            let net = Backbone::from_params(m.spec, take(&format!("expert.{}.", m.name)), device)
                .map_err(|e| GraftError::checkpoint(path, format!("expert '{}': {e}", m.name)))?;
            experts.push(Expert { name: m.name, classes: m.classes, net });
        }
        Ok(Self { oracle_hash, library, library_tap, experts })
    }

    /// The library's output for `[0, 1]` images, frozen.
    pub fn library_features(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.library.run(images, None, &self.library_tap, &[], &NoHooks)?.output)
    }

    /// FLOPs per image of the library.
    pub fn library_flops(&self) -> u64 {
        self.library.flops_between(None, &self.library_tap).unwrap_or(0)
    }

    /// Scalars of the library's stored part (BN running statistics excluded).
    pub fn library_params(&self) -> usize {
        self.library_param_names().iter().filter(|n| !graft_core::backbone::is_bn_buffer(n)).filter_map(|n| self.library.param(n).ok()).map(|t| t.elem_count()).sum()
    }
}

/// A model assembled from a pool without training: the library once, the chosen experts, their
/// logits concatenated and ordered by `classes`.
#[derive(Clone)]
pub struct Consolidated {
    /// The pool it reads (shared, never changed).
    pub pool: Arc<Pool>,
    /// Indices of the chosen experts in the pool, in query order.
    pub experts: Vec<usize>,
    /// The oracle class of every output column.
    pub classes: Vec<u32>,
    /// For every output column, its column in the concatenation of the experts' logits.
    columns: Tensor,
}

impl Consolidated {
    /// Each chosen expert reading the library's output tap (what the model attaches to the
    /// library).
    pub fn experts_reading_library(&self) -> graft_core::Attachments {
        let tap = self.pool.library_tap.as_str();
        self.experts.iter().fold(graft_core::Attachments::none(), |a, &i| a.with_read(&format!("expert {}", self.pool.experts[i].name), tap))
    }

    /// Assembles the experts of the primitive tasks `names`; the outputs are the union of their
    /// classes in the order `order` (`None`: ascending class id). No weight is copied or changed.
    pub fn new(pool: Arc<Pool>, names: &[String], order: Option<&[u32]>) -> Result<Self> {
        let mut experts = Vec::new();
        for n in names {
            pool.expert(n)?;
            let i = pool.experts.iter().position(|e| &e.name == n).expect("found above");
            if !experts.contains(&i) {
                experts.push(i);
            }
        }
        if experts.is_empty() {
            return Err(PoeError::Pool("a query needs at least one primitive task".into()).into());
        }
        let concat: Vec<u32> = experts.iter().flat_map(|&i| pool.experts[i].classes.iter().copied()).collect();
        let mut union = concat.clone();
        union.sort_unstable();
        let classes = match order {
            None => union,
            Some(o) => {
                let mut sorted = o.to_vec();
                sorted.sort_unstable();
                if sorted != union {
                    return Err(PoeError::Pool(format!("the output order {o:?} is not the classes {union:?} of {names:?}")).into());
                }
                o.to_vec()
            }
        };
        let cols: Vec<u32> = classes.iter().map(|c| concat.iter().position(|x| x == c).expect("in the union") as u32).collect();
        let columns = Tensor::from_vec(cols, classes.len(), pool.library.device())?;
        Ok(Self { pool, experts, classes, columns })
    }

    /// Logits `(n, classes.len())` for `[0, 1]` images.
    pub fn forward(&self, images: &Tensor) -> Result<Tensor> {
        let f = self.pool.library_features(images)?;
        let parts = self.experts.iter().map(|&i| self.pool.experts[i].net.forward(&f)).collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 1)?.index_select(&self.columns, 1)?)
    }

    /// FLOPs per image: the library plus every chosen expert.
    pub fn flops_per_image(&self) -> u64 {
        self.pool.library_flops() + self.experts.iter().map(|&i| self.pool.experts[i].net.flops_per_image()).sum::<u64>()
    }

    /// Scalars of the model (library part plus chosen experts, BN running statistics excluded).
    pub fn num_params(&self) -> usize {
        self.pool.library_params() + self.experts.iter().map(|&i| self.pool.experts[i].net.num_params()).sum::<usize>()
    }

    /// Bytes of the model's tensors (library part plus chosen experts, BN statistics included).
    pub fn bytes(&self) -> usize {
        let lib: usize = self.pool.library_param_names().iter().filter_map(|n| self.pool.library.param(n).ok()).map(|t| t.elem_count() * 4).sum();
        lib + self.experts.iter().map(|&i| self.pool.experts[i].net.params().values().map(|t| t.elem_count() * 4).sum::<usize>()).sum::<usize>()
    }
}
