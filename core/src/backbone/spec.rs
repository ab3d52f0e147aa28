//! Serialisable backbone descriptions: architecture, input format, classifier size.

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
}

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

    /// `(channels, height, width)`.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }
}

impl BackboneSpec {
    /// Checks sizes are valid for the architecture.
    pub fn validate(&self) -> Result<()> {
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
        match &self.arch {
            Arch::ResnetCifar { depth, width } => {
                if *depth < 8 || (depth - 2) % 6 != 0 {
                    return Err(GraftError::Backbone(format!(
                        "resnet-cifar depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 56, ...), got {depth}"
                    )));
                }
                if *width == 0 {
                    return Err(GraftError::Backbone("resnet-cifar width must be at least 1".into()));
                }
            }
        }
        Ok(())
    }

    /// A short identifier such as `resnet-cifar-20-w16`.
    pub fn id(&self) -> String {
        match &self.arch {
            Arch::ResnetCifar { depth, width } => format!("resnet-cifar-{depth}-w{width}"),
        }
    }
}
