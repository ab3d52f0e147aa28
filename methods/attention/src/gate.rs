//! The attention module inserted after a tap, on its output `h (n, C, H, W)`:
//!
//! - channel gate: `s = W₂ · ReLU(W₁ · GAP(h) + b₁) + b₂`, `W₁` of shape `(ceil(C/r), C)`;
//! - spatial gate (optional, after the channel gate): `m = conv_k([mean_c h, max_c h]) + b`,
//!   one output channel, same padding;
//! - each gate meets the features *multiplicatively*, `h ⊙ 2σ(a)`, or *residually*,
//!   `h + γ ⊙ (h ⊙ σ(a))` (γ per channel for the channel gate, one scalar for the spatial one).
//!
//! Initialisation makes the module the identity: multiplicative gates start with their last
//! layer at 0 (so `2σ(0) = 1`), residual gates with `γ = 0`.

use crate::config::GatePlacement;
use candle_core::{Device, Tensor};
use graft_core::backbone::{conv2d, global_avg_pool, linear, relu, ConvDef};
use graft_core::init::SeededRng;
use graft_core::Result;

/// The shape of one attention module.
#[derive(Clone, Debug, PartialEq)]
pub struct GateShape {
    /// Channels `C` of the tap it reads.
    pub channels: usize,
    /// Hidden units of the channel gate, `ceil(C / r)`.
    pub hidden: usize,
    /// Kernel of the spatial gate's conv, when there is one.
    pub spatial: Option<usize>,
    /// Multiplicative or residual.
    pub placement: GatePlacement,
}

impl GateShape {
    /// Its tensors (name suffix and shape), in a fixed order.
    pub fn tensors(&self) -> Vec<(&'static str, Vec<usize>)> {
        let (c, h) = (self.channels, self.hidden);
        let mut out = vec![("fc1.weight", vec![h, c]), ("fc1.bias", vec![h]), ("fc2.weight", vec![c, h]), ("fc2.bias", vec![c])];
        let residual = self.placement == GatePlacement::Residual;
        if residual {
            out.push(("gamma", vec![c]));
        }
        if let Some(k) = self.spatial {
            out.push(("spatial.weight", vec![1, 2, k, k]));
            out.push(("spatial.bias", vec![1]));
            if residual {
                out.push(("spatial_gamma", vec![1]));
            }
        }
        out
    }

    /// Trainable scalars: `2·C·h + h + C` for the channel gate, `+ C` residual; `2k² + 1` for the
    /// spatial gate, `+ 1` residual.
    pub fn params(&self) -> usize {
        self.tensors().iter().map(|(_, s)| s.iter().product::<usize>()).sum()
    }

    /// FLOPs per image (2 × multiply–accumulates of its linear layers and conv) on a tap of
    /// spatial size `hw`.
    pub fn flops(&self, hw: (usize, usize)) -> u64 {
        let channel = 2 * 2 * self.channels * self.hidden;
        let spatial = self.spatial.map_or(0, |k| 2 * 2 * k * k * hw.0 * hw.1);
        (channel + spatial) as u64
    }

    /// Initial values, the identity module: `fc1` as PyTorch's `nn.Linear`; multiplicative:
    /// `fc2` and the spatial conv zero; residual: them as PyTorch's layers and `γ = 0`.
    pub fn init(&self, rng: &mut SeededRng, device: &Device) -> Result<Vec<(&'static str, Tensor)>> {
        let mut out = Vec::new();
        for (name, shape) in self.tensors() {
            let fan_in = match name {
                "fc1.weight" | "fc1.bias" => self.channels,
                "fc2.weight" | "fc2.bias" => self.hidden,
                "spatial.weight" | "spatial.bias" => shape_fan_in(self.spatial),
                _ => 0,
            };
            let identity_zero = match self.placement {
                GatePlacement::Multiplicative => name.starts_with("fc2") || name.starts_with("spatial"),
                GatePlacement::Residual => name.ends_with("gamma"),
            };
            let t = if identity_zero || fan_in == 0 {
                Tensor::zeros(shape.as_slice(), candle_core::DType::F32, device)?
            } else {
                let bound = 1.0 / (fan_in as f64).sqrt();
                rng.uniform(shape.as_slice(), -bound, bound, device)?
            };
            out.push((name, t));
        }
        Ok(out)
    }
}

/// Fan-in of the spatial conv: 2 input maps × k².
fn shape_fan_in(kernel: Option<usize>) -> usize {
    kernel.map_or(0, |k| 2 * k * k)
}

/// `σ(x) = 1 / (1 + e^{−x})`, differentiable.
fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok((x.neg()?.exp()? + 1.0)?.recip()?)
}

/// `h ⊙ 2σ(a)` or `h + γ ⊙ (h ⊙ σ(a))`, `a` broadcast over `h`.
fn meet(h: &Tensor, a: &Tensor, placement: GatePlacement, gamma: Option<Tensor>) -> Result<Tensor> {
    match (placement, gamma) {
        (GatePlacement::Residual, Some(g)) => Ok((h + h.broadcast_mul(&sigmoid(a)?)?.broadcast_mul(&g)?)?),
        _ => Ok(h.broadcast_mul(&(sigmoid(a)? * 2.0)?)?),
    }
}

/// Runs the module on `h`, its tensors given by suffix through `get`.
pub fn apply(shape: &GateShape, h: &Tensor, get: &dyn Fn(&str) -> Result<Tensor>) -> Result<Tensor> {
    let (n, c) = (h.dim(0)?, shape.channels);
    let residual = shape.placement == GatePlacement::Residual;
    let z = relu(&linear(&global_avg_pool(h)?, &get("fc1.weight")?, &get("fc1.bias")?)?)?;
    let s = linear(&z, &get("fc2.weight")?, &get("fc2.bias")?)?.reshape((n, c, 1, 1))?;
    let gamma = if residual { Some(get("gamma")?.reshape((1, c, 1, 1))?) } else { None };
    let mut out = meet(h, &s, shape.placement, gamma)?;
    if let Some(k) = shape.spatial {
        let maps = Tensor::cat(&[out.mean_keepdim(1)?, out.max_keepdim(1)?], 1)?;
        let def = ConvDef { name: "spatial".into(), in_channels: 2, out_channels: 1, kernel: k, stride: 1, padding: k / 2, groups: 1, bias: true };
        let m = conv2d(&maps, &get("spatial.weight")?, Some(&get("spatial.bias")?), &def)?;
        let gamma = if residual { Some(get("spatial_gamma")?.reshape((1, 1, 1, 1))?) } else { None };
        out = meet(&out, &m, shape.placement, gamma)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn t(v: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
    }

    fn values(x: &Tensor) -> Vec<f32> {
        x.flatten_all().unwrap().to_vec1().unwrap()
    }

    fn getter<'a>(map: &'a BTreeMap<&'static str, Tensor>) -> impl Fn(&str) -> Result<Tensor> + 'a {
        move |k| Ok(map[k].clone())
    }

    /// One image, two channels of 2x2: channel 0 = [1, 2, 3, 4] (mean 2.5), channel 1 = −1s
    /// (mean −1); one hidden unit.
    #[test]
    fn the_channel_gate_matches_a_hand_computation() {
        let h = t(&[1., 2., 3., 4., -1., -1., -1., -1.], &[1, 2, 2, 2]);
        let shape = GateShape { channels: 2, hidden: 1, spatial: None, placement: GatePlacement::Multiplicative };
        // z = ReLU(2.5 − 1 + 0) = 1.5; s = [2·1.5 − 3 + ln 3, 0·1.5 + 0] = [ln 3, 0];
        // factors 2σ(ln 3) = 2·3/4 = 1.5 and 2σ(0) = 1.
        let map = BTreeMap::from([
            ("fc1.weight", t(&[1., 1.], &[1, 2])),
            ("fc1.bias", t(&[0.], &[1])),
            ("fc2.weight", t(&[2., 0.], &[2, 1])),
            ("fc2.bias", t(&[-3. + 3f32.ln(), 0.], &[2])),
        ]);
        let out = values(&apply(&shape, &h, &getter(&map)).unwrap());
        let want = [1.5, 3., 4.5, 6., -1., -1., -1., -1.];
        for (g, w) in out.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{out:?}");
        }
        // Residual with γ = [2, 5]: h + γ·h·σ(s) = h·(1 + 2·3/4) and h·(1 + 5/2).
        let residual = GateShape { placement: GatePlacement::Residual, ..shape };
        let mut map = map;
        map.insert("gamma", t(&[2., 5.], &[2]));
        let out = values(&apply(&residual, &h, &getter(&map)).unwrap());
        let want = [2.5, 5., 7.5, 10., -3.5, -3.5, -3.5, -3.5];
        for (g, w) in out.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{out:?}");
        }
    }

    /// A 1x1 spatial conv with weight [1, −1] on [mean_c, max_c], the channel gate at identity.
    #[test]
    fn the_spatial_gate_matches_a_hand_computation() {
        // Pixels: (c0, c1) = (1, 3), (−2, 0): mean 2, −1; max 3, 0.
        let h = t(&[1., -2., 3., 0.], &[1, 2, 1, 2]);
        let shape = GateShape { channels: 2, hidden: 1, spatial: Some(1), placement: GatePlacement::Multiplicative };
        // mean − max = −1 at both pixels, so with bias ln 3 + 1 both logits are ln 3 and both
        // factors 2σ(ln 3) = 1.5.
        let map = BTreeMap::from([
            ("fc1.weight", t(&[0.3, -0.2], &[1, 2])),
            ("fc1.bias", t(&[0.1], &[1])),
            ("fc2.weight", t(&[0., 0.], &[2, 1])),
            ("fc2.bias", t(&[0., 0.], &[2])),
            ("spatial.weight", t(&[1., -1.], &[1, 2, 1, 1])),
            ("spatial.bias", t(&[3f32.ln() + 1.], &[1])),
        ]);
        let out = values(&apply(&shape, &h, &getter(&map)).unwrap());
        let want = [1.5, -3., 4.5, 0.];
        for (g, w) in out.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{out:?}");
        }
    }

    #[test]
    fn initialised_modules_are_the_identity_bit_for_bit() {
        let h = t(&[0.5, -1.25, 3.0, 7.5, 0.1, -0.2, 0.3, 0.4], &[1, 2, 2, 2]);
        for placement in [GatePlacement::Multiplicative, GatePlacement::Residual] {
            let shape = GateShape { channels: 2, hidden: 1, spatial: Some(3), placement };
            let init: BTreeMap<&'static str, Tensor> = shape.init(&mut SeededRng::derived(1, "t"), &Device::Cpu).unwrap().into_iter().collect();
            assert_eq!(init.len(), shape.tensors().len());
            let out = apply(&shape, &h, &getter(&init)).unwrap();
            assert_eq!(values(&out), values(&h), "{placement:?}");
        }
    }

    #[test]
    fn parameter_counts_follow_the_formula() {
        let m = GateShape { channels: 64, hidden: 4, spatial: None, placement: GatePlacement::Multiplicative };
        assert_eq!(m.params(), 2 * 64 * 4 + 4 + 64);
        let r = GateShape { spatial: Some(7), placement: GatePlacement::Residual, ..m };
        assert_eq!(r.params(), 2 * 64 * 4 + 4 + 64 + 64 + 2 * 49 + 1 + 1);
    }
}
