//! The two adapter modules of Rebuffi, Bilen & Vedaldi on one 3x3 conv `y = W ∗ x` of the
//! frozen trunk, with `A` a 1x1 conv of the domain:
//!
//! - **series** (NeurIPS 2017): `y' = y + BN_A(A ∗ y)`, `A` of shape `(C_out, C_out, 1, 1)` and a
//!   BN of its own; it runs after the conv, before the conv's (domain) BN.
//! - **parallel** (CVPR 2018): `y' = y + A ∗ₛ x`, `A` of shape `(C_out, C_in, 1, 1)` reading the
//!   conv's input with the conv's stride `s`; the sum goes into the conv's BN.

use candle_core::Tensor;
use graft_core::backbone::{batch_norm, batch_norm_act_train, conv2d, Act, ConvDef};
use graft_core::Result;
use serde::{Deserialize, Serialize};

/// Where an adapter sits relative to its conv.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// After the conv, on its output, with its own BN and an identity skip.
    Series,
    /// Beside the conv, on its input, summed with its output.
    Parallel,
}

impl Placement {
    /// The registered method name of this placement.
    pub fn method_name(self) -> &'static str {
        match self {
            Placement::Series => crate::SERIES,
            Placement::Parallel => crate::PARALLEL,
        }
    }

    /// Prefix of every stored tensor but the head's: `<method name>.`.
    pub fn prefix(self) -> String {
        format!("{}.", self.method_name())
    }

    /// Shape of the adapter's 1x1 weight on `conv`: `(C_out, C_out, 1, 1)` in series,
    /// `(C_out, C_in, 1, 1)` in parallel (dense even beside a depthwise conv).
    pub fn weight_shape(self, conv: &ConvDef) -> [usize; 4] {
        match self {
            Placement::Series => [conv.out_channels, conv.out_channels, 1, 1],
            Placement::Parallel => [conv.out_channels, conv.in_channels, 1, 1],
        }
    }

    /// Trainable scalars of the adapter on `conv`: `C_out² + 2·C_out` in series (the 1x1 weight
    /// and its BN's γ, β), `C_out·C_in` in parallel.
    pub fn trainable_params(self, conv: &ConvDef) -> usize {
        let w: usize = self.weight_shape(conv).iter().product();
        match self {
            Placement::Series => w + 2 * conv.out_channels,
            Placement::Parallel => w,
        }
    }

    /// FLOPs per image the adapter adds (2 × multiply–accumulates of its 1x1 conv) when the
    /// conv's output is `(h, w)`.
    pub fn flops(self, conv: &ConvDef, out_hw: (usize, usize)) -> u64 {
        let w: usize = self.weight_shape(conv).iter().product();
        2 * (w * out_hw.0 * out_hw.1) as u64
    }
}

/// The 1x1 conv of an adapter: no padding, no bias, the given stride.
fn conv1x1(x: &Tensor, weight: &Tensor, stride: usize) -> Result<Tensor> {
    let (out_channels, in_channels) = (weight.dim(0)?, weight.dim(1)?);
    let def = ConvDef { name: "adapter".into(), in_channels, out_channels, kernel: 1, stride, padding: 0, groups: 1, bias: false };
    conv2d(x, weight, None, &def)
}

/// Parallel adapter: `y + A ∗ₛ x`.
pub fn parallel(x: &Tensor, y: &Tensor, weight: &Tensor, stride: usize) -> Result<Tensor> {
    Ok((y + conv1x1(x, weight, stride)?)?)
}

/// Series adapter in training: `y + BN_A(A ∗ y)` with BN_A on batch statistics. Returns the
/// output and the batch's mean and biased variance of `A ∗ y` (for the running statistics).
pub fn series_train(y: &Tensor, weight: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let z = conv1x1(y, weight, 1)?;
    let (out, mean, var) = batch_norm_act_train(&z, gamma, beta, Act::None)?;
    Ok(((y + out)?, mean, var))
}

/// Series adapter in evaluation: `y + BN_A(A ∗ y)` with BN_A on its running statistics.
pub fn series_eval(y: &Tensor, weight: &Tensor, bn: [&Tensor; 4]) -> Result<Tensor> {
    let [gamma, beta, mean, var] = bn;
    let z = conv1x1(y, weight, 1)?;
    Ok((y + batch_norm(&z, mean, var, gamma, beta)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use graft_core::backbone::BN_EPS;

    fn t(v: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
    }

    fn values(x: &Tensor) -> Vec<f32> {
        x.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn parallel_adds_the_strided_1x1_conv_of_the_input() {
        // x (1, 1, 3, 3) = 1..9; stride 2 reads x[0,0] = 1, x[0,2] = 3, x[2,0] = 7, x[2,2] = 9;
        // two output channels with A = [3, -1].
        let x = t(&[1., 2., 3., 4., 5., 6., 7., 8., 9.], &[1, 1, 3, 3]);
        let y = t(&[10., 20., 30., 40., 0., 0., 0., 0.], &[1, 2, 2, 2]);
        let a = t(&[3., -1.], &[2, 1, 1, 1]);
        let out = parallel(&x, &y, &a, 2).unwrap();
        assert_eq!(values(&out), vec![13., 29., 51., 67., -1., -3., -7., -9.]);
    }

    #[test]
    fn series_eval_is_y_plus_the_normalised_1x1_conv_of_y() {
        // y = [1, 2] at one pixel; A = [[1, 0], [1, 1]] so A·y = [1, 3]; BN: γ = [2, 1],
        // β = [0, 1], mean = [0, 1], var = 1 − ε (σ = 1): y + [2·1 + 0, 1·(3 − 1) + 1] = [3, 5].
        let y = t(&[1., 2.], &[1, 2, 1, 1]);
        let a = t(&[1., 0., 1., 1.], &[2, 2, 1, 1]);
        let var = (1.0 - BN_EPS) as f32;
        let bn = [t(&[2., 1.], &[2]), t(&[0., 1.], &[2]), t(&[0., 1.], &[2]), t(&[var, var], &[2])];
        let out = values(&series_eval(&y, &a, [&bn[0], &bn[1], &bn[2], &bn[3]]).unwrap());
        for (got, want) in out.iter().zip([3f32, 5.]) {
            assert!((got - want).abs() < 1e-5, "{out:?}");
        }
    }

    #[test]
    fn series_train_normalises_with_the_batch_statistics() {
        // Two images of one channel, A = [2]: A·y = [2, 6], batch mean 4, biased var 4, so with
        // γ = 1, β = 0 the normalised values are [−1, 1] (up to ε) and y' = [1 − 1, 3 + 1].
        let y = t(&[1., 3.], &[2, 1, 1, 1]);
        let a = t(&[2.], &[1, 1, 1, 1]);
        let (out, mean, var) = series_train(&y, &a, &t(&[1.], &[1]), &t(&[0.], &[1])).unwrap();
        assert_eq!(values(&mean), vec![4.]);
        assert_eq!(values(&var), vec![4.]);
        for (got, want) in values(&out).iter().zip([0f32, 4.]) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
    }

    #[test]
    fn identity_adapters_leave_the_output_bit_identical() {
        let x = t(&[0.5, -1.25, 3.0, 7.5], &[1, 1, 2, 2]);
        let y = t(&[1.1, -2.2, 3.3, 4.4, 0.1, 0.2, 0.3, -0.4], &[1, 2, 2, 2]);
        let zero = Tensor::zeros((2, 1, 1, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(values(&parallel(&x, &y, &zero, 1).unwrap()), values(&y));
        let a = t(&[0.3, -0.7, 1.9, 0.2], &[2, 2, 1, 1]);
        let z = t(&[0., 0.], &[2]);
        let stats = [t(&[0.4, -0.3], &[2]), t(&[1.5, 0.5], &[2])];
        assert_eq!(values(&series_eval(&y, &a, [&z, &z, &stats[0], &stats[1]]).unwrap()), values(&y));
    }
}
