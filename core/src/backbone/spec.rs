//! Serialisable backbone descriptions: architecture, input format, classifier size.

use super::vgg::VggConfig;
use crate::error::{GraftError, Result};
use serde::{Deserialize, Serialize};

/// A complete, serialisable description of a backbone; stored in every source checkpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackboneSpec {
    /// The architecture and its size parameters.
    pub arch: Arch,
    /// Input format the backbone expects (shape and normalisation statistics).
    pub input: InputSpec,
    /// Classes of the source head (`fc`).
    pub num_classes: usize,
}

/// The architectures graft can build.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Arch {
    /// CIFAR-style ResNet (He et al. 2016, §4.2): 3 stages of `(depth-2)/6` basic blocks with
    /// `width`, `2·width`, `4·width` channels, strides 1, 2, 2; 1x1 conv + BN shortcut where the
    /// shape changes; global average pool; `fc`.
    ResnetCifar {
        /// Total depth, `6n + 2`: 8, 14, 20, 32, 56, ...
        depth: usize,
        /// Channels of the first stage (16 in the paper).
        width: usize,
    },
    /// Wide ResNet WRN-`depth`-`widen` (Zagoruyko & Komodakis 2016): pre-activation basic
    /// blocks in 3 stages of `(depth-4)/6` blocks with 16k, 32k, 64k channels.
    Wrn {
        /// Total depth, `6n + 4`: 10, 16, 22, 28, 40, ...
        depth: usize,
        /// Widen factor `k` (1 gives a thin 16/32/64-channel net).
        widen: usize,
    },
    /// The top of a Wide ResNet: its stages from `from_stage` on, the final BN → ReLU, pool and
    /// `fc`, at a widen factor that may be a fraction (0.25 gives 4/8/16 channels per stage).
    /// Its input is another network's tap: `input` gives that tap's channels and spatial size
    /// (mean 0 and std 1 make the input normalisation the identity). Pool of Experts' experts
    /// are `wrn-16-0.25-from-stage3` on a WRN-16-1 library's `stage2` output.
    WrnTop {
        /// Total depth of the whole WRN, `6n + 4`: each stage has `n` blocks.
        depth: usize,
        /// Widen factor, a positive number (fractions allowed); stage `s` has
        /// `round(16 · 2^(s-1) · widen)` channels, at least 1.
        widen: f64,
        /// First stage present, 1..=3 (its first block reads the input map).
        from_stage: usize,
    },
    /// ImageNet-style ResNet with torchvision's parameter names and layout (7x7/2 stem, 3x3/2
    /// max pool, 4 stages, global average pool), for any input size.
    Resnet {
        /// 18 or 34 (basic blocks), 50, 101 or 152 (bottlenecks).
        depth: usize,
        /// Channels of the first stage: 64 in torchvision; smaller values give narrow nets with
        /// the same parameter names (a graft extension, for tests and small data).
        #[serde(default = "default_resnet_width")]
        width: usize,
    },
    /// MobileNetV2 with torchvision's parameter names and width multiplier.
    Mobilenetv2 {
        /// Width multiplier (1.0 in the paper; channels are rounded to multiples of 8).
        width_mult: f64,
    },
    /// VGG with BatchNorm and torchvision's parameter names.
    Vgg {
        /// `vgg11`, `vgg13`, `vgg16` or `vgg19`.
        config: VggConfig,
        /// Divides every conv width and the classifier's 4096 hidden units (1 = torchvision's
        /// sizes; a power of two up to 64).
        #[serde(default = "one")]
        width_div: usize,
        /// Side of the adaptive average pool before the classifier (torchvision: 7; 1 gives a
        /// CIFAR-style VGG with a much smaller classifier).
        #[serde(default = "seven")]
        pool: usize,
    },
}

fn default_resnet_width() -> usize {
    64
}
fn one() -> usize {
    1
}
fn seven() -> usize {
    7
}

/// ImageNet's per-channel mean, which torchvision's and timm's pretrained models expect.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Input format: shape and per-channel normalisation `(x - mean) / std` applied by the backbone.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Image channels (1 for grey, 3 for RGB).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Per-channel mean subtracted from `[0, 1]` pixels.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided out after the mean.
    pub std: Vec<f32>,
}

impl InputSpec {
    /// An input of the given shape with mean 0.5 and std 0.5 on every channel.
    pub fn new(channels: usize, height: usize, width: usize) -> Self {
        Self { channels, height, width, mean: vec![0.5; channels], std: vec![0.5; channels] }
    }

    /// An input for weights trained elsewhere: `mean`/`std` where given (one value per channel,
    /// every std positive), else ImageNet's for 3 channels (what torchvision's and timm's
    /// pretrained models expect) and 0.5 otherwise. The error names the key (`mean` or `std`)
    /// and what is wrong with it.
    pub fn imported(
        channels: usize,
        height: usize,
        width: usize,
        mean: Option<&[f32]>,
        std: Option<&[f32]>,
    ) -> std::result::Result<Self, (&'static str, String)> {
        let mut input = Self::new(channels, height, width);
        if channels == 3 {
            (input.mean, input.std) = (IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec());
        }
        for (key, given, into) in [("mean", mean, &mut input.mean), ("std", std, &mut input.std)] {
            if let Some(v) = given {
                if v.len() != channels {
                    return Err((key, format!("has {} values for {channels} input channels", v.len())));
                }
                *into = v.to_vec();
            }
        }
        if input.std.iter().any(|&s| s <= 0.0) {
            return Err(("std", "must be positive in every channel".into()));
        }
        Ok(input)
    }

    /// `(channels, height, width)`.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }
}

impl BackboneSpec {
    /// Checks sizes are valid for the architecture, including that the input is large enough
    /// for every layer (the network is built to check it).
    pub fn validate(&self) -> Result<()> {
        super::build_units(self).map(|_| ())
    }

    /// The checks of [`BackboneSpec::validate`] that do not build the network.
    pub(crate) fn validate_sizes(&self) -> Result<()> {
        let i = &self.input;
        if i.channels == 0 || i.height == 0 || i.width == 0 {
            return Err(GraftError::Backbone(format!(
                "input shape {}x{}x{} has a zero dimension",
                i.channels, i.height, i.width
            )));
        }
        if i.mean.len() != i.channels || i.std.len() != i.channels {
            return Err(GraftError::Backbone(format!(
                "input mean/std need {} values each (one per channel), got {} and {}",
                i.channels,
                i.mean.len(),
                i.std.len()
            )));
        }
        if i.std.iter().any(|&s| s.is_nan() || s <= 0.0 || !s.is_finite()) {
            return Err(GraftError::Backbone(format!("input std must be positive, got {:?}", i.std)));
        }
        if self.num_classes == 0 {
            return Err(GraftError::Backbone("num_classes must be at least 1".into()));
        }
        self.arch.validate()
    }

    /// A short identifier such as `resnet-cifar-20-w16`, `wrn-16-4`, `resnet50`,
    /// `resnet18-w8`, `mobilenetv2-0.5`, `vgg11-bn-d16`.
    pub fn id(&self) -> String {
        self.arch.id()
    }
}

impl Arch {
    /// The architecture's family name as written in specs (`resnet-cifar`, `wrn`, `resnet`,
    /// `mobilenetv2`, `vgg`).
    pub fn family(&self) -> &'static str {
        match self {
            Arch::ResnetCifar { .. } => "resnet-cifar",
            Arch::Wrn { .. } => "wrn",
            Arch::WrnTop { .. } => "wrn-top",
            Arch::Resnet { .. } => "resnet",
            Arch::Mobilenetv2 { .. } => "mobilenetv2",
            Arch::Vgg { .. } => "vgg",
        }
    }

    /// A short identifier (see [`BackboneSpec::id`]).
    pub fn id(&self) -> String {
        match self {
            Arch::ResnetCifar { depth, width } => format!("resnet-cifar-{depth}-w{width}"),
            Arch::Wrn { depth, widen } => format!("wrn-{depth}-{widen}"),
            Arch::WrnTop { depth, widen, from_stage } => format!("wrn-{depth}-{widen}-from-stage{from_stage}"),
            Arch::Resnet { depth, width: 64 } => format!("resnet{depth}"),
            Arch::Resnet { depth, width } => format!("resnet{depth}-w{width}"),
            Arch::Mobilenetv2 { width_mult } => format!("mobilenetv2-{width_mult:?}"),
            Arch::Vgg { config, width_div, pool } => {
                let mut id = format!("{}-bn", config.name());
                if *width_div != 1 {
                    id.push_str(&format!("-d{width_div}"));
                }
                if *pool != 7 {
                    id.push_str(&format!("-p{pool}"));
                }
                id
            }
        }
    }

    /// Checks the size parameters (not the input size; see [`BackboneSpec::validate`]).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(GraftError::Backbone(m));
        match *self {
            Arch::ResnetCifar { depth, width } => {
                if depth < 8 || (depth - 2) % 6 != 0 {
                    return bad(format!("resnet-cifar depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 56, ...), got {depth}"));
                }
                if width == 0 {
                    return bad("resnet-cifar width must be at least 1".into());
                }
            }
            Arch::Wrn { depth, widen } => {
                if depth < 10 || (depth - 4) % 6 != 0 {
                    return bad(format!("wrn depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth}"));
                }
                if widen == 0 {
                    return bad("wrn widen factor must be at least 1".into());
                }
            }
            Arch::WrnTop { depth, widen, from_stage } => {
                if depth < 10 || (depth - 4) % 6 != 0 {
                    return bad(format!("wrn-top depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth}"));
                }
                if !(widen.is_finite() && widen > 0.0 && widen <= 64.0) {
                    return bad(format!("wrn-top widen factor must be in (0, 64], got {widen}"));
                }
                if !(1..=3).contains(&from_stage) {
                    return bad(format!("wrn-top from_stage must be 1, 2 or 3, got {from_stage}"));
                }
            }
            Arch::Resnet { depth, width } => {
                if super::resnet::layout(depth).is_none() {
                    return bad(format!("resnet depth must be one of {:?} (torchvision's), got {depth}", super::resnet::DEPTHS));
                }
                if width == 0 {
                    return bad("resnet width must be at least 1 (torchvision: 64)".into());
                }
            }
            Arch::Mobilenetv2 { width_mult } => {
                if !(width_mult.is_finite() && width_mult > 0.0 && width_mult <= 4.0) {
                    return bad(format!("mobilenetv2 width_mult must be in (0, 4], got {width_mult}"));
                }
            }
            Arch::Vgg { width_div, pool, .. } => {
                if !(width_div.is_power_of_two() && width_div <= 64) {
                    return bad(format!("vgg width_div must be a power of two from 1 to 64, got {width_div}"));
                }
                if pool == 0 {
                    return bad("vgg pool (the adaptive average pool's side) must be at least 1".into());
                }
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Arch {
    type Err = GraftError;

    /// Parses an identifier as written by [`Arch::id`]: `resnet-cifar-20-w16`, `wrn-16-4`,
    /// `wrn-16-0.25-from-stage3`,
    /// `resnet18`, `resnet50-w8`, `mobilenetv2-0.5`, `vgg11-bn`, `vgg16-bn-d16-p1`. The result is
    /// checked with [`Arch::validate`].
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            GraftError::Backbone(format!(
                "'{s}' is not an architecture id; examples: resnet-cifar-20-w16, wrn-16-4, resnet18, resnet50-w8, \
                 mobilenetv2-1.0, vgg11-bn, vgg16-bn-d16-p1"
            ))
        };
        let num = |t: &str| t.parse::<usize>().map_err(|_| bad());
        let arch = if let Some(rest) = s.strip_prefix("resnet-cifar-") {
            let (d, w) = rest.split_once("-w").ok_or_else(bad)?;
            Arch::ResnetCifar { depth: num(d)?, width: num(w)? }
        } else if let Some((rest, stage)) = s.strip_prefix("wrn-").and_then(|r| r.split_once("-from-stage")) {
            let (d, k) = rest.split_once('-').ok_or_else(bad)?;
            Arch::WrnTop { depth: num(d)?, widen: k.parse().map_err(|_| bad())?, from_stage: num(stage)? }
        } else if let Some(rest) = s.strip_prefix("wrn-") {
            let (d, k) = rest.split_once('-').ok_or_else(bad)?;
            Arch::Wrn { depth: num(d)?, widen: num(k)? }
        } else if let Some(rest) = s.strip_prefix("mobilenetv2-") {
            let width_mult: f64 = rest.parse().map_err(|_| bad())?;
            Arch::Mobilenetv2 { width_mult }
        } else if let Some(rest) = s.strip_prefix("resnet") {
            match rest.split_once("-w") {
                Some((d, w)) => Arch::Resnet { depth: num(d)?, width: num(w)? },
                None => Arch::Resnet { depth: num(rest)?, width: 64 },
            }
        } else if s.starts_with("vgg") {
            let mut parts = s.split('-');
            let config = match parts.next() {
                Some("vgg11") => VggConfig::Vgg11,
                Some("vgg13") => VggConfig::Vgg13,
                Some("vgg16") => VggConfig::Vgg16,
                Some("vgg19") => VggConfig::Vgg19,
                _ => return Err(bad()),
            };
            if parts.next() != Some("bn") {
                return Err(GraftError::Backbone(format!("'{s}': graft's VGGs have BatchNorm; write {}-bn", config.name())));
            }
            let (mut width_div, mut pool) = (1, 7);
            for p in parts {
                if let Some(d) = p.strip_prefix('d') {
                    width_div = num(d)?;
                } else if let Some(q) = p.strip_prefix('p') {
                    pool = num(q)?;
                } else {
                    return Err(bad());
                }
            }
            Arch::Vgg { config, width_div, pool }
        } else {
            return Err(bad());
        };
        arch.validate()?;
        Ok(arch)
    }
}

#[cfg(test)]
mod imported_input_tests {
    use super::*;

    #[test]
    fn imported_inputs_default_to_imagenet_for_colour_and_take_what_is_given() {
        let rgb = InputSpec::imported(3, 8, 8, None, None).unwrap();
        assert_eq!((rgb.mean, rgb.std), (vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225]));
        let grey = InputSpec::imported(1, 8, 8, None, Some(&[0.3])).unwrap();
        assert_eq!((grey.mean, grey.std), (vec![0.5], vec![0.3]));
        assert_eq!(InputSpec::imported(3, 8, 8, Some(&[0.1]), None).unwrap_err(), ("mean", "has 1 values for 3 input channels".to_string()));
        assert_eq!(InputSpec::imported(1, 8, 8, None, Some(&[-1.0])).unwrap_err().0, "std");
    }
}
