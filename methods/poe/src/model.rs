//! `PoeModel`: a consolidated model as a [`TaskModel`]. Its delta is the query, not weights:
//! the oracle classes of its outputs (`poe.classes`) and the SHA-256 of the pool it reads
//! (`poe.pool_sha256`); the experts and the library stay in the pool.

use crate::config::PoeConfig;
use crate::pool::Consolidated;
use candle_core::{Device, Tensor};
use graft_core::{Attachments, Footprint, ParamMap, Result, TaskModel};
use std::collections::BTreeMap;

/// Delta tensor: the oracle class of every output, `(classes,)` u32.
pub const CLASSES: &str = "poe.classes";
/// Delta tensor: the pool's SHA-256 as 32 bytes, u8.
pub const POOL_SHA256: &str = "poe.pool_sha256";

/// A task model assembled from a pool without training.
pub struct PoeModel {
    /// The config, with `pool_seed` set to the seed the pool was prepared with.
    pub config: PoeConfig,
    /// SHA-256 of the oracle.
    pub source_hash: String,
    /// SHA-256 of the pool file.
    pub pool_hash: String,
    /// The assembled model.
    pub model: Consolidated,
    /// Figures recorded with the run (pool preparation and query times, size).
    pub metrics: BTreeMap<String, f64>,
}

/// The 32 bytes of a hex SHA-256 (`None` if it is not one).
pub fn hash_bytes(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect()
}

impl PoeModel {
    /// The delta's tensors for a model over `classes` reading the pool `pool_hash`.
    pub fn query_tensors(classes: &[u32], pool_hash: &str, device: &Device) -> Result<ParamMap> {
        let bytes = hash_bytes(pool_hash).ok_or_else(|| crate::PoeError::Pool(format!("'{pool_hash}' is not a SHA-256")))?;
        Ok(ParamMap::from([
            (CLASSES.to_string(), Tensor::from_slice(classes, classes.len(), device)?),
            (POOL_SHA256.to_string(), Tensor::from_vec(bytes, 32, device)?),
        ]))
    }
}

impl TaskModel for PoeModel {
    fn method(&self) -> &str {
        crate::NAME
    }

    fn num_classes(&self) -> usize {
        self.model.classes.len()
    }

    fn forward(&self, images: &Tensor) -> Result<Tensor> {
        self.model.forward(images)
    }

    /// Nothing is trained for a task (the pool is trained once per oracle): 0 trainable
    /// parameters; the stored bytes are the query's; interconnections: each chosen expert reads
    /// the frozen library's tap; FLOPs of the library plus the chosen experts.
    fn footprint(&self) -> Footprint {
        Footprint {
            trainable_params: 0,
            stored_bytes: 4 * self.model.classes.len() + 32,
            interconnections: self.attachments().count(),
            flops_per_image: self.model.flops_per_image(),
        }
    }

    /// Each chosen expert reads the library's output.
    fn attachments(&self) -> Attachments {
        self.model.experts_reading_library()
    }

    fn delta_tensors(&self) -> Result<ParamMap> {
        Self::query_tensors(&self.model.classes, &self.pool_hash, self.model.pool.library.device())
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
