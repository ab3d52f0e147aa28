//! The delta model's architecture (the source's topology at a width fraction), the taps it
//! subscribes to, and the fusion of pooled source maps into it.

use crate::pooling::Selection;
use candle_core::Tensor;
use graft_core::backbone::{add, conv2d, Arch, ConvDef, Hooks};
use graft_core::{Backbone, BackboneSpec, GraftError, Result, Trainables};
use std::collections::BTreeMap;

/// The spec of a delta model for `source`: same family and depth, channels scaled by `fraction`
/// (at least one channel, widen factor or width multiplier step), same input, `classes` outputs.
pub fn delta_spec(source: &BackboneSpec, fraction: f64, classes: usize) -> Result<BackboneSpec> {
    let scale = |n: usize| ((n as f64 * fraction).round() as usize).max(1);
    let arch = match &source.arch {
        Arch::ResnetCifar { depth, width } => Arch::ResnetCifar { depth: *depth, width: scale(*width) },
        Arch::Wrn { depth, widen } => Arch::Wrn { depth: *depth, widen: scale(*widen) },
        Arch::WrnTop { depth, widen, from_stage } => {
            Arch::WrnTop { depth: *depth, widen: widen * fraction, from_stage: *from_stage }
        }
        Arch::Resnet { depth, width } => Arch::Resnet { depth: *depth, width: scale(*width) },
        Arch::Mobilenetv2 { width_mult } => Arch::Mobilenetv2 { width_mult: width_mult * fraction },
        Arch::Vgg { config, width_div, pool } => {
            // The largest power of two not above width_div / fraction, capped at VGG's 64.
            let want = (*width_div as f64 / fraction).max(1.0);
            let div = (1usize << (want.log2().floor() as u32)).min(64);
            Arch::Vgg { config: *config, width_div: div, pool: *pool }
        }
    };
    let spec = BackboneSpec { arch, input: source.input.clone(), num_classes: classes };
    spec.validate()?;
    Ok(spec)
}

/// The default taps: the last tap of every stage ([`Backbone::stages`]), in forward order.
pub fn stage_output_taps(backbone: &Backbone) -> Vec<String> {
    backbone.stages().into_iter().filter_map(|s| s.taps.last().cloned()).collect()
}

/// The name of the fusion conv's weight at `tap`.
pub fn merge_weight_name(tap: &str) -> String {
    format!("snow.merge.{tap}.weight")
}

/// A 1x1 conv without bias from `cin` to `cout` channels.
fn pointwise(name: String, cin: usize, cout: usize) -> ConvDef {
    ConvDef { name, in_channels: cin, out_channels: cout, kernel: 1, stride: 1, padding: 0, groups: 1, bias: false }
}

/// The 1x1 conv that maps `[delta maps, K pooled maps]` back to the delta's width at one tap.
pub fn merge_conv(tap: &str, delta_channels: usize, k: usize) -> ConvDef {
    pointwise(format!("snow.merge.{tap}"), delta_channels + k, delta_channels)
}

/// Checks every subscribed tap exists in both nets with the same spatial size and is a
/// feature map; returns `(tap, source channels, delta channels, (h, w))` per tap.
pub fn check_taps(source: &Backbone, delta: &Backbone, taps: &[String]) -> Result<Vec<(String, usize, usize, (usize, usize))>> {
    let mut out = Vec::new();
    for t in taps {
        let s = source.tap(t)?;
        let d = delta.tap(t)?;
        if source.tap_shape(t)?.len() != 3 {
            return Err(GraftError::Config {
                method: "snow".into(),
                msg: format!("tap '{t}' is a flat feature vector; SNOW pools channels of feature maps"),
            });
        }
        if s.hw != d.hw {
            return Err(GraftError::Backbone(format!(
                "snow: tap '{t}' is {:?} in the source but {:?} in the delta model",
                s.hw, d.hw
            )));
        }
        out.push((t.clone(), s.channels, d.channels, s.hw));
    }
    Ok(out)
}

/// Hooks on the delta's forward pass: at every subscribed tap, the delta's maps are concatenated
/// with the pooled source maps and fused back to the delta's width by a 1x1 conv.
pub struct Fusion<'a> {
    /// Pooled source maps by tap, `(n, K, h, w)`.
    pub pooled: &'a BTreeMap<String, Tensor>,
    /// The fusion convs' weights (`snow.merge.<tap>.weight`).
    pub merge: &'a Trainables,
}

impl Hooks for Fusion<'_> {
    fn tap_output(&self, tap: &str, x: Tensor) -> Result<Tensor> {
        let Some(p) = self.pooled.get(tap) else { return Ok(x) };
        let w = self.merge.tensor(&merge_weight_name(tap)).ok_or_else(|| {
            GraftError::Incompatible(format!("snow: no fusion weights for tap '{tap}'"))
        })?;
        let joined = Tensor::cat(&[&x, p], 1)?;
        // K is the tap's own: the pooled maps' channels.
        conv2d(&joined, &w, None, &merge_conv(tap, x.dim(1)?, p.dim(1)?))
    }
}

/// The evaluation form of the fusion at one tap, with the selection folded into the weights:
/// `h ← W_h · h + (W_p · diag(w[idx])) · X[:, idx]`, which equals the training form
/// `W_merge · [h ; w[idx] ⊙ X[:, idx]]` without materialising the scaled maps or the
/// concatenation.
#[derive(Clone, Debug)]
pub struct EvalFusion {
    /// `W_h`, the fusion weights of the delta's own channels, `(c_d, c_d, 1, 1)`.
    pub own: Tensor,
    /// `W_p · diag(w[idx])`, `(c_d, K, 1, 1)`.
    pub pooled: Tensor,
    /// The selected source channels, `(K,)` u32.
    pub index: Tensor,
}

impl EvalFusion {
    /// Folds `selection` into the fusion conv weight `merge` `(c_d, c_d + K, 1, 1)`.
    pub fn new(merge: &Tensor, selection: &Selection) -> Result<Self> {
        let (c, k) = (merge.dim(0)?, selection.index.dim(0)?);
        let own = merge.narrow(1, 0, c)?.contiguous()?.detach();
        let scale = selection.weight.detach().reshape((1, k, 1, 1))?;
        let pooled = merge.narrow(1, c, k)?.broadcast_mul(&scale)?.contiguous()?.detach();
        Ok(Self { own, pooled, index: selection.index.clone() })
    }

    /// The fused map at this tap from the delta's maps `h` and the source's maps `x`.
    fn apply(&self, tap: &str, h: &Tensor, x: &Tensor) -> Result<Tensor> {
        let (c, k) = (self.own.dim(0)?, self.index.dim(0)?);
        let picked = x.to_dtype(candle_core::DType::F32)?.index_select(&self.index, 1)?;
        let own = conv2d(h, &self.own, None, &pointwise(format!("snow.merge.{tap}.own"), c, c))?;
        let pooled = conv2d(&picked, &self.pooled, None, &pointwise(format!("snow.merge.{tap}.pooled"), k, c))?;
        add(&own, &pooled)
    }
}

/// Evaluation hooks on the delta: [`EvalFusion`] at every subscribed tap.
pub struct EvalFusionHooks<'a> {
    /// The folded fusion of every subscribed tap.
    pub fusions: &'a BTreeMap<String, EvalFusion>,
    /// The source's maps at (at least) those taps.
    pub taps: &'a BTreeMap<String, Tensor>,
}

impl Hooks for EvalFusionHooks<'_> {
    fn tap_output(&self, tap: &str, h: Tensor) -> Result<Tensor> {
        let Some(f) = self.fusions.get(tap) else { return Ok(h) };
        let x = self.taps.get(tap).ok_or_else(|| GraftError::UnknownTap {
            tap: tap.to_string(),
            available: self.taps.keys().cloned().collect(),
        })?;
        f.apply(tap, &h, x)
    }
}

/// The folded evaluation fusions of every selection with the fusion weights in `merge`.
pub fn eval_fusions(merge: &Trainables, selections: &BTreeMap<String, Selection>) -> Result<BTreeMap<String, EvalFusion>> {
    selections
        .iter()
        .map(|(tap, sel)| {
            let w = merge.tensor(&merge_weight_name(tap)).ok_or_else(|| {
                GraftError::Incompatible(format!("snow: no fusion weights for tap '{tap}'"))
            })?;
            Ok((tap.clone(), EvalFusion::new(&w, sel)?))
        })
        .collect()
}

/// The pooled maps of every selection from the source features `taps`.
pub fn pooled_maps(selections: &BTreeMap<String, Selection>, taps: &BTreeMap<String, Tensor>) -> Result<BTreeMap<String, Tensor>> {
    selections
        .iter()
        .map(|(tap, sel)| {
            let x = taps.get(tap).ok_or_else(|| GraftError::UnknownTap {
                tap: tap.clone(),
                available: taps.keys().cloned().collect(),
            })?;
            Ok((tap.clone(), sel.pool(x)?))
        })
        .collect()
}
