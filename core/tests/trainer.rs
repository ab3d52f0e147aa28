//! The shared trainer on tiny seeded problems: it learns with every optimiser, is bit-for-bit
//! reproducible, stops on a non-finite loss with a clear error, restores the best epoch under
//! early stopping, calls the per-epoch callback once per epoch and rejects invalid settings.

use candle_core::{DType, Device, Tensor, Var};
use graft_core::init::SeededRng;
use graft_core::optim::{OptimizerKind, ParamGroup, Schedule};
use graft_core::train::{self, EpochMetrics, Split, TrainReport};
use graft_core::{FitContext, GraftError, ParamMap, TrainConfig, Trainable};
use std::cell::RefCell;

const D: usize = 4;
const K: usize = 3;

/// Seeded Gaussian blobs: `n` points per class in `D` dimensions around well separated centres.
fn blobs(n_per_class: usize, seed: u64) -> (Tensor, Vec<u32>) {
    let mut rng = SeededRng::new(seed);
    let centres = [[2.5f32, 0.0, 0.0, 1.0], [-1.5, 2.5, 0.0, -1.0], [-1.0, -2.5, 1.5, 0.0]];
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for i in 0..n_per_class * K {
        let c = i % K;
        let noise = rng.normal_vec(D, 0.6);
        xs.extend(centres[c].iter().zip(noise).map(|(m, e)| m + e));
        ys.push(c as u32);
    }
    (Tensor::from_vec(xs, (n_per_class * K, D), &Device::Cpu).unwrap(), ys)
}

/// A linear classifier `x Wᵀ + b`.
struct Linear {
    w: Var,
    b: Var,
    /// After this many training batches the logits are multiplied by NaN.
    nan_after: Option<usize>,
    calls: usize,
}

impl Linear {
    fn new(seed: u64) -> Self {
        let mut rng = SeededRng::new(seed);
        let w = Var::from_tensor(&rng.normal((K, D), 0.1, &Device::Cpu).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::zeros(K, DType::F32, &Device::Cpu).unwrap()).unwrap();
        Self { w, b, nan_after: None, calls: 0 }
    }
    fn logits(&self, x: &Tensor) -> graft_core::Result<Tensor> {
        Ok(x.matmul(&self.w.as_tensor().t()?)?.broadcast_add(self.b.as_tensor())?)
    }
    fn groups(&self, cfg: &TrainConfig) -> Vec<ParamGroup> {
        vec![ParamGroup { vars: vec![self.w.clone(), self.b.clone()], settings: cfg.optim() }]
    }
}

impl Trainable for Linear {
    fn train_logits(&mut self, x: &Tensor, _rng: &mut SeededRng) -> graft_core::Result<Tensor> {
        let l = self.logits(x)?;
        self.calls += 1;
        Ok(match self.nan_after {
            Some(k) if self.calls > k => (l * f64::NAN)?,
            _ => l,
        })
    }
    fn eval_logits(&self, x: &Tensor) -> graft_core::Result<Tensor> {
        Ok(self.logits(x)?.detach())
    }
    fn state(&self) -> graft_core::Result<ParamMap> {
        Ok(ParamMap::from([
            ("w".to_string(), self.w.as_tensor().detach().copy()?),
            ("b".to_string(), self.b.as_tensor().detach().copy()?),
        ]))
    }
    fn set_state(&mut self, state: &ParamMap) -> graft_core::Result<()> {
        self.w.set(&state["w"])?;
        self.b.set(&state["b"])?;
        Ok(())
    }
}

fn cfg(optimizer: OptimizerKind, lr: f64) -> TrainConfig {
    TrainConfig {
        epochs: 8,
        batch_size: 16,
        optimizer,
        lr,
        momentum: if optimizer == OptimizerKind::Sgd { 0.9 } else { 0.0 },
        weight_decay: 1e-4,
        schedule: Schedule::Cosine,
        ..Default::default()
    }
}

fn bits(state: &ParamMap) -> Vec<(String, Vec<u32>)> {
    state
        .iter()
        .map(|(k, t)| (k.clone(), t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()))
        .collect()
}

struct Run {
    report: TrainReport,
    state: ParamMap,
    test_acc: f32,
    callbacks: Vec<EpochMetrics>,
}

fn run(c: &TrainConfig, seed: u64) -> Run {
    let (x, y) = blobs(50, 1);
    let (vx, vy) = blobs(20, 2);
    let (tx, ty) = blobs(40, 3);
    let mut model = Linear::new(seed);
    let mut seen = Vec::new();
    let mut cb = |m: &EpochMetrics| seen.push(m.clone());
    let mut ctx = FitContext::new(Device::Cpu, seed);
    ctx.on_epoch = Some(&mut cb);
    let groups = model.groups(c);
    let report =
        train::train(&mut model, groups, Split { x: &x, y: &y }, Some(Split { x: &vx, y: &vy }), c, &mut ctx, "linear")
            .unwrap();
    let test_acc = train::accuracy(&|t: &Tensor| model.eval_logits(t), Split { x: &tx, y: &ty }, 32).unwrap();
    Run { report, state: model.state().unwrap(), test_acc, callbacks: seen }
}

#[test]
fn every_optimizer_learns_separable_blobs() {
    for (kind, lr) in [(OptimizerKind::Sgd, 0.05), (OptimizerKind::Adam, 0.05), (OptimizerKind::Adamw, 0.05)] {
        let mut c = cfg(kind, lr);
        if kind == OptimizerKind::Adamw {
            c.weight_decay = 1e-2;
        }
        // Untrained, the model is at chance level.
        let (tx, ty) = blobs(40, 3);
        let m0 = Linear::new(11);
        let before = train::accuracy(&|t: &Tensor| m0.eval_logits(t), Split { x: &tx, y: &ty }, 32).unwrap();
        let r = run(&c, 11);
        assert!(r.test_acc > 0.9, "{kind:?}: test accuracy {} (was {before} before training)", r.test_acc);
        assert!(before < 0.7, "{kind:?}: the untrained model already scores {before}; the check would be vacuous");
        // The per-epoch callback saw each epoch once, with the reported metrics.
        assert_eq!(r.callbacks, r.report.epochs);
        let first = &r.report.epochs[0];
        let last = r.report.epochs.last().unwrap();
        assert!(last.train_loss < first.train_loss, "{kind:?}: loss did not fall: {first:?} → {last:?}");
        assert!(last.val_acc.unwrap() > 0.9, "{kind:?}: {last:?}");
        assert_eq!(r.report.epochs.len(), c.epochs);
        assert!(!r.report.stopped_early);
        assert_eq!(r.report.best_epoch, c.epochs - 1);
        // The cosine schedule decays the rate over the run.
        assert!(last.lr_factor < first.lr_factor && last.lr_factor < 0.1, "{:?}", r.report.epochs);
    }
}

#[test]
fn same_seed_gives_identical_runs() {
    let c = cfg(OptimizerKind::Adam, 0.05);
    let a = run(&c, 5);
    let b = run(&c, 5);
    assert_eq!(bits(&a.state), bits(&b.state), "final state differs between identical runs");
    let strip = |r: &TrainReport| {
        r.epochs
            .iter()
            .map(|m| (m.epoch, m.train_loss.to_bits(), m.train_acc.to_bits(), m.val_acc.map(f32::to_bits), m.lr_factor.to_bits()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a.report), strip(&b.report), "metrics differ between identical runs");
    assert_eq!((a.report.best_epoch, a.report.stopped_early), (b.report.best_epoch, b.report.stopped_early));
    assert_eq!(a.test_acc.to_bits(), b.test_acc.to_bits());
    // The seed matters: another seed shuffles (and initialises) differently.
    let c2 = run(&c, 6);
    assert_ne!(bits(&a.state), bits(&c2.state));
    // The trainer's own randomness (shuffling) depends on the context seed alone.
    let shuffled = |ctx_seed: u64| {
        let (x, y) = blobs(50, 1);
        let mut m = Linear::new(5);
        let g = m.groups(&c);
        train::train(&mut m, g, Split { x: &x, y: &y }, None, &c, &mut FitContext::new(Device::Cpu, ctx_seed), "l").unwrap();
        bits(&m.state().unwrap())
    };
    assert_eq!(shuffled(8), shuffled(8));
    assert_ne!(shuffled(8), shuffled(9));
}

#[test]
fn nan_logits_stop_with_loss_epoch_and_step() {
    let (x, y) = blobs(50, 1); // 150 samples, batch 16 → 10 steps per epoch
    let c = cfg(OptimizerKind::Sgd, 0.05);
    let mut model = Linear::new(3);
    model.nan_after = Some(13); // the 14th batch: epoch 1, step 3
    let groups = model.groups(&c);
    let mut epochs_seen = 0;
    let mut cb = |_: &EpochMetrics| epochs_seen += 1;
    let mut ctx = FitContext::new(Device::Cpu, 3);
    ctx.on_epoch = Some(&mut cb);
    let e = train::train(&mut model, groups, Split { x: &x, y: &y }, None, &c, &mut ctx, "nan").unwrap_err();
    match &e {
        GraftError::NonFiniteLoss { epoch, step, loss } => {
            assert_eq!((*epoch, *step), (1, 3), "{e}");
            assert!(loss.is_nan(), "{e}");
        }
        other => panic!("expected NonFiniteLoss, got {other:?}"),
    }
    let m = e.to_string();
    assert!(m.contains("NaN") && m.contains("epoch 1") && m.contains("step 3"), "{m}");
    assert_eq!(epochs_seen, 1, "only the finished epoch is reported");
    // The NaN batch did not reach the weights.
    assert!(model.state().unwrap().values().all(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|v| v.is_finite())));
}

#[test]
fn a_huge_learning_rate_stops_with_non_finite_loss() {
    // (lr = 1e30 only saturates the logits on separable data: the loss goes to 0, which is fine.
    // 1e38 makes the weights overflow f32 after a step.)
    let (x, y) = blobs(50, 1);
    let c = TrainConfig { lr: 1e38, momentum: 0.0, weight_decay: 0.0, schedule: Schedule::Constant, ..cfg(OptimizerKind::Sgd, 1.0) };
    let mut model = Linear::new(4);
    let groups = model.groups(&c);
    let e = train::train(&mut model, groups, Split { x: &x, y: &y }, None, &c, &mut FitContext::new(Device::Cpu, 4), "lr")
        .unwrap_err();
    assert!(matches!(e, GraftError::NonFiniteLoss { .. }), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("loss is") && m.contains("epoch") && m.contains("step"), "{m}");
}

/// A model whose validation accuracy follows a script: the inputs' first column is the sample's
/// index, and after epoch `e` the first `script[e] · n` validation samples are predicted right.
/// Its state is a trainable weight plus the count of steps taken, so restoring a state restores
/// exactly what it predicted then.
struct Scripted {
    w: Var,
    steps: usize,
    steps_per_epoch: usize,
    script: Vec<f32>,
    /// `(steps, w)` at every evaluation.
    evals: RefCell<Vec<(usize, Vec<u32>)>>,
}

impl Scripted {
    fn w_bits(&self) -> Vec<u32> {
        self.w.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
    }
}

impl Trainable for Scripted {
    fn train_logits(&mut self, x: &Tensor, _rng: &mut SeededRng) -> graft_core::Result<Tensor> {
        Ok(x.matmul(&self.w.as_tensor().t()?)?)
    }
    fn eval_logits(&self, x: &Tensor) -> graft_core::Result<Tensor> {
        self.evals.borrow_mut().push((self.steps, self.w_bits()));
        let epoch = self.steps / self.steps_per_epoch - 1;
        let rows = x.to_vec2::<f32>()?;
        let n = rows.len();
        let good = (self.script[epoch] * n as f32).round() as usize;
        let mut out = Vec::new();
        for r in rows {
            let (i, label) = (r[0] as usize, r[1] as usize);
            let pred = if i < good { label } else { (label + 1) % K };
            out.extend((0..K).map(|k| if k == pred { 1f32 } else { 0.0 }));
        }
        Ok(Tensor::from_vec(out, (n, K), x.device())?)
    }
    fn after_step(&mut self) -> graft_core::Result<()> {
        self.steps += 1;
        Ok(())
    }
    fn state(&self) -> graft_core::Result<ParamMap> {
        Ok(ParamMap::from([
            ("w".to_string(), self.w.as_tensor().detach().copy()?),
            ("steps".to_string(), Tensor::new(&[self.steps as u32], &Device::Cpu)?),
        ]))
    }
    fn set_state(&mut self, state: &ParamMap) -> graft_core::Result<()> {
        self.w.set(&state["w"])?;
        self.steps = state["steps"].to_vec1::<u32>()?[0] as usize;
        Ok(())
    }
}

fn scripted_run(script: &[f32], epochs: usize, patience: Option<usize>) -> (Scripted, TrainReport, Vec<EpochMetrics>) {
    let n = 10;
    // Training inputs: 40 rows (4 steps of 10); validation: (index, label).
    let (x, y) = blobs(14, 7);
    let x = x.narrow(0, 0, 40).unwrap();
    let y = &y[..40];
    let vy: Vec<u32> = (0..n).map(|i| (i % K) as u32).collect();
    let vx: Vec<f32> = (0..n).flat_map(|i| [i as f32, vy[i] as f32, 0.0, 0.0]).collect();
    let vx = Tensor::from_vec(vx, (n, D), &Device::Cpu).unwrap();
    let mut model = Scripted {
        w: Var::from_tensor(&SeededRng::new(1).normal((K, D), 0.1, &Device::Cpu).unwrap()).unwrap(),
        steps: 0,
        steps_per_epoch: 4,
        script: script.to_vec(),
        evals: RefCell::new(Vec::new()),
    };
    let c = TrainConfig { epochs, batch_size: 10, patience, ..cfg(OptimizerKind::Sgd, 0.1) };
    let groups = vec![ParamGroup { vars: vec![model.w.clone()], settings: c.optim() }];
    let mut seen = Vec::new();
    let mut cb = |m: &EpochMetrics| seen.push(m.clone());
    let mut ctx = FitContext::new(Device::Cpu, 1);
    ctx.on_epoch = Some(&mut cb);
    let report = train::train(&mut model, groups, Split { x: &x, y }, Some(Split { x: &vx, y: &vy }), &c, &mut ctx, "scripted")
        .unwrap();
    (model, report, seen)
}

#[test]
fn patience_stops_and_restores_the_best_epoch() {
    let (model, report, seen) = scripted_run(&[0.5, 1.0, 0.6, 0.7, 0.2, 0.9, 0.9, 0.9], 8, Some(3));
    let accs: Vec<f32> = report.epochs.iter().map(|m| m.val_acc.unwrap()).collect();
    assert_eq!(accs, vec![0.5, 1.0, 0.6, 0.7, 0.2], "stops 3 epochs after the best");
    assert!(report.stopped_early);
    assert_eq!(report.best_epoch, 1);
    // The model is back in the state it had when evaluated after epoch 1.
    let evals = model.evals.borrow().clone();
    assert_eq!(evals.len(), 5, "one evaluation per epoch");
    assert_eq!(model.steps, evals[1].0, "step counter restored");
    assert_eq!(model.w_bits(), evals[1].1, "weights restored to the best epoch's");
    assert_ne!(model.w_bits(), evals[4].1, "the last epoch's weights were kept");
    // The callback saw every epoch that ran, once, in order.
    assert_eq!(seen, report.epochs);
    assert_eq!(seen.iter().map(|m| m.epoch).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
}

#[test]
fn a_tie_is_not_an_improvement() {
    let (model, report, _) = scripted_run(&[0.5, 0.8, 0.8, 0.8, 0.9], 5, Some(2));
    assert_eq!(report.epochs.len(), 4);
    assert!(report.stopped_early);
    assert_eq!(report.best_epoch, 1);
    assert_eq!(model.steps, 8);
}

#[test]
fn patience_keeps_the_last_state_when_the_last_epoch_is_best() {
    let (model, report, seen) = scripted_run(&[0.2, 0.3, 0.5, 0.9], 4, Some(2));
    assert!(!report.stopped_early);
    assert_eq!(report.best_epoch, 3);
    assert_eq!(model.steps, 16);
    assert_eq!(model.w_bits(), model.evals.borrow()[3].1);
    assert_eq!(seen.len(), 4);
}

#[test]
fn without_patience_the_last_state_is_kept() {
    let (model, report, seen) = scripted_run(&[0.5, 1.0, 0.2], 3, None);
    assert!(!report.stopped_early);
    assert_eq!(report.best_epoch, 2);
    assert_eq!(model.steps, 12);
    assert_eq!(seen.len(), 3);
}

#[test]
fn invalid_train_config_names_the_key() {
    let (x, y) = blobs(5, 1);
    let cases: Vec<(TrainConfig, &str)> = vec![
        (TrainConfig { epochs: 0, ..Default::default() }, "train.epochs"),
        (TrainConfig { batch_size: 0, ..Default::default() }, "train.batch_size"),
        (TrainConfig { lr: -1.0, ..Default::default() }, "train.lr"),
        (TrainConfig { lr: f64::NAN, ..Default::default() }, "train.lr"),
        (TrainConfig { momentum: 1.0, ..Default::default() }, "train.momentum"),
        (TrainConfig { schedule: Schedule::Step { every: 0, gamma: 0.1 }, ..Default::default() }, "train.schedule.step.every"),
    ];
    for (c, key) in cases {
        let mut model = Linear::new(1);
        let before = bits(&model.state().unwrap());
        let groups = model.groups(&c);
        let e = train::train(&mut model, groups, Split { x: &x, y: &y }, None, &c, &mut FitContext::new(Device::Cpu, 1), "cfgtest")
            .unwrap_err();
        match &e {
            GraftError::Config { method, msg } => {
                assert_eq!(method, "cfgtest");
                assert!(msg.contains(key), "'{key}' missing from: {msg}");
            }
            other => panic!("expected GraftError::Config for {key}, got {other:?}"),
        }
        assert_eq!(bits(&model.state().unwrap()), before, "{key}: the model changed although the config was rejected");
    }
    // Inputs and labels that disagree are a data error.
    let mut model = Linear::new(1);
    let groups = model.groups(&TrainConfig::default());
    let e = train::train(&mut model, groups, Split { x: &x, y: &y[..10] }, None, &TrainConfig::default(), &mut FitContext::new(Device::Cpu, 1), "rows")
        .unwrap_err();
    assert!(matches!(e, GraftError::Data(_)), "{e:?}");
    assert!(e.to_string().contains("15") && e.to_string().contains("10"), "{e}");
}

#[test]
fn train_config_json_rejects_unknown_keys() {
    let e = serde_json::from_value::<TrainConfig>(serde_json::json!({"epochs": 3, "epoch": 4})).unwrap_err().to_string();
    assert!(e.contains("`epoch`") && e.contains("`epochs`"), "{e}");
    let c: TrainConfig = serde_json::from_value(serde_json::json!({"epochs": 3, "optimizer": "adamw", "schedule": {"step": {"every": 2, "gamma": 0.5}}})).unwrap();
    assert_eq!(c, TrainConfig { epochs: 3, optimizer: OptimizerKind::Adamw, schedule: Schedule::Step { every: 2, gamma: 0.5 }, ..Default::default() });
}

#[test]
fn convergence_curve_evaluates_at_step_zero_every_n_steps_and_the_end_without_changing_training() {
    // 150 rows in batches of 16: 10 steps per epoch, 20 steps in 2 epochs; points at 0, 7, 14, 20.
    let (x, y) = blobs(50, 1);
    let (vx, vy) = blobs(20, 2);
    let c = TrainConfig { epochs: 2, ..cfg(OptimizerKind::Adam, 0.05) };
    let fresh = Linear::new(5);
    let acc_at_init = train::accuracy(&|t: &Tensor| fresh.eval_logits(t), Split { x: &vx, y: &vy }, 32).unwrap();

    let mut model = Linear::new(5);
    let mut seen = Vec::new();
    let mut cb = |p: &train::CurvePoint| seen.push(p.clone());
    let mut ctx = FitContext::new(Device::Cpu, 5);
    ctx.eval_every_steps = Some(7);
    ctx.on_curve = Some(&mut cb);
    let groups = model.groups(&c);
    let report = train::train(&mut model, groups, Split { x: &x, y: &y }, Some(Split { x: &vx, y: &vy }), &c, &mut ctx, "curve")
        .unwrap();
    let steps: Vec<(usize, usize)> = report.curve.iter().map(|p| (p.step, p.epoch)).collect();
    assert_eq!(steps, [(0, 0), (7, 0), (14, 1), (20, 1)]);
    assert_eq!(seen, report.curve, "the callback sees every point");
    assert_eq!(report.curve[0].val_acc, acc_at_init, "step 0 is the initialisation");
    assert_eq!(report.curve[0].train_loss, None);
    assert!(report.curve[1..].iter().all(|p| p.train_loss.is_some_and(|l| l.is_finite() && l > 0.0)));
    let final_acc = train::accuracy(&|t: &Tensor| model.eval_logits(t), Split { x: &vx, y: &vy }, 32).unwrap();
    assert_eq!(report.curve[3].val_acc, final_acc, "the last point is the final model");
    assert_eq!(report.epochs.last().unwrap().val_acc, Some(final_acc));

    // Evaluating along the way changes nothing in the training itself.
    let plain = run(&c, 5);
    assert_eq!(bits(&plain.state), bits(&model.state().unwrap()));
    assert!(plain.report.curve.is_empty(), "no curve unless asked for");
}

/// A linear classifier whose loss is cross-entropy against targets looked up by sample position
/// (the next class of the true one), as a distilling method looks up its teacher's outputs.
struct ShiftedTargets {
    inner: Linear,
    /// Target of every training sample, by position in the training split.
    targets: Vec<u32>,
    /// Sample positions the loss was asked about, batch after batch.
    seen: RefCell<Vec<usize>>,
}

impl Trainable for ShiftedTargets {
    fn train_logits(&mut self, x: &Tensor, rng: &mut SeededRng) -> graft_core::Result<Tensor> {
        self.inner.train_logits(x, rng)
    }
    fn eval_logits(&self, x: &Tensor) -> graft_core::Result<Tensor> {
        self.inner.eval_logits(x)
    }
    fn loss(&self, logits: &Tensor, _labels: &Tensor, batch: &[usize]) -> graft_core::Result<Tensor> {
        self.seen.borrow_mut().extend_from_slice(batch);
        let t: Vec<u32> = batch.iter().map(|&i| self.targets[i]).collect();
        let t = Tensor::from_vec(t, batch.len(), logits.device())?;
        Ok(candle_nn::loss::cross_entropy(logits, &t)?)
    }
    fn state(&self) -> graft_core::Result<ParamMap> {
        self.inner.state()
    }
    fn set_state(&mut self, state: &ParamMap) -> graft_core::Result<()> {
        self.inner.set_state(state)
    }
}

#[test]
fn a_method_supplied_loss_replaces_cross_entropy() {
    let c = cfg(OptimizerKind::Sgd, 0.05);
    let (x, y) = blobs(50, 1);
    let shifted: Vec<u32> = y.iter().map(|&l| (l + 1) % K as u32).collect();
    let mut model = ShiftedTargets { inner: Linear::new(11), targets: shifted.clone(), seen: RefCell::new(Vec::new()) };
    let groups = model.inner.groups(&c);
    let mut ctx = FitContext::new(Device::Cpu, 11);
    train::train(&mut model, groups, Split { x: &x, y: &y }, None, &c, &mut ctx, "shifted").unwrap();
    // The loss saw every sample once per epoch, by its position in the split.
    let mut seen = model.seen.borrow().clone();
    seen.sort_unstable();
    let expected: Vec<usize> = (0..y.len()).flat_map(|i| std::iter::repeat_n(i, c.epochs)).collect();
    assert_eq!(seen, expected);
    // It learned the method's targets, not the labels.
    let eval = |t: &Tensor| model.eval_logits(t);
    let on_targets = train::accuracy(&eval, Split { x: &x, y: &shifted }, 32).unwrap();
    let on_labels = train::accuracy(&eval, Split { x: &x, y: &y }, 32).unwrap();
    assert!(on_targets > 0.9 && on_labels < 0.1, "targets {on_targets}, labels {on_labels}");
}

#[test]
fn a_loss_that_grows_a_thousandfold_is_divergence_not_success() {
    // Adam at lr 1e30 keeps every value finite but sends the loss to ~1e29: recorded as a
    // finished run before, now stopped.
    let (x, y) = blobs(50, 1);
    let c = TrainConfig { lr: 1e30, weight_decay: 0.0, schedule: Schedule::Constant, ..cfg(OptimizerKind::Adam, 1.0) };
    let mut model = Linear::new(5);
    let groups = model.groups(&c);
    let e = train::train(&mut model, groups, Split { x: &x, y: &y }, None, &c, &mut FitContext::new(Device::Cpu, 4), "adam")
        .unwrap_err();
    match &e {
        GraftError::Diverged { detail, .. } => assert!(detail.contains("times the first step's"), "{e}"),
        other => panic!("expected Diverged, got {other:?}"),
    }
    assert!(e.to_string().contains("lower the learning rate"), "{e}");
}
