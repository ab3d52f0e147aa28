//! Channel pooling: evaluation selects exactly top-K(w), noise only in training, and gradients
//! reach only the selected weights (checked against the analytic gradient).

use candle_core::{Device, Tensor};
use graft_core::init::SeededRng;
use graft_snow::pooling::{top_k, ChannelPool};

fn pool_with(weights: &[f32], k: usize) -> ChannelPool {
    let p = ChannelPool::new("stage1.block0", weights.len(), k, 0.0, &Device::Cpu).unwrap();
    p.weight.set(&Tensor::new(weights, &Device::Cpu).unwrap()).unwrap();
    p
}

#[test]
fn eval_selection_is_deterministic_and_equals_top_k_of_w() {
    let w = SeededRng::new(5).normal_vec(32, 1.0);
    let p = pool_with(&w, 8);
    let a = p.eval_selection().unwrap();
    let b = p.eval_selection().unwrap();
    let idx = a.index.to_vec1::<u32>().unwrap();
    assert_eq!(idx, b.index.to_vec1::<u32>().unwrap());
    assert_eq!(idx, top_k(&w, 8));
    // The eight selected weights are the eight largest, and the stored scales are w[idx].
    let mut sorted = w.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let picked: Vec<f32> = idx.iter().map(|&i| w[i as usize]).collect();
    let mut picked_sorted = picked.clone();
    picked_sorted.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(picked_sorted, sorted[..8].to_vec());
    assert_eq!(a.weight.to_vec1::<f32>().unwrap(), picked);
}

#[test]
fn noise_changes_the_training_selection_only() {
    // Near-tied weights: noise of σ² = 1e-3 reorders them, the evaluation selection never moves.
    let w: Vec<f32> = (0..16).map(|i| 1.0 + 1e-4 * i as f32).collect();
    let p = pool_with(&w, 4);
    let eval = p.eval_selection().unwrap().index.to_vec1::<u32>().unwrap();
    assert_eq!(eval, vec![12, 13, 14, 15]);
    let mut rng = SeededRng::new(0);
    let draws: Vec<Vec<u32>> =
        (0..20).map(|_| p.train_selection(1e-3f64.sqrt(), &mut rng).unwrap().index.to_vec1::<u32>().unwrap()).collect();
    assert!(draws.iter().any(|d| *d != eval), "noise never changed the training selection");
    for _ in 0..5 {
        assert_eq!(p.eval_selection().unwrap().index.to_vec1::<u32>().unwrap(), eval);
    }
    // Without noise, training selects exactly what evaluation selects.
    assert_eq!(p.train_selection(0.0, &mut rng).unwrap().index.to_vec1::<u32>().unwrap(), eval);
}

#[test]
fn only_selected_weights_get_gradient_and_it_is_the_analytic_one() {
    let dev = Device::Cpu;
    let w = [0.5f32, 2.0, -1.0, 1.5, 0.1, 3.0];
    let p = pool_with(&w, 3);
    let sel = p.train_selection(0.0, &mut SeededRng::new(1)).unwrap();
    let idx = sel.index.to_vec1::<u32>().unwrap();
    assert_eq!(idx, vec![1, 3, 5]);
    let mut rng = SeededRng::new(2);
    let x = rng.normal((2, 6, 3, 3), 1.0, &dev).unwrap();
    let r = rng.normal((2, 3, 3, 3), 1.0, &dev).unwrap();
    // loss = Σ r ⊙ pooled, so ∂loss/∂w_c = Σ r[:, j] ⊙ x[:, c] for the j-th selected channel c.
    let loss = (sel.pool(&x).unwrap() * &r).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let g = grads.get(p.weight.as_tensor()).expect("w has a gradient").to_vec1::<f32>().unwrap();
    for c in 0..6 {
        match idx.iter().position(|&i| i as usize == c) {
            None => assert_eq!(g[c], 0.0, "unselected channel {c} got gradient {}", g[c]),
            Some(j) => {
                let xc = x.narrow(1, c, 1).unwrap();
                let rj = r.narrow(1, j, 1).unwrap();
                let want = (xc * rj).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
                assert!((g[c] - want).abs() <= 1e-5 * want.abs().max(1.0), "channel {c}: {} vs {want}", g[c]);
            }
        }
    }
}

#[test]
fn k_larger_than_the_tap_is_an_error_naming_the_tap() {
    let err = ChannelPool::new("stage1.block0", 4, 8, 1.0, &Device::Cpu).err().unwrap();
    assert!(err.to_string().contains("stage1.block0") && err.to_string().contains("k = 8"), "{err}");
}

#[test]
fn the_folded_evaluation_fusion_equals_concatenate_then_convolve() {
    use graft_core::Hooks;
    use graft_snow::delta::{eval_fusions, merge_weight_name, pooled_maps, EvalFusionHooks, Fusion};
    use std::collections::BTreeMap;
    let dev = Device::Cpu;
    let tap = "stage2.block0";
    let (c, k, src) = (3, 4, 10);
    let mut rng = SeededRng::new(9);
    let w: Vec<f32> = rng.normal_vec(src, 1.0);
    let p = ChannelPool::new(tap, src, k, 0.0, &dev).unwrap();
    p.weight.set(&Tensor::new(w.as_slice(), &dev).unwrap()).unwrap();
    let mut merge = graft_core::Trainables::new();
    merge.insert(merge_weight_name(tap), &rng.normal((c, c + k, 1, 1), 0.5, &dev).unwrap()).unwrap();
    let h = rng.normal((2, c, 5, 5), 1.0, &dev).unwrap();
    let x = rng.normal((2, src, 5, 5), 1.0, &dev).unwrap();
    let selections: BTreeMap<String, _> = [(tap.to_string(), p.eval_selection().unwrap())].into();
    let taps: BTreeMap<String, Tensor> = [(tap.to_string(), x)].into();
    let pooled = pooled_maps(&selections, &taps).unwrap();
    let naive = Fusion { pooled: &pooled, merge: &merge }.tap_output(tap, h.clone()).unwrap();
    let fusions = eval_fusions(&merge, &selections).unwrap();
    let folded = EvalFusionHooks { fusions: &fusions, taps: &taps }.tap_output(tap, h.clone()).unwrap();
    let diff = (naive - folded).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-5, "folded fusion differs by {diff}");
    // Other taps pass through unchanged.
    let same = EvalFusionHooks { fusions: &fusions, taps: &taps }.tap_output("stage1.block0", h.clone()).unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(flat(&same), flat(&h));
}

#[test]
fn selection_noise_never_draws_from_the_trainers_stream() {
    // A SNOW net on the tiny source (the source itself as the delta): one training batch with
    // noise on must leave the trainer's generator exactly where it was, so that the data order
    // of later epochs does not depend on `noise_var`.
    use graft_core::backbone::TunedBackbone;
    use graft_core::{Trainable, Trainables};
    use graft_snow::delta::merge_weight_name;
    use graft_snow::method::init_merge;
    use graft_snow::net::{Feed, FitData, SnowNet};
    let dev = Device::Cpu;
    let source = graft_core::conformance::tiny_source(7);
    let task = graft_core::conformance::tiny_task(7);
    let tap = "stage2.block0";
    let channels = source.backbone.tap(tap).unwrap().channels;
    let mut merge = Trainables::new();
    merge.insert(merge_weight_name(tap), &init_merge(&mut SeededRng::new(1), channels, 2, &dev).unwrap()).unwrap();
    let mut net = SnowNet {
        delta: TunedBackbone::new(&source.backbone, "snow.delta.", |_| true).unwrap(),
        merge,
        pools: vec![ChannelPool::new(tap, channels, 2, 0.5, &dev).unwrap()],
        noise_std: 1.0,
        noise_rng: SeededRng::new(2),
        data: Some(FitData {
            images: [task.train.images_tensor(&dev).unwrap(), task.val.images_tensor(&dev).unwrap()],
            n_train: task.train.len(),
            feed: Feed::Recompute { source: source.backbone.clone(), taps: vec![tap.to_string()] },
        }),
    };
    let mut trainer = SeededRng::derived(0, "trainer");
    let batch = Tensor::new(&[0u32, 1, 2, 3], &dev).unwrap();
    let noisy = net.train_logits(&batch, &mut trainer).unwrap();
    assert_eq!(noisy.dims(), &[4, 3]);
    assert_eq!(trainer.uniform_vec(8, 0.0, 1.0), SeededRng::derived(0, "trainer").uniform_vec(8, 0.0, 1.0));
    // The noise did draw: its own stream moved on.
    assert_ne!(net.noise_rng.uniform_vec(8, 0.0, 1.0), SeededRng::new(2).uniform_vec(8, 0.0, 1.0));
}
