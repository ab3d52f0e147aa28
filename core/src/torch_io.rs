//! Interoperation with PyTorch: import a torchvision/timm-layout state dict saved as safetensors
//! into a graft backbone, with the report PyTorch users know from `load_state_dict`
//! (missing / unexpected / mismatched keys), and export a backbone back to the same layout.
//!
//! In Python, a state dict becomes a safetensors file with
//! `safetensors.torch.save_file(model.state_dict(), "model.safetensors")` and is read back with
//! `model.load_state_dict(safetensors.torch.load_file("model.safetensors"))`.
//!
//! * Floating-point tensors of any width (f16, bf16, f32, f64) are converted to f32.
//! * BatchNorm's `num_batches_tracked` (int64) is accepted for every BN of the backbone and
//!   ignored (graft's BN momentum is fixed at 0.1, so PyTorch does not read it either); export
//!   writes it as an int64 zero scalar, so `load_state_dict(strict=True)` accepts the file.
//! * Strict import fails on the first problem found and lists *every* problem: each missing
//!   key with its expected shape, each unexpected key, each key whose shape differs (with both
//!   shapes) and each tensor that is not floating point.
//! * Non-strict import starts from a seeded random initialisation, takes every tensor that
//!   fits and returns the report. Unlike PyTorch, whose `strict=False` still fails on a shape
//!   mismatch, a mismatched tensor keeps its fresh initialisation and is reported: that is how a
//!   checkpoint with a different head (number of classes) is loaded for transfer.

use crate::backbone::{Backbone, BackboneSpec};
use crate::checkpoint::{sha256_hex, to_safetensors_bytes, write_atomic, KEY_BACKBONE};
use crate::error::{GraftError, Result};
use crate::params::ParamMap;
use candle_core::safetensors::Load;
use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// The suffix of BatchNorm's step counter in PyTorch state dicts.
pub const NUM_BATCHES_TRACKED: &str = "num_batches_tracked";

/// A key whose tensor has a different shape in the file than the backbone expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The state-dict key.
    pub key: String,
    /// Shape of the tensor in the file.
    pub file_shape: Vec<usize>,
    /// Shape the backbone expects.
    pub expected_shape: Vec<usize>,
}

/// What an import found, in PyTorch's terms. Every list is sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Keys the backbone needs that the file lacks, with the expected shape.
    pub missing: Vec<(String, Vec<usize>)>,
    /// Keys in the file the backbone has no use for.
    pub unexpected: Vec<String>,
    /// Keys present in both with different shapes.
    pub mismatched: Vec<ShapeMismatch>,
    /// Keys whose tensor is not floating point (and so cannot be a parameter), with the dtype.
    pub wrong_dtype: Vec<(String, String)>,
    /// Keys converted to f32 from another float dtype, with the original dtype.
    pub converted: Vec<(String, String)>,
    /// Number of tensors taken from the file.
    pub loaded: usize,
}

impl LoadReport {
    /// True when nothing is missing, unexpected, mismatched or of the wrong dtype.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty() && self.wrong_dtype.is_empty()
    }

    /// One line per problem, e.g. `size mismatch for 'fc.weight': shape [1000, 512] in the
    /// file, [10, 512] in the backbone`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (k, s) in &self.missing {
            out.push(format!("missing key '{k}' (expected shape {s:?})"));
        }
        for k in &self.unexpected {
            out.push(format!("unexpected key '{k}'"));
        }
        for m in &self.mismatched {
            out.push(format!(
                "size mismatch for '{}': shape {:?} in the file, {:?} in the backbone",
                m.key, m.file_shape, m.expected_shape
            ));
        }
        for (k, d) in &self.wrong_dtype {
            out.push(format!("key '{k}' has dtype {d}, expected a floating-point tensor"));
        }
        out
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} tensors loaded; missing keys: {}; unexpected keys: {}; size mismatches: {}",
            self.loaded,
            self.missing.len(),
            self.unexpected.len(),
            self.mismatched.len()
        )?;
        if !self.wrong_dtype.is_empty() {
            write!(f, "; wrong dtypes: {}", self.wrong_dtype.len())?;
        }
        for p in self.problems() {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// How [`import_state_dict`] treats problems and key prefixes.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Fail when anything is missing, unexpected, mismatched or of the wrong dtype (the error
    /// lists every problem). When false, the backbone is returned with the report.
    pub strict: bool,
    /// A prefix removed from every key that has it (e.g. `module.` from `DataParallel`
    /// checkpoints, `model.` from some training frameworks).
    pub strip_prefix: Option<String>,
    /// Seed of the initialisation of whatever the file does not provide (non-strict mode).
    pub seed: u64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self { strict: true, strip_prefix: None, seed: 0 }
    }
}

/// Imports the state dict in the safetensors file at `path` into a backbone described by
/// `spec` (see the module documentation for the rules).
pub fn import_state_dict(path: &Path, spec: BackboneSpec, opts: &ImportOptions, device: &Device) -> Result<(Backbone, LoadReport)> {
    let bytes = std::fs::read(path).map_err(|e| GraftError::io(path, e))?;
    import_state_dict_bytes(&bytes, path, spec, opts, device)
}

/// [`import_state_dict`] from bytes in memory; `origin` names the source in error messages.
pub fn import_state_dict_bytes(
    bytes: &[u8],
    origin: &Path,
    spec: BackboneSpec,
    opts: &ImportOptions,
    device: &Device,
) -> Result<(Backbone, LoadReport)> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
        GraftError::checkpoint(origin, format!("not a valid safetensors file ({} bytes; truncated or corrupt?): {e}", bytes.len()))
    })?;
    let (units, layers) = Backbone::describe(&spec)?;
    let expected: BTreeMap<String, Vec<usize>> = units.iter().flat_map(|u| u.unit.param_shapes()).collect();
    let bns: BTreeSet<&str> =
        layers.iter().filter(|l| l.kind == crate::backbone::LayerKind::BatchNorm).map(|l| l.name.as_str()).collect();
    let mut report = LoadReport::default();
    let mut params = ParamMap::new();
    let mut seen = BTreeSet::new();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    for file_key in names {
        let key = match &opts.strip_prefix {
            Some(p) => file_key.strip_prefix(p.as_str()).unwrap_or(&file_key).to_string(),
            None => file_key.clone(),
        };
        let view = st
            .tensor(&file_key)
            .map_err(|e| GraftError::checkpoint(origin, format!("tensor '{file_key}' cannot be read: {e}")))?;
        if let Some(bn) = key.strip_suffix(&format!(".{NUM_BATCHES_TRACKED}")) {
            if bns.contains(bn) {
                continue;
            }
        }
        let Some(want) = expected.get(&key) else {
            report.unexpected.push(key);
            continue;
        };
        seen.insert(key.clone());
        let dtype = view.dtype();
        use safetensors::Dtype as D;
        if !matches!(dtype, D::F16 | D::BF16 | D::F32 | D::F64) {
            report.wrong_dtype.push((key, format!("{dtype:?}")));
            continue;
        }
        if view.shape() != want.as_slice() {
            report.mismatched.push(ShapeMismatch { key, file_shape: view.shape().to_vec(), expected_shape: want.clone() });
            continue;
        }
        let t = view
            .load(device)
            .map_err(|e| GraftError::checkpoint(origin, format!("tensor '{file_key}' cannot be read: {e}")))?;
        if t.dtype() != DType::F32 {
            report.converted.push((key.clone(), format!("{dtype:?}")));
        }
        params.insert(key, t.to_dtype(DType::F32)?);
        report.loaded += 1;
    }
    report.missing = expected.iter().filter(|(k, _)| !seen.contains(*k)).map(|(k, s)| (k.clone(), s.clone())).collect();
    if opts.strict && !report.is_clean() {
        return Err(GraftError::checkpoint(
            origin,
            format!("state dict does not fit {} (strict import): {}", spec.id(), report.problems().join("; ")),
        ));
    }
    if params.len() < expected.len() {
        // Non-strict: whatever the file did not provide keeps a seeded fresh initialisation.
        let init = Backbone::init(spec.clone(), opts.seed, device)?;
        for (k, v) in init.params() {
            params.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let backbone = Backbone::from_params(spec, params, device)?;
    Ok((backbone, report))
}

/// An int64 zero `<bn>.num_batches_tracked` scalar for every BN of `backbone`: the buffer
/// PyTorch's `load_state_dict(strict=True)` asks for (graft's BN momentum is fixed, so its value
/// is never read).
pub fn bn_step_counters(backbone: &Backbone) -> Result<ParamMap> {
    let mut out = ParamMap::new();
    for bn in backbone.bn_names() {
        out.insert(format!("{bn}.{NUM_BATCHES_TRACKED}"), Tensor::new(0i64, &Device::Cpu)?);
    }
    Ok(out)
}

/// Whether `key` names a BN step counter (`….num_batches_tracked`).
pub fn is_bn_step_counter(key: &str) -> bool {
    key.strip_suffix(NUM_BATCHES_TRACKED).is_some_and(|k| k.ends_with('.'))
}

/// The backbone's parameters in PyTorch's state-dict layout: every parameter and BN buffer
/// under its torchvision name, plus [`bn_step_counters`].
pub fn state_dict(backbone: &Backbone) -> Result<ParamMap> {
    let mut out = ParamMap::new();
    for (k, v) in backbone.params() {
        out.insert(k.clone(), v.to_dtype(DType::F32)?.to_device(&Device::Cpu)?);
    }
    out.extend(bn_step_counters(backbone)?);
    Ok(out)
}

/// Writes [`state_dict`] to a safetensors file (atomically) that
/// `model.load_state_dict(safetensors.torch.load_file(path))` reads; returns its SHA-256. The
/// header metadata holds `format: pt` and the backbone spec (`graft.backbone`).
pub fn export_state_dict(backbone: &Backbone, path: &Path) -> Result<String> {
    export_state_dict_with(backbone, path, &BTreeMap::new())
}

/// [`export_state_dict`] with `extra` entries in the header metadata (e.g. the task's class
/// names); PyTorch ignores them.
pub fn export_state_dict_with(backbone: &Backbone, path: &Path, extra: &BTreeMap<String, String>) -> Result<String> {
    let mut meta = extra.clone();
    meta.insert("format".to_string(), "pt".to_string());
    let spec = serde_json::to_string(backbone.spec())
        .map_err(|e| GraftError::Backbone(format!("the spec cannot be written as JSON: {e}")))?;
    meta.insert(KEY_BACKBONE.to_string(), spec);
    let bytes = to_safetensors_bytes(&state_dict(backbone)?, &meta)?;
    write_atomic(path, &bytes)?;
    Ok(sha256_hex(&bytes))
}
