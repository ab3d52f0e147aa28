//! Safetensors checkpoints: atomic writes, validated reads, and source checkpoints whose header
//! metadata carries the backbone spec and provenance.

use crate::backbone::{Backbone, BackboneSpec};
use crate::error::{GraftError, Result};
use crate::params::ParamMap;
use candle_core::safetensors::Load;
use candle_core::Device;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The graft version written into every checkpoint.
pub const GRAFT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Metadata key naming what a checkpoint holds (`source` or `delta`).
pub const KEY_KIND: &str = "graft.kind";
/// Metadata key of the graft version that wrote the file.
pub const KEY_VERSION: &str = "graft.version";
/// Metadata key of a source's backbone spec (JSON).
pub const KEY_BACKBONE: &str = "graft.backbone";
/// Metadata key of a source's provenance (JSON).
pub const KEY_PROVENANCE: &str = "graft.provenance";
/// Metadata key of the SHA-256 of a checkpoint's tensor data (everything after the header),
/// written into every checkpoint graft saves and checked on every read, so damaged data is
/// refused instead of used.
pub const KEY_DATA_SHA256: &str = "graft.data_sha256";

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed to disk,
/// then renamed over the destination. A crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| GraftError::io(dir, e))?;
    let file_name = path.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_else(|| "checkpoint".into());
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp: PathBuf = dir.join(format!(".{file_name}.{}.{unique}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(GraftError::io(path, e));
    }
    Ok(())
}

/// Removes the temporary files that [`write_atomic`] left under `dir` (recursively) when its
/// process was killed mid-write: `.<name>.<pid>.<n>.tmp` whose process no longer runs (checked
/// through `/proc`; where that cannot be read nothing is removed). Returns the files removed.
pub fn remove_stale_temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    if !Path::new("/proc/self").exists() {
        return removed;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return removed };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            removed.extend(remove_stale_temp_files(&path));
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else { continue };
        let mut parts = stem.rsplitn(3, '.');
        let (_unique, pid) = (parts.next(), parts.next().and_then(|p| p.parse::<u32>().ok()));
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() && std::fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    removed
}

/// Serialises tensors and string metadata to safetensors bytes, adding the data's SHA-256 under
/// [`KEY_DATA_SHA256`]. The header lists metadata keys and tensors in sorted order, so the same
/// content always gives the same bytes (and hash).
pub fn to_safetensors_bytes(tensors: &ParamMap, metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    serialize(tensors, metadata, true)
}

/// The safetensors bytes of `tensors` and `metadata`, with the data's SHA-256 added when
/// `data_hash`.
fn serialize(tensors: &ParamMap, metadata: &BTreeMap<String, String>, data_hash: bool) -> Result<Vec<u8>> {
    use safetensors::View;
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, t) in tensors {
        let t = t.contiguous()?;
        let bytes = View::data(&t);
        let start = data.len();
        data.extend_from_slice(&bytes);
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": format!("{:?}", View::dtype(&t)),
                "shape": t.dims(),
                "data_offsets": [start, data.len()],
            }),
        );
    }
    let mut meta: serde_json::Map<String, serde_json::Value> =
        metadata.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    if data_hash {
        meta.insert(KEY_DATA_SHA256.into(), serde_json::Value::String(sha256_hex(&data)));
    }
    if !meta.is_empty() {
        header.insert("__metadata__".into(), serde_json::Value::Object(meta));
    }
    let mut header_bytes = serde_json::to_vec(&serde_json::Value::Object(header))
        .map_err(|e| GraftError::Data(format!("cannot serialise safetensors header: {e}")))?;
    while header_bytes.len() % 8 != 0 {
        header_bytes.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + header_bytes.len() + data.len());
    out.extend_from_slice(&(header_bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(&data);
    Ok(out)
}

/// Writes tensors and metadata to a safetensors file atomically; returns the file's SHA-256.
pub fn write_safetensors(path: &Path, tensors: &ParamMap, metadata: &BTreeMap<String, String>) -> Result<String> {
    let bytes = to_safetensors_bytes(tensors, metadata)?;
    write_atomic(path, &bytes)?;
    Ok(sha256_hex(&bytes))
}

/// The content of a safetensors file.
pub struct SafetensorsFile {
    /// Tensors by name, on the requested device.
    pub tensors: ParamMap,
    /// Header metadata.
    pub metadata: BTreeMap<String, String>,
    /// SHA-256 of the whole file.
    pub hash: String,
}

/// The first `n` characters of `s` (all of it when shorter): a hash shortened for a message,
/// safe on any text a file may hold in its place.
pub fn abbrev(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// Reads a safetensors file from memory; `path` is only used in error messages.
pub fn parse_safetensors(bytes: &[u8], path: &Path, device: &Device) -> Result<SafetensorsFile> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
        GraftError::checkpoint(path, format!("not a valid safetensors file ({} bytes; truncated or corrupt?): {e}", bytes.len()))
    })?;
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| GraftError::checkpoint(path, format!("unreadable header: {e}")))?;
    let metadata: BTreeMap<String, String> =
        header.metadata().clone().unwrap_or_default().into_iter().collect();
    if let Some(recorded) = metadata.get(KEY_DATA_SHA256) {
        // The header parsed, so its length prefix is valid and the data follows it.
        let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        let actual = sha256_hex(&bytes[8 + header_len..]);
        if &actual != recorded {
            return Err(GraftError::checkpoint(
                path,
                format!(
                    "its tensor data is damaged: the data hashes to {} but the header recorded {} when it was written; \
                     the file cannot be trusted — delete it and re-create it (pretrain the source or rerun the task again)",
                    &actual[..12],
                    abbrev(recorded, 12)
                ),
            ));
        }
    }
    let mut tensors = ParamMap::new();
    for (name, view) in st.tensors() {
        let t = view
            .load(device)
            .map_err(|e| GraftError::checkpoint(path, format!("tensor '{name}' cannot be read: {e}")))?;
        tensors.insert(name, t);
    }
    Ok(SafetensorsFile { tensors, metadata, hash: sha256_hex(bytes) })
}

/// Reads a safetensors file, naming the file in every error.
pub fn read_safetensors(path: &Path, device: &Device) -> Result<SafetensorsFile> {
    let bytes = std::fs::read(path).map_err(|e| GraftError::io(path, e))?;
    parse_safetensors(&bytes, path, device)
}

/// Returns metadata `key` or an error naming the file and the key.
pub fn require_meta<'a>(meta: &'a BTreeMap<String, String>, key: &str, path: &Path) -> Result<&'a str> {
    meta.get(key).map(String::as_str).ok_or_else(|| {
        GraftError::checkpoint(path, format!("header metadata has no '{key}' (is this a graft checkpoint?)"))
    })
}

/// Metadata `key` read as JSON, `None` when absent; an error names the file, the key and what
/// it should be (`what`, e.g. "a valid backbone spec").
pub fn optional_meta_json<T: serde::de::DeserializeOwned>(
    meta: &BTreeMap<String, String>,
    key: &str,
    path: &Path,
    what: &str,
) -> Result<Option<T>> {
    meta.get(key)
        .map(|json| serde_json::from_str(json).map_err(|e| GraftError::checkpoint(path, format!("metadata '{key}' is not {what}: {e}"))))
        .transpose()
}

/// Checks that `meta` marks a checkpoint of kind `expected`.
pub fn require_kind(meta: &BTreeMap<String, String>, expected: &str, path: &Path) -> Result<()> {
    let kind = require_meta(meta, KEY_KIND, path)?;
    if kind != expected {
        return Err(GraftError::checkpoint(path, format!("holds a graft '{kind}', expected a '{expected}'")));
    }
    Ok(())
}

/// Where a source backbone came from: what it was trained on and how well it did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Provenance {
    /// Description of the training data (dataset and derivation).
    pub dataset: String,
    /// Training epochs.
    pub epochs: usize,
    /// Accuracy on the dataset's test split.
    pub test_accuracy: f32,
    /// Seed of the training run.
    pub seed: u64,
    /// graft version that trained it.
    pub graft_version: String,
}

/// A frozen source backbone plus its identity (content hash) and provenance.
#[derive(Clone)]
pub struct Source {
    /// The frozen backbone.
    pub backbone: Backbone,
    /// SHA-256 of the source checkpoint's bytes; task models record it.
    pub hash: String,
    /// How it was trained.
    pub provenance: Provenance,
}

impl Source {
    fn metadata(backbone: &Backbone, provenance: &Provenance) -> Result<BTreeMap<String, String>> {
        let mut meta = BTreeMap::new();
        meta.insert(KEY_KIND.into(), "source".into());
        meta.insert(KEY_VERSION.into(), GRAFT_VERSION.into());
        meta.insert(KEY_BACKBONE.into(), serde_json::to_string(backbone.spec()).expect("spec serialises"));
        meta.insert(KEY_PROVENANCE.into(), serde_json::to_string(provenance).expect("provenance serialises"));
        Ok(meta)
    }

    /// Wraps an in-memory backbone. Its hash, the source's identity, is the SHA-256 of its
    /// checkpoint without the data hash [`KEY_DATA_SHA256`] (so sources saved before checkpoints
    /// carried one keep their identity, and their deltas keep loading).
    pub fn new(backbone: Backbone, provenance: Provenance) -> Result<Self> {
        let bytes = serialize(backbone.params(), &Self::metadata(&backbone, &provenance)?, false)?;
        Ok(Self { backbone, hash: sha256_hex(&bytes), provenance })
    }

    /// Saves the source checkpoint atomically (with its data hash). Beside the parameters it
    /// holds every BN's `num_batches_tracked`, so PyTorch's `load_state_dict(strict=True)`
    /// takes the file as it is; the counters are not part of the source's identity.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = self.backbone.params().clone();
        tensors.extend(crate::torch_io::bn_step_counters(&self.backbone)?);
        write_safetensors(path, &tensors, &Self::metadata(&self.backbone, &self.provenance)?)?;
        Ok(())
    }

    /// Loads a source checkpoint, checking the spec and every tensor name, shape and dtype.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| GraftError::io(path, e))?;
        Self::from_bytes(&bytes, path, device)
    }

    /// Reads a source checkpoint from memory, checked as [`Source::load`] checks a file; `path`
    /// names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path, device: &Device) -> Result<Self> {
        let file = parse_safetensors(bytes, path, device)?;
        require_kind(&file.metadata, "source", path)?;
        let spec_json = require_meta(&file.metadata, KEY_BACKBONE, path)?;
        let spec: BackboneSpec = serde_json::from_str(spec_json)
            .map_err(|e| GraftError::checkpoint(path, format!("metadata '{KEY_BACKBONE}' is not a valid backbone spec: {e}")))?;
        let provenance: Provenance = match file.metadata.get(KEY_PROVENANCE) {
            Some(p) => serde_json::from_str(p)
                .map_err(|e| GraftError::checkpoint(path, format!("metadata '{KEY_PROVENANCE}' is invalid: {e}")))?,
            None => Provenance::default(),
        };
        // The identity leaves out the data hash (checked on reading above) and the BN step
        // counters: the bytes the checkpoint would have without them, which is the file itself
        // for checkpoints written before either was added.
        let counters = file.tensors.keys().any(|k| crate::torch_io::is_bn_step_counter(k));
        let tensors: ParamMap =
            file.tensors.into_iter().filter(|(k, _)| !crate::torch_io::is_bn_step_counter(k)).collect();
        let hash = if file.metadata.contains_key(KEY_DATA_SHA256) || counters {
            let mut meta = file.metadata.clone();
            meta.remove(KEY_DATA_SHA256);
            sha256_hex(&serialize(&tensors, &meta, false)?)
        } else {
            file.hash
        };
        let backbone = Backbone::from_params(spec, tensors, device)
            .map_err(|e| GraftError::checkpoint(path, e.to_string()))?;
        Ok(Self { backbone, hash, provenance })
    }

    /// A short form of the hash for names and tables.
    pub fn short_hash(&self) -> &str {
        &self.hash[..12.min(self.hash.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::abbrev;

    #[test]
    fn abbrev_counts_characters_not_bytes() {
        assert_eq!(abbrev("abcdef", 3), "abc");
        assert_eq!(abbrev("ab", 12), "ab");
        assert_eq!(abbrev("a\u{20ac}\u{e9}z", 3), "a\u{20ac}\u{e9}");
        assert_eq!(abbrev("", 4), "");
    }
}
