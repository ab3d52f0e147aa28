//! Frozen-source feature caching: the taps a method reads, computed once per dataset.
//!
//! When the source is frozen and the inputs are deterministic (no augmentation), every epoch
//! would recompute the same source outputs. A method that only trains what comes after a tap
//! (linear probe, feature extractor, SNOW's side network) asks [`FeatureCache::taps`] for
//! those outputs instead: they are computed in batches once, stored as f32 or f16, and kept in
//! memory, optionally also on disk keyed by source hash + dataset content + taps + dtype, so the
//! next run on the same data skips the source entirely.
//!
//! A memory budget bounds the cache. When the features do not fit, [`CacheOutcome::OverBudget`]
//! says how much they need and how to raise the budget; the method then recomputes the source
//! each step (slower, same result).

use crate::backbone::{Backbone, NoHooks};
use crate::checkpoint::{read_safetensors, sha256_hex, write_safetensors};
use crate::data::ImageSet;
use crate::error::{GraftError, Result};
use crate::params::ParamMap;
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Environment variable overriding the default memory budget, in MiB.
pub const BUDGET_ENV: &str = "GRAFT_FEATURE_CACHE_MB";
/// Environment variable naming the on-disk cache directory (off when unset).
pub const DIR_ENV: &str = "GRAFT_FEATURE_CACHE_DIR";
/// Default memory budget: 2 GiB.
pub const DEFAULT_BUDGET_BYTES: u64 = 2 << 30;

/// Element type of cached features.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CacheDType {
    /// Exact: the features are bit-identical to a fresh forward pass.
    #[default]
    F32,
    /// Half the memory; features are rounded to half precision (about 3 significant digits).
    F16,
}

impl CacheDType {
    fn dtype(self) -> DType {
        match self {
            CacheDType::F32 => DType::F32,
            CacheDType::F16 => DType::F16,
        }
    }
    fn bytes(self) -> u64 {
        match self {
            CacheDType::F32 => 4,
            CacheDType::F16 => 2,
        }
    }
}

/// How frozen-source features are cached.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureCache {
    /// Whether caching is on at all (off: methods recompute the source every step).
    pub enabled: bool,
    /// Storage type of the cached tensors.
    pub dtype: CacheDType,
    /// Most bytes one call may hold in memory.
    pub budget_bytes: u64,
    /// Directory of the on-disk cache; `None` keeps features in memory only.
    pub dir: Option<PathBuf>,
    /// Images per source forward while filling the cache.
    pub batch_size: usize,
}

impl Default for FeatureCache {
    /// f32, in memory only, [`DEFAULT_BUDGET_BYTES`] — overridden by `GRAFT_FEATURE_CACHE_MB`
    /// and `GRAFT_FEATURE_CACHE_DIR` when set.
    fn default() -> Self {
        let budget_bytes = std::env::var(BUDGET_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|mb| mb << 20)
            .unwrap_or(DEFAULT_BUDGET_BYTES);
        let dir = std::env::var_os(DIR_ENV).filter(|d| !d.is_empty()).map(PathBuf::from);
        Self { enabled: true, dtype: CacheDType::F32, budget_bytes, dir, batch_size: 256 }
    }
}

/// Cached tap outputs for every image of a set, in image order.
#[derive(Clone, Debug)]
pub struct TapFeatures {
    /// Tap name → `(n, ...)` tensor in the cache's dtype.
    pub taps: BTreeMap<String, Tensor>,
    /// Whether they were read from the on-disk cache.
    pub from_disk: bool,
}

impl TapFeatures {
    /// One tap's features, or an error naming the taps present.
    pub fn get(&self, tap: &str) -> Result<&Tensor> {
        self.taps.get(tap).ok_or_else(|| GraftError::UnknownTap {
            tap: tap.to_string(),
            available: self.taps.keys().cloned().collect(),
        })
    }
}

/// The result of asking for cached features.
#[derive(Clone, Debug)]
pub enum CacheOutcome {
    /// The features, ready to train from.
    Ready(TapFeatures),
    /// Caching is off, or the features would exceed the budget; the message says which and how
    /// to change it. The caller recomputes the source each step instead.
    OverBudget(String),
}

impl FeatureCache {
    /// Caching switched off.
    pub fn disabled() -> Self {
        Self { enabled: false, ..Self::default() }
    }

    /// Bytes the features of `taps` for `n` images take in this cache's dtype.
    pub fn bytes_needed(&self, backbone: &Backbone, n: usize, taps: &[&str]) -> Result<u64> {
        let mut per_image = 0u64;
        for t in taps {
            per_image += backbone.tap_shape(t)?.iter().product::<usize>() as u64;
        }
        Ok(per_image * n as u64 * self.dtype.bytes())
    }

    /// The outputs of `taps` for every image of `images`, from disk, or computed with the frozen
    /// `backbone` (whose checkpoint hash is `source_hash`) in batches.
    pub fn taps(&self, backbone: &Backbone, source_hash: &str, images: &ImageSet, taps: &[&str]) -> Result<CacheOutcome> {
        if taps.is_empty() {
            return Err(GraftError::Backbone("feature cache: no taps requested".into()));
        }
        let last = taps.iter().map(|t| backbone.tap_index(t)).collect::<Result<Vec<_>>>()?;
        if !self.enabled {
            return Ok(CacheOutcome::OverBudget("feature caching is off".into()));
        }
        let needed = self.bytes_needed(backbone, images.len(), taps)?;
        if needed > self.budget_bytes {
            return Ok(CacheOutcome::OverBudget(format!(
                "features of taps {taps:?} for {} images need {} MiB as {:?}, over the cache budget of {} MiB; \
                 recomputing the source every step instead (set {BUDGET_ENV} to a larger budget in MiB, \
                 or use the f16 cache dtype)",
                images.len(),
                needed >> 20,
                self.dtype,
                self.budget_bytes >> 20
            )));
        }
        let key = self.key(source_hash, images, taps);
        let file = self.dir.as_ref().map(|d| d.join(format!("features-{}.safetensors", &key[..32])));
        if let Some(f) = &file {
            if f.exists() {
                match self.read(f, backbone, images.len(), taps, &key) {
                    Ok(taps) => return Ok(CacheOutcome::Ready(TapFeatures { taps, from_disk: true })),
                    // A bad cache file is only a cache miss: recompute and overwrite it.
                    Err(e) => eprintln!("warning: ignoring feature cache {}: {e}", f.display()),
                }
            }
        }
        let deepest = taps[last.iter().enumerate().max_by_key(|(_, i)| **i).map(|(k, _)| k).unwrap_or(0)];
        let computed = self.compute(backbone, images, taps, deepest)?;
        if let Some(f) = &file {
            if let Some(dir) = f.parent() {
                std::fs::create_dir_all(dir).map_err(|e| GraftError::io(dir, e))?;
            }
            let mut meta = BTreeMap::new();
            meta.insert("graft.kind".to_string(), "features".to_string());
            meta.insert("graft.features.key".to_string(), key.clone());
            meta.insert("graft.features.source".to_string(), source_hash.to_string());
            write_safetensors(f, &computed, &meta)?;
        }
        Ok(CacheOutcome::Ready(TapFeatures { taps: computed, from_disk: false }))
    }

    /// SHA-256 over everything the features depend on.
    fn key(&self, source_hash: &str, images: &ImageSet, taps: &[&str]) -> String {
        let mut bytes = Vec::with_capacity(images.images.len() * 4 + 256);
        let head = format!(
            "graft-features-v1|{source_hash}|{}x{}x{}x{}|{taps:?}|{:?}|",
            images.len(),
            images.channels,
            images.height,
            images.width,
            self.dtype
        );
        bytes.extend_from_slice(head.as_bytes());
        for v in &images.images {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        sha256_hex(&bytes)
    }

    fn compute(&self, backbone: &Backbone, images: &ImageSet, taps: &[&str], deepest: &str) -> Result<ParamMap> {
        let device = backbone.device().clone();
        let n = images.len();
        let mut parts: BTreeMap<String, Vec<Tensor>> = taps.iter().map(|t| (t.to_string(), Vec::new())).collect();
        let bs = self.batch_size.max(1);
        let mut i = 0;
        while i < n {
            let len = bs.min(n - i);
            let ids: Vec<usize> = (i..i + len).collect();
            let (x, _) = images.batch(&ids, &device)?;
            let out = backbone.run(&x, None, deepest, taps, &NoHooks)?;
            for (name, t) in out.taps {
                if let Some(p) = parts.get_mut(&name) {
                    p.push(t.detach().to_dtype(self.dtype.dtype())?);
                }
            }
            i += len;
        }
        let mut result = ParamMap::new();
        for (name, p) in parts {
            let t = if p.is_empty() {
                let mut shape = vec![0];
                shape.extend(backbone.tap_shape(&name)?);
                Tensor::zeros(shape, self.dtype.dtype(), &device)?
            } else {
                Tensor::cat(&p, 0)?
            };
            result.insert(name, t);
        }
        Ok(result)
    }

    fn read(&self, file: &std::path::Path, backbone: &Backbone, n: usize, taps: &[&str], key: &str) -> Result<ParamMap> {
        let st = read_safetensors(file, &Device::Cpu)?;
        if st.metadata.get("graft.features.key").map(String::as_str) != Some(key) {
            return Err(GraftError::checkpoint(file, "its key does not match this source, dataset and taps"));
        }
        let mut out = ParamMap::new();
        for t in taps {
            let mut shape = vec![n];
            shape.extend(backbone.tap_shape(t)?);
            let v = st.tensors.get(*t).ok_or_else(|| GraftError::checkpoint(file, format!("no tensor '{t}'")))?;
            if v.dims() != shape.as_slice() || v.dtype() != self.dtype.dtype() {
                return Err(GraftError::checkpoint(
                    file,
                    format!("tensor '{t}' is {:?} {:?}, expected {shape:?} {:?}", v.dtype(), v.dims(), self.dtype.dtype()),
                ));
            }
            out.insert(t.to_string(), v.to_device(backbone.device())?);
        }
        Ok(out)
    }
}
