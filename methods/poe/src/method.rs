//! The `poe` transfer method: `fit(oracle, task)` prepares (or reuses) the pool for the oracle
//! and answers the task as a query, without training.

use crate::config::{PoeConfig, PoolData};
use crate::error::PoeError;
use crate::model::{PoeModel, CLASSES, POOL_SHA256};
use crate::pool::{Consolidated, Pool, KIND, POOL_FILE};
use graft_core::artefact::{self, ArtefactCache};
use graft_core::checkpoint::sha256_hex;
use graft_core::{Delta, FitContext, GraftError, Result, Source, Task, TaskModel, TransferMethod};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Pools of this process by artefact key (`key:…`) and by pool hash (`hash:…`), so tasks and
/// reloads in one process share one pool.
fn pools() -> &'static Mutex<BTreeMap<String, Arc<Pool>>> {
    static POOLS: OnceLock<Mutex<BTreeMap<String, Arc<Pool>>>> = OnceLock::new();
    POOLS.get_or_init(Default::default)
}

/// A prepared pool and how it was obtained.
pub struct Prepared {
    /// The pool.
    pub pool: Arc<Pool>,
    /// Its SHA-256.
    pub hash: String,
    /// Whether it existed already (in this process or the artefact cache).
    pub reused: bool,
    /// Seconds spent preparing it in this call (0 when reused).
    pub seconds: f64,
}

/// Pool of Experts.
pub struct Poe {
    /// Its configuration.
    pub config: PoeConfig,
}

/// The oracle classes a task's labels stand for, one each, or why the task is no query.
pub fn task_classes(task: &Task) -> Result<Vec<u32>> {
    if task.class_ids.is_empty() {
        return Err(PoeError::NotAUnion { task: task.name.clone(), msg: "the task does not say which oracle classes it holds (its class_ids are empty)".into() }.into());
    }
    task.class_ids
        .iter()
        .enumerate()
        .map(|(label, ids)| match ids.as_slice() {
            [c] => Ok(*c),
            _ => Err(PoeError::NotAUnion {
                task: task.name.clone(),
                msg: format!("label {label} holds classes {ids:?}; a query's labels must be single oracle classes"),
            }
            .into()),
        })
        .collect()
}

/// The primitive tasks whose union is exactly `classes`, in pool order, or an error listing the
/// pool's primitive tasks and their classes.
pub fn query_for(pool: &Pool, task: &str, classes: &[u32]) -> Result<Vec<String>> {
    let listing = || pool.experts.iter().map(|e| format!("{} {:?}", e.name, e.classes)).collect::<Vec<_>>().join(", ");
    let mut names = Vec::new();
    for c in classes {
        let Some(e) = pool.experts.iter().find(|e| e.classes.contains(c)) else {
            return Err(PoeError::NotAUnion { task: task.into(), msg: format!("class {c} is in no primitive task; the pool has: {}", listing()) }.into());
        };
        if !names.contains(&e.name) {
            if let Some(missing) = e.classes.iter().find(|x| !classes.contains(x)) {
                return Err(PoeError::NotAUnion {
                    task: task.into(),
                    msg: format!("it holds part of primitive task '{}' but not its class {missing}; a query is a union of whole primitive tasks: {}", e.name, listing()),
                }
                .into());
            }
            names.push(e.name.clone());
        }
    }
    Ok(names)
}

/// The images a pool is distilled on: `task`'s training split for `data = "task"`, else the
/// training split of the configured dataset task built for the oracle's input.
pub fn pool_images(data: &PoolData, source: &Source, task: Option<&Task>, device: &candle_core::Device) -> Result<candle_core::Tensor> {
    match (data, task) {
        (PoolData::Task, Some(t)) => t.train.images_tensor(device),
        (PoolData::Task, None) => {
            Err(GraftError::Config { method: crate::NAME.into(), msg: "data = \"task\" needs a task to prepare the pool on".into() })
        }
        (PoolData::Dataset(spec), _) => {
            let dir = graft_datasets::data_dir().map_err(|e| GraftError::Data(e.to_string()))?;
            let t = spec.build(&dir, source.backbone.spec().input.shape()).map_err(|e| GraftError::Data(e.to_string()))?;
            t.train.images_tensor(device)
        }
    }
}

impl Poe {
    /// The artefact config the pool is keyed by (with the source hash): primitive tasks,
    /// library, experts, data (and, for task data, a hash of the images) and seed.
    pub fn pool_key_config(&self, task: Option<&Task>, seed: u64) -> serde_json::Value {
        let c = &self.config;
        let data_hash = match (&c.data, task) {
            (PoolData::Task, Some(t)) => {
                let bytes: Vec<u8> = t.train.images.iter().flat_map(|v| v.to_le_bytes()).collect();
                Some(sha256_hex(&bytes))
            }
            _ => None,
        };
        json!({"groups": c.groups, "library": c.library, "expert": c.expert, "data": c.data, "data_sha256": data_hash, "seed": seed})
    }

    /// The pool for `source` (built, or from this process or `cache`), prepared on the data
    /// the config names (`task`'s training images for `data = "task"`).
    pub fn prepare(&self, source: &Source, task: Option<&Task>, seed: u64, cache: &ArtefactCache, ctx: &mut FitContext) -> Result<Prepared> {
        let key_cfg = self.pool_key_config(task, seed);
        let key = artefact::key(KIND, &source.hash, &key_cfg);
        if let Some(pool) = pools().lock().expect("pool registry").get(&format!("key:{key}")).cloned() {
            let hash = pool.hash()?;
            return Ok(Prepared { pool, hash, reused: true, seconds: 0.0 });
        }
        let start = Instant::now();
        let art = cache.get_or_build(KIND, &source.hash, &key_cfg, |dir| {
            let images = pool_images(&self.config.data, source, task, &ctx.device)?;
            let pool = Pool::build(source, &images, &self.config.groups, &self.config.library, &self.config.expert, seed, ctx)?;
            pool.save(&dir.join(POOL_FILE))?;
            Ok(())
        })?;
        let pool = Pool::load(&art.dir.join(POOL_FILE), &ctx.device)?;
        pool.check_oracle(source)?;
        let pool = Arc::new(pool);
        let hash = pool.hash()?;
        let mut reg = pools().lock().expect("pool registry");
        reg.insert(format!("key:{key}"), pool.clone());
        reg.insert(format!("hash:{hash}"), pool.clone());
        Ok(Prepared { pool, hash, reused: art.reused, seconds: if art.reused { 0.0 } else { start.elapsed().as_secs_f64() } })
    }

    /// Registers a pool (loaded by the caller, e.g. from `graft poe build`'s directory) so task
    /// models referencing its hash load in this process.
    pub fn register(pool: Arc<Pool>) -> Result<String> {
        let hash = pool.hash()?;
        pools().lock().expect("pool registry").insert(format!("hash:{hash}"), pool);
        Ok(hash)
    }
}

impl TransferMethod for Poe {
    fn name(&self) -> &str {
        crate::NAME
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn fit(&self, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<Box<dyn TaskModel>> {
        task.validate()?;
        let classes = task_classes(task)?;
        let seed = self.config.pool_seed.unwrap_or(ctx.seed);
        let cache = ctx.artefacts.clone();
        let prep = self.prepare(source, Some(task), seed, &cache, ctx)?;
        let start = Instant::now();
        let names = query_for(&prep.pool, &task.name, &classes)?;
        let model = Consolidated::new(prep.pool.clone(), &names, Some(&classes))?;
        let query_ms = start.elapsed().as_secs_f64() * 1e3;
        let mut config = self.config.clone();
        config.pool_seed = Some(seed);
        let metrics = BTreeMap::from([
            ("pool_prep_s".to_string(), prep.seconds),
            ("pool_reused".to_string(), if prep.reused { 1.0 } else { 0.0 }),
            ("query_ms".to_string(), query_ms),
            ("model_params".to_string(), model.num_params() as f64),
            ("model_bytes".to_string(), model.bytes() as f64),
            ("experts".to_string(), names.len() as f64),
        ]);
        Ok(Box::new(PoeModel { config, source_hash: source.hash.clone(), pool_hash: prep.hash, model, metrics }))
    }

    fn load(&self, source: &Source, delta: &Delta) -> Result<Box<dyn TaskModel>> {
        delta.check(source, crate::NAME)?;
        let classes: Vec<u32> = delta.tensor(CLASSES)?.to_vec1()?;
        let bytes: Vec<u8> = delta.tensor_shaped(POOL_SHA256, &[32])?.to_vec1()?;
        let pool_hash: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let known = pools().lock().expect("pool registry").get(&format!("hash:{pool_hash}")).cloned();
        let pool = match known {
            Some(p) => p,
            None => {
                // The artefact cache, under the key the stored config gives.
                let seed = self.config.pool_seed.unwrap_or(0);
                let path = ArtefactCache::default().path(KIND, &source.hash, &self.pool_key_config(None, seed)).map(|d| d.join(POOL_FILE));
                let pool = match path.filter(|p| p.exists()) {
                    Some(p) => Pool::load(&p, source.backbone.device())?,
                    None => {
                        return Err(PoeError::Pool(format!(
                            "pool {pool_hash} is neither loaded in this process nor in the artefact cache ({}); load it with `graft poe query --pool <dir>` or set it",
                            artefact::DIR_ENV
                        ))
                        .into())
                    }
                };
                let p = Arc::new(pool);
                let h = Self::register(p.clone())?;
                if h != pool_hash {
                    return Err(PoeError::Pool(format!("the cached pool is {h}, the delta needs {pool_hash}")).into());
                }
                p
            }
        };
        pool.check_oracle(source)?;
        let names = query_for(&pool, "stored query", &classes)?;
        let model = Consolidated::new(pool, &names, Some(&classes))?;
        if model.classes.len() != delta.num_classes {
            return Err(PoeError::Pool(format!("the delta lists {} classes but says {}", model.classes.len(), delta.num_classes)).into());
        }
        let metrics = BTreeMap::from([
            ("model_params".to_string(), model.num_params() as f64),
            ("model_bytes".to_string(), model.bytes() as f64),
            ("experts".to_string(), names.len() as f64),
        ]);
        Ok(Box::new(PoeModel { config: self.config.clone(), source_hash: source.hash.clone(), pool_hash, model, metrics }))
    }
}
