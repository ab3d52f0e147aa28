//! graft's CPU conv kernel against candle's conv: outputs, autograd gradients, a finite-difference
//! check, non-contiguous inputs and the errors that make callers fall back to candle.

use candle_core::{DType, Device, Tensor, Var};
use graft_core::init::SeededRng;
use graft_core::kernels::{conv2d, conv2d_input_grad, conv2d_weight_grad};

/// `(n, cin, h, w, cout, k, stride, padding, groups)`.
type Case = (usize, usize, usize, usize, usize, usize, usize, usize, usize);

const CASES: &[Case] = &[
    // 3x3, stride 1 / 2, padding 0 / 1, batch 1 and 3, cin != cout
    (1, 4, 8, 8, 6, 3, 1, 1, 1),
    (3, 4, 8, 8, 6, 3, 2, 1, 1),
    (3, 4, 7, 5, 6, 3, 1, 0, 1),
    (3, 4, 7, 5, 6, 3, 2, 0, 1),
    (3, 5, 7, 5, 3, 3, 2, 1, 1),
    (1, 3, 7, 5, 8, 3, 1, 1, 1),
    // 1x1, stride 1 and 2 (and a padded one)
    (3, 4, 7, 5, 6, 1, 1, 0, 1),
    (3, 4, 7, 5, 6, 1, 2, 0, 1),
    (1, 3, 5, 5, 2, 1, 1, 1, 1),
    // groups
    (3, 4, 7, 5, 6, 3, 1, 1, 2),
    (1, 6, 8, 8, 4, 3, 2, 1, 2),
    (3, 4, 7, 5, 6, 1, 1, 0, 2),
    // depthwise (and channel multiplier 2)
    (3, 6, 7, 5, 6, 3, 1, 1, 6),
    (1, 4, 9, 9, 4, 3, 2, 1, 4),
    (3, 4, 7, 5, 8, 3, 1, 1, 4),
    // larger kernel; shapes big enough to be split into several row tiles
    (2, 3, 9, 9, 4, 5, 1, 2, 1),
    (2, 16, 40, 40, 8, 3, 1, 1, 1),
    (1, 64, 20, 20, 8, 3, 1, 1, 1),
    (2, 16, 40, 40, 8, 3, 2, 1, 1),
    (2, 32, 24, 24, 16, 1, 1, 0, 1),
    // wide enough for im2col + OpenBLAS instead of the direct kernel
    (1, 64, 32, 32, 64, 3, 1, 1, 1),
];

fn uniform(shape: &[usize], seed: u64) -> Tensor {
    SeededRng::new(seed).uniform(shape.to_vec(), -1.0, 1.0, &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// `max |a - b| <= rel · max |b|` (with a floor on the scale for all-zero references).
fn assert_close(a: &Tensor, b: &Tensor, rel: f64, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let (a, b) = (flat(a), flat(b));
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs() as f64)).max(1e-6);
    let err = a.iter().zip(&b).fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs()));
    assert!(err <= rel * scale, "{what}: max abs err {err:e} > {rel:e} × scale {scale:e}");
}

fn case_tensors(c: &Case, seed: u64) -> (Tensor, Tensor) {
    let &(n, cin, h, w, cout, k, _, _, groups) = c;
    (uniform(&[n, cin, h, w], seed), uniform(&[cout, cin / groups, k, k], seed + 1))
}

#[test]
fn forward_matches_candle() {
    for (i, c) in CASES.iter().enumerate() {
        let &(_, _, _, _, _, _, stride, pad, groups) = c;
        let (x, w) = case_tensors(c, 10 * i as u64);
        let ours = conv2d(&x, &w, stride, pad, groups).unwrap();
        let theirs = x.conv2d(&w, pad, stride, 1, groups).unwrap();
        assert_close(&ours, &theirs, 1e-4, &format!("forward {c:?}"));
    }
}

/// Gradients of `sum(conv(x, w) · r)` w.r.t. x and w, with `conv` graft's or candle's.
fn grads(x: &Tensor, w: &Tensor, r: &Tensor, c: &Case, graft: bool) -> (Tensor, Tensor) {
    let &(_, _, _, _, _, _, stride, pad, groups) = c;
    let (xv, wv) = (Var::from_tensor(x).unwrap(), Var::from_tensor(w).unwrap());
    let y = if graft {
        conv2d(xv.as_tensor(), wv.as_tensor(), stride, pad, groups).unwrap()
    } else {
        xv.as_tensor().conv2d(wv.as_tensor(), pad, stride, 1, groups).unwrap()
    };
    let g = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
    (g.get(xv.as_tensor()).unwrap().clone(), g.get(wv.as_tensor()).unwrap().clone())
}

#[test]
fn gradients_match_candle_autograd() {
    for (i, c) in CASES.iter().enumerate() {
        let &(_, _, _, _, _, _, stride, pad, groups) = c;
        let (x, w) = case_tensors(c, 100 + 10 * i as u64);
        let y = x.conv2d(&w, pad, stride, 1, groups).unwrap();
        let r = uniform(y.dims(), 7 + i as u64);
        let (dx, dw) = grads(&x, &w, &r, c, true);
        let (dx_ref, dw_ref) = grads(&x, &w, &r, c, false);
        assert_close(&dx, &dx_ref, 1e-4, &format!("input grad {c:?}"));
        assert_close(&dw, &dw_ref, 1e-4, &format!("weight grad {c:?}"));
    }
}

/// `sum(conv(x, w) · r)` with the sum taken in f64.
fn loss_f64(x: &Tensor, w: &Tensor, r: &[f32], c: &Case) -> f64 {
    let &(_, _, _, _, _, _, stride, pad, groups) = c;
    let y = flat(&conv2d(x, w, stride, pad, groups).unwrap());
    y.iter().zip(r).map(|(a, b)| *a as f64 * *b as f64).sum()
}

/// Central differences of the loss w.r.t. every element of `t` (the other argument fixed).
fn finite_diff(t: &Tensor, f: impl Fn(&Tensor) -> f64, eps: f32) -> Vec<f64> {
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

#[test]
fn gradients_match_finite_differences() {
    // Strided, grouped and 1x1 (im2col); stride 1 (direct kernel), and a plane long enough for
    // the direct weight gradient.
    let tiny: &[Case] = &[
        (2, 3, 5, 4, 2, 3, 2, 1, 1),
        (1, 4, 5, 5, 4, 3, 1, 1, 2),
        (1, 2, 4, 3, 3, 1, 1, 0, 1),
        (2, 3, 5, 4, 2, 3, 1, 1, 1),
        (1, 2, 16, 14, 2, 3, 1, 1, 1),
    ];
    for (i, c) in tiny.iter().enumerate() {
        let &(_, _, _, _, _, _, stride, pad, groups) = c;
        let (x, w) = case_tensors(c, 1000 + 10 * i as u64);
        let y = conv2d(&x, &w, stride, pad, groups).unwrap();
        let r_t = uniform(y.dims(), 999);
        let r = flat(&r_t);
        let (dx, dw) = grads(&x, &w, &r_t, c, true);
        let eps = 1e-2;
        let fd_x = finite_diff(&x, |xp| loss_f64(xp, &w, &r, c), eps);
        let fd_w = finite_diff(&w, |wp| loss_f64(&x, wp, &r, c), eps);
        for (what, an, fd) in [("input", flat(&dx), fd_x), ("weight", flat(&dw), fd_w)] {
            let scale = fd.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-3);
            for (j, (a, f)) in an.iter().zip(&fd).enumerate() {
                let err = (*a as f64 - f).abs();
                assert!(err <= 1e-2 * scale, "{what} grad {c:?}[{j}]: analytic {a} vs finite difference {f}");
            }
        }
    }
}

#[test]
fn non_contiguous_input_works() {
    // (n, c, w, h) transposed to (n, c, h, w): a strided view.
    let base = uniform(&[2, 4, 5, 7], 3);
    let x = base.transpose(2, 3).unwrap();
    assert!(!x.is_contiguous());
    let w = uniform(&[6, 4, 3, 3], 4);
    // The weight as a transposed view too.
    let wt = w.transpose(2, 3).unwrap().contiguous().unwrap().transpose(2, 3).unwrap();
    assert!(!wt.is_contiguous());
    let ours = conv2d(&x, &wt, 2, 1, 1).unwrap();
    let theirs = x.contiguous().unwrap().conv2d(&w, 1, 2, 1, 1).unwrap();
    assert_close(&ours, &theirs, 1e-4, "non-contiguous forward");

    // Gradients flow back through the view.
    let bv = Var::from_tensor(&base).unwrap();
    let y = conv2d(&bv.as_tensor().transpose(2, 3).unwrap(), &w, 1, 1, 1).unwrap();
    let r = uniform(y.dims(), 5);
    let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let ours = g.get(bv.as_tensor()).unwrap().clone();
    let bv2 = Var::from_tensor(&base).unwrap();
    let y2 = bv2.as_tensor().transpose(2, 3).unwrap().conv2d(&w, 1, 1, 1, 1).unwrap();
    let g2 = (&y2 * &r).unwrap().sum_all().unwrap().backward().unwrap();
    assert_close(&ours, g2.get(bv2.as_tensor()).unwrap(), 1e-4, "non-contiguous input grad");
    // A non-contiguous output gradient is accepted by the gradient functions too.
    let dy = uniform(&[2, 6, 7, 5], 6).transpose(2, 3).unwrap();
    let dx = conv2d_input_grad(&dy, &w, (5, 7), 1, 1, 1).unwrap();
    let dw = conv2d_weight_grad(&base, &dy, (3, 3), 1, 1, 1).unwrap();
    assert_eq!(dx.dims(), &[2, 4, 5, 7]);
    assert_eq!(dw.dims(), &[6, 4, 3, 3]);
}

#[test]
fn constant_input_gets_no_gradient_and_weight_grad_still_matches() {
    let c: Case = (2, 4, 6, 6, 5, 3, 1, 1, 1);
    let (x, w) = case_tensors(&c, 77);
    let wv = Var::from_tensor(&w).unwrap();
    let y = conv2d(&x, wv.as_tensor(), 1, 1, 1).unwrap();
    let r = uniform(y.dims(), 78);
    let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(g.get(&x).is_none());
    let (_, dw_ref) = grads(&x, &w, &r, &c, false);
    assert_close(g.get(wv.as_tensor()).unwrap(), &dw_ref, 1e-4, "weight grad with constant input");
}

#[test]
fn unsupported_inputs_are_errors() {
    let x = uniform(&[1, 4, 6, 6], 1);
    let w = uniform(&[4, 4, 3, 3], 2);
    let msg = conv2d(&x.to_dtype(DType::F64).unwrap(), &w.to_dtype(DType::F64).unwrap(), 1, 1, 1).unwrap_err().to_string();
    assert!(msg.contains("f32"), "{msg}");
    assert!(conv2d(&x, &w, 1, 1, 3).is_err(), "groups that do not divide the channels");
    assert!(conv2d(&x, &uniform(&[4, 3, 3, 3], 3), 1, 1, 1).is_err(), "channel mismatch");
    assert!(conv2d(&x, &uniform(&[4, 4, 9, 9], 3), 1, 1, 1).is_err(), "kernel larger than the padded input");
    assert!(conv2d(&x, &w, 0, 1, 1).is_err(), "stride 0");
}

#[test]
fn fused_bias_and_activation_match_candle_ops_forward_and_backward() {
    use graft_core::kernels::{conv2d_bias_act, Act};
    for (i, c) in CASES.iter().enumerate() {
        let &(_, _, _, _, cout, _, stride, pad, groups) = c;
        let (x, w) = case_tensors(c, 300 + 10 * i as u64);
        let b = uniform(&[cout], 301 + i as u64);
        for act in [Act::None, Act::Relu, Act::Relu6] {
            let (xv, wv, bv) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&w).unwrap(), Var::from_tensor(&(&b * 3.0).unwrap()).unwrap());
            let ours = conv2d_bias_act(&xv, &wv, &bv, stride, pad, groups, act).unwrap();
            let lin = xv.conv2d(&wv, pad, stride, 1, groups).unwrap().broadcast_add(&bv.reshape((1, cout, 1, 1)).unwrap()).unwrap();
            let theirs = match act {
                Act::None => lin,
                Act::Relu => lin.relu().unwrap(),
                Act::Relu6 => lin.clamp(0f32, 6f32).unwrap(),
            };
            let what = format!("{c:?} {act:?}");
            assert_close(&ours, &theirs, 1e-4, &format!("forward {what}"));
            let r = uniform(ours.dims(), 302 + i as u64);
            let g = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g_ref = (theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (v, name) in [(&xv, "dx"), (&wv, "dw"), (&bv, "db")] {
                assert_close(g.get(v).unwrap(), g_ref.get(v).unwrap(), 1e-4, &format!("{name} {what}"));
            }
        }
    }
    let x = uniform(&[1, 2, 5, 5], 1);
    let err = conv2d_bias_act(&x, &uniform(&[3, 2, 3, 3], 2), &uniform(&[4], 3), 1, 1, 1, Act::Relu).unwrap_err();
    assert!(err.to_string().contains("bias must have shape [3]"), "{err}");
}

#[test]
fn gradients_are_bit_identical_across_thread_counts() {
    // Direct kernel (long plane), im2col (short plane, strided) and grouped weight gradients.
    let cases: &[Case] = &[(6, 8, 24, 24, 8, 3, 1, 1, 1), (6, 8, 8, 8, 8, 3, 1, 1, 1), (6, 8, 12, 12, 8, 3, 2, 1, 2)];
    for c in cases {
        let &(_, _, h, w, _, k, stride, pad, groups) = c;
        let (x, wt) = case_tensors(c, 77);
        let dy = uniform(conv2d(&x, &wt, stride, pad, groups).unwrap().dims(), 78);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let dw = conv2d_weight_grad(&x, &dy, (k, k), stride, pad, groups).unwrap();
                let dx = conv2d_input_grad(&dy, &wt, (h, w), stride, pad, groups).unwrap();
                (flat(&dw), flat(&dx))
            })
        };
        let one = run(1);
        assert!(run(2) == one && run(3) == one, "{c:?}: gradients depend on the thread count");
    }
}
