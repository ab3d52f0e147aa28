//! ImageNet-style ResNet (He et al. 2016) in torchvision's layout (v1.5: the stride of a
//! bottleneck sits on its 3x3 conv), so torchvision/timm `resnet{18,34,50,101,152}` state dicts
//! load as they are.
//!
//! Parameter names: `conv1`, `bn1`, `layer{s}.{b}.conv{1,2[,3]}`, `layer{s}.{b}.bn{1,2[,3]}`,
//! `layer{s}.{b}.downsample.0` (1x1 conv) / `.1` (BN), `fc`. Taps: `stem` (conv1 → bn1 → relu,
//! reduction 2), `stem.maxpool` (3x3/2 max pool, reduction 4), `stage{s}.block{b}` (s = 1..4,
//! parameters under `layer{s}.{b}.`), `pool` (global average pool), `logits`.

use super::graph::{Act, Unit};
use super::resnet_cifar::conv;

/// Blocks per stage and whether the blocks are bottlenecks, for a torchvision depth.
pub fn layout(depth: usize) -> Option<([usize; 4], bool)> {
    match depth {
        18 => Some(([2, 2, 2, 2], false)),
        34 => Some(([3, 4, 6, 3], false)),
        50 => Some(([3, 4, 6, 3], true)),
        101 => Some(([3, 4, 23, 3], true)),
        152 => Some(([3, 8, 36, 3], true)),
        _ => None,
    }
}

/// The depths [`layout`] knows.
pub const DEPTHS: [usize; 5] = [18, 34, 50, 101, 152];

/// The units of torchvision's `resnet<depth>` with `width` channels in the first stage (64 in
/// torchvision; graft allows narrower nets with the same names) on `in_channels` input channels.
/// `depth` must be one of [`DEPTHS`] (checked by the spec).
pub fn build(depth: usize, width: usize, in_channels: usize, num_classes: usize) -> Vec<(String, Unit)> {
    let (blocks, bottleneck) = layout(depth).unwrap_or(([2, 2, 2, 2], false));
    let expansion = if bottleneck { 4 } else { 1 };
    let mut units = Vec::new();
    let stem = conv("conv1".into(), in_channels, width, 7, 2);
    units.push(("stem".to_string(), Unit::ConvBnAct { conv: stem, bn: "bn1".into(), act: Act::Relu }));
    units.push(("stem.maxpool".to_string(), Unit::MaxPool { name: "maxpool".into(), kernel: 3, stride: 2, padding: 1 }));
    let mut in_c = width;
    for (s, &n) in blocks.iter().enumerate() {
        let stage = s + 1;
        let planes = width << s;
        let out_c = planes * expansion;
        for b in 0..n {
            let stride = if stage > 1 && b == 0 { 2 } else { 1 };
            let p = format!("layer{stage}.{b}");
            let downsample = (stride != 1 || in_c != out_c)
                .then(|| (conv(format!("{p}.downsample.0"), in_c, out_c, 1, stride), format!("{p}.downsample.1")));
            let unit = if bottleneck {
                Unit::Bottleneck {
                    conv1: conv(format!("{p}.conv1"), in_c, planes, 1, 1),
                    bn1: format!("{p}.bn1"),
                    conv2: conv(format!("{p}.conv2"), planes, planes, 3, stride),
                    bn2: format!("{p}.bn2"),
                    conv3: conv(format!("{p}.conv3"), planes, out_c, 1, 1),
                    bn3: format!("{p}.bn3"),
                    downsample,
                }
            } else {
                Unit::BasicBlock {
                    conv1: conv(format!("{p}.conv1"), in_c, planes, 3, stride),
                    bn1: format!("{p}.bn1"),
                    conv2: conv(format!("{p}.conv2"), planes, planes, 3, 1),
                    bn2: format!("{p}.bn2"),
                    downsample,
                }
            };
            units.push((format!("stage{stage}.block{b}"), unit));
            in_c = out_c;
        }
    }
    units.push(("pool".into(), Unit::GlobalAvgPool));
    units.push(("logits".into(), Unit::Linear { name: "fc".into(), in_features: in_c, out_features: num_classes, act: Act::None }));
    units
}
