//! KSM's mask math, one value per kernel `(out, in/groups)` of a conv weight.
//!
//! * Training: `M = M^b + A^s` (or, with `gate_scale`, `M = M^b ⊙ (1 + A^s)`: a kernel switched
//!   off is exactly 0) with the relaxed binary part
//!   `M^b = softmax([M^r, −M^r] / τ)₀ = σ(2 M^r / τ) = ½ (1 + tanh(M^r / τ))`, which is exactly
//!   differentiable (no straight-through estimator), and the real part `A^s` of
//!   [`crate::ScaleKind`].
//! * Evaluation: `M = 1[M^r > 0] + A^s` (gated: `1[M^r > 0] ⊙ (1 + A^s)`), with `A^s` rounded to
//!   its stored dtype.
//! * Task weight: `W_t = W ⊙ M`, broadcast over the `k × k` kernel.

use crate::config::{ScaleDType, ScaleKind};
use candle_core::Tensor;
use graft_core::Result;

/// The relaxed binary mask `½ (1 + tanh(M^r / τ))` (the `tanh` form is the numerically stable
/// one: no overflow for `|M^r| ≫ τ`).
pub fn soft_binary(mr: &Tensor, tau: f64) -> Result<Tensor> {
    Ok((mr / tau)?.tanh()?.affine(0.5, 0.5)?)
}

/// The evaluation binary mask `1[M^r > 0]`, detached, in `M^r`'s dtype.
pub fn hard_binary(mr: &Tensor) -> Result<Tensor> {
    Ok(mr.detach().gt(0.0)?.to_dtype(mr.dtype())?)
}

/// The real-valued part `A^s` for `kind` (`None` for [`ScaleKind::None`]); `learned` is `S`,
/// required for [`ScaleKind::Learned`].
pub fn scale_part(kind: ScaleKind, mr: &Tensor, learned: Option<&Tensor>, gain: f64, init: f64) -> Result<Option<Tensor>> {
    Ok(match kind {
        ScaleKind::None => None,
        // (M^r − m₀) first: exactly 0 at initialisation, whatever κ.
        ScaleKind::Mask => Some(((mr - init)? * gain)?),
        ScaleKind::Learned => Some(
            learned
                .ok_or_else(|| graft_core::GraftError::Incompatible("ksm: scale = \"learned\" needs the tensor S".into()))?
                .clone(),
        ),
    })
}

/// `M^b + A^s`, or with `gate` ("off means off") `M^b ⊙ (1 + A^s)`, which is exactly 0 where
/// the binary part is 0.
fn compose(binary: Tensor, scale: Option<&Tensor>, gate: bool) -> Result<Tensor> {
    Ok(match (scale, gate) {
        (Some(s), false) => (binary + s)?,
        (Some(s), true) => (&binary * (s + 1.0)?)?,
        (None, _) => binary,
    })
}

/// The training soft mask `σ(2 M^r / τ) + A^s` (with `gate`: `σ(2 M^r / τ) ⊙ (1 + A^s)`).
pub fn soft_mask(mr: &Tensor, scale: Option<&Tensor>, tau: f64, gate: bool) -> Result<Tensor> {
    compose(soft_binary(mr, tau)?, scale, gate)
}

/// `A^s` rounded to the stored dtype and back to `like`'s dtype (what evaluation uses).
pub fn rounded_scale(scale: &Tensor, dtype: ScaleDType) -> Result<Tensor> {
    Ok(scale.detach().to_dtype(dtype.dtype())?.to_dtype(scale.dtype())?)
}

/// The evaluation mask `M^b + A^s` (with `gate`: `M^b ⊙ (1 + A^s)`) from a binary mask and an
/// (already rounded) scale.
pub fn eval_mask(binary: &Tensor, scale: Option<&Tensor>, gate: bool) -> Result<Tensor> {
    compose(binary.clone(), scale, gate)
}

/// `W ⊙ M` with `W (out, in/groups, k, k)` and the kernel-wise `M (out, in/groups)`.
pub fn apply_kernel_mask(weight: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let (o, i) = mask.dims2()?;
    Ok(weight.broadcast_mul(&mask.reshape((o, i, 1, 1))?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn soft_binary_is_the_two_way_softmax_and_stays_finite() {
        let mr = Tensor::new(&[-1.0f64, -1e-3, 0.0, 2e-3, 1.0, 1e3], &Device::Cpu).unwrap();
        let tau = 1e-3;
        let got = soft_binary(&mr, tau).unwrap().to_vec1::<f64>().unwrap();
        for (m, g) in mr.to_vec1::<f64>().unwrap().into_iter().zip(got) {
            let (a, b) = ((m / tau).exp(), (-m / tau).exp());
            let softmax = if a.is_finite() && b.is_finite() { a / (a + b) } else if m > 0.0 { 1.0 } else { 0.0 };
            assert!((g - softmax).abs() < 1e-12, "M^r = {m}: {g} vs {softmax}");
        }
    }

    #[test]
    fn kernel_mask_broadcasts_over_the_kernel() {
        let w = Tensor::ones((2, 3, 3, 3), DType::F32, &Device::Cpu).unwrap();
        let m = Tensor::new(&[[1f32, 0., 2.], [0.5, 1., 0.]], &Device::Cpu).unwrap();
        let wt = apply_kernel_mask(&w, &m).unwrap();
        assert_eq!(wt.dims(), &[2, 3, 3, 3]);
        let s = wt.sum((2, 3)).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(s, vec![vec![9.0, 0.0, 18.0], vec![4.5, 9.0, 0.0]]);
    }
}
