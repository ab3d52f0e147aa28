//! Interconnections between the frozen network and a task's trained parts (one of the five
//! metrics of the adaptive-attention paper; `docs/metrics.md`).
//!
//! An [`Attachment`] is one point where a trained module reads from or writes into the frozen
//! network. A model that modifies the frozen forward pass through [`Hooks`] has its attachments
//! *recorded* ([`Attachments::record`]): the pass is run once on a blank image through a wrapper
//! of the model's own hooks that notes every frozen module whose parameters the hooks replace,
//! every conv whose output they replace and every tap whose output they change. What a model
//! reads from the frozen network (its head on the pooled features, SNOW's taps) is added with
//! [`Attachments::with_read`]. The interconnection count is the number of distinct attachments.

use crate::backbone::{Backbone, ConvDef, Hooks};
use crate::error::Result;
use candle_core::{DType, Tensor};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;

/// One point where a trained module meets the frozen network.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attachment {
    /// Trained values replace parameters of the frozen module (a masked conv weight, a domain
    /// BatchNorm's γ, β and statistics): the module's name, e.g. `layer1.0.conv1`.
    Parameters(String),
    /// A trained module replaces the output of the frozen conv (a residual adapter reads the
    /// conv's input or output and writes what its BN reads).
    ConvOutput(String),
    /// A trained module changes the output published at the tap (attention after a block).
    TapOutput(String),
    /// The trained module `reader` reads the frozen output at `tap` (a head on the pooled
    /// features, a side network reading taps, an expert reading a shared library).
    Reads {
        /// The reading module, e.g. `head`.
        reader: String,
        /// The frozen tap it reads.
        tap: String,
    },
}

impl fmt::Display for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attachment::Parameters(m) => write!(f, "parameters of {m}"),
            Attachment::ConvOutput(c) => write!(f, "output of {c}"),
            Attachment::TapOutput(t) => write!(f, "output at {t}"),
            Attachment::Reads { reader, tap } => write!(f, "{reader} reads {tap}"),
        }
    }
}

/// The distinct attachments of a task model to its frozen network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attachments(BTreeSet<Attachment>);

impl Attachments {
    /// None: the model uses nothing frozen (fine-tuning, training from scratch, a standalone
    /// student).
    pub fn none() -> Self {
        Self::default()
    }

    /// What `hooks` attach when the frozen `backbone` runs from `from` (the images when `None`)
    /// to tap `to`: one blank input is run through a recording wrapper of `hooks`.
    pub fn record(backbone: &Backbone, from: Option<&str>, to: &str, hooks: &dyn Hooks) -> Result<Self> {
        let shape: Vec<usize> = match from {
            None => {
                let i = &backbone.spec().input;
                vec![1, i.channels, i.height, i.width]
            }
            Some(tap) => std::iter::once(1).chain(backbone.tap_shape(tap)?).collect(),
        };
        let x = Tensor::full(0.5f32, shape, backbone.device())?.to_dtype(DType::F32)?;
        let recorder = Recorder { inner: hooks, seen: RefCell::new(BTreeSet::new()) };
        backbone.run(&x, from, to, &[], &recorder)?;
        Ok(Self(recorder.seen.into_inner()))
    }

    /// `reader` reading the frozen output at each of `taps` (a network beside the frozen one).
    pub fn reading<'a>(reader: &str, taps: impl IntoIterator<Item = &'a str>) -> Self {
        taps.into_iter().fold(Self::none(), |a, tap| a.with_read(reader, tap))
    }

    /// These attachments and `reader` reading the frozen output at `tap`.
    pub fn with_read(mut self, reader: &str, tap: &str) -> Self {
        self.0.insert(Attachment::Reads { reader: reader.into(), tap: tap.into() });
        self
    }

    /// Adds `attachment`.
    pub fn insert(&mut self, attachment: Attachment) {
        self.0.insert(attachment);
    }

    /// The interconnection count: how many distinct attachments.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// Every attachment, sorted by kind, then name.
    pub fn iter(&self) -> impl Iterator<Item = &Attachment> {
        self.0.iter()
    }
}

/// Passes every call to the model's hooks and notes what they change.
struct Recorder<'a> {
    inner: &'a dyn Hooks,
    seen: RefCell<BTreeSet<Attachment>>,
}

impl Recorder<'_> {
    fn note(&self, a: Attachment) {
        self.seen.borrow_mut().insert(a);
    }
}

impl Hooks for Recorder<'_> {
    fn param(&self, name: &str, frozen: &Tensor) -> Result<Option<Tensor>> {
        let replaced = self.inner.param(name, frozen)?;
        if replaced.is_some() {
            let module = name.rsplit_once('.').map_or(name, |(m, _)| m);
            self.note(Attachment::Parameters(module.to_string()));
        }
        Ok(replaced)
    }

    fn bn_uses_batch_stats(&self, bn: &str) -> bool {
        self.inner.bn_uses_batch_stats(bn)
    }

    fn tap_output(&self, tap: &str, x: Tensor) -> Result<Tensor> {
        let before = x.id();
        let y = self.inner.tap_output(tap, x)?;
        if y.id() != before {
            self.note(Attachment::TapOutput(tap.to_string()));
        }
        Ok(y)
    }

    fn alters_conv(&self, conv: &str) -> bool {
        self.inner.alters_conv(conv)
    }

    fn conv_output(&self, conv: &ConvDef, x: &Tensor, y: Tensor) -> Result<Tensor> {
        self.note(Attachment::ConvOutput(conv.name.clone()));
        self.inner.conv_output(conv, x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::{Arch, BackboneSpec, InputSpec, FEATURE_TAP};
    use crate::NoHooks;
    use candle_core::Device;

    /// resnet-cifar-8 width 4: stem conv1/bn1; stage1.block0 layer1.0.conv{1,2}/bn{1,2};
    /// stage2.block0 and stage3.block0 the same plus a downsample conv and BN each.
    fn tiny() -> Backbone {
        let spec = BackboneSpec { arch: Arch::ResnetCifar { depth: 8, width: 4 }, input: InputSpec::new(1, 8, 8), num_classes: 3 };
        Backbone::init(spec, 0, &Device::Cpu).unwrap()
    }

    /// Replaces the first conv's weight and layer2's first BN, adapts one conv, doubles one tap.
    struct Some3;
    impl Hooks for Some3 {
        fn param(&self, name: &str, frozen: &Tensor) -> Result<Option<Tensor>> {
            Ok(matches!(name, "conv1.weight" | "layer2.0.bn1.weight" | "layer2.0.bn1.running_var").then(|| frozen.clone()))
        }
        fn tap_output(&self, tap: &str, x: Tensor) -> Result<Tensor> {
            if tap == "stage2.block0" {
                Ok((x * 2.0)?)
            } else {
                Ok(x)
            }
        }
        fn alters_conv(&self, conv: &str) -> bool {
            conv == "layer3.0.conv2"
        }
    }

    #[test]
    fn recording_notes_every_module_the_hooks_change_once() {
        let bb = tiny();
        assert_eq!(Attachments::record(&bb, None, FEATURE_TAP, &NoHooks).unwrap().count(), 0);
        let got = Attachments::record(&bb, None, FEATURE_TAP, &Some3).unwrap().with_read("head", FEATURE_TAP);
        let names: Vec<String> = got.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "parameters of conv1",
                "parameters of layer2.0.bn1",
                "output of layer3.0.conv2",
                "output at stage2.block0",
                "head reads pool"
            ]
        );
        assert_eq!(got.count(), 5);
    }

    #[test]
    fn a_run_from_a_tap_records_only_what_follows_it() {
        let bb = tiny();
        let got = Attachments::record(&bb, Some("stage2.block0"), FEATURE_TAP, &Some3).unwrap();
        assert_eq!(got.iter().map(ToString::to_string).collect::<Vec<_>>(), ["output of layer3.0.conv2"]);
    }
}
