//! The same-size baselines as registered transfer methods, so a suite runs them beside `poe` on
//! the same queries, seeds and data and the report sets their accuracy and training time beside
//! PoE's: `poe-scratch`, `poe-frozen-library` and `poe-multi-kd` ([`Baseline`]). Each fits a
//! model of the consolidated model's architecture (library part + the query's experts) to the
//! query; `poe-frozen-library` reads the pool's library (prepared or reused like `poe`'s), the
//! other two only its shape. The delta stores the whole trained model.

use crate::baseline::{train_baseline, Baseline};
use crate::config::{paper_train, PoeConfig};
use crate::method::{query_for, task_classes, Poe};
use crate::pool::{Consolidated, Pool};
use candle_core::Tensor;
use graft_core::registry::MethodConfig;
use graft_core::train::TrainConfig;
use graft_core::{Attachments, Backbone, Delta, FitContext, Footprint, GraftError, ParamMap, Result, Source, Task, TaskModel, TransferMethod};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Registered name of the scratch baseline.
pub const SCRATCH: &str = "poe-scratch";
/// Registered name of the frozen-library baseline.
pub const FROZEN_LIBRARY: &str = "poe-frozen-library";
/// Registered name of the multi-teacher KD baseline.
pub const MULTI_KD: &str = "poe-multi-kd";

/// Configuration of a same-size baseline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// The pool whose consolidated architecture the baseline takes (and, for
    /// `poe-frozen-library`, whose library it trains on); the same keys as `poe`'s config, so a
    /// suite gives both the same pool.
    pub pool: PoeConfig,
    /// Training on the query. Default: the paper's recipe (SGD 0.9, wd 5e-4, lr 0.1 ÷10 at
    /// 40 %/80 %), 5 epochs, batch 64.
    pub train: TrainConfig,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self { pool: PoeConfig::default(), train: paper_train(5) }
    }
}

impl MethodConfig for BaselineConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        self.pool.validate().map_err(|m| format!("pool.{m}"))?;
        self.train.validate().map_err(|m| format!("train.{m}"))
    }
}

/// A same-size baseline of Pool of Experts.
pub struct PoeBaseline {
    /// Which baseline (its registered name).
    pub name: &'static str,
    /// Its configuration.
    pub config: BaselineConfig,
}

impl PoeBaseline {
    /// What it trains; multi-teacher KD takes the experts' `T` and `α`.
    pub fn kind(&self) -> Baseline {
        match self.name {
            FROZEN_LIBRARY => Baseline::FrozenLibrary,
            MULTI_KD => Baseline::MultiTeacherKd { temperature: self.config.pool.expert.temperature, alpha: self.config.pool.expert.alpha },
            _ => Baseline::Scratch,
        }
    }

    /// The untrained pool of the configured architecture for `source`.
    fn shell(&self, source: &Source) -> Result<Pool> {
        let c = &self.config.pool;
        Pool::untrained(source, &c.groups, &c.library, &c.expert, 0)
    }
}

/// A trained same-size baseline.
pub struct BaselineModel {
    name: &'static str,
    config: BaselineConfig,
    source_hash: String,
    model: Consolidated,
    trainable: usize,
    /// Whether the library trains with the experts (nothing of the model stays frozen).
    trains_library: bool,
    metrics: BTreeMap<String, f64>,
}

/// Scalars that train in `kind` on `model`: everything, or only the experts.
fn trainable_params(kind: Baseline, model: &Consolidated) -> usize {
    let experts: usize = model.experts.iter().map(|&i| model.pool.experts[i].net.num_params()).sum();
    if kind.trains_library() {
        experts + model.pool.library_params()
    } else {
        experts
    }
}

impl TransferMethod for PoeBaseline {
    fn name(&self) -> &str {
        self.name
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn fit(&self, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<Box<dyn TaskModel>> {
        task.validate()?;
        let classes = task_classes(task)?;
        let kind = self.kind();
        let mut metrics = BTreeMap::new();
        let pool = if kind.trains_library() {
            Arc::new(self.shell(source)?)
        } else {
            let seed = self.config.pool.pool_seed.unwrap_or(ctx.seed);
            let cache = ctx.artefacts.clone();
            let prep = Poe { config: self.config.pool.clone() }.prepare(source, Some(task), seed, &cache, ctx)?;
            metrics.insert("pool_prep_s".to_string(), prep.seconds);
            prep.pool
        };
        let names = query_for(&pool, &task.name, &classes)?;
        let shape = Consolidated::new(pool, &names, Some(&classes))?;
        let (model, report) = train_baseline(&shape, task, kind, &self.config.train, ctx.seed, Some(source), ctx)?;
        metrics.insert("train_s".to_string(), report.seconds as f64);
        metrics.insert("model_params".to_string(), model.num_params() as f64);
        metrics.insert("model_bytes".to_string(), model.bytes() as f64);
        let trainable = trainable_params(kind, &model);
        Ok(Box::new(BaselineModel { name: self.name, config: self.config.clone(), source_hash: source.hash.clone(), model, trainable, trains_library: self.kind().trains_library(), metrics }))
    }

    fn load(&self, source: &Source, delta: &Delta) -> Result<Box<dyn TaskModel>> {
        delta.check(source, self.name)?;
        let classes: Vec<u32> = delta.tensor(&format!("{}.classes", self.name))?.to_vec1()?;
        let mut pool = self.shell(source)?;
        let names = query_for(&pool, "stored model", &classes)?;
        let missing = |k: &str| GraftError::Checkpoint { path: "delta".into(), msg: format!("missing tensor '{k}'") };
        let mut params = pool.library.params().clone();
        for n in pool.library_param_names() {
            let key = format!("{}.library.{n}", self.name);
            params.insert(n, delta.tensors.get(&key).ok_or_else(|| missing(&key))?.clone());
        }
        pool.library = Backbone::from_params(pool.library.spec().clone(), params, source.backbone.device())?;
        for e in pool.experts.iter_mut().filter(|e| names.contains(&e.name)) {
            let prefix = format!("{}.expert.{}.", self.name, e.name);
            let stored: ParamMap = delta.tensors.iter().filter_map(|(k, v)| k.strip_prefix(&prefix).map(|n| (n.to_string(), v.clone()))).collect();
            e.net = Backbone::from_params(e.net.spec().clone(), stored, source.backbone.device())?;
        }
        let model = Consolidated::new(Arc::new(pool), &names, Some(&classes))?;
        if model.classes.len() != delta.num_classes {
            return Err(GraftError::Checkpoint { path: "delta".into(), msg: format!("it lists {} classes but says {}", model.classes.len(), delta.num_classes) });
        }
        let trainable = trainable_params(self.kind(), &model);
        let metrics = BTreeMap::from([("model_params".to_string(), model.num_params() as f64), ("model_bytes".to_string(), model.bytes() as f64)]);
        Ok(Box::new(BaselineModel { name: self.name, config: self.config.clone(), source_hash: source.hash.clone(), model, trainable, trains_library: self.kind().trains_library(), metrics }))
    }
}

impl TaskModel for BaselineModel {
    fn method(&self) -> &str {
        self.name
    }

    fn num_classes(&self) -> usize {
        self.model.classes.len()
    }

    fn forward(&self, images: &Tensor) -> Result<Tensor> {
        self.model.forward(images)
    }

    /// Trainable: library part and experts, or the experts only (`poe-frozen-library`); stored:
    /// the class list and the whole model (library part and chosen experts, BN statistics
    /// included); interconnections: each expert reads the frozen library (`poe-frozen-library`),
    /// none where the library trains too; FLOPs of the consolidated model.
    fn footprint(&self) -> Footprint {
        Footprint {
            trainable_params: self.trainable,
            stored_bytes: 4 * self.model.classes.len() + self.model.bytes(),
            interconnections: self.attachments().count(),
            flops_per_image: self.model.flops_per_image(),
        }
    }

    /// The experts read the library where it stays frozen; nothing is frozen otherwise.
    fn attachments(&self) -> Attachments {
        if self.trains_library {
            Attachments::none()
        } else {
            self.model.experts_reading_library()
        }
    }

    fn delta_tensors(&self) -> Result<ParamMap> {
        let pool = &self.model.pool;
        let dev = pool.library.device();
        let mut out = ParamMap::new();
        out.insert(format!("{}.classes", self.name), Tensor::from_slice(&self.model.classes, self.model.classes.len(), dev)?);
        for n in pool.library_param_names() {
            out.insert(format!("{}.library.{n}", self.name), pool.library.param(&n)?.clone());
        }
        for &i in &self.model.experts {
            let e = &pool.experts[i];
            out.extend(e.net.params().iter().map(|(k, v)| (format!("{}.expert.{}.{k}", self.name, e.name), v.clone())));
        }
        Ok(out)
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn source_hash(&self) -> &str {
        &self.source_hash
    }

    fn metrics(&self) -> BTreeMap<String, f64> {
        self.metrics.clone()
    }
}
