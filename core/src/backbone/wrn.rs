//! Wide ResNet (Zagoruyko & Komodakis, BMVC 2016): pre-activation basic blocks, depth `6n + 4`,
//! widen factor `k`, stage widths 16k, 32k, 64k after a 16-channel stem. Dropout is left out.
//!
//! Parameter names follow the widely used PyTorch re-implementation of the paper's code
//! (`WideResNet` with `NetworkBlock`s): `conv1`, `block{s}.layer.{b}.bn1`, `.conv1`, `.bn2`,
//! `.conv2`, `.convShortcut` (1x1, where the shape changes), the final `bn1` and `fc`.
//! Taps: `stem` (conv1, no BN), `stage{s}.block{b}` (s = 1..3, parameters under
//! `block{s}.layer.{b}.`), `norm` (final BN → ReLU), `pool`, `logits`.
//!
//! [`build_top`] gives the top of such a network (`wrn-top`): the stages from a chosen one on,
//! at a widen factor that may be a fraction, reading another network's tap.

use super::graph::{Act, Unit};
use super::resnet_cifar::conv;

/// The units of WRN-`depth`-`widen` on `in_channels` input channels (`depth = 6n + 4`, checked
/// by the spec).
pub fn build(depth: usize, widen: usize, in_channels: usize, num_classes: usize) -> Vec<(String, Unit)> {
    let widths = [16, 16 * widen, 32 * widen, 64 * widen];
    let mut units = vec![("stem".to_string(), Unit::Conv { conv: conv("conv1".into(), in_channels, widths[0], 3, 1) })];
    units.extend(stages(depth, &widths, 1, widths[0], num_classes));
    units
}

/// Channels of stage `stage` (1..=3) of a WRN with a possibly fractional widen factor:
/// `round(16 · 2^(stage-1) · widen)`, at least 1. Integral factors give [`build`]'s widths.
pub fn stage_width(stage: usize, widen: f64) -> usize {
    ((16.0 * (1u64 << (stage - 1)) as f64 * widen).round() as usize).max(1)
}

/// The top of a WRN: stages `from_stage..=3` at widen factor `widen` (fractional allowed, see
/// [`stage_width`]), then `norm`, `pool`, `logits`, reading an `in_channels`-channel map (the
/// output of another network's tap). Unit, tap and parameter names are those of [`build`].
pub fn build_top(depth: usize, widen: f64, from_stage: usize, in_channels: usize, num_classes: usize) -> Vec<(String, Unit)> {
    let widths = [16, stage_width(1, widen), stage_width(2, widen), stage_width(3, widen)];
    stages(depth, &widths, from_stage, in_channels, num_classes)
}

/// Stages `first..=3` of widths `widths[1..]` on `in_c` input channels, then the head units.
fn stages(depth: usize, widths: &[usize; 4], first: usize, mut in_c: usize, num_classes: usize) -> Vec<(String, Unit)> {
    let n = (depth - 4) / 6;
    let mut units = Vec::new();
    for (stage, &out_c) in widths.iter().enumerate().skip(first) {
        for b in 0..n {
            let stride = if stage > 1 && b == 0 { 2 } else { 1 };
            let p = format!("block{stage}.layer.{b}");
            let shortcut =
                (stride != 1 || in_c != out_c).then(|| conv(format!("{p}.convShortcut"), in_c, out_c, 1, stride));
            units.push((
                format!("stage{stage}.block{b}"),
                Unit::PreActBlock {
                    bn1: format!("{p}.bn1"),
                    conv1: conv(format!("{p}.conv1"), in_c, out_c, 3, stride),
                    bn2: format!("{p}.bn2"),
                    conv2: conv(format!("{p}.conv2"), out_c, out_c, 3, 1),
                    shortcut,
                },
            ));
            in_c = out_c;
        }
    }
    units.push(("norm".into(), Unit::BnAct { bn: "bn1".into(), channels: in_c, act: Act::Relu }));
    units.push(("pool".into(), Unit::GlobalAvgPool));
    units.push(("logits".into(), Unit::Linear { name: "fc".into(), in_features: in_c, out_features: num_classes, act: Act::None }));
    units
}
