//! Piggyback's mask math: the binarisation `1[m > τ]` and its straight-through estimator.
//!
//! Forward: `B = 1[m > τ]`. Backward: `∂L/∂m = ∂L/∂B` (the threshold's zero-almost-everywhere
//! derivative is replaced by the identity). [`binarize_ste`] builds this as `B + (m − sg(m))`,
//! where `sg` stops the gradient: its value is exactly `B` (`m − m` is exactly 0 for finite `m`)
//! and its derivative in `m` is exactly 1, on any device, with no custom kernel.

use candle_core::Tensor;
use graft_core::Result;

/// `1[m > threshold]` as a tensor of `m`'s dtype, detached (no gradient). The threshold is
/// compared in `m`'s dtype.
pub fn binarize(m: &Tensor, threshold: f64) -> Result<Tensor> {
    Ok(m.detach().gt(threshold)?.to_dtype(m.dtype())?)
}

/// The straight-through binarisation: value `1[m > threshold]`, gradient identity in `m`.
pub fn binarize_ste(m: &Tensor, threshold: f64) -> Result<Tensor> {
    let b = binarize(m, threshold)?;
    Ok((b + (m - m.detach())?)?)
}

/// The masked weight `W ⊙ B` (same shapes).
pub fn apply_mask(weight: &Tensor, mask: &Tensor) -> Result<Tensor> {
    Ok(weight.mul(mask)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn ste_value_is_exactly_binary_and_its_gradient_is_the_identity() {
        let m = Var::new(&[0.0f32, 4e-3, 5e-3, 5.0001e-3, 1e-2, -3.0, 0.7], &Device::Cpu).unwrap();
        let b = binarize_ste(m.as_tensor(), 5e-3).unwrap();
        assert_eq!(b.to_vec1::<f32>().unwrap(), vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0]);
        let c = Tensor::new(&[1.0f32, -2.0, 3.0, 0.5, -0.25, 7.0, 2.0], &Device::Cpu).unwrap();
        let g = (b * &c).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(m.as_tensor()).unwrap().to_vec1::<f32>().unwrap(), c.to_vec1::<f32>().unwrap());
    }
}
