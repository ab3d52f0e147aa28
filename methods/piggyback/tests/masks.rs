//! Piggyback's masks: binary at evaluation, applied as stored, bit-packed losslessly, trained by
//! the straight-through estimator; the source never changes.

use candle_core::{DType, Device, Tensor, Var};
use graft_core::backbone::{conv2d, ConvDef};
use graft_core::bitpack::{pack_mask, unpack_mask};
use graft_core::conformance::{tiny_source, tiny_task};
use graft_core::init::SeededRng;
use graft_core::{Backbone, FitContext, Source, TaskModel};
use graft_piggyback::mask::{binarize, binarize_ste};
use graft_piggyback::{Piggyback, PiggybackConfig, PiggybackModel};

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f32::to_bits).collect()
}

/// A fit with a mask learning rate large enough that some masks flip on the tiny task.
fn fitted(source: &Source, tune_bn: bool) -> PiggybackModel {
    let mut config = PiggybackConfig { tune_bn, head_lr: Some(1e-2), ..PiggybackConfig::default() };
    config.train.epochs = 3;
    config.train.batch_size = 16;
    config.train.lr = 2e-3;
    Piggyback { config }.fit_model(source, &tiny_task(1), &mut FitContext::new(Device::Cpu, 1)).unwrap()
}

#[test]
fn eval_masks_are_binary_and_exactly_what_the_forward_uses() {
    let source = tiny_source(5);
    for tune_bn in [false, true] {
        let model = fitted(&source, tune_bn);
        let masks = model.eval_masks();
        assert_eq!(masks.len(), source.backbone.convs().len());
        let (mut zeros, mut total) = (0, 0);
        for (weight, m) in masks {
            let v = m.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(v.iter().all(|&x| x == 0.0 || x == 1.0), "{weight}: mask not binary");
            zeros += v.iter().filter(|&&x| x == 0.0).count();
            total += v.len();
            let w = source.backbone.param(weight).unwrap();
            assert_eq!(m.dims(), w.dims(), "{weight}: mask shape");
            let expected = (w * m).unwrap();
            assert_eq!(bits(&model.effective_params()[weight]), bits(&expected), "{weight}: W ⊙ B");
        }
        assert!(zeros > 0 && zeros < total, "tune_bn {tune_bn}: {zeros} of {total} weights masked: training flipped nothing");
        assert!((model.kept_fraction().unwrap() - (total - zeros) as f64 / total as f64).abs() < 1e-12);
        // A plain backbone holding W ⊙ B (and the task's BN) + the head gives the same logits.
        let mut params = source.backbone.params().clone();
        params.extend(model.effective_params().clone());
        let merged = Backbone::from_params(source.backbone.spec().clone(), params, &Device::Cpu).unwrap();
        let x = tiny_task(1).test.images_tensor(&Device::Cpu).unwrap();
        let f = merged.run(&x, None, "pool", &[], &graft_core::NoHooks).unwrap().output;
        let d = model.delta().unwrap();
        let logits = graft_core::backbone::linear(&f, d.tensor("head.weight").unwrap(), d.tensor("head.bias").unwrap()).unwrap();
        assert_eq!(bits(&logits), bits(&model.forward(&x).unwrap()), "tune_bn {tune_bn}: merged backbone differs");
        let bn_keys = d.tensors.keys().filter(|k| k.ends_with("running_var")).count();
        assert_eq!(bn_keys, if tune_bn { source.backbone.bn_names().len() } else { 0 });
    }
}

#[test]
fn the_source_is_bit_identical_after_fitting() {
    let source = tiny_source(6);
    let before: Vec<(String, Vec<u32>)> = source.backbone.params().iter().map(|(k, v)| (k.clone(), bits(v))).collect();
    let model = fitted(&source, true);
    let after: Vec<(String, Vec<u32>)> = source.backbone.params().iter().map(|(k, v)| (k.clone(), bits(v))).collect();
    assert!(before == after, "fitting changed the source");
    // The footprint's byte count is the documented formula.
    let fp = model.footprint();
    assert_eq!(fp.stored_bytes, model.layout().stored_bytes(3));
    assert!(model.fraction_of_fine_tune() < 0.5, "{}", model.fraction_of_fine_tune());
    // resnet-cifar-8: 9 masked convs, 9 tuned BNs, and the head reading the pooled features.
    assert_eq!(fp.interconnections, 19);
}

#[test]
fn packing_round_trips_including_lengths_not_divisible_by_8() {
    let mut rng = SeededRng::new(3);
    for shape in [vec![1usize], vec![7], vec![8], vec![13], vec![3, 5], vec![4, 2, 3, 3], vec![2, 1, 1, 1]] {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = rng.uniform_vec(n, 0.0, 1.0).into_iter().map(|x| if x > 0.5 { 1.0 } else { 0.0 }).collect();
        let mask = Tensor::from_vec(v, shape.as_slice(), &Device::Cpu).unwrap();
        let packed = pack_mask("m", &mask).unwrap();
        assert_eq!(packed.dtype(), DType::U8);
        assert_eq!(packed.dims(), &[n.div_ceil(8)]);
        let back = unpack_mask("m", &packed, &shape, &Device::Cpu).unwrap();
        assert_eq!(bits(&back), bits(&mask), "shape {shape:?}");
    }
}

#[test]
fn bad_packed_tensors_are_named_with_their_shapes() {
    let dev = Device::Cpu;
    let name = "piggyback.layer1.0.conv1.mask_bits";
    let shape = [4, 4, 3, 3]; // 144 entries → 18 bytes
    let cases = [
        (Tensor::zeros(17, DType::U8, &dev).unwrap(), "[17]"),
        (Tensor::zeros((2, 9), DType::U8, &dev).unwrap(), "[2, 9]"),
        (Tensor::zeros(18, DType::F32, &dev).unwrap(), "F32"),
    ];
    for (packed, got) in cases {
        let err = unpack_mask(name, &packed, &shape, &dev).unwrap_err().to_string();
        for part in [name, got, "[18]", "[4, 4, 3, 3]"] {
            assert!(err.contains(part), "error lacks '{part}': {err}");
        }
    }
    // 13 entries use 5 bits of the second byte: a set padding bit is rejected.
    let packed = Tensor::new(&[0u8, 0b0010_0000], &dev).unwrap();
    let err = unpack_mask(name, &packed, &[13], &dev).unwrap_err().to_string();
    assert!(err.contains(name) && err.contains("padding"), "{err}");
    let err = pack_mask(name, &Tensor::new(&[0f32, 0.5], &dev).unwrap()).unwrap_err().to_string();
    assert!(err.contains(name) && err.contains("0.5"), "{err}");
}

#[test]
fn a_delta_with_a_truncated_mask_is_refused_by_name() {
    let source = tiny_source(5);
    let model = fitted(&source, false);
    let mut delta = model.delta().unwrap();
    let key = "piggyback.layer2.0.conv1.mask_bits".to_string();
    let t = delta.tensors[&key].clone();
    delta.tensors.insert(key.clone(), t.narrow(0, 0, t.dim(0).unwrap() - 1).unwrap());
    let err = Piggyback { config: model.config().clone() }.load_model(&source, &delta).err().expect("accepted").to_string();
    assert!(err.contains(&key), "{err}");
    delta.tensors.remove(&key);
    let err = Piggyback { config: model.config().clone() }.load_model(&source, &delta).err().expect("accepted").to_string();
    assert!(err.contains("missing") && err.contains(&key), "{err}");
}

#[test]
fn the_ste_gradient_is_the_gradient_wrt_the_binary_mask() {
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(11);
    let def = ConvDef { name: "c".into(), in_channels: 3, out_channels: 4, kernel: 3, stride: 1, padding: 1, groups: 1, bias: false };
    let w = rng.normal((4, 3, 3, 3), 0.5, &dev).unwrap();
    let x = rng.normal((2, 3, 5, 5), 1.0, &dev).unwrap();
    let g = rng.normal((2, 4, 5, 5), 1.0, &dev).unwrap();
    // Real masks scattered on both sides of the threshold.
    let m = Var::from_tensor(&rng.uniform((4, 3, 3, 3), -5e-3, 1.5e-2, &dev).unwrap()).unwrap();
    let thr = 5e-3;
    let loss = |mask: &Tensor| conv2d(&x, &(&w * mask).unwrap(), None, &def).unwrap().mul(&g).unwrap().sum_all().unwrap();
    let ste = binarize_ste(m.as_tensor(), thr).unwrap();
    let b = Var::from_tensor(&binarize(m.as_tensor(), thr).unwrap()).unwrap();
    assert_eq!(bits(&ste), bits(b.as_tensor()), "STE forward is not 1[m > τ]");
    let gm = loss(&ste).backward().unwrap().get(m.as_tensor()).unwrap().clone();
    let gb = loss(b.as_tensor()).backward().unwrap().get(b.as_tensor()).unwrap().clone();
    assert_eq!(bits(&gm), bits(&gb), "∂L/∂m differs from ∂L/∂B");
    assert!(gm.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
}
