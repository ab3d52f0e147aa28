//! Sources from checkpoint files made elsewhere: a graft source as it is, or a PyTorch state
//! dict (torchvision/timm layout, saved as safetensors) imported into a given architecture.
//!
//! An imported state dict becomes a [`Source`] whose provenance records the file's SHA-256 (not
//! its name), so the source's identity, and every delta made on it, follows the file's content
//! wherever it is moved.

use crate::backbone::{Backbone, BackboneSpec};
use crate::checkpoint::{sha256_hex, Provenance, Source, GRAFT_VERSION, KEY_KIND};
use crate::error::{GraftError, Result};
use crate::torch_io::{import_state_dict_bytes, ImportOptions, LoadReport};
use candle_core::Device;
use std::path::Path;

/// A source read from a checkpoint file.
pub struct ImportedSource {
    /// The source.
    pub source: Source,
    /// The state dict's import report; `None` for a graft source.
    pub report: Option<LoadReport>,
    /// SHA-256 of the file's bytes.
    pub file_sha256: String,
}

/// Whether `bytes` are a checkpoint graft wrote (its header names a `graft.kind`).
pub fn is_graft_checkpoint(bytes: &[u8]) -> bool {
    safetensors::SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().as_ref().map(|m| m.contains_key(KEY_KIND)))
        .unwrap_or(false)
}

/// The number of classes of the head a state dict holds for `spec`'s architecture: the head's
/// parameters are those whose shapes change with the number of classes, and the file's tensor
/// under such a key gives the count. `strip_prefix` is removed from the file's keys first.
pub fn infer_num_classes(bytes: &[u8], origin: &Path, spec: &BackboneSpec, strip_prefix: Option<&str>) -> Result<usize> {
    let shapes = |n: usize| -> Result<Vec<(String, Vec<usize>)>> {
        let (units, _) = Backbone::describe(&BackboneSpec { num_classes: n, ..spec.clone() })?;
        Ok(units.iter().flat_map(|u| u.unit.param_shapes()).collect())
    };
    let (two, three) = (shapes(2)?, shapes(3)?);
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
        GraftError::checkpoint(origin, format!("not a valid safetensors file ({} bytes; truncated or corrupt?): {e}", bytes.len()))
    })?;
    for ((key, a), (_, b)) in two.iter().zip(&three) {
        let Some(axis) = a.iter().zip(b).position(|(x, y)| x != y) else { continue };
        let file_key = match strip_prefix {
            Some(p) => format!("{p}{key}"),
            None => key.clone(),
        };
        let view = st.tensor(&file_key).or_else(|_| st.tensor(key)).map_err(|_| {
            GraftError::checkpoint(
                origin,
                format!("has no '{file_key}', the head of {}; cannot tell its number of classes (give it)", spec.id()),
            )
        })?;
        return view.shape().get(axis).copied().filter(|&n| n > 0).ok_or_else(|| {
            GraftError::checkpoint(origin, format!("'{file_key}' has shape {:?}; expected a class axis at {axis}", view.shape()))
        });
    }
    Err(GraftError::Backbone(format!("{} has no parameter that depends on the number of classes", spec.id())))
}

/// Reads the source in the checkpoint at `path`: a graft source (its architecture and input
/// shape must be `spec`'s) or a PyTorch state dict imported into `spec` under `opts` (strict:
/// every problem is an error listing them all). `spec.num_classes == 0` takes the head's size
/// from the file.
pub fn source_from_checkpoint(path: &Path, spec: &BackboneSpec, opts: &ImportOptions, device: &Device) -> Result<ImportedSource> {
    let bytes = std::fs::read(path).map_err(|e| GraftError::io(path, e))?;
    let file_sha256 = sha256_hex(&bytes);
    if is_graft_checkpoint(&bytes) {
        let source = Source::from_bytes(&bytes, path, device)?;
        let have = source.backbone.spec();
        if have.arch != spec.arch || have.input.shape() != spec.input.shape() {
            return Err(GraftError::checkpoint(
                path,
                format!(
                    "is a graft source of {} on {:?} inputs, not {} on {:?}",
                    have.id(),
                    have.input.shape(),
                    spec.id(),
                    spec.input.shape()
                ),
            ));
        }
        return Ok(ImportedSource { source, report: None, file_sha256 });
    }
    let mut spec = spec.clone();
    if spec.num_classes == 0 {
        spec.num_classes = infer_num_classes(&bytes, path, &spec, opts.strip_prefix.as_deref())?;
    }
    let (backbone, report) = import_state_dict_bytes(&bytes, path, spec, opts, device)?;
    let provenance = Provenance {
        dataset: format!("PyTorch state dict sha256 {} (imported; not trained or tested by graft)", &file_sha256[..12]),
        graft_version: GRAFT_VERSION.to_string(),
        ..Default::default()
    };
    Ok(ImportedSource { source: Source::new(backbone, provenance)?, report: Some(report), file_sha256 })
}
