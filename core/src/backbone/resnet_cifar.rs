//! CIFAR-style ResNet (He et al. 2016, §4.2) with torchvision parameter names.

use super::graph::{ConvDef, Unit, UnitDef};

fn conv(name: String, in_c: usize, out_c: usize, kernel: usize, stride: usize) -> ConvDef {
    ConvDef { name, in_channels: in_c, out_channels: out_c, kernel, stride, padding: kernel / 2, groups: 1, bias: false }
}

/// Builds the unit list for `resnet-cifar` of the given depth (6n+2) and width on an input of
/// `in_channels × h × w` with `num_classes` outputs.
///
/// Taps: `stem`, `stage{s}.block{b}` (s = 1..3, b = 0..n-1; the parameters live under
/// `layer{s}.{b}.`), `pool`, `logits`.
pub fn build(depth: usize, width: usize, in_channels: usize, h: usize, w: usize, num_classes: usize) -> Vec<UnitDef> {
    let n = (depth - 2) / 6;
    let mut units = Vec::new();
    let stem = conv("conv1".into(), in_channels, width, 3, 1);
    let (mut ch, mut cw) = stem.output_hw(h, w);
    units.push(UnitDef {
        tap: "stem".into(),
        unit: Unit::ConvBnRelu { conv: stem, bn: "bn1".into() },
        channels: width,
        hw: (ch, cw),
        reduction: 1,
    });
    let mut in_c = width;
    let mut reduction = 1;
    for stage in 1..=3 {
        let out_c = width << (stage - 1);
        for b in 0..n {
            let stride = if stage > 1 && b == 0 { 2 } else { 1 };
            let p = format!("layer{stage}.{b}");
            let conv1 = conv(format!("{p}.conv1"), in_c, out_c, 3, stride);
            let conv2 = conv(format!("{p}.conv2"), out_c, out_c, 3, 1);
            let downsample = (stride != 1 || in_c != out_c)
                .then(|| (conv(format!("{p}.downsample.0"), in_c, out_c, 1, stride), format!("{p}.downsample.1")));
            (ch, cw) = conv1.output_hw(ch, cw);
            reduction *= stride;
            units.push(UnitDef {
                tap: format!("stage{stage}.block{b}"),
                unit: Unit::BasicBlock { conv1, bn1: format!("{p}.bn1"), conv2, bn2: format!("{p}.bn2"), downsample },
                channels: out_c,
                hw: (ch, cw),
                reduction,
            });
            in_c = out_c;
        }
    }
    units.push(UnitDef { tap: "pool".into(), unit: Unit::GlobalAvgPool, channels: in_c, hw: (1, 1), reduction });
    units.push(UnitDef {
        tap: "logits".into(),
        unit: Unit::Linear { name: "fc".into(), in_features: in_c, out_features: num_classes },
        channels: num_classes,
        hw: (1, 1),
        reduction,
    });
    units
}
