//! CIFAR-style ResNet (He et al. 2016, §4.2) with torchvision parameter names.

use super::graph::{Act, ConvDef, Unit};

/// A bias-free square conv with "same" padding.
pub(crate) fn conv(name: String, in_c: usize, out_c: usize, kernel: usize, stride: usize) -> ConvDef {
    ConvDef { name, in_channels: in_c, out_channels: out_c, kernel, stride, padding: kernel / 2, groups: 1, bias: false }
}

/// The units of `resnet-cifar` of the given depth (6n+2) and width on an input of `in_channels`
/// channels with `num_classes` outputs.
///
/// Taps: `stem`, `stage{s}.block{b}` (s = 1..3, b = 0..n-1; the parameters live under
/// `layer{s}.{b}.`), `pool`, `logits`.
pub fn build(depth: usize, width: usize, in_channels: usize, num_classes: usize) -> Vec<(String, Unit)> {
    let n = (depth - 2) / 6;
    let mut units = Vec::new();
    let stem = conv("conv1".into(), in_channels, width, 3, 1);
    units.push(("stem".to_string(), Unit::ConvBnAct { conv: stem, bn: "bn1".into(), act: Act::Relu }));
    let mut in_c = width;
    for stage in 1..=3 {
        let out_c = width << (stage - 1);
        for b in 0..n {
            let stride = if stage > 1 && b == 0 { 2 } else { 1 };
            let p = format!("layer{stage}.{b}");
            let conv1 = conv(format!("{p}.conv1"), in_c, out_c, 3, stride);
            let conv2 = conv(format!("{p}.conv2"), out_c, out_c, 3, 1);
            let downsample = (stride != 1 || in_c != out_c)
                .then(|| (conv(format!("{p}.downsample.0"), in_c, out_c, 1, stride), format!("{p}.downsample.1")));
            units.push((
                format!("stage{stage}.block{b}"),
                Unit::BasicBlock { conv1, bn1: format!("{p}.bn1"), conv2, bn2: format!("{p}.bn2"), downsample },
            ));
            in_c = out_c;
        }
    }
    units.push(("pool".into(), Unit::GlobalAvgPool));
    units.push(("logits".into(), Unit::Linear { name: "fc".into(), in_features: in_c, out_features: num_classes, act: Act::None }));
    units
}
