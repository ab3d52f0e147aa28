//! Injection: the student's tensors replaced by reshaped tensors of their matched teacher units.
//!
//! A teacher tensor of shape `a` becomes a student tensor of shape `b` by
//! `reshape(T) = λ·crop_or_pad(T) + (1 − λ)·resize(T)` (paper: λ = 0.75), applied to every
//! dimension at once; equal shapes copy the tensor bit for bit. With `blend_top = k > 1` the
//! student tensor is the softmax blend `Σ_j softmax(score_j / τ)·reshape(T_j)` over the top-k
//! candidate units that have the tensor. Student tensors without a match keep the student's own
//! initialisation; BN running statistics are reset to mean 0 / variance 1 (paper) or taken from
//! the best-matched teacher BN.

use crate::matching::{match_layers, Matching, TensorSource};
use crate::score::matching_score;
use candle_core::{DType, Tensor};
use graft_core::backbone::BN_PARAMS;
use graft_core::{Backbone, GraftError, ParamMap, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

fn check_args(t: &[f32], from: &[usize], to: &[usize], what: &str) {
    assert_eq!(from.len(), to.len(), "{what}: shapes {from:?} and {to:?} have different ranks");
    assert_eq!(t.len(), from.iter().product::<usize>(), "{what}: {} values do not fill the shape {from:?}", t.len());
}

/// Row-major strides of `shape` (last dimension fastest).
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// Centre crop or zero pad of a row-major tensor from shape `from` to shape `to`, each dimension
/// independently: a dimension of size `a` becoming `b ≤ a` keeps the elements
/// `(a − b)/2 .. (a − b)/2 + b` (integer division); one becoming `b > a` places the source at
/// offset `(b − a)/2` and fills the rest with zeros.
///
/// # Panics
/// When `from` and `to` have different ranks or `t` does not hold `Π from` values.
pub fn crop_or_pad(t: &[f32], from: &[usize], to: &[usize]) -> Vec<f32> {
    check_args(t, from, to, "crop_or_pad");
    // For every dimension: output index → source index, or None in the zero padding.
    let maps: Vec<Vec<Option<usize>>> = from
        .iter()
        .zip(to)
        .map(|(&a, &b)| {
            (0..b)
                .map(|i| {
                    if a >= b {
                        Some(i + (a - b) / 2)
                    } else {
                        let offset = (b - a) / 2;
                        (i >= offset && i - offset < a).then(|| i - offset)
                    }
                })
                .collect()
        })
        .collect();
    let src_strides = strides(from);
    let mut out = vec![0.0f32; to.iter().product()];
    let mut idx = vec![0usize; to.len()];
    for o in out.iter_mut() {
        let src: Option<usize> = maps.iter().zip(&idx).zip(&src_strides).map(|((m, &i), &s)| m[i].map(|j| j * s)).sum();
        if let Some(src) = src {
            *o = t[src];
        }
        // Advance the row-major output index.
        for d in (0..to.len()).rev() {
            idx[d] += 1;
            if idx[d] < to[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// Linear resampling of one axis of a row-major `f64` tensor of `shape` to `b` elements.
fn resize_axis(x: &[f64], shape: &[usize], axis: usize, b: usize) -> Vec<f64> {
    let a = shape[axis];
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = vec![0.0f64; outer * b * inner];
    if a == 0 {
        return out;
    }
    // Half-pixel centres: output i samples the source at (i + 0.5)·a/b − 0.5, clamped.
    let taps: Vec<(usize, usize, f64)> = (0..b)
        .map(|i| {
            let src = ((i as f64 + 0.5) * a as f64 / b as f64 - 0.5).clamp(0.0, (a - 1) as f64);
            let lo = src.floor() as usize;
            let hi = (src.ceil() as usize).min(a - 1);
            (lo, hi, src - lo as f64)
        })
        .collect();
    for o in 0..outer {
        for (i, &(lo, hi, f)) in taps.iter().enumerate() {
            let dst = (o * b + i) * inner;
            let (s_lo, s_hi) = ((o * a + lo) * inner, (o * a + hi) * inner);
            for k in 0..inner {
                out[dst + k] = (1.0 - f) * x[s_lo + k] + f * x[s_hi + k];
            }
        }
    }
    out
}

fn resize_f64(t: &[f32], from: &[usize], to: &[usize]) -> Vec<f64> {
    let mut x: Vec<f64> = t.iter().map(|&v| f64::from(v)).collect();
    let mut shape = from.to_vec();
    for (axis, &b) in to.iter().enumerate() {
        if shape[axis] != b {
            x = resize_axis(&x, &shape, axis, b);
            shape[axis] = b;
        }
    }
    x
}

/// Separable linear interpolation of a row-major tensor from shape `from` to shape `to`, with
/// half-pixel centres: along a dimension of size `a → b`, output `i` reads the source at
/// `src = (i + 0.5)·a/b − 0.5` clamped to `[0, a − 1]`, interpolating between `⌊src⌋` and
/// `⌈src⌉`. `a → a` is the identity, `a → 1` takes the centre, `2 → 4` gives
/// `x0, ¾x0 + ¼x1, ¼x0 + ¾x1, x1`. Computed in f64, rounded once to f32.
///
/// # Panics
/// When `from` and `to` have different ranks or `t` does not hold `Π from` values.
pub fn resize(t: &[f32], from: &[usize], to: &[usize]) -> Vec<f32> {
    check_args(t, from, to, "resize");
    resize_f64(t, from, to).into_iter().map(|v| v as f32).collect()
}

/// `λ·crop_or_pad(t) + (1 − λ)·resize(t)` from shape `from` to shape `to`; equal shapes return
/// `t` unchanged (bit for bit, whatever λ).
///
/// # Panics
/// When `from` and `to` have different ranks or `t` does not hold `Π from` values.
pub fn reshape_tensor(t: &[f32], from: &[usize], to: &[usize], lambda: f64) -> Vec<f32> {
    check_args(t, from, to, "reshape_tensor");
    if from == to {
        return t.to_vec();
    }
    let cropped = crop_or_pad(t, from, to);
    let resized = resize_f64(t, from, to);
    cropped.iter().zip(&resized).map(|(&c, &r)| (lambda * f64::from(c) + (1.0 - lambda) * r) as f32).collect()
}

/// How injection treats the student's tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InjectOptions {
    /// λ in `λ·crop_or_pad + (1 − λ)·resize`, in `[0, 1]`. paper: 0.75.
    pub lambda: f64,
    /// Candidate teacher units blended per student tensor; 1 takes the best match only.
    /// paper: 1 (blending is a graft extension).
    pub blend_top: usize,
    /// Softmax temperature τ over the candidates' scores (unitless, > 0) when `blend_top > 1`.
    /// graft default: 0.1.
    pub blend_temperature: f64,
    /// Reset the student's BN running statistics to mean 0 / variance 1; otherwise they are
    /// reshaped from the best-matched teacher BN like the other tensors. paper: reset.
    pub reset_bn_stats: bool,
    /// Student parameter names that keep the student's own initialisation (e.g. the task head
    /// `fc.weight`, `fc.bias`). Every name must be a student parameter.
    pub skip: Vec<String>,
}

impl Default for InjectOptions {
    fn default() -> Self {
        Self { lambda: 0.75, blend_top: 1, blend_temperature: 0.1, reset_bn_stats: true, skip: Vec::new() }
    }
}

fn config_error(msg: String) -> GraftError {
    GraftError::Config { method: "tli".into(), msg }
}

impl InjectOptions {
    /// Checks `lambda ∈ [0, 1]`, `blend_top ≥ 1` and a finite `blend_temperature > 0`.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.lambda) {
            return Err(config_error(format!("lambda must be in [0, 1] (paper: 0.75), got {}", self.lambda)));
        }
        if self.blend_top == 0 {
            return Err(config_error("blend_top must be at least 1 (1 = best match only)".into()));
        }
        if !(self.blend_temperature.is_finite() && self.blend_temperature > 0.0) {
            return Err(config_error(format!(
                "blend_temperature must be a finite number above 0 (default 0.1), got {}",
                self.blend_temperature
            )));
        }
        Ok(())
    }
}

/// Where one student tensor's injected value came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Reshape {
    /// Same shape as the teacher tensor: copied bit for bit.
    Copy,
    /// `λ·crop_or_pad + (1 − λ)·resize` from the teacher's shape to the student's.
    CropPadResize {
        /// Teacher shape.
        from: Vec<usize>,
        /// Student shape.
        to: Vec<usize>,
    },
    /// Softmax blend of several reshaped teacher tensors.
    Blend {
        /// Each teacher tensor with its softmax weight, best match first.
        sources: Vec<(String, f64)>,
    },
    /// No teacher tensor of this role in a same-class unit: the student's value is kept.
    Unmatched,
    /// Listed in [`InjectOptions::skip`]: the student's value is kept.
    Skipped,
    /// A BN running statistic reset to 0 (mean) or 1 (variance).
    Reset,
}

/// The report line of one student tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct InjectedTensor {
    /// Student parameter (or BN buffer) name.
    pub student: String,
    /// The teacher tensor it was taken from (the best one when blending); `None` when the
    /// student's value was kept or reset.
    pub teacher: Option<String>,
    /// The match score of `teacher`'s unit for the student's unit; 0 when `teacher` is `None`.
    pub score: f64,
    /// How the value was obtained.
    pub how: Reshape,
}

/// The result of [`inject`].
#[derive(Clone)]
pub struct Injected {
    /// The student with the injected tensors (a new backbone on the student's spec and device).
    pub backbone: Backbone,
    /// One line per student tensor (parameters and BN buffers), units in forward order.
    pub report: Vec<InjectedTensor>,
    /// The TLI score of the teacher for the student ([`matching_score`]).
    pub score: f64,
}

/// A tensor's values as a flat f32 vector.
fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// The student value built from `sources` (non-empty, best first) for a student tensor of shape
/// `to`.
fn transfer(teacher: &Backbone, sources: &[TensorSource], to: &[usize], opts: &InjectOptions) -> Result<(Vec<f32>, Reshape)> {
    let read = |s: &TensorSource| -> Result<(Vec<f32>, Vec<usize>)> {
        let t = teacher.param(&s.teacher)?;
        Ok((values(t)?, t.dims().to_vec()))
    };
    if let [only] = sources {
        let (v, from) = read(only)?;
        let how = if from == to { Reshape::Copy } else { Reshape::CropPadResize { from: from.clone(), to: to.to_vec() } };
        return Ok((reshape_tensor(&v, &from, to, opts.lambda), how));
    }
    let best = sources.iter().map(|s| s.score).fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = sources.iter().map(|s| ((s.score - best) / opts.blend_temperature).exp()).collect();
    let total: f64 = exps.iter().sum();
    let weights: Vec<f64> = exps.iter().map(|e| e / total).collect();
    let mut acc = vec![0.0f64; to.iter().product()];
    for (s, &w) in sources.iter().zip(&weights) {
        let (v, from) = read(s)?;
        for (a, x) in acc.iter_mut().zip(reshape_tensor(&v, &from, to, opts.lambda)) {
            *a += w * f64::from(x);
        }
    }
    let how = Reshape::Blend { sources: sources.iter().map(|s| s.teacher.clone()).zip(weights).collect() };
    Ok((acc.into_iter().map(|a| a as f32).collect(), how))
}

/// Builds a copy of `student` whose tensors are injected from `teacher` (see the module doc).
/// `student` supplies the architecture and the values of every tensor that is not injected
/// (its own initialisation). Neither backbone is modified: every tensor of the result is new.
///
/// Errors when `opts` is invalid or names in `opts.skip` are not student parameters.
pub fn inject(teacher: &Backbone, student: &Backbone, opts: &InjectOptions) -> Result<Injected> {
    opts.validate()?;
    let student_params = student.params();
    let unknown: Vec<&str> = opts.skip.iter().filter(|n| !student_params.contains_key(*n)).map(String::as_str).collect();
    if !unknown.is_empty() {
        return Err(config_error(format!(
            "skip names {unknown:?}, which are not parameters of the student {}; its parameters are: {}",
            student.spec().id(),
            student_params.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let skip: HashSet<&str> = opts.skip.iter().map(String::as_str).collect();
    let matching: Matching = match_layers(teacher.structure(), student.structure());
    let device = student.device();
    let mut params = ParamMap::new();
    let mut report = Vec::new();

    let keep = |name: &str, how: Reshape, params: &mut ParamMap, report: &mut Vec<InjectedTensor>| -> Result<()> {
        params.insert(name.to_string(), student.param(name)?.copy()?);
        report.push(InjectedTensor { student: name.to_string(), teacher: None, score: 0.0, how });
        Ok(())
    };

    for (su, unit) in matching.student.iter().enumerate() {
        let buffers = unit.buffers.iter().map(|b| (b, true));
        for (t, is_buffer) in unit.tensors.iter().map(|t| (t, false)).chain(buffers) {
            if skip.contains(t.name.as_str()) {
                keep(&t.name, Reshape::Skipped, &mut params, &mut report)?;
                continue;
            }
            let shape = student.param(&t.name)?.dims().to_vec();
            if is_buffer && opts.reset_bn_stats {
                // BN_PARAMS = [weight, bias, running_mean, running_var].
                let value = if t.role == BN_PARAMS[3] { 1.0 } else { 0.0 };
                params.insert(t.name.clone(), Tensor::full(value as f32, shape, device)?);
                report.push(InjectedTensor { student: t.name.clone(), teacher: None, score: 0.0, how: Reshape::Reset });
                continue;
            }
            let top_k = if is_buffer { 1 } else { opts.blend_top };
            let sources = matching.sources(su, &t.role, top_k);
            let Some(best) = sources.first() else {
                keep(&t.name, Reshape::Unmatched, &mut params, &mut report)?;
                continue;
            };
            let (v, how) = transfer(teacher, &sources, &shape, opts)?;
            params.insert(t.name.clone(), Tensor::from_vec(v, shape, device)?);
            report.push(InjectedTensor { student: t.name.clone(), teacher: Some(best.teacher.clone()), score: best.score, how });
        }
    }
    // Anything the structure does not attribute to a unit keeps the student's value.
    for name in student_params.keys() {
        if !params.contains_key(name) {
            let how = if skip.contains(name.as_str()) { Reshape::Skipped } else { Reshape::Unmatched };
            keep(name, how, &mut params, &mut report)?;
        }
    }
    let backbone = Backbone::from_params(student.spec().clone(), params, device)?;
    Ok(Injected { backbone, report, score: matching_score(&matching) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-6 * (1.0 + y.abs()))
    }

    #[test]
    fn crop_and_pad_1d_by_hand() {
        assert_eq!(crop_or_pad(&[1., 2., 3., 4.], &[4], &[2]), [2., 3.]);
        // (3 − 2)/2 = 0: the extra element is cut at the end.
        assert_eq!(crop_or_pad(&[1., 2., 3.], &[3], &[2]), [1., 2.]);
        assert_eq!(crop_or_pad(&[1., 2.], &[2], &[4]), [0., 1., 2., 0.]);
        // (5 − 2)/2 = 1: the extra zero goes at the end.
        assert_eq!(crop_or_pad(&[1., 2.], &[2], &[5]), [0., 1., 2., 0., 0.]);
        assert_eq!(crop_or_pad(&[1., 2.], &[2], &[2]), [1., 2.]);
    }

    #[test]
    fn crop_and_pad_2d_by_hand() {
        // [[1,2],[3,4],[5,6],[7,8]]: rows cropped 4→2 (offset 1), columns padded 2→4 (offset 1).
        let t = [1., 2., 3., 4., 5., 6., 7., 8.];
        assert_eq!(crop_or_pad(&t, &[4, 2], &[2, 4]), [0., 3., 4., 0., 0., 5., 6., 0.]);
        // 3x3 → 2x4: rows 0, 1 kept; columns padded 3→4 at offset 0.
        let t: Vec<f32> = (1..=9).map(|x| x as f32).collect();
        assert_eq!(crop_or_pad(&t, &[3, 3], &[2, 4]), [1., 2., 3., 0., 4., 5., 6., 0.]);
    }

    #[test]
    fn conv_weight_crop_takes_the_kernel_centre_and_pad_puts_it_back() {
        // [2, 1, 3, 3] with values 0..18: the centres are t[0,0,1,1] = 4 and t[1,0,1,1] = 13.
        let t: Vec<f32> = (0..18).map(|x| x as f32).collect();
        assert_eq!(crop_or_pad(&t, &[2, 1, 3, 3], &[2, 1, 1, 1]), [4., 13.]);
        // Resizing 3 → 1 samples at (0.5·3 − 0.5) = 1: the centre too, so every λ agrees.
        assert_eq!(resize(&t, &[2, 1, 3, 3], &[2, 1, 1, 1]), [4., 13.]);
        assert_eq!(reshape_tensor(&t, &[2, 1, 3, 3], &[2, 1, 1, 1], 0.75), [4., 13.]);
        let mut expected = vec![0.0f32; 18];
        expected[4] = 4.;
        expected[13] = 13.;
        assert_eq!(crop_or_pad(&[4., 13.], &[2, 1, 1, 1], &[2, 1, 3, 3]), expected);
    }

    #[test]
    fn resize_1d_by_hand() {
        // 2 → 4: x0, 0.75x0 + 0.25x1, 0.25x0 + 0.75x1, x1 with x = [1, 3].
        assert_eq!(resize(&[1., 3.], &[2], &[4]), [1., 1.5, 2.5, 3.]);
        // 4 → 2: samples at 0.5 and 2.5.
        assert_eq!(resize(&[1., 2., 3., 4.], &[4], &[2]), [1.5, 3.5]);
        // 4 → 1: the centre, 1.5.
        assert_eq!(resize(&[1., 2., 3., 4.], &[4], &[1]), [2.5]);
        // 3 → 2: samples at 0.25 and 1.75.
        assert_eq!(resize(&[1., 2., 3.], &[3], &[2]), [1.25, 2.75]);
        // 1 → 3: a constant.
        assert_eq!(resize(&[7.], &[1], &[3]), [7., 7., 7.]);
        let t = [0.1f32, -2.7, 3.3];
        assert_eq!(resize(&t, &[3], &[3]), t);
    }

    #[test]
    fn resize_2d_by_hand() {
        // [[1,3],[5,7]] → 4x4: rows [1,3], [2,4], [4,6], [5,7], each resized 2 → 4.
        let out = resize(&[1., 3., 5., 7.], &[2, 2], &[4, 4]);
        let expected = [1., 1.5, 2.5, 3., 2., 2.5, 3.5, 4., 4., 4.5, 5.5, 6., 5., 5.5, 6.5, 7.];
        assert_eq!(out, expected);
        assert_eq!(resize(&[1., 3., 5., 7.], &[2, 2], &[1, 1]), [4.]);
        // Only the second axis changes: the first is copied exactly.
        assert_eq!(resize(&[1., 3., 5., 7.], &[2, 2], &[2, 1]), [2., 6.]);
    }

    #[test]
    fn lambda_mixes_crop_and_resize() {
        // crop [2, 3], resize [1.5, 3.5]: 0.75·2 + 0.25·1.5 = 1.875, 0.75·3 + 0.25·3.5 = 3.125.
        assert_eq!(reshape_tensor(&[1., 2., 3., 4.], &[4], &[2], 0.75), [1.875, 3.125]);
        assert_eq!(reshape_tensor(&[1., 2., 3., 4.], &[4], &[2], 1.0), [2., 3.]);
        assert_eq!(reshape_tensor(&[1., 2., 3., 4.], &[4], &[2], 0.0), [1.5, 3.5]);
        // Pad [0, 1, 2, 0] and resize [1, 1.25, 1.75, 2] at λ = 0.5.
        assert!(close(&reshape_tensor(&[1., 2.], &[2], &[4], 0.5), &[0.5, 1.125, 1.875, 1.0]));
    }

    #[test]
    fn equal_shapes_are_returned_bit_for_bit() {
        let t = [f32::NAN, -0.0, 1e-45, f32::INFINITY, 3.25, -7.5];
        let out = reshape_tensor(&t, &[2, 3], &[2, 3], 0.3);
        assert_eq!(out.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), t.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    }

    #[test]
    fn options_are_validated() {
        assert!(InjectOptions::default().validate().is_ok());
        let bad = [
            InjectOptions { lambda: 1.5, ..Default::default() },
            InjectOptions { lambda: f64::NAN, ..Default::default() },
            InjectOptions { blend_top: 0, ..Default::default() },
            InjectOptions { blend_temperature: 0.0, ..Default::default() },
            InjectOptions { blend_temperature: f64::INFINITY, ..Default::default() },
        ];
        for o in bad {
            let err = o.validate().unwrap_err();
            assert!(matches!(err, GraftError::Config { .. }), "{err}");
        }
        assert_eq!(from_empty_map(), InjectOptions::default());
    }

    /// Deserialises options from an empty map: `#[serde(default)]` fills every field.
    fn from_empty_map() -> InjectOptions {
        use serde::de::value::{Error, MapDeserializer};
        let empty: MapDeserializer<'_, std::vec::IntoIter<(&str, &str)>, Error> = MapDeserializer::new(Vec::new().into_iter());
        InjectOptions::deserialize(empty).unwrap()
    }
}
