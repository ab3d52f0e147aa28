//! VGG with BatchNorm (Simonyan & Zisserman, ICLR 2015; torchvision's `vgg{11,13,16,19}_bn`),
//! with an optional width divisor for small experiments.
//!
//! Parameter names follow torchvision: `features.{i}` is the i-th module of the feature stack
//! (conv with bias at i, its BN at i+1, ReLU at i+2, max pools in between), `classifier.0`,
//! `classifier.3`, `classifier.6` the three linear layers (the ReLUs and dropouts in between
//! have no parameters; dropout is not run). `width_div` divides every conv width and the
//! classifier's 4096 hidden units; `pool` is the side of the adaptive average pool before the
//! classifier (torchvision: 7). Taps: `stage{s}.conv{i}` (s = 1..5), `stage{s}.pool` (the 2x2
//! max pool closing stage s), `avgpool` (adaptive pool, flattened), `fc1` (classifier.0 + ReLU),
//! `pool` (classifier.3 + ReLU: the penultimate features, input of the head), `logits`.

use super::graph::{Act, ConvDef, Unit};
use serde::{Deserialize, Serialize};

/// The four VGG configurations of the paper's Table 1 (A, B, D, E), all with BatchNorm.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VggConfig {
    /// Configuration A: 8 convs.
    Vgg11,
    /// Configuration B: 10 convs.
    Vgg13,
    /// Configuration D: 13 convs.
    Vgg16,
    /// Configuration E: 16 convs.
    Vgg19,
}

impl VggConfig {
    /// Conv widths per stage (each stage ends with a 2x2 max pool).
    pub fn stages(self) -> [&'static [usize]; 5] {
        match self {
            VggConfig::Vgg11 => [&[64], &[128], &[256, 256], &[512, 512], &[512, 512]],
            VggConfig::Vgg13 => [&[64, 64], &[128, 128], &[256, 256], &[512, 512], &[512, 512]],
            VggConfig::Vgg16 => [&[64, 64], &[128, 128], &[256, 256, 256], &[512, 512, 512], &[512, 512, 512]],
            VggConfig::Vgg19 => {
                [&[64, 64], &[128, 128], &[256, 256, 256, 256], &[512, 512, 512, 512], &[512, 512, 512, 512]]
            }
        }
    }

    /// `vgg11` .. `vgg19`.
    pub fn name(self) -> &'static str {
        match self {
            VggConfig::Vgg11 => "vgg11",
            VggConfig::Vgg13 => "vgg13",
            VggConfig::Vgg16 => "vgg16",
            VggConfig::Vgg19 => "vgg19",
        }
    }
}

/// Hidden units of the classifier's first two layers before the width divisor.
pub const HIDDEN: usize = 4096;

/// The units of `config` with BN, conv widths and hidden units divided by `width_div`, an
/// adaptive `pool`×`pool` average pool, on `in_channels` input channels.
pub fn build(config: VggConfig, width_div: usize, pool: usize, in_channels: usize, num_classes: usize) -> Vec<(String, Unit)> {
    let mut units = Vec::new();
    let mut in_c = in_channels;
    let mut idx = 0;
    for (s, widths) in config.stages().iter().enumerate() {
        let stage = s + 1;
        for (i, &w) in widths.iter().enumerate() {
            let out_c = w / width_div;
            let conv = ConvDef {
                name: format!("features.{idx}"),
                in_channels: in_c,
                out_channels: out_c,
                kernel: 3,
                stride: 1,
                padding: 1,
                groups: 1,
                bias: true,
            };
            units.push((format!("stage{stage}.conv{i}"), Unit::ConvBnAct { conv, bn: format!("features.{}", idx + 1), act: Act::Relu }));
            idx += 3;
            in_c = out_c;
        }
        units.push((
            format!("stage{stage}.pool"),
            Unit::MaxPool { name: format!("features.{idx}"), kernel: 2, stride: 2, padding: 0 },
        ));
        idx += 1;
    }
    let hidden = HIDDEN / width_div;
    let flat = in_c * pool * pool;
    units.push(("avgpool".into(), Unit::AvgPoolFlatten { out: (pool, pool) }));
    units.push(("fc1".into(), Unit::Linear { name: "classifier.0".into(), in_features: flat, out_features: hidden, act: Act::Relu }));
    units.push(("pool".into(), Unit::Linear { name: "classifier.3".into(), in_features: hidden, out_features: hidden, act: Act::Relu }));
    units.push((
        "logits".into(),
        Unit::Linear { name: "classifier.6".into(), in_features: hidden, out_features: num_classes, act: Act::None },
    ));
    units
}
