//! graft's fused BatchNorm/activation/add kernels against the same computation written with
//! candle's own ops (outputs and autograd gradients), plus finite-difference checks.

use candle_core::{Device, Tensor, Var, D};
use graft_core::init::SeededRng;
use graft_core::kernels::{add_act, batch_norm_train, scale_shift_act, Act};

const ACTS: [Act; 3] = [Act::None, Act::Relu, Act::Relu6];
/// Shapes: 4-D with planes of several sizes (odd, not a multiple of 16, large), and 2-D.
const SHAPES: &[&[usize]] = &[&[3, 4, 5, 7], &[2, 3, 16, 16], &[1, 2, 33, 35], &[6, 5]];

fn uniform(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor {
    SeededRng::new(seed).uniform(shape.to_vec(), lo, hi, &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn assert_close(a: &Tensor, b: &Tensor, tol: f64, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let (a, b) = (flat(a), flat(b));
    let scale = b.iter().fold(1f64, |m, v| m.max(v.abs() as f64));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let err = (*x as f64 - *y as f64).abs();
        assert!(err <= tol * scale, "{what}: element {i}: {x} vs {y} (tolerance {tol:e} × {scale})");
    }
}

fn act_ref(x: Tensor, act: Act) -> Tensor {
    match act {
        Act::None => x,
        Act::Relu => x.relu().unwrap(),
        Act::Relu6 => x.clamp(0f32, 6f32).unwrap(),
    }
}

/// `(1, c, 1, 1)` (or `(1, c)`) view of a per-channel vector for broadcasting against `x`.
fn per_channel(v: &Tensor, x: &Tensor) -> Tensor {
    let mut shape = vec![1usize; x.rank()];
    shape[1] = x.dim(1).unwrap();
    v.reshape(shape).unwrap()
}

/// Training-mode BatchNorm written with candle ops: moments over every dim but 1.
fn bn_train_ref(x: &Tensor, g: &Tensor, b: &Tensor, act: Act) -> (Tensor, Tensor, Tensor) {
    let c = x.dim(1).unwrap();
    let xt = x.transpose(0, 1).unwrap().contiguous().unwrap().reshape((c, ())).unwrap();
    let mean = xt.mean(D::Minus1).unwrap();
    let var = xt.broadcast_sub(&mean.unsqueeze(1).unwrap()).unwrap().sqr().unwrap().mean(D::Minus1).unwrap();
    let inv = (var.clone() + 1e-5).unwrap().sqrt().unwrap().recip().unwrap();
    let xhat = x.broadcast_sub(&per_channel(&mean, x)).unwrap().broadcast_mul(&per_channel(&inv, x)).unwrap();
    let y = xhat.broadcast_mul(&per_channel(g, x)).unwrap().broadcast_add(&per_channel(b, x)).unwrap();
    (act_ref(y, act), mean, var)
}

fn vars(shape: &[usize], seed: u64) -> (Var, Var, Var) {
    let c = shape[1];
    // An offset mean checks the moments against cancellation.
    let x = Var::from_tensor(&uniform(shape, 2.0, 4.0, seed)).unwrap();
    let g = Var::from_tensor(&uniform(&[c], 0.5, 1.5, seed + 1)).unwrap();
    let b = Var::from_tensor(&uniform(&[c], -0.5, 0.5, seed + 2)).unwrap();
    (x, g, b)
}

#[test]
fn batch_norm_train_matches_candle_ops_forward_and_backward() {
    for (si, shape) in SHAPES.iter().enumerate() {
        for act in ACTS {
            let (x, g, b) = vars(shape, si as u64 * 10);
            let r = uniform(shape, -1.0, 1.0, 99);
            let (out, mean, var) = batch_norm_train(&x, &g, &b, act).unwrap();
            let (out_ref, mean_ref, var_ref) = bn_train_ref(&x, &g, &b, act);
            let what = format!("{shape:?} {act:?}");
            assert_close(&out, &out_ref, 1e-5, &format!("{what} output"));
            assert_close(&mean, &mean_ref, 1e-6, &format!("{what} mean"));
            assert_close(&var, &var_ref, 1e-5, &format!("{what} var"));
            let gr = (out * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gr_ref = (out_ref * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (v, name) in [(&x, "dx"), (&g, "dgamma"), (&b, "dbeta")] {
                assert_close(gr.get(v).unwrap(), gr_ref.get(v).unwrap(), 1e-4, &format!("{what} {name}"));
            }
        }
    }
}

#[test]
fn scale_shift_act_matches_candle_ops_forward_and_backward() {
    for (si, shape) in SHAPES.iter().enumerate() {
        for act in ACTS {
            let c = shape[1];
            let x = Var::from_tensor(&uniform(shape, -3.0, 8.0, si as u64)).unwrap();
            let s = Var::from_tensor(&uniform(&[c], -1.5, 1.5, 7)).unwrap();
            let t = Var::from_tensor(&uniform(&[c], -0.5, 0.5, 8)).unwrap();
            let r = uniform(shape, -1.0, 1.0, 9);
            let out = scale_shift_act(&x, &s, &t, act).unwrap();
            let out_ref =
                act_ref(x.broadcast_mul(&per_channel(&s, &x)).unwrap().broadcast_add(&per_channel(&t, &x)).unwrap(), act);
            let what = format!("{shape:?} {act:?}");
            assert_close(&out, &out_ref, 1e-6, &format!("{what} output"));
            let gr = (out * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gr_ref = (out_ref * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (v, name) in [(&x, "dx"), (&s, "dscale"), (&t, "dshift")] {
                assert_close(gr.get(v).unwrap(), gr_ref.get(v).unwrap(), 1e-5, &format!("{what} {name}"));
            }
        }
    }
}

#[test]
fn add_act_matches_candle_ops_forward_and_backward() {
    for act in ACTS {
        let a = Var::from_tensor(&uniform(&[2, 3, 9, 7], -4.0, 8.0, 1)).unwrap();
        let b = Var::from_tensor(&uniform(&[2, 3, 9, 7], -4.0, 4.0, 2)).unwrap();
        let r = uniform(&[2, 3, 9, 7], -1.0, 1.0, 3);
        let out = add_act(&a, &b, act).unwrap();
        let out_ref = act_ref((a.as_tensor() + b.as_tensor()).unwrap(), act);
        assert_close(&out, &out_ref, 0.0, &format!("{act:?} output"));
        let gr = (out * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gr_ref = (out_ref * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&a, &b] {
            assert_close(gr.get(v).unwrap(), gr_ref.get(v).unwrap(), 0.0, &format!("{act:?} grad"));
        }
    }
}

/// Central differences of `f` in f64 around every element of `t`.
fn finite_diff(t: &Tensor, f: &dyn Fn(&Tensor) -> f64, eps: f32) -> Vec<f64> {
    let base = flat(t);
    (0..base.len())
        .map(|i| {
            let mut p = base.clone();
            p[i] += eps;
            let plus = f(&Tensor::from_vec(p.clone(), t.shape(), t.device()).unwrap());
            p[i] = base[i] - eps;
            let minus = f(&Tensor::from_vec(p, t.shape(), t.device()).unwrap());
            (plus - minus) / (2.0 * eps as f64)
        })
        .collect()
}

fn assert_grad_close(analytic: &Tensor, numeric: &[f64], what: &str) {
    let a = flat(analytic);
    let scale = numeric.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(numeric).enumerate() {
        assert!((*x as f64 - y).abs() <= 2e-2 * scale, "{what}: element {i}: analytic {x} vs numeric {y}");
    }
}

#[test]
fn batch_norm_train_gradients_match_finite_differences() {
    // No activation: ReLU's kink makes central differences unreliable; the masked case is
    // covered against candle's autograd above.
    let shape = [2, 3, 3, 4];
    let (x, g, b) = vars(&shape, 5);
    let r = flat(&uniform(&shape, -1.0, 1.0, 6));
    let loss = |x: &Tensor, g: &Tensor, b: &Tensor| -> f64 {
        let (y, _, _) = batch_norm_train(x, g, b, Act::None).unwrap();
        flat(&y).iter().zip(&r).map(|(y, r)| *y as f64 * *r as f64).sum()
    };
    let (y, _, _) = batch_norm_train(&x, &g, &b, Act::None).unwrap();
    let rt = Tensor::from_vec(r.clone(), &shape, &Device::Cpu).unwrap();
    let grads = (y * rt).unwrap().sum_all().unwrap().backward().unwrap();
    let (xt, gt, bt) = (x.as_tensor().detach(), g.as_tensor().detach(), b.as_tensor().detach());
    assert_grad_close(grads.get(&x).unwrap(), &finite_diff(&xt, &|t| loss(t, &gt, &bt), 1e-2), "dx");
    assert_grad_close(grads.get(&g).unwrap(), &finite_diff(&gt, &|t| loss(&xt, t, &bt), 1e-2), "dgamma");
    assert_grad_close(grads.get(&b).unwrap(), &finite_diff(&bt, &|t| loss(&xt, &gt, t), 1e-2), "dbeta");
}

#[test]
fn constant_channel_normalises_to_beta_without_nan() {
    let x = Tensor::ones((4, 2, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    let g = Tensor::new(&[2f32, 3.0], &Device::Cpu).unwrap();
    let b = Tensor::new(&[0.25f32, -0.5], &Device::Cpu).unwrap();
    let (y, mean, var) = batch_norm_train(&x, &g, &b, Act::None).unwrap();
    assert_eq!(flat(&mean), vec![1.0, 1.0]);
    assert_eq!(flat(&var), vec![0.0, 0.0]);
    let y = flat(&y);
    assert!(y[..9].iter().all(|&v| v == 0.25) && y[9..18].iter().all(|&v| v == -0.5), "{y:?}");
}

#[test]
fn bad_shapes_are_named_errors() {
    let x = uniform(&[2, 3, 4, 4], 0.0, 1.0, 1);
    let g = uniform(&[4], 0.0, 1.0, 2);
    let err = batch_norm_train(&x, &g, &g, Act::Relu).unwrap_err().to_string();
    assert!(err.contains("gamma") && err.contains("[3]") && err.contains("[4]"), "{err}");
    let err = add_act(&x, &uniform(&[2, 3, 4, 5], 0.0, 1.0, 3), Act::None).unwrap_err().to_string();
    assert!(err.contains("[2, 3, 4, 4]") && err.contains("[2, 3, 4, 5]"), "{err}");
    let err = scale_shift_act(&uniform(&[2, 3, 4], 0.0, 1.0, 1), &g, &g, Act::None).unwrap_err().to_string();
    assert!(err.contains("(n, c, h, w)"), "{err}");
}

#[test]
fn activation_matches_candle_ops_forward_and_backward() {
    use graft_core::kernels::activation;
    for act in ACTS {
        let x = Var::from_tensor(&uniform(&[2, 3, 9, 7], -4.0, 9.0, 11)).unwrap();
        let r = uniform(&[2, 3, 9, 7], -1.0, 1.0, 12);
        let out = activation(&x, act).unwrap();
        let out_ref = act_ref(x.as_tensor().clone(), act);
        assert_close(&out, &out_ref, 0.0, &format!("{act:?} output"));
        let gr = (out * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gr_ref = (out_ref * &r).unwrap().sum_all().unwrap().backward().unwrap();
        assert_close(gr.get(&x).unwrap(), gr_ref.get(&x).unwrap(), 0.0, &format!("{act:?} grad"));
    }
}
