//! Seeded random initialisation, so every run is reproducible from its seed.

use crate::error::Result;
use candle_core::{Device, Shape, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A seeded random source for parameter init, shuffling and noise.
pub struct SeededRng {
    rng: StdRng,
}

impl SeededRng {
    /// A generator fully determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { rng: StdRng::seed_from_u64(seed) }
    }

    /// A generator derived from `seed` and a `stream` label, independent of other streams.
    pub fn derived(seed: u64, stream: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in stream.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        Self::new(seed ^ h)
    }

    /// Access to the underlying generator.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// `n` samples of N(0, std²) (Box–Muller).
    pub fn normal_vec(&mut self, n: usize, std: f64) -> Vec<f32> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let u1: f64 = self.rng.random::<f64>().max(f64::MIN_POSITIVE);
            let u2: f64 = self.rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt() * std;
            let t = 2.0 * std::f64::consts::PI * u2;
            out.push((r * t.cos()) as f32);
            if out.len() < n {
                out.push((r * t.sin()) as f32);
            }
        }
        out
    }

    /// `n` samples of U(lo, hi).
    pub fn uniform_vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n).map(|_| (lo + (hi - lo) * self.rng.random::<f64>()) as f32).collect()
    }

    /// A tensor of N(0, std²) samples.
    pub fn normal(&mut self, shape: impl Into<Shape>, std: f64, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let v = self.normal_vec(shape.elem_count(), std);
        Ok(Tensor::from_vec(v, shape, device)?)
    }

    /// A tensor of U(lo, hi) samples.
    pub fn uniform(&mut self, shape: impl Into<Shape>, lo: f64, hi: f64, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let v = self.uniform_vec(shape.elem_count(), lo, hi);
        Ok(Tensor::from_vec(v, shape, device)?)
    }

    /// A uniformly random permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.rng.random_range(0..=i);
            p.swap(i, j);
        }
        p
    }
}

/// Kaiming-normal conv weight `(out, in/groups, kh, kw)` with fan-out mode and ReLU gain, as
/// torchvision initialises ResNets.
pub fn kaiming_conv(
    rng: &mut SeededRng,
    out_c: usize,
    in_per_group: usize,
    kh: usize,
    kw: usize,
    device: &Device,
) -> Result<Tensor> {
    let fan_out = (out_c * kh * kw) as f64;
    let std = (2.0 / fan_out).sqrt();
    rng.normal((out_c, in_per_group, kh, kw), std, device)
}

/// `(fan_in, fan_out)` of a weight as PyTorch computes them: `shape[1]·receptive` and
/// `shape[0]·receptive`, where `receptive` is the product of the dims after the first two (1 for
/// a linear weight). A depthwise conv `(c, 1, k, k)` has fan-in `k²` and fan-out `c·k²`.
pub fn fans(shape: &[usize]) -> (usize, usize) {
    let receptive: usize = shape.iter().skip(2).product();
    let fan_out = shape.first().copied().unwrap_or(1) * receptive;
    let fan_in = shape.get(1).copied().unwrap_or(1) * receptive;
    (fan_in, fan_out)
}

/// Xavier/Glorot-uniform weight (Glorot & Bengio 2010): U(±a) with
/// `a = gain·√(6 / (fan_in + fan_out))` ([`fans`]), as `torch.nn.init.xavier_uniform_`.
pub fn xavier_uniform(rng: &mut SeededRng, shape: &[usize], gain: f64, device: &Device) -> Result<Tensor> {
    let (fan_in, fan_out) = fans(shape);
    let a = gain * (6.0 / (fan_in + fan_out) as f64).sqrt();
    rng.uniform(shape, -a, a, device)
}

/// Xavier/Glorot-normal weight: N(0, std²) with `std = gain·√(2 / (fan_in + fan_out))`
/// ([`fans`]), as `torch.nn.init.xavier_normal_`.
pub fn xavier_normal(rng: &mut SeededRng, shape: &[usize], gain: f64, device: &Device) -> Result<Tensor> {
    let (fan_in, fan_out) = fans(shape);
    let std = gain * (2.0 / (fan_in + fan_out) as f64).sqrt();
    rng.normal(shape, std, device)
}

/// How a freshly built network's conv and linear weights are drawn (BN always starts at the
/// identity: weight 1, bias 0, running mean 0, running variance 1).
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WeightInit {
    /// Kaiming-normal convs (fan-out, ReLU gain) and PyTorch-default linear layers
    /// (U(±1/√in) weight and bias), as torchvision initialises ResNets.
    #[default]
    Kaiming,
    /// Xavier-uniform conv and linear weights (gain 1), zero biases.
    XavierUniform,
    /// Xavier-normal conv and linear weights (gain 1), zero biases.
    XavierNormal,
}

/// A linear layer `(weight (out, in), bias (out,))` with PyTorch's default U(±1/√in) init.
pub fn linear_init(rng: &mut SeededRng, out_f: usize, in_f: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let bound = 1.0 / (in_f as f64).sqrt();
    let w = rng.uniform((out_f, in_f), -bound, bound, device)?;
    let b = rng.uniform(out_f, -bound, bound, device)?;
    Ok((w, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_values_different_seed_different_values() {
        let a = SeededRng::new(3).normal_vec(100, 1.0);
        let b = SeededRng::new(3).normal_vec(100, 1.0);
        let c = SeededRng::new(4).normal_vec(100, 1.0);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn normal_has_requested_moments() {
        let v = SeededRng::new(0).normal_vec(200_000, 2.0);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 4.0).abs() < 0.05, "var {var}");
    }

    #[test]
    fn fans_follow_pytorch() {
        assert_eq!(fans(&[64, 32, 3, 3]), (288, 576));
        assert_eq!(fans(&[10, 100]), (100, 10));
        assert_eq!(fans(&[16, 1, 3, 3]), (9, 144));
    }

    #[test]
    fn xavier_bounds_and_variance_match_glorot() {
        // (64, 32, 3, 3): fan_in 288, fan_out 576, a = √(6/864) = 0.0833, std = √(2/864) = 0.0481.
        let dev = Device::Cpu;
        let u = xavier_uniform(&mut SeededRng::new(0), &[64, 32, 3, 3], 1.0, &dev).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let a = (6.0f32 / 864.0).sqrt();
        assert!(u.iter().all(|&x| x.abs() <= a), "uniform outside ±{a}");
        assert!(u.iter().any(|&x| x.abs() > 0.95 * a), "uniform never near its bound {a}");
        let n = xavier_normal(&mut SeededRng::new(0), &[64, 32, 3, 3], 1.0, &dev).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let var = n.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / n.len() as f64;
        let want = 2.0 / 864.0;
        assert!((var / want - 1.0).abs() < 0.05, "normal variance {var}, want {want}");
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = SeededRng::new(1).permutation(1000);
        assert_ne!(p, (0..1000).collect::<Vec<_>>());
        p.sort();
        assert_eq!(p, (0..1000).collect::<Vec<_>>());
    }
}
