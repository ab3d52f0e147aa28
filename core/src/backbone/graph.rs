//! The executable structure of a backbone: an ordered list of units, each ending at a named tap.

/// One convolution layer: its parameter name prefix and geometry.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvDef {
    /// Module name, e.g. `layer1.0.conv1`; the weight is `<name>.weight`.
    pub name: String,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Groups (1 = dense, `in_channels` = depthwise).
    pub groups: usize,
    /// Whether the conv has a bias (`<name>.bias`).
    pub bias: bool,
}

impl ConvDef {
    /// The weight's safetensors key.
    pub fn weight_name(&self) -> String {
        format!("{}.weight", self.name)
    }

    /// Weight shape `(out, in/groups, k, k)`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [self.out_channels, self.in_channels / self.groups, self.kernel, self.kernel]
    }

    /// Output spatial size for an input of `(h, w)`.
    pub fn output_hw(&self, h: usize, w: usize) -> (usize, usize) {
        let f = |x: usize| (x + 2 * self.padding - self.kernel) / self.stride + 1;
        (f(h), f(w))
    }

    /// Multiply–accumulates per image for an input of `(h, w)`.
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        let (oh, ow) = self.output_hw(h, w);
        (self.out_channels * oh * ow * (self.in_channels / self.groups) * self.kernel * self.kernel) as u64
    }
}

/// The activation that follows a BatchNorm or a linear layer (the fused kernels' own enum).
pub use crate::kernels::Act;

/// One step of the forward pass; its output is the tap named in [`UnitDef::tap`].
#[derive(Clone, Debug, PartialEq)]
pub enum Unit {
    /// A convolution alone (the stem of a pre-activation net, whose BN comes later).
    Conv {
        /// The convolution.
        conv: ConvDef,
    },
    /// conv → BN → activation.
    ConvBnAct {
        /// The convolution.
        conv: ConvDef,
        /// The BatchNorm's module name (e.g. `bn1`).
        bn: String,
        /// The activation after the BN.
        act: Act,
    },
    /// Basic residual block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
    BasicBlock {
        /// First 3x3 conv (carries the stride).
        conv1: ConvDef,
        /// BN after `conv1`.
        bn1: String,
        /// Second 3x3 conv.
        conv2: ConvDef,
        /// BN after `conv2`.
        bn2: String,
        /// 1x1 conv + BN on the shortcut when the shape changes.
        downsample: Option<(ConvDef, String)>,
    },
    /// Bottleneck residual block (torchvision's ResNet v1.5, stride on the 3x3 conv):
    /// relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x)).
    Bottleneck {
        /// 1x1 reduction conv.
        conv1: ConvDef,
        /// BN after `conv1`.
        bn1: String,
        /// 3x3 conv (carries the stride).
        conv2: ConvDef,
        /// BN after `conv2`.
        bn2: String,
        /// 1x1 expansion conv.
        conv3: ConvDef,
        /// BN after `conv3`.
        bn3: String,
        /// 1x1 conv + BN on the shortcut when the shape changes.
        downsample: Option<(ConvDef, String)>,
    },
    /// Pre-activation basic block of a wide ResNet (Zagoruyko & Komodakis 2016):
    /// `a = relu(bn1(x))`, `y = conv2(relu(bn2(conv1(a))))`, output `y + x` when the shape is
    /// kept, else `y + shortcut(a)` (the 1x1 shortcut reads the pre-activated input).
    PreActBlock {
        /// BN on the block input.
        bn1: String,
        /// First 3x3 conv (carries the stride).
        conv1: ConvDef,
        /// BN after `conv1`.
        bn2: String,
        /// Second 3x3 conv.
        conv2: ConvDef,
        /// 1x1 conv (no BN) on the shortcut when the shape changes.
        shortcut: Option<ConvDef>,
    },
    /// MobileNetV2 inverted residual: optional 1x1 expansion (BN, ReLU6), 3x3 depthwise (BN,
    /// ReLU6), 1x1 linear projection (BN), plus the input when `residual`.
    InvertedResidual {
        /// 1x1 expansion conv and its BN (absent when the expansion ratio is 1).
        expand: Option<(ConvDef, String)>,
        /// 3x3 depthwise conv and its BN.
        dw: (ConvDef, String),
        /// 1x1 projection conv and its BN.
        project: (ConvDef, String),
        /// Whether the input is added to the output (stride 1, same channels).
        residual: bool,
    },
    /// A BatchNorm (+ activation) that no conv precedes in the same unit (pre-activation nets).
    BnAct {
        /// The BatchNorm's module name.
        bn: String,
        /// Its channels.
        channels: usize,
        /// The activation after it.
        act: Act,
    },
    /// Max pooling with `-inf` padding (PyTorch's `MaxPool2d`).
    MaxPool {
        /// Module name used in the structural description (e.g. `maxpool`, `features.3`).
        name: String,
        /// Square window size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding on each side (never selected: it is `-inf`).
        padding: usize,
    },
    /// Global average pool over the spatial dimensions: `(n, c, h, w)` → `(n, c)`.
    GlobalAvgPool,
    /// Adaptive average pool to `out` (PyTorch's `AdaptiveAvgPool2d`) then flatten:
    /// `(n, c, h, w)` → `(n, c·oh·ow)` in channel-major order.
    AvgPoolFlatten {
        /// Output spatial size `(oh, ow)`.
        out: (usize, usize),
    },
    /// Fully connected layer `y = act(x Wᵀ + b)` with parameters `<name>.weight`, `<name>.bias`.
    Linear {
        /// Module name (e.g. `fc`).
        name: String,
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
        /// Activation after the layer (`Act::None` for a head).
        act: Act,
    },
}

/// A unit plus the tap its output is published under and the output geometry.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitDef {
    /// Tap name, e.g. `stem`, `stage2.block0`, `pool`, `logits`.
    pub tap: String,
    /// The computation.
    pub unit: Unit,
    /// Output channels (or features).
    pub channels: usize,
    /// Output spatial size `(h, w)`; `(1, 1)` after pooling.
    pub hw: (usize, usize),
    /// Total downsampling factor from the input to this output.
    pub reduction: usize,
}

impl Unit {
    /// The convolutions in this unit with the BN that directly follows each, in forward order.
    pub fn convs(&self) -> Vec<(&ConvDef, Option<&str>)> {
        match self {
            Unit::Conv { conv } => vec![(conv, None)],
            Unit::ConvBnAct { conv, bn, .. } => vec![(conv, Some(bn.as_str()))],
            Unit::BasicBlock { conv1, bn1, conv2, bn2, downsample } => {
                let mut v = vec![(conv1, Some(bn1.as_str())), (conv2, Some(bn2.as_str()))];
                v.extend(downsample.iter().map(conv_and_bn));
                v
            }
            Unit::Bottleneck { conv1, bn1, conv2, bn2, conv3, bn3, downsample } => {
                let mut v = vec![(conv1, Some(bn1.as_str())), (conv2, Some(bn2.as_str())), (conv3, Some(bn3.as_str()))];
                v.extend(downsample.iter().map(conv_and_bn));
                v
            }
            Unit::PreActBlock { conv1, bn2, conv2, shortcut, .. } => {
                let mut v = vec![(conv1, Some(bn2.as_str())), (conv2, None)];
                v.extend(shortcut.iter().map(|c| (c, None)));
                v
            }
            Unit::InvertedResidual { expand, dw, project, .. } => {
                expand.iter().chain([dw, project]).map(conv_and_bn).collect()
            }
            Unit::BnAct { .. }
            | Unit::MaxPool { .. }
            | Unit::GlobalAvgPool
            | Unit::AvgPoolFlatten { .. }
            | Unit::Linear { .. } => vec![],
        }
    }

    /// Every BatchNorm of this unit with its channels, in forward order (those after a conv and
    /// standalone ones).
    pub fn bns(&self) -> Vec<(&str, usize)> {
        match self {
            Unit::PreActBlock { bn1, conv1, bn2, .. } => vec![(bn1.as_str(), conv1.in_channels), (bn2.as_str(), conv1.out_channels)],
            Unit::BnAct { bn, channels, .. } => vec![(bn.as_str(), *channels)],
            _ => self.convs().into_iter().filter_map(|(c, bn)| bn.map(|b| (b, c.out_channels))).collect(),
        }
    }

    /// Whether the unit's output is a flat feature vector `(n, features)` rather than a map.
    pub fn is_flat(&self) -> bool {
        matches!(self, Unit::GlobalAvgPool | Unit::AvgPoolFlatten { .. } | Unit::Linear { .. })
    }

    /// Every parameter (and BN buffer) name this unit reads, with its shape.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for (conv, _) in self.convs() {
            out.push((conv.weight_name(), conv.weight_shape().to_vec()));
            if conv.bias {
                out.push((format!("{}.bias", conv.name), vec![conv.out_channels]));
            }
        }
        for (bn, channels) in self.bns() {
            for p in BN_PARAMS {
                out.push((format!("{bn}.{p}"), vec![channels]));
            }
        }
        if let Unit::Linear { name, in_features, out_features, .. } = self {
            out.push((format!("{name}.weight"), vec![*out_features, *in_features]));
            out.push((format!("{name}.bias"), vec![*out_features]));
        }
        out
    }
}

fn conv_and_bn((c, b): &(ConvDef, String)) -> (&ConvDef, Option<&str>) {
    (c, Some(b.as_str()))
}

/// The tensors of one BatchNorm layer, in the order they are stored.
pub const BN_PARAMS: [&str; 4] = ["weight", "bias", "running_mean", "running_var"];

/// Whether a parameter name is a BN running statistic (a buffer, never trained by gradient).
pub fn is_bn_buffer(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}
