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

/// One step of the forward pass; its output is the tap named in [`UnitDef::tap`].
#[derive(Clone, Debug, PartialEq)]
pub enum Unit {
    /// conv → BN → ReLU.
    ConvBnRelu {
        /// The convolution.
        conv: ConvDef,
        /// The BatchNorm's module name (e.g. `bn1`).
        bn: String,
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
    /// Global average pool over the spatial dimensions: `(n, c, h, w)` → `(n, c)`.
    GlobalAvgPool,
    /// Fully connected layer `y = x Wᵀ + b` with parameters `<name>.weight`, `<name>.bias`.
    Linear {
        /// Module name (e.g. `fc`).
        name: String,
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
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
    /// The convolutions in this unit with the BN that follows each.
    pub fn convs(&self) -> Vec<(&ConvDef, Option<&str>)> {
        match self {
            Unit::ConvBnRelu { conv, bn } => vec![(conv, Some(bn.as_str()))],
            Unit::BasicBlock { conv1, bn1, conv2, bn2, downsample } => {
                let mut v = vec![(conv1, Some(bn1.as_str())), (conv2, Some(bn2.as_str()))];
                if let Some((c, b)) = downsample {
                    v.push((c, Some(b.as_str())));
                }
                v
            }
            Unit::GlobalAvgPool | Unit::Linear { .. } => vec![],
        }
    }

    /// Every parameter (and BN buffer) name this unit reads, with its shape.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for (conv, bn) in self.convs() {
            out.push((conv.weight_name(), conv.weight_shape().to_vec()));
            if conv.bias {
                out.push((format!("{}.bias", conv.name), vec![conv.out_channels]));
            }
            if let Some(bn) = bn {
                for p in BN_PARAMS {
                    out.push((format!("{bn}.{p}"), vec![conv.out_channels]));
                }
            }
        }
        if let Unit::Linear { name, in_features, out_features } = self {
            out.push((format!("{name}.weight"), vec![*out_features, *in_features]));
            out.push((format!("{name}.bias"), vec![*out_features]));
        }
        out
    }
}

/// The tensors of one BatchNorm layer, in the order they are stored.
pub const BN_PARAMS: [&str; 4] = ["weight", "bias", "running_mean", "running_var"];

/// Whether a parameter name is a BN running statistic (a buffer, never trained by gradient).
pub fn is_bn_buffer(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}
