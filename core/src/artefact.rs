//! Reusable per-source artefacts cached on disk: something a method prepares once for a source
//! (Pool of Experts' expert pool) and reuses across tasks and seeds.
//!
//! An artefact is a directory of files the method writes. It is keyed by the method's artefact
//! kind, the source's SHA-256 and the artefact's own config (JSON; everything that changes its
//! content, the seed included), and lives at `<dir>/<kind>-<first 32 hex digits of the key>/`
//! with a `artefact.json` manifest (kind, source hash, config, build seconds). It is built in a
//! temporary directory and renamed into place, so a crash or a concurrent builder never leaves
//! a half-written artefact behind. Without a cache directory every request builds a fresh
//! artefact in a temporary directory.

use crate::checkpoint::sha256_hex;
use crate::error::{GraftError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Environment variable naming the artefact cache directory (off when unset).
pub const DIR_ENV: &str = "GRAFT_ARTEFACT_DIR";
/// File name of the manifest inside an artefact directory.
pub const MANIFEST: &str = "artefact.json";

/// Where prepared artefacts are cached.
#[derive(Clone, Debug, PartialEq)]
pub struct ArtefactCache {
    /// Directory of the cache; `None`: build every time, keep nothing.
    pub dir: Option<PathBuf>,
}

impl Default for ArtefactCache {
    /// The directory named by `GRAFT_ARTEFACT_DIR`, or no caching when it is unset.
    fn default() -> Self {
        Self { dir: std::env::var_os(DIR_ENV).filter(|d| !d.is_empty()).map(PathBuf::from) }
    }
}

/// The manifest stored with an artefact.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The artefact kind, e.g. `poe-pool`.
    pub kind: String,
    /// SHA-256 of the source it was prepared from.
    pub source_hash: String,
    /// The artefact's config.
    pub config: serde_json::Value,
    /// The full cache key (SHA-256 hex).
    pub key: String,
    /// Wall-clock seconds the build took.
    pub build_seconds: f64,
}

/// An artefact directory, ready to read.
#[derive(Clone, Debug)]
pub struct Artefact {
    /// The directory holding the artefact's files.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Whether it came from the cache (`false`: built by this call).
    pub reused: bool,
    /// Seconds this call spent building it (0 when reused).
    pub seconds_here: f64,
    /// Keeps a temporary directory alive for as long as the artefact is used (no cache).
    _temp: Option<std::sync::Arc<TempDir>>,
}

/// A directory removed when dropped.
#[derive(Debug)]
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The cache key of an artefact: SHA-256 over kind, source hash and config JSON (serde_json
/// writes object keys sorted, so equal configs give equal keys).
pub fn key(kind: &str, source_hash: &str, config: &serde_json::Value) -> String {
    sha256_hex(format!("graft-artefact-v1|{kind}|{source_hash}|{config}").as_bytes())
}

fn unique_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}.{n}", std::process::id())
}

impl ArtefactCache {
    /// No caching: every request builds.
    pub fn disabled() -> Self {
        Self { dir: None }
    }

    /// A cache in `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: Some(dir.into()) }
    }

    /// Where the artefact of this kind, source and config lives (or would live) in the cache.
    pub fn path(&self, kind: &str, source_hash: &str, config: &serde_json::Value) -> Option<PathBuf> {
        let k = key(kind, source_hash, config);
        self.dir.as_ref().map(|d| d.join(format!("{kind}-{}", &k[..32])))
    }

    /// The cached artefact for (`kind`, `source_hash`, `config`), or a new one made by `build`,
    /// which writes its files into the directory it is given. A cached directory whose manifest
    /// does not match (another key, unreadable) is rebuilt.
    pub fn get_or_build(
        &self,
        kind: &str,
        source_hash: &str,
        config: &serde_json::Value,
        build: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Artefact> {
        let k = key(kind, source_hash, config);
        let final_dir = self.path(kind, source_hash, config);
        if let Some(dir) = &final_dir {
            if let Ok(manifest) = read_manifest(dir) {
                if manifest.key == k {
                    return Ok(Artefact { dir: dir.clone(), manifest, reused: true, seconds_here: 0.0, _temp: None });
                }
            }
        }
        let parent = match &self.dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir(),
        };
        let tmp = parent.join(format!(".{kind}-{}.{}.tmp", &k[..32], unique_suffix()));
        std::fs::create_dir_all(&tmp).map_err(|e| GraftError::io(&tmp, e))?;
        let guard = TempDir(tmp.clone());
        let start = Instant::now();
        build(&tmp)?;
        let manifest = Manifest {
            kind: kind.to_string(),
            source_hash: source_hash.to_string(),
            config: config.clone(),
            key: k,
            build_seconds: start.elapsed().as_secs_f64(),
        };
        let text = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
        crate::checkpoint::write_atomic(&tmp.join(MANIFEST), text.as_bytes())?;
        let seconds_here = manifest.build_seconds;
        let Some(dir) = final_dir else {
            return Ok(Artefact { dir: tmp, manifest, reused: false, seconds_here, _temp: Some(std::sync::Arc::new(guard)) });
        };
        if dir.exists() {
            // A stale or foreign directory under our name: move it aside first.
            let old = parent.join(format!(".{kind}-stale.{}", unique_suffix()));
            std::fs::rename(&dir, &old).map_err(|e| GraftError::io(&dir, e))?;
            let _ = std::fs::remove_dir_all(&old);
        }
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => {
                std::mem::forget(guard);
                Ok(Artefact { dir, manifest, reused: false, seconds_here, _temp: None })
            }
            // Another process finished the same artefact first: use theirs.
            Err(_) if read_manifest(&dir).is_ok_and(|m| m.key == manifest.key) => {
                Ok(Artefact { dir, manifest, reused: false, seconds_here, _temp: None })
            }
            Err(e) => Err(GraftError::io(&dir, e)),
        }
    }
}

/// Reads the manifest of the artefact in `dir`.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| GraftError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| GraftError::checkpoint(&path, format!("not an artefact manifest: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::cell::Cell;

    fn write(dir: &Path, text: &str) -> Result<()> {
        std::fs::write(dir.join("data.txt"), text).map_err(|e| GraftError::io(dir, e))
    }

    #[test]
    fn builds_once_per_source_and_config_then_reuses() {
        let root = std::env::temp_dir().join(format!("graft-artefact-test-{}", unique_suffix()));
        let cache = ArtefactCache::at(&root);
        let builds = Cell::new(0);
        let get = |source: &str, config: serde_json::Value| {
            cache
                .get_or_build("demo", source, &config, |d| {
                    builds.set(builds.get() + 1);
                    write(d, &format!("{source} {config}"))
                })
                .unwrap()
        };
        let a = get("aaa", json!({"seed": 0, "width": 1}));
        assert!(!a.reused && builds.get() == 1);
        assert_eq!(std::fs::read_to_string(a.dir.join("data.txt")).unwrap(), "aaa {\"seed\":0,\"width\":1}");
        let again = get("aaa", json!({"width": 1, "seed": 0}));
        assert!(again.reused && again.seconds_here == 0.0, "same key, reused");
        assert_eq!(again.dir, a.dir);
        assert_eq!(builds.get(), 1);
        get("bbb", json!({"seed": 0, "width": 1}));
        get("aaa", json!({"seed": 1, "width": 1}));
        assert_eq!(builds.get(), 3, "another source or config builds anew");
        // Nothing temporary is left next to the artefacts.
        let names: Vec<String> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("demo-")), "{names:?}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_failed_build_leaves_nothing_and_no_cache_builds_in_a_temporary_directory() {
        let root = std::env::temp_dir().join(format!("graft-artefact-fail-{}", unique_suffix()));
        let cache = ArtefactCache::at(&root);
        let err = cache
            .get_or_build("demo", "aaa", &json!({}), |_| Err(GraftError::Data("boom".into())))
            .unwrap_err();
        assert!(err.to_string().contains("boom"));
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
        let a = ArtefactCache::disabled().get_or_build("demo", "aaa", &json!({}), |d| write(d, "x")).unwrap();
        let dir = a.dir.clone();
        assert!(!a.reused && dir.join("data.txt").exists());
        drop(a);
        assert!(!dir.exists(), "the temporary artefact is removed with its last user");
        let _ = std::fs::remove_dir_all(&root);
    }
}
