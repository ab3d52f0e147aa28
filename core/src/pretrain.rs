//! Pretraining a source backbone on a task: random init, full training, frozen result.

use crate::backbone::{Backbone, BackboneSpec, InputSpec, TunedBackbone, LOGITS_TAP};
use crate::checkpoint::{Provenance, Source, GRAFT_VERSION};
use crate::data::{ImageSet, Task};
use crate::error::Result;
use crate::init::SeededRng;
use crate::method::FitContext;
use crate::params::ParamMap;
use crate::train::{accuracy, train, Split, TrainConfig, TrainReport, Trainable};
use crate::optim::ParamGroup;
use candle_core::Tensor;

/// Per-channel mean and standard deviation of an image set's pixels.
pub fn channel_stats(set: &ImageSet) -> (Vec<f32>, Vec<f32>) {
    let (c, h, w) = set.shape();
    let plane = h * w;
    let mut sum = vec![0f64; c];
    let mut sq = vec![0f64; c];
    for i in 0..set.len() {
        for (ch, px) in set.image(i).chunks(plane).enumerate() {
            for &v in px {
                sum[ch] += v as f64;
                sq[ch] += (v as f64) * (v as f64);
            }
        }
    }
    let n = (set.len() * plane).max(1) as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(q, &m)| ((q / n - (m as f64).powi(2)).max(0.0).sqrt() as f32).max(1e-3))
        .collect();
    (mean, std)
}

/// A whole backbone trained as a classifier with its own head: every parameter is a trainable
/// copy (named `<prefix><param>`), BatchNorm in training mode. Pretraining and TLI's student use it.
pub struct WholeNet {
    /// The backbone with all its parameters trainable.
    pub tuned: TunedBackbone,
}

impl WholeNet {
    /// Makes every parameter of `backbone` trainable under `prefix`.
    pub fn new(backbone: &Backbone, prefix: &str) -> Result<Self> {
        Ok(Self { tuned: TunedBackbone::new(backbone, prefix, |_| true)? })
    }

    /// Trains every parameter on `task` (images as they are, validation after every epoch).
    pub fn fit(&mut self, task: &Task, cfg: &TrainConfig, ctx: &mut FitContext, label: &str) -> Result<TrainReport> {
        let device = ctx.device.clone();
        let groups = vec![ParamGroup { vars: self.tuned.vars().vars(), settings: cfg.optim() }];
        let x = task.train.images_tensor(&device)?;
        let vx = task.val.images_tensor(&device)?;
        train(self, groups, Split { x: &x, y: &task.train.labels }, Some(Split { x: &vx, y: &task.val.labels }), cfg, ctx, label)
    }
}

impl Trainable for WholeNet {
    fn train_logits(&mut self, x: &Tensor, _rng: &mut SeededRng) -> Result<Tensor> {
        self.tuned.forward(x, None, LOGITS_TAP, true)
    }
    fn eval_logits(&self, x: &Tensor) -> Result<Tensor> {
        self.tuned.eval(x, None, LOGITS_TAP)
    }
    fn after_step(&mut self) -> Result<()> {
        self.tuned.apply_bn_stats()
    }
    fn state(&self) -> Result<ParamMap> {
        self.tuned.tensors()
    }
    fn set_state(&mut self, state: &ParamMap) -> Result<()> {
        self.tuned.set_tensors(state)
    }
}

/// Trains a freshly initialised `spec` backbone on `task` and returns it frozen as a [`Source`].
///
/// The spec's input shape and classes are taken from the task, and its normalisation statistics
/// from the task's training images (so they travel with the weights).
pub fn pretrain(spec: BackboneSpec, task: &Task, cfg: &TrainConfig, ctx: &mut FitContext) -> Result<(Source, TrainReport)> {
    task.validate()?;
    let (c, h, w) = task.input_shape();
    let (mean, std) = channel_stats(&task.train);
    let spec = BackboneSpec {
        input: InputSpec { channels: c, height: h, width: w, mean, std },
        num_classes: task.num_classes,
        ..spec
    };
    let device = ctx.device.clone();
    let init = Backbone::init(spec.clone(), ctx.seed, &device)?;
    let batch = cfg.batch_size.min(task.train.len());
    let what = format!("pretraining {} with batches of {batch}", spec.id());
    crate::memory::check_fits(&what, crate::memory::training_activation_bytes(init.structure(), batch), "train.batch_size", None)?;
    let mut net = WholeNet::new(&init, "")?;
    let report = net.fit(task, cfg, ctx, &format!("pretrain {}", spec.id()))?;
    let backbone = net.tuned.merged()?;
    let tx = task.test.images_tensor(&device)?;
    let test_accuracy = accuracy(&|x| backbone.forward(x), Split { x: &tx, y: &task.test.labels }, 256)?;
    let provenance = Provenance {
        dataset: format!("{} ({})", task.name, task.provenance),
        epochs: report.epochs.len(),
        test_accuracy,
        seed: ctx.seed,
        graft_version: GRAFT_VERSION.to_string(),
    };
    Ok((Source::new(backbone, provenance)?, report))
}
