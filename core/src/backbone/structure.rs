//! The structural description of a backbone: every elementary layer in forward order, with what
//! it reads, its shapes, parameters and FLOPs, and where the graph merges (add / concat / mul).
//!
//! It is derived from the units (one expansion per [`Unit`] variant), so the executable forward
//! pass and this description cannot drift apart unnoticed: the tests check every tap's shape
//! against a real forward pass and the FLOPs against hand-computed values. Cross-architecture
//! methods (TLI) match layers with it; [`Backbone::convs`](super::Backbone::convs) and the FLOP
//! counts are read from it.

use super::graph::{Act, ConvDef, Unit, UnitDef, BN_PARAMS};
use crate::error::{GraftError, Result};

/// What one layer computes.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerKind {
    /// The normalised image batch (always layer 0).
    Input,
    /// A 2-D convolution.
    Conv(ConvDef),
    /// BatchNorm (inference: running statistics; or batch statistics when a method tunes it).
    BatchNorm,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// Max pooling with `-inf` padding.
    MaxPool {
        /// Window size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding on each side.
        padding: usize,
    },
    /// Mean over the spatial dimensions: `(c, h, w)` → `(c)`.
    GlobalAvgPool,
    /// Adaptive average pool to a fixed spatial size.
    AdaptiveAvgPool {
        /// Output `(h, w)`.
        out: (usize, usize),
    },
    /// `(c, h, w)` → `(c·h·w)`, channel-major.
    Flatten,
    /// Fully connected layer.
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
    },
    /// Element-wise sum of the inputs (a residual merge).
    Add,
    /// Channel concatenation of the inputs.
    Concat,
    /// Element-wise product of the inputs (gating).
    Mul,
}

impl LayerKind {
    /// A short lowercase name: `input`, `conv`, `bn`, `relu`, `relu6`, `maxpool`, `avgpool`,
    /// `adaptive_avgpool`, `flatten`, `linear`, `add`, `concat`, `mul`.
    pub fn name(&self) -> &'static str {
        match self {
            LayerKind::Input => "input",
            LayerKind::Conv(_) => "conv",
            LayerKind::BatchNorm => "bn",
            LayerKind::Relu => "relu",
            LayerKind::Relu6 => "relu6",
            LayerKind::MaxPool { .. } => "maxpool",
            LayerKind::GlobalAvgPool => "avgpool",
            LayerKind::AdaptiveAvgPool { .. } => "adaptive_avgpool",
            LayerKind::Flatten => "flatten",
            LayerKind::Linear { .. } => "linear",
            LayerKind::Add => "add",
            LayerKind::Concat => "concat",
            LayerKind::Mul => "mul",
        }
    }

    /// Whether the layer merges several branches of the graph (add, concat, mul).
    pub fn is_merge(&self) -> bool {
        matches!(self, LayerKind::Add | LayerKind::Concat | LayerKind::Mul)
    }
}

/// One elementary layer of the forward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Module name: the parameter prefix for layers with parameters (`layer1.0.conv1`,
    /// `layer1.0.bn1`, `fc`); for the others a unique name derived from what they follow
    /// (`layer1.0.bn1.relu`, `stage1.block0.add`, `avgpool`).
    pub name: String,
    /// What it computes.
    pub kind: LayerKind,
    /// Indices (into the layer list) of the layers whose outputs it reads, in argument order;
    /// merge layers read two or more. Only the input layer reads nothing.
    pub inputs: Vec<usize>,
    /// Per-image shape of each input: `[c, h, w]` or `[features]`.
    pub input_shapes: Vec<Vec<usize>>,
    /// Per-image output shape: `[c, h, w]` or `[features]`.
    pub output_shape: Vec<usize>,
    /// The parameters (and BN buffers) it reads, with their shapes.
    pub params: Vec<(String, Vec<usize>)>,
    /// The tap (unit) the layer belongs to; `input` for the input layer.
    pub tap: String,
    /// Total downsampling from the input to this output (product of strides).
    pub reduction: usize,
    /// Analytic FLOPs per image: 2 × multiply–accumulates for conv and linear layers; 0 for the
    /// rest (BN, activations, pooling and merges are memory-bound and not counted).
    pub flops: u64,
}

impl Layer {
    /// Whether the layer merges several branches (add / concat / mul).
    pub fn is_merge(&self) -> bool {
        self.kind.is_merge()
    }
}

/// Scalar parameters of `layers` (BN running statistics excluded), as
/// [`Backbone::num_params`](super::Backbone::num_params) counts them.
pub fn count_params(layers: &[Layer]) -> usize {
    layers
        .iter()
        .flat_map(|l| &l.params)
        .filter(|(name, _)| !super::graph::is_bn_buffer(name))
        .map(|(_, shape)| shape.iter().product::<usize>())
        .sum()
}

/// Total FLOPs per image of `layers` (the sum of [`Layer::flops`]).
pub fn count_flops(layers: &[Layer]) -> u64 {
    layers.iter().map(|l| l.flops).sum()
}

/// Expands units into layers, tracking shapes, reductions and names.
struct Builder {
    layers: Vec<Layer>,
    tap: String,
}

impl Builder {
    fn shape(&self, x: usize) -> &[usize] {
        &self.layers[x].output_shape
    }

    /// Appends a layer; its parameters, stride and FLOPs follow from its kind and input shape.
    fn push(&mut self, name: String, kind: LayerKind, inputs: Vec<usize>, output_shape: Vec<usize>) -> usize {
        let input_shapes: Vec<Vec<usize>> = inputs.iter().map(|&i| self.layers[i].output_shape.clone()).collect();
        let (params, stride, flops) = match &kind {
            LayerKind::Conv(conv) => {
                let mut params = vec![(conv.weight_name(), conv.weight_shape().to_vec())];
                if conv.bias {
                    params.push((format!("{}.bias", conv.name), vec![conv.out_channels]));
                }
                let (h, w) = (input_shapes[0][1], input_shapes[0][2]);
                (params, conv.stride, 2 * conv.macs(h, w))
            }
            LayerKind::BatchNorm => (BN_PARAMS.iter().map(|p| (format!("{name}.{p}"), vec![output_shape[0]])).collect(), 1, 0),
            LayerKind::Linear { in_features, out_features } => (
                vec![(format!("{name}.weight"), vec![*out_features, *in_features]), (format!("{name}.bias"), vec![*out_features])],
                1,
                2 * (*in_features as u64) * (*out_features as u64),
            ),
            LayerKind::MaxPool { stride, .. } => (vec![], *stride, 0),
            _ => (vec![], 1, 0),
        };
        let reduction = inputs.iter().map(|&i| self.layers[i].reduction).max().unwrap_or(1) * stride;
        self.layers.push(Layer { name, kind, inputs, input_shapes, output_shape, params, tap: self.tap.clone(), reduction, flops });
        self.layers.len() - 1
    }

    fn spatial(&self, x: usize, what: &str) -> Result<(usize, usize, usize)> {
        match *self.shape(x) {
            [c, h, w] => Ok((c, h, w)),
            ref s => Err(GraftError::Backbone(format!("{what} needs a (c, h, w) input, layer '{}' gives {s:?}", self.layers[x].name))),
        }
    }

    fn window_out(&self, name: &str, size: usize, kernel: usize, stride: usize, padding: usize) -> Result<usize> {
        if size + 2 * padding < kernel {
            return Err(GraftError::Backbone(format!(
                "the input is too small: at '{name}' (tap '{}') a {kernel}x{kernel} window with padding {padding} does not fit a size of {size}; use a larger input",
                self.tap
            )));
        }
        Ok((size + 2 * padding - kernel) / stride + 1)
    }

    fn conv(&mut self, x: usize, conv: &ConvDef) -> Result<usize> {
        let (c, h, w) = self.spatial(x, &conv.name)?;
        if c != conv.in_channels {
            return Err(GraftError::Backbone(format!("conv '{}' expects {} input channels, gets {c}", conv.name, conv.in_channels)));
        }
        let oh = self.window_out(&conv.name, h, conv.kernel, conv.stride, conv.padding)?;
        let ow = self.window_out(&conv.name, w, conv.kernel, conv.stride, conv.padding)?;
        Ok(self.push(conv.name.clone(), LayerKind::Conv(conv.clone()), vec![x], vec![conv.out_channels, oh, ow]))
    }

    fn bn(&mut self, x: usize, bn: &str) -> usize {
        let shape = self.shape(x).to_vec();
        self.push(bn.to_string(), LayerKind::BatchNorm, vec![x], shape)
    }

    fn act(&mut self, x: usize, act: Act) -> usize {
        let kind = match act {
            Act::None => return x,
            Act::Relu => LayerKind::Relu,
            Act::Relu6 => LayerKind::Relu6,
        };
        let name = format!("{}.{}", self.layers[x].name, kind.name());
        let shape = self.shape(x).to_vec();
        self.push(name, kind, vec![x], shape)
    }

    fn conv_bn(&mut self, x: usize, conv: &ConvDef, bn: &str, act: Act) -> Result<usize> {
        let y = self.conv(x, conv)?;
        let y = self.bn(y, bn);
        Ok(self.act(y, act))
    }

    fn add(&mut self, a: usize, b: usize) -> Result<usize> {
        if self.shape(a) != self.shape(b) {
            return Err(GraftError::Backbone(format!(
                "residual add at tap '{}': branch shapes {:?} and {:?} differ",
                self.tap,
                self.shape(a),
                self.shape(b)
            )));
        }
        let shape = self.shape(a).to_vec();
        Ok(self.push(format!("{}.add", self.tap), LayerKind::Add, vec![a, b], shape))
    }

    fn unit(&mut self, x: usize, unit: &Unit) -> Result<usize> {
        Ok(match unit {
            Unit::Conv { conv } => self.conv(x, conv)?,
            Unit::ConvBnAct { conv, bn, act } => self.conv_bn(x, conv, bn, *act)?,
            Unit::BasicBlock { conv1, bn1, conv2, bn2, downsample } => {
                let h = self.conv_bn(x, conv1, bn1, Act::Relu)?;
                let h = self.conv_bn(h, conv2, bn2, Act::None)?;
                let s = match downsample {
                    Some((c, b)) => self.conv_bn(x, c, b, Act::None)?,
                    None => x,
                };
                let y = self.add(h, s)?;
                self.act(y, Act::Relu)
            }
            Unit::Bottleneck { conv1, bn1, conv2, bn2, conv3, bn3, downsample } => {
                let h = self.conv_bn(x, conv1, bn1, Act::Relu)?;
                let h = self.conv_bn(h, conv2, bn2, Act::Relu)?;
                let h = self.conv_bn(h, conv3, bn3, Act::None)?;
                let s = match downsample {
                    Some((c, b)) => self.conv_bn(x, c, b, Act::None)?,
                    None => x,
                };
                let y = self.add(h, s)?;
                self.act(y, Act::Relu)
            }
            Unit::PreActBlock { bn1, conv1, bn2, conv2, shortcut } => {
                let a = self.bn(x, bn1);
                let a = self.act(a, Act::Relu);
                let h = self.conv_bn(a, conv1, bn2, Act::Relu)?;
                let h = self.conv(h, conv2)?;
                let s = match shortcut {
                    Some(c) => self.conv(a, c)?,
                    None => x,
                };
                self.add(h, s)?
            }
            Unit::InvertedResidual { expand, dw, project, residual } => {
                let mut h = x;
                if let Some((c, b)) = expand {
                    h = self.conv_bn(h, c, b, Act::Relu6)?;
                }
                h = self.conv_bn(h, &dw.0, &dw.1, Act::Relu6)?;
                h = self.conv_bn(h, &project.0, &project.1, Act::None)?;
                if *residual {
                    h = self.add(h, x)?;
                }
                h
            }
            Unit::BnAct { bn, channels, act } => {
                let (c, _, _) = self.spatial(x, bn)?;
                if c != *channels {
                    return Err(GraftError::Backbone(format!("BN '{bn}' expects {channels} channels, gets {c}")));
                }
                let y = self.bn(x, bn);
                self.act(y, *act)
            }
            Unit::MaxPool { name, kernel, stride, padding } => {
                let (c, h, w) = self.spatial(x, name)?;
                if 2 * padding > *kernel {
                    return Err(GraftError::Backbone(format!("max pool '{name}': padding {padding} exceeds half the window {kernel}")));
                }
                let oh = self.window_out(name, h, *kernel, *stride, *padding)?;
                let ow = self.window_out(name, w, *kernel, *stride, *padding)?;
                let kind = LayerKind::MaxPool { kernel: *kernel, stride: *stride, padding: *padding };
                self.push(name.clone(), kind, vec![x], vec![c, oh, ow])
            }
            Unit::GlobalAvgPool => {
                let (c, _, _) = self.spatial(x, "avgpool")?;
                self.push("avgpool".into(), LayerKind::GlobalAvgPool, vec![x], vec![c])
            }
            Unit::AvgPoolFlatten { out } => {
                let (c, _, _) = self.spatial(x, "avgpool")?;
                let p = self.push("avgpool".into(), LayerKind::AdaptiveAvgPool { out: *out }, vec![x], vec![c, out.0, out.1]);
                self.push("flatten".into(), LayerKind::Flatten, vec![p], vec![c * out.0 * out.1])
            }
            Unit::Linear { name, in_features, out_features, act } => {
                let got = self.shape(x).to_vec();
                if got != [*in_features] {
                    return Err(GraftError::Backbone(format!("linear '{name}' expects {in_features} features, gets shape {got:?}")));
                }
                let kind = LayerKind::Linear { in_features: *in_features, out_features: *out_features };
                let y = self.push(name.clone(), kind, vec![x], vec![*out_features]);
                self.act(y, *act)
            }
        })
    }
}

/// Expands `units` (tap, computation) on an input of `(c, h, w)` into [`UnitDef`]s (with their
/// output geometry) and the layer list. Errors when the input is too small for the network or
/// the units do not fit together.
pub(crate) fn expand(input: (usize, usize, usize), units: Vec<(String, Unit)>) -> Result<(Vec<UnitDef>, Vec<Layer>)> {
    let (c, h, w) = input;
    let mut b = Builder { layers: Vec::new(), tap: "input".into() };
    let mut x = b.push("input".into(), LayerKind::Input, vec![], vec![c, h, w]);
    let mut defs = Vec::with_capacity(units.len());
    for (tap, unit) in units {
        b.tap = tap.clone();
        x = b.unit(x, &unit)?;
        let shape = b.shape(x);
        let (channels, hw) = match *shape {
            [c, h, w] => (c, (h, w)),
            [f] => (f, (1, 1)),
            _ => unreachable!("layers are (c, h, w) or (features)"),
        };
        defs.push(UnitDef { tap, unit, channels, hw, reduction: b.layers[x].reduction });
    }
    Ok((defs, b.layers))
}
