//! MobileNetV2 (Sandler et al., CVPR 2018) in torchvision's layout, with its width multiplier.
//!
//! Parameter names: `features.0.0` / `features.0.1` (stem conv / BN), for every inverted
//! residual `features.{i}.conv.{0,1,...}` (expansion ratio 1: `conv.0.0`/`conv.0.1` depthwise,
//! `conv.1` projection, `conv.2` BN; otherwise `conv.0.*` expansion, `conv.1.*` depthwise,
//! `conv.2` projection, `conv.3` BN), `features.18.0` / `.1` (last 1x1 conv), `classifier.1`
//! (the dropout at `classifier.0` has no parameters and is not run). Taps: `stem`,
//! `stage{s}.block{b}` (s = 1..7, the rows of the paper's Table 2), `conv_head`, `pool`,
//! `logits`.

use super::graph::{Act, ConvDef, Unit};

/// The rows of the paper's Table 2: expansion t, channels c, repeats n, first stride s.
pub const SETTINGS: [(usize, usize, usize, usize); 7] =
    [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];

/// torchvision's `_make_divisible`: `v` rounded to the nearest multiple of `divisor`, at least
/// `divisor`, and never more than 10% below `v`.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new_v = (((v + d / 2.0) as usize) / divisor * divisor).max(divisor);
    if (new_v as f64) < 0.9 * v {
        new_v += divisor;
    }
    new_v
}

fn conv(name: String, in_c: usize, out_c: usize, kernel: usize, stride: usize, groups: usize) -> ConvDef {
    ConvDef { name, in_channels: in_c, out_channels: out_c, kernel, stride, padding: (kernel - 1) / 2, groups, bias: false }
}

/// The units of torchvision's `mobilenet_v2(width_mult)` on `in_channels` input channels.
pub fn build(width_mult: f64, in_channels: usize, num_classes: usize) -> Vec<(String, Unit)> {
    let mut in_c = make_divisible(32.0 * width_mult, 8);
    let last = make_divisible(1280.0 * width_mult.max(1.0), 8);
    let mut units = vec![(
        "stem".to_string(),
        Unit::ConvBnAct { conv: conv("features.0.0".into(), in_channels, in_c, 3, 2, 1), bn: "features.0.1".into(), act: Act::Relu6 },
    )];
    let mut idx = 1;
    for (s, &(t, c, n, first_stride)) in SETTINGS.iter().enumerate() {
        let out_c = make_divisible(c as f64 * width_mult, 8);
        for b in 0..n {
            let stride = if b == 0 { first_stride } else { 1 };
            let hidden = in_c * t;
            let p = format!("features.{idx}.conv");
            let mut k = 0;
            let expand = (t != 1).then(|| {
                k += 1;
                (conv(format!("{p}.0.0"), in_c, hidden, 1, 1, 1), format!("{p}.0.1"))
            });
            let dw = (conv(format!("{p}.{k}.0"), hidden, hidden, 3, stride, hidden), format!("{p}.{k}.1"));
            let project = (conv(format!("{p}.{}", k + 1), hidden, out_c, 1, 1, 1), format!("{p}.{}", k + 2));
            let residual = stride == 1 && in_c == out_c;
            units.push((format!("stage{}.block{b}", s + 1), Unit::InvertedResidual { expand, dw, project, residual }));
            in_c = out_c;
            idx += 1;
        }
    }
    units.push((
        "conv_head".into(),
        Unit::ConvBnAct {
            conv: conv(format!("features.{idx}.0"), in_c, last, 1, 1, 1),
            bn: format!("features.{idx}.1"),
            act: Act::Relu6,
        },
    ));
    units.push(("pool".into(), Unit::GlobalAvgPool));
    units.push((
        "logits".into(),
        Unit::Linear { name: "classifier.1".into(), in_features: last, out_features: num_classes, act: Act::None },
    ));
    units
}
