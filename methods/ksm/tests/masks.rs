//! KSM's masks: the relaxation's gradient against finite differences, binary `M^b` (plus the
//! stored scales) at evaluation, exactly what the forward uses, lossless bit-packing, identity at
//! initialisation; the source never changes.

use candle_core::{DType, Device, Tensor, Var};
use graft_core::backbone::{conv2d, ConvDef};
use graft_core::bitpack::{pack_mask, unpack_mask};
use graft_core::conformance::{tiny_source, tiny_task};
use graft_core::init::SeededRng;
use graft_core::{Backbone, FitContext, Source, TaskModel};
use graft_ksm::mask::{apply_kernel_mask, scale_part, soft_mask};
use graft_ksm::model::KsmNet;
use graft_ksm::{Ksm, KsmConfig, KsmModel, Layout, ScaleDType, ScaleKind};

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap().into_iter().map(f32::to_bits).collect()
}

fn fitted(source: &Source, scale: ScaleKind, scale_dtype: ScaleDType) -> KsmModel {
    let mut config = KsmConfig { scale, scale_dtype, head_lr: Some(1e-2), scale_lr: Some(1e-2), ..KsmConfig::default() };
    config.train.epochs = 3;
    config.train.batch_size = 16;
    config.train.lr = 2e-3;
    Ksm { config }.fit_model(source, &tiny_task(1), &mut FitContext::new(Device::Cpu, 1)).unwrap()
}

/// `d loss / d M^r` (and `d loss / d S`) of the soft mask pushed through a real conv, against
/// central differences, in f64.
#[test]
fn relaxation_gradient_matches_central_differences() {
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(5);
    let def = ConvDef { name: "c".into(), in_channels: 3, out_channels: 2, kernel: 3, stride: 1, padding: 1, groups: 1, bias: false };
    let f64t = |t: Tensor| t.to_dtype(DType::F64).unwrap();
    let w = f64t(rng.normal((2, 3, 3, 3), 0.5, &dev).unwrap());
    let x = f64t(rng.normal((2, 3, 4, 4), 1.0, &dev).unwrap());
    let g = f64t(rng.normal((2, 2, 4, 4), 1.0, &dev).unwrap());
    for (kind, tau, gate) in [
        (ScaleKind::Mask, 1e-3, false),
        (ScaleKind::Mask, 0.3, false),
        (ScaleKind::Mask, 0.3, true),
        (ScaleKind::None, 1e-3, false),
        (ScaleKind::Learned, 1e-2, false),
        (ScaleKind::Learned, 1e-2, true),
    ] {
        // M^r within a few τ of the flip point, where the relaxation's slope changes fastest.
        let mr0: Vec<f64> = rng.uniform_vec(6, -2.0, 2.0).into_iter().map(|v| v as f64 * tau).collect();
        let s0: Vec<f64> = rng.uniform_vec(6, -0.3, 0.3).into_iter().map(f64::from).collect();
        let loss = |mr: &Tensor, s: &Tensor| -> Tensor {
            let a = scale_part(kind, mr, Some(s), 10.0, 5e-3).unwrap();
            let m = soft_mask(mr, a.as_ref(), tau, gate).unwrap();
            let y = conv2d(&x, &apply_kernel_mask(&w, &m).unwrap(), None, &def).unwrap();
            // Non-linear in the mask, so second-order terms show up if the gradient is wrong.
            (y.mul(&g).unwrap().sum_all().unwrap() + (y.sqr().unwrap().sum_all().unwrap() * 0.1).unwrap()).unwrap()
        };
        let value = |mr: &[f64], s: &[f64]| -> f64 {
            let mr = Tensor::from_slice(mr, (2, 3), &dev).unwrap();
            let s = Tensor::from_slice(s, (2, 3), &dev).unwrap();
            loss(&mr, &s).to_scalar::<f64>().unwrap()
        };
        let mr = Var::from_tensor(&Tensor::from_slice(&mr0, (2, 3), &dev).unwrap()).unwrap();
        let s = Var::from_tensor(&Tensor::from_slice(&s0, (2, 3), &dev).unwrap()).unwrap();
        let grads = loss(mr.as_tensor(), s.as_tensor()).backward().unwrap();
        let gmr = grads.get(mr.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let gs = grads.get(s.as_tensor()).map(|t| t.flatten_all().unwrap().to_vec1::<f64>().unwrap());
        assert_eq!(gs.is_some(), kind == ScaleKind::Learned, "{kind:?}: S gets a gradient only when learned");
        for j in 0..6 {
            let h = 1e-4 * tau;
            let (mut p, mut m) = (mr0.clone(), mr0.clone());
            p[j] += h;
            m[j] -= h;
            let fd = (value(&p, &s0) - value(&m, &s0)) / (2.0 * h);
            assert!((gmr[j] - fd).abs() <= 1e-6 * fd.abs().max(1.0), "{kind:?} τ {tau} gate {gate}: dL/dM^r[{j}] = {} vs finite difference {fd}", gmr[j]);
            if let Some(gs) = &gs {
                let h = 1e-5;
                let (mut p, mut m) = (s0.clone(), s0.clone());
                p[j] += h;
                m[j] -= h;
                let fd = (value(&mr0, &p) - value(&mr0, &m)) / (2.0 * h);
                assert!((gs[j] - fd).abs() <= 1e-6 * fd.abs().max(1.0), "dL/dS[{j}] = {} vs {fd}", gs[j]);
            }
        }
    }
}

#[test]
fn eval_masks_are_binary_plus_the_stored_scales_and_exactly_what_the_forward_uses() {
    let source = tiny_source(5);
    for (scale, dtype) in [(ScaleKind::Mask, ScaleDType::F16), (ScaleKind::Learned, ScaleDType::F32), (ScaleKind::None, ScaleDType::F16)] {
        let model = fitted(&source, scale, dtype);
        let delta = model.delta().unwrap();
        let masks = model.eval_masks();
        assert_eq!(masks.len(), source.backbone.convs().len());
        let (mut zeros, mut total) = (0, 0);
        for (weight, m) in masks {
            let conv = weight.strip_suffix(".weight").unwrap();
            let b = m.binary.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(b.iter().all(|&x| x == 0.0 || x == 1.0), "{scale:?} {weight}: M^b not binary");
            zeros += b.iter().filter(|&&x| x == 0.0).count();
            total += b.len();
            let w = source.backbone.param(weight).unwrap();
            assert_eq!(m.binary.dims(), &w.dims()[..2], "{weight}: one mask value per kernel");
            match (&m.scale, scale) {
                (None, ScaleKind::None) => assert!(!delta.tensors.contains_key(&format!("ksm.{conv}.scale"))),
                (Some(s), ScaleKind::Mask | ScaleKind::Learned) => {
                    let stored = delta.tensor(&format!("ksm.{conv}.scale")).unwrap();
                    assert_eq!(stored.dtype(), dtype.dtype(), "{weight}: stored scale dtype");
                    assert_eq!(s.dims(), m.binary.dims(), "{weight}: one scale per kernel");
                    if scale == ScaleKind::Mask {
                        // A^s = κ (M^r − m₀) and M^b = 1[M^r > 0] come from the same M^r, so the
                        // stored scale alone gives back the stored bits: M^b = 1[A^s / κ + m₀ > 0]
                        // (κ = 10, m₀ = 5e-3), wherever f16 rounding of A^s cannot flip the sign.
                        let a = s.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                        for (k, (&ai, &bi)) in a.iter().zip(&b).enumerate() {
                            let mr = ai / 10.0 + 5e-3;
                            if mr.abs() > 1e-5 {
                                assert_eq!(bi, if mr > 0.0 { 1.0 } else { 0.0 }, "{weight} kernel {k}: A^s = {ai} but M^b = {bi}");
                            }
                        }
                    }
                }
                other => panic!("{weight}: scale {other:?}"),
            }
            let full = match &m.scale {
                Some(s) => (&m.binary + s).unwrap(),
                None => m.binary.clone(),
            };
            let (o, i) = full.dims2().unwrap();
            let expected = w.broadcast_mul(&full.reshape((o, i, 1, 1)).unwrap()).unwrap();
            assert_eq!(bits(&model.effective_params()[weight]), bits(&expected), "{weight}: W ⊙ (M^b + A^s)");
        }
        assert!(zeros > 0 && zeros < total, "{scale:?}: {zeros} of {total} kernels off: training flipped nothing");
        // A plain backbone holding the task's weights and BN + the head gives the same logits.
        let mut params = source.backbone.params().clone();
        params.extend(model.effective_params().clone());
        let merged = Backbone::from_params(source.backbone.spec().clone(), params, &Device::Cpu).unwrap();
        let x = tiny_task(1).test.images_tensor(&Device::Cpu).unwrap();
        let f = merged.run(&x, None, "pool", &[], &graft_core::NoHooks).unwrap().output;
        let logits = graft_core::backbone::linear(&f, delta.tensor("head.weight").unwrap(), delta.tensor("head.bias").unwrap()).unwrap();
        assert_eq!(bits(&logits), bits(&model.forward(&x).unwrap()), "{scale:?}: merged backbone differs");
        assert_eq!(model.footprint().stored_bytes, model.layout().stored_bytes(3), "{scale:?}: stored-bytes formula");
    }
}

#[test]
fn at_initialisation_the_task_weights_are_the_source_weights() {
    let source = tiny_source(4);
    // An annealed schedule (the default keeps τ fixed).
    let config = KsmConfig { tau_final: 1e-5, ..KsmConfig::default() };
    let layout = Layout::new(&config, &source.backbone).unwrap();
    let net = KsmNet::new(&config, &source.backbone, layout, 3, 0).unwrap();
    let model = KsmModel::from_tensors(config, &source, net.delta_tensors().unwrap(), 3).unwrap();
    for (name, t) in model.effective_params() {
        assert_eq!(bits(t), bits(source.backbone.param(name).unwrap()), "{name} differs from the source at init");
    }
    // The temperature falls geometrically from tau to tau_final over the trainer's planned
    // steps: 1e-3 · (1e-2)^(3/9) = 1e-3 · 10^(-2/3) = 2.1544347e-4 at step 3 of 10.
    let mut net = net;
    assert_eq!(net.tau(), 1e-3);
    for (step, want) in [(0, 1e-3), (3, 2.154_434_7e-4), (9, 1e-5)] {
        graft_core::Trainable::begin_step(&mut net, step, 10).unwrap();
        assert!((net.tau() - want).abs() < 1e-10, "step {step}: {}", net.tau());
    }
    // The relaxed training mask starts within 1e-4 of the binary one.
    let mr = Tensor::full(5e-3f32, (2, 2), &Device::Cpu).unwrap();
    let a = scale_part(ScaleKind::Mask, &mr, None, 10.0, 5e-3).unwrap().unwrap();
    assert_eq!(a.to_vec2::<f32>().unwrap(), vec![vec![0.0; 2]; 2]);
    let soft = soft_mask(&mr, Some(&a), 1e-3, false).unwrap().to_vec2::<f32>().unwrap();
    assert!(soft.iter().flatten().all(|&v| (1.0 - v) < 1e-4), "{soft:?}");
}

#[test]
fn the_source_is_bit_identical_after_fitting() {
    let source = tiny_source(6);
    let before: Vec<(String, Vec<u32>)> = source.backbone.params().iter().map(|(k, v)| (k.clone(), bits(v))).collect();
    let model = fitted(&source, ScaleKind::Mask, ScaleDType::F16);
    let after: Vec<(String, Vec<u32>)> = source.backbone.params().iter().map(|(k, v)| (k.clone(), bits(v))).collect();
    assert!(before == after, "fitting changed the source");
    let fp = model.footprint();
    // resnet-cifar-8: 9 masked convs, 9 tuned BNs, and the head reading the pooled features.
    assert_eq!(fp.interconnections, 19);
    assert!(model.fraction_of_fine_tune() < 0.5, "{}", model.fraction_of_fine_tune());
}

#[test]
fn packing_round_trips_including_lengths_not_divisible_by_8() {
    let mut rng = SeededRng::new(3);
    for shape in [vec![1usize], vec![7], vec![8], vec![13], vec![3, 5], vec![16, 8], vec![4, 1]] {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = rng.uniform_vec(n, 0.0, 1.0).into_iter().map(|x| if x > 0.5 { 1.0 } else { 0.0 }).collect();
        let mask = Tensor::from_vec(v, shape.as_slice(), &Device::Cpu).unwrap();
        let packed = pack_mask("m", &mask).unwrap();
        assert_eq!((packed.dtype(), packed.dims()), (DType::U8, &[n.div_ceil(8)][..]));
        let back = unpack_mask("m", &packed, &shape, &Device::Cpu).unwrap();
        assert_eq!(bits(&back), bits(&mask), "shape {shape:?}");
    }
}

#[test]
fn bad_packed_tensors_are_named_with_their_shapes() {
    let dev = Device::Cpu;
    let name = "ksm.layer1.0.conv1.mask_bits";
    let shape = [4, 5]; // 20 kernels → 3 bytes
    for (packed, got) in [
        (Tensor::zeros(2, DType::U8, &dev).unwrap(), "[2]"),
        (Tensor::zeros((3, 1), DType::U8, &dev).unwrap(), "[3, 1]"),
        (Tensor::zeros(3, DType::F16, &dev).unwrap(), "F16"),
    ] {
        let err = unpack_mask(name, &packed, &shape, &dev).unwrap_err().to_string();
        for part in [name, got, "[3]", "[4, 5]"] {
            assert!(err.contains(part), "error lacks '{part}': {err}");
        }
    }
    let err = unpack_mask(name, &Tensor::new(&[0u8, 0, 0b0001_0000], &dev).unwrap(), &shape, &dev).unwrap_err().to_string();
    assert!(err.contains(name) && err.contains("padding"), "{err}");
    let err = pack_mask(name, &Tensor::new(&[[1f32, 0.25]], &dev).unwrap()).unwrap_err().to_string();
    assert!(err.contains(name) && err.contains("not binary") && err.contains("entry 1 is 0.25"), "{err}");
    // A delta whose stored pieces do not fit is refused, naming each tensor.
    let source = tiny_source(5);
    let model = fitted(&source, ScaleKind::Mask, ScaleDType::F16);
    let mut delta = model.delta().unwrap();
    let bits_key = "ksm.layer2.0.conv1.mask_bits".to_string();
    let scale_key = "ksm.layer2.0.conv1.scale".to_string();
    delta.tensors.insert(bits_key.clone(), Tensor::zeros(1, DType::U8, &dev).unwrap());
    let err = Ksm { config: model.config().clone() }.load_model(&source, &delta).err().expect("accepted").to_string();
    assert!(err.contains(&bits_key), "{err}");
    let mut delta = model.delta().unwrap();
    delta.tensors.insert(scale_key.clone(), Tensor::zeros((2, 2), DType::F16, &dev).unwrap());
    let err = Ksm { config: model.config().clone() }.load_model(&source, &delta).err().expect("accepted").to_string();
    assert!(err.contains(&scale_key) && err.contains("[2, 2]"), "{err}");
}

/// A KSM net that records the trainer's step, plan and the temperature of every batch.
struct Recording {
    net: KsmNet,
    seen: Vec<(usize, usize, f64)>,
}

impl graft_core::Trainable for Recording {
    fn begin_step(&mut self, step: usize, total: usize) -> graft_core::Result<()> {
        self.net.begin_step(step, total)?;
        self.seen.push((step, total, self.net.tau()));
        Ok(())
    }
    fn train_logits(&mut self, x: &Tensor, rng: &mut SeededRng) -> graft_core::Result<Tensor> {
        self.net.train_logits(x, rng)
    }
    fn eval_logits(&self, x: &Tensor) -> graft_core::Result<Tensor> {
        self.net.eval_logits(x)
    }
    fn after_step(&mut self) -> graft_core::Result<()> {
        self.net.after_step()
    }
    fn state(&self) -> graft_core::Result<graft_core::ParamMap> {
        self.net.state()
    }
    fn set_state(&mut self, state: &graft_core::ParamMap) -> graft_core::Result<()> {
        self.net.set_state(state)
    }
}

#[test]
fn the_temperature_follows_the_trainers_own_steps_even_when_it_stops_early() {
    use graft_core::train::{train, Split};
    let source = tiny_source(4);
    let task = tiny_task(4);
    let (n, batch) = (task.train.len(), 7);
    assert!(n % batch != 0, "a last, short batch is part of the test");
    let x = task.train.images_tensor(&Device::Cpu).unwrap();
    let vx = task.val.images_tensor(&Device::Cpu).unwrap();
    for patience in [None, Some(1)] {
        let mut config = KsmConfig { tau_final: 1e-5, ..KsmConfig::default() };
        config.train.epochs = 6;
        config.train.batch_size = batch;
        config.train.patience = patience;
        let layout = Layout::new(&config, &source.backbone).unwrap();
        let net = KsmNet::new(&config, &source.backbone, layout, 3, 0).unwrap();
        let groups = net.param_groups();
        let mut rec = Recording { net, seen: Vec::new() };
        let mut ctx = graft_core::FitContext::new(Device::Cpu, 0);
        let report = train(
            &mut rec,
            groups,
            Split { x: &x, y: &task.train.labels },
            Some(Split { x: &vx, y: &task.val.labels }),
            &config.train,
            &mut ctx,
            "ksm",
        )
        .unwrap();
        // Every batch the trainer ran, in order, with its plan of 6 · ceil(n / 7) steps.
        let planned = 6 * n.div_ceil(batch);
        let ran = report.epochs.len() * n.div_ceil(batch);
        assert_eq!(rec.seen.len(), ran, "{patience:?}");
        for (i, &(step, total, tau)) in rec.seen.iter().enumerate() {
            assert_eq!((step, total), (i, planned), "{patience:?}");
            let want = 1e-3 * (1e-2f64).powf(i as f64 / (planned - 1) as f64);
            assert!((tau - want).abs() <= 1e-12 * want.max(1e-300) + 1e-15, "{patience:?} step {i}: {tau} vs {want}");
        }
        if patience.is_none() {
            assert_eq!(rec.seen.last().unwrap().2, 1e-5);
        } else if report.stopped_early {
            assert!(rec.seen.last().unwrap().2 > 1e-5, "stopped early, before tau_final");
        }
    }
}

#[test]
fn gated_scales_switch_a_kernel_off_exactly() {
    // M^b = (1, 0, 1), A^s = (0.5, 0.5, −0.25): additive (1.5, 0.5, 0.75), gated (1.5, 0, 0.75).
    let dev = Device::Cpu;
    let b = Tensor::new(&[1f32, 0.0, 1.0], &dev).unwrap();
    let a = Tensor::new(&[0.5f32, 0.5, -0.25], &dev).unwrap();
    assert_eq!(graft_ksm::mask::eval_mask(&b, Some(&a), false).unwrap().to_vec1::<f32>().unwrap(), vec![1.5, 0.5, 0.75]);
    assert_eq!(graft_ksm::mask::eval_mask(&b, Some(&a), true).unwrap().to_vec1::<f32>().unwrap(), vec![1.5, 0.0, 0.75]);
    // A fitted gated model: every switched-off kernel of every masked conv is exactly zero.
    let source = tiny_source(5);
    let mut config = KsmConfig { scale: ScaleKind::Mask, gate_scale: true, head_lr: Some(1e-2), ..KsmConfig::default() };
    config.train.epochs = 3;
    config.train.batch_size = 16;
    config.train.lr = 2e-3;
    let model = Ksm { config }.fit_model(&source, &tiny_task(1), &mut FitContext::new(Device::Cpu, 1)).unwrap();
    let mut off = 0;
    for (weight, m) in model.eval_masks() {
        let w = &model.effective_params()[weight];
        let (o, i) = m.binary.dims2().unwrap();
        let mass = w.reshape((o, i, ())).unwrap().abs().unwrap().sum(2).unwrap().to_vec2::<f32>().unwrap();
        for (bits_row, mass_row) in m.binary.to_vec2::<f32>().unwrap().iter().zip(&mass) {
            for (&bit, &kernel) in bits_row.iter().zip(mass_row) {
                if bit == 0.0 {
                    off += 1;
                    assert_eq!(kernel, 0.0, "{weight}: a switched-off kernel is not zero");
                }
            }
        }
    }
    assert!(off > 0, "training switched no kernel off");
}
