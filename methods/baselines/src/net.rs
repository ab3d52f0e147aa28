//! The trainable network shared by the baselines: an optional tuned part of the backbone
//! followed by a new linear head.

use graft_core::backbone::{global_avg_pool, linear, TunedBackbone};
use graft_core::init::{linear_init, SeededRng};
use graft_core::{ParamMap, Result, Trainable, Trainables};
use candle_core::{DType, Device, Tensor};

/// Name of the head's weight (`(classes, features)`).
pub const HEAD_WEIGHT: &str = "head.weight";
/// Name of the head's bias (`(classes,)`).
pub const HEAD_BIAS: &str = "head.bias";

/// A tuned slice of the backbone, run from tap `from` (or the images) to tap `to`.
pub struct Body {
    /// The backbone with its trainable parameters.
    pub tuned: TunedBackbone,
    /// Tap whose output is the body's input (`None`: images).
    pub from: Option<String>,
    /// Tap whose output feeds the head.
    pub to: String,
}

/// The frozen source up to a tap, run on every batch when its features are not cached.
pub struct FrozenPrefix {
    /// The frozen source.
    pub backbone: graft_core::Backbone,
    /// Tap whose output feeds the trainable part.
    pub tap: String,
}

/// Optional frozen prefix + optional tuned body + global average pooling (for 4-D features) +
/// linear head.
pub struct Net {
    /// Set while training from images instead of cached features.
    pub prefix: Option<FrozenPrefix>,
    /// The tuned part of the backbone; `None` when the input already is the feature.
    pub body: Option<Body>,
    /// `head.weight` and `head.bias`.
    pub head: Trainables,
}

impl Net {
    /// A net with a freshly initialised head of `classes × features`.
    pub fn new(body: Option<Body>, features: usize, classes: usize, seed: u64, device: &Device) -> Result<Self> {
        let mut rng = SeededRng::derived(seed, "head");
        let (w, b) = linear_init(&mut rng, classes, features, device)?;
        let mut head = Trainables::new();
        head.insert(HEAD_WEIGHT, &w)?;
        head.insert(HEAD_BIAS, &b)?;
        Ok(Self { prefix: None, body, head })
    }

    /// Rebuilds a net from stored tensors: the head from `head.*`, the body from the rest.
    pub fn from_tensors(body: Option<Body>, tensors: &ParamMap) -> Result<Self> {
        let mut head = Trainables::new();
        for name in [HEAD_WEIGHT, HEAD_BIAS] {
            let t = tensors.get(name).ok_or_else(|| {
                graft_core::GraftError::Incompatible(format!("stored model lacks tensor '{name}'"))
            })?;
            head.insert(name, t)?;
        }
        Ok(Self { prefix: None, body, head })
    }

    /// The head's weight `(classes, features)` and bias `(classes,)`.
    pub fn head_tensors(&self) -> (Tensor, Tensor) {
        (self.head.tensor(HEAD_WEIGHT).expect("head weight exists"), self.head.tensor(HEAD_BIAS).expect("head bias exists"))
    }

    fn logits(&self, features: Tensor) -> Result<Tensor> {
        let f = if features.rank() == 4 { global_avg_pool(&features)? } else { features };
        let (w, b) = self.head_tensors();
        linear(&f, &w, &b)
    }

    /// Every trainable variable (body, then head).
    pub fn all_vars(&self) -> Vec<candle_core::Var> {
        let mut v = self.body.as_ref().map(|b| b.tuned.vars().vars()).unwrap_or_default();
        v.extend(self.head.vars());
        v
    }

    /// Number of trained scalars.
    pub fn num_trainable(&self) -> usize {
        self.all_vars().iter().map(|v| v.elem_count()).sum()
    }
}

impl Net {
    /// The trainable part's input: the batch itself (cached features, converted to f32 if the
    /// cache holds f16) or, with a frozen prefix, the source's output for the image batch.
    fn input(&self, x: &Tensor) -> Result<Tensor> {
        let x = match &self.prefix {
            Some(p) => p.backbone.run(x, None, &p.tap, &[], &graft_core::NoHooks)?.output.detach(),
            None => x.clone(),
        };
        Ok(if x.dtype() == DType::F32 { x } else { x.to_dtype(DType::F32)? })
    }
}

impl Trainable for Net {
    fn train_logits(&mut self, x: &Tensor, _rng: &mut SeededRng) -> Result<Tensor> {
        let x = self.input(x)?;
        let f = match &mut self.body {
            Some(b) => b.tuned.forward(&x, b.from.as_deref(), &b.to, true)?,
            None => x,
        };
        self.logits(f)
    }

    fn eval_logits(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.input(x)?;
        let f = match &self.body {
            Some(b) => b.tuned.eval(&x, b.from.as_deref(), &b.to)?,
            None => x,
        };
        Ok(self.logits(f)?.detach())
    }

    fn after_step(&mut self) -> Result<()> {
        match &mut self.body {
            Some(b) => b.tuned.apply_bn_stats(),
            None => Ok(()),
        }
    }

    fn state(&self) -> Result<ParamMap> {
        let mut s = self.head.snapshot()?;
        if let Some(b) = &self.body {
            s.extend(b.tuned.tensors()?);
        }
        Ok(s)
    }

    fn set_state(&mut self, state: &ParamMap) -> Result<()> {
        self.head.restore(state)?;
        if let Some(b) = &mut self.body {
            b.tuned.set_tensors(state)?;
        }
        Ok(())
    }
}
