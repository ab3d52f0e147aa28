//! Fused BatchNorm + activation and residual add + activation for f32 NCHW tensors on the CPU.
//!
//! Stock candle runs a training-mode BatchNorm as about ten single-threaded element-wise passes
//! forward and more backward. Here each op is one or two multithreaded passes:
//! - [`batch_norm_train`]: per-channel batch moments (one read), then `act(x·scale + shift)`.
//!   Backward: one reduction pass (`Σg`, `Σg·x̂`) and one pass writing `dx`.
//! - [`scale_shift_act`]: `act(x·scale + shift)` per channel (BatchNorm with fixed statistics);
//!   backward gives `dx`, `dscale = Σg·x`, `dshift = Σg`.
//! - [`add_act`]: `act(a + b)`; backward passes the masked gradient to both.
//!
//! Every op is a candle custom op with its own backward, so autograd treats it like the
//! sequence of candle ops it replaces.

use super::cpu_slice::{f32_slice, lanes_sum, output_vec, stored_f32};
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// BatchNorm epsilon (PyTorch's default).
pub const EPS: f32 = 1e-5;

/// An activation fused after a normalisation or an addition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// Identity.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)` (MobileNetV2).
    Relu6,
}

impl Act {
    #[inline(always)]
    fn apply(self, v: f32) -> f32 {
        match self {
            Act::None => v,
            Act::Relu => v.max(0.0),
            Act::Relu6 => v.clamp(0.0, 6.0),
        }
    }

    /// Adds `bias` to every element of `row` and applies the activation, in place.
    pub(crate) fn apply_bias(self, row: &mut [f32], bias: f32) {
        match self {
            Act::None => row.iter_mut().for_each(|v| *v += bias),
            Act::Relu => row.iter_mut().for_each(|v| *v = (*v + bias).max(0.0)),
            Act::Relu6 => row.iter_mut().for_each(|v| *v = (*v + bias).clamp(0.0, 6.0)),
        }
    }

    /// The activation's derivative as a 0/1 factor, read from its output (ties go to 0, as
    /// PyTorch's ReLU and ReLU6 backward do).
    #[inline(always)]
    fn pass(self, out: f32) -> f32 {
        match self {
            Act::None => 1.0,
            Act::Relu => f32::from(out > 0.0),
            Act::Relu6 => f32::from(out > 0.0 && out < 6.0),
        }
    }
}

/// `(n, c, plane)` of a 4-D (or 2-D, plane 1) NCHW tensor.
fn ncp(dims: &[usize], what: &str) -> Result<(usize, usize, usize)> {
    match dims {
        [n, c, h, w] => Ok((*n, *c, h * w)),
        [n, c] => Ok((*n, *c, 1)),
        _ => bail!("graft {what}: expected a (n, c, h, w) or (n, c) tensor, got {dims:?}"),
    }
}

fn check_channel_vec(dims: &[usize], c: usize, what: &str, name: &str) -> Result<()> {
    if dims != [c] {
        bail!("graft {what}: {name} must have shape [{c}], got {dims:?}");
    }
    Ok(())
}

/// The arguments of a per-channel op: an NCHW (or `(n, c)`) input and two `(c,)` vectors, as
/// `((n, c, plane), x, a, b)`. `names` are the op and the two vectors, for errors.
#[allow(clippy::type_complexity)]
fn channel_args<'a>(
    args: [(&'a CpuStorage, &Layout); 3],
    names: [&str; 3],
) -> Result<((usize, usize, usize), &'a [f32], &'a [f32], &'a [f32])> {
    let [(s1, l1), (s2, l2), (s3, l3)] = args;
    let [op, an, bn] = names;
    let (n, c, plane) = ncp(l1.dims(), op)?;
    check_channel_vec(l2.dims(), c, op, an)?;
    check_channel_vec(l3.dims(), c, op, bn)?;
    Ok(((n, c, plane), f32_slice(s1, l1, op, "input")?, f32_slice(s2, l2, op, an)?, f32_slice(s3, l3, op, bn)?))
}

/// Applies `out = act(x·scale[c] + shift[c])` plane by plane.
fn affine_act(x: &[f32], scale: &[f32], shift: &[f32], c: usize, plane: usize, act: Act) -> Vec<f32> {
    let mut out = output_vec(x.len());
    out.par_chunks_mut(plane).zip(x.par_chunks(plane)).enumerate().for_each(|(i, (o, xi))| {
        let (s, t) = (scale[i % c], shift[i % c]);
        match act {
            Act::None => o.iter_mut().zip(xi).for_each(|(o, &v)| *o = v * s + t),
            Act::Relu => o.iter_mut().zip(xi).for_each(|(o, &v)| *o = (v * s + t).max(0.0)),
            Act::Relu6 => o.iter_mut().zip(xi).for_each(|(o, &v)| *o = (v * s + t).clamp(0.0, 6.0)),
        }
    });
    out
}

/// Per-channel sums over every plane of channel `ch`: `f` maps one plane to its partial sums.
fn per_channel<const K: usize>(n: usize, c: usize, plane: usize, f: impl Fn(usize) -> [f64; K] + Sync) -> Vec<[f64; K]> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let mut acc = [0f64; K];
            for i in 0..n {
                let part = f(i * c * plane + ch * plane);
                acc.iter_mut().zip(part).for_each(|(a, p)| *a += p);
            }
            acc
        })
        .collect()
}

/// Per-channel mean and biased variance of an NCHW tensor (shifted sums in f64, so no
/// cancellation when the mean is large relative to the spread).
fn moments(x: &[f32], n: usize, c: usize, plane: usize) -> (Vec<f32>, Vec<f32>) {
    let shift: Vec<f32> = (0..c).map(|ch| x[ch * plane]).collect();
    let sums = per_channel::<2>(n, c, plane, |off| {
        let k = shift[(off / plane) % c];
        let p = &x[off..off + plane];
        [lanes_sum(p, |v| v - k), lanes_sum(p, |v| (v - k) * (v - k))]
    });
    let m = (n * plane) as f64;
    let mut mean = Vec::with_capacity(c);
    let mut var = Vec::with_capacity(c);
    for (ch, [s1, s2]) in sums.into_iter().enumerate() {
        let d = s1 / m;
        mean.push((shift[ch] as f64 + d) as f32);
        var.push((s2 / m - d * d).max(0.0) as f32);
    }
    (mean, var)
}

/// Per channel, `[Σg, Σg·(x − center[c])]` where `g = grad · act'(out)` is the gradient before
/// the activation: what both normalisations' backward passes reduce. `dims` is `(n, c, plane)`.
fn gradient_sums(x: &[f32], out: &[f32], grad: &[f32], dims: (usize, usize, usize), act: Act, center: &[f32]) -> Vec<[f64; 2]> {
    let (n, c, plane) = dims;
    per_channel::<2>(n, c, plane, |off| {
        let k = center[(off / plane) % c];
        let (xp, rp, gp) = (&x[off..off + plane], &out[off..off + plane], &grad[off..off + plane]);
        let mut lanes = [[0f32; 16]; 2];
        for (j, ((&xv, &rv), &gv)) in xp.iter().zip(rp).zip(gp).enumerate() {
            let g = gv * act.pass(rv);
            lanes[0][j % 16] += g;
            lanes[1][j % 16] += g * (xv - k);
        }
        lanes.map(|l| l.iter().map(|&v| v as f64).sum())
    })
}

/// Batch statistics a training-mode op computed, shared with its backward and the caller.
#[derive(Clone, Debug, Default)]
struct BatchStats {
    mean: Vec<f32>,
    var: Vec<f32>,
}

/// Training-mode BatchNorm + activation; args: `x`, `gamma`, `beta`.
struct BatchNormTrainOp {
    act: Act,
    stats: Arc<Mutex<BatchStats>>,
}

impl CustomOp3 for BatchNormTrainOp {
    fn name(&self) -> &'static str {
        "graft-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ((n, c, plane), x, gamma, beta) = channel_args([(s1, l1), (s2, l2), (s3, l3)], ["batch norm", "gamma", "beta"])?;
        let (mean, var) = moments(x, n, c, plane);
        let scale: Vec<f32> = (0..c).map(|i| gamma[i] / (var[i] + EPS).sqrt()).collect();
        let shift: Vec<f32> = (0..c).map(|i| beta[i] - mean[i] * scale[i]).collect();
        let out = affine_act(x, &scale, &shift, c, plane, self.act);
        *self.stats.lock().expect("batch-norm stats lock") = BatchStats { mean, var };
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, gamma: &Tensor, beta: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let stats = self.stats.lock().expect("batch-norm stats lock").clone();
        let grad = grad.contiguous()?;
        let (n, c, plane) = ncp(x.dims(), "batch norm backward")?;
        let (dx, dgamma, dbeta) = {
            let (sx, lx) = x.storage_and_layout();
            let (sr, lr) = res.storage_and_layout();
            let (sg, lg) = grad.storage_and_layout();
            let (sgm, lgm) = gamma.storage_and_layout();
            let what = "batch norm backward";
            let xs = stored_f32(&sx, lx, what, "input")?;
            let rs = stored_f32(&sr, lr, what, "output")?;
            let gs = stored_f32(&sg, lg, what, "gradient")?;
            let gm = stored_f32(&sgm, lgm, what, "gamma")?;
            let inv_std: Vec<f32> = stats.var.iter().map(|v| 1.0 / (v + EPS).sqrt()).collect();
            let act = self.act;
            // Σg and Σg·(x − mean) per channel, g being the gradient after the activation.
            let sums = gradient_sums(xs, rs, gs, (n, c, plane), act, &stats.mean);
            let m = (n * plane) as f32;
            let dbeta: Vec<f32> = sums.iter().map(|s| s[0] as f32).collect();
            let dgamma: Vec<f32> = sums.iter().zip(&inv_std).map(|(s, is)| s[1] as f32 * is).collect();
            // dx = γ·σ⁻¹·(g − Σg/m − x̂·Σg·x̂/m) = a·g + b·x + k per channel.
            let coef: Vec<[f32; 3]> = (0..c)
                .map(|i| {
                    let a = gm[i] * inv_std[i];
                    let b = -a * inv_std[i] * dgamma[i] / m;
                    let k = -a * dbeta[i] / m - b * stats.mean[i];
                    [a, b, k]
                })
                .collect();
            let mut dx = output_vec(xs.len());
            dx.par_chunks_mut(plane).enumerate().for_each(|(i, d)| {
                let [a, b, k] = coef[i % c];
                let off = i * plane;
                let (xp, rp, gp) = (&xs[off..off + plane], &rs[off..off + plane], &gs[off..off + plane]);
                for (((d, &xv), &rv), &gv) in d.iter_mut().zip(xp).zip(rp).zip(gp) {
                    *d = a * gv * act.pass(rv) + b * xv + k;
                }
            });
            (dx, dgamma, dbeta)
        };
        let dev = x.device();
        let dx = if x.track_op() { Some(Tensor::from_vec(dx, x.shape(), dev)?) } else { None };
        let dg = if gamma.track_op() { Some(Tensor::from_vec(dgamma, c, dev)?) } else { None };
        let db = if beta.track_op() { Some(Tensor::from_vec(dbeta, c, dev)?) } else { None };
        Ok((dx, dg, db))
    }
}

/// Per-channel affine + activation; args: `x`, `scale`, `shift`.
struct ScaleShiftOp {
    act: Act,
}

impl CustomOp3 for ScaleShiftOp {
    fn name(&self) -> &'static str {
        "graft-scale-shift-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ((_, c, plane), x, scale, shift) = channel_args([(s1, l1), (s2, l2), (s3, l3)], ["scale-shift", "scale", "shift"])?;
        Ok((CpuStorage::F32(affine_act(x, scale, shift, c, plane, self.act)), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, scale: &Tensor, shift: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (n, c, plane) = ncp(x.dims(), "scale-shift backward")?;
        let need_params = scale.track_op() || shift.track_op();
        let (dx, dscale, dshift) = {
            let (sx, lx) = x.storage_and_layout();
            let (sr, lr) = res.storage_and_layout();
            let (sg, lg) = grad.storage_and_layout();
            let (ss, ls) = scale.storage_and_layout();
            let what = "scale-shift backward";
            let xs = stored_f32(&sx, lx, what, "input")?;
            let rs = stored_f32(&sr, lr, what, "output")?;
            let gs = stored_f32(&sg, lg, what, "gradient")?;
            let sc = stored_f32(&ss, ls, what, "scale")?;
            let act = self.act;
            let dx = if x.track_op() {
                let mut dx = output_vec(xs.len());
                dx.par_chunks_mut(plane).enumerate().for_each(|(i, d)| {
                    let s = sc[i % c];
                    let off = i * plane;
                    for ((d, &rv), &gv) in d.iter_mut().zip(&rs[off..off + plane]).zip(&gs[off..off + plane]) {
                        *d = gv * act.pass(rv) * s;
                    }
                });
                Some(dx)
            } else {
                None
            };
            let (dscale, dshift) = if need_params {
                let sums = gradient_sums(xs, rs, gs, (n, c, plane), act, &vec![0.0; c]);
                (sums.iter().map(|s| s[1] as f32).collect(), sums.iter().map(|s| s[0] as f32).collect())
            } else {
                (Vec::new(), Vec::new())
            };
            (dx, dscale, dshift)
        };
        let dev = x.device();
        let dx = dx.map(|d| Tensor::from_vec(d, x.shape(), dev)).transpose()?;
        let ds = if scale.track_op() { Some(Tensor::from_vec(dscale, c, dev)?) } else { None };
        let dt = if shift.track_op() { Some(Tensor::from_vec(dshift, c, dev)?) } else { None };
        Ok((dx, ds, dt))
    }
}

/// `act(a + b)`; args: `a`, `b` of the same shape.
struct AddActOp {
    act: Act,
}

impl CustomOp2 for AddActOp {
    fn name(&self) -> &'static str {
        "graft-add-act"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let act = self.act;
        zip_map((s1, l1), (s2, l2), ["add", "lhs", "rhs"], |x, y| act.apply(x + y))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = act_grad(res, grad, self.act)?;
        let ga = a.track_op().then(|| g.clone());
        let gb = b.track_op().then_some(g);
        Ok((ga, gb))
    }
}

/// `act(x)`; arg: `x`.
struct ActOp {
    act: Act,
}

impl candle_core::CustomOp1 for ActOp {
    fn name(&self) -> &'static str {
        "graft-activation"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "activation", "input")?;
        let act = self.act;
        let mut out = output_vec(x.len());
        out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(o, x)| {
            for (o, &v) in o.iter_mut().zip(x) {
                *o = act.apply(v);
            }
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(act_grad(res, grad, self.act)?))
    }
}

/// `f(a, b)` element-wise over two same-shaped contiguous f32 storages, in parallel chunks;
/// `names` are the op and its two arguments, for errors.
fn zip_map(
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    names: [&str; 3],
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Result<(CpuStorage, Shape)> {
    let [op, an, bn] = names;
    if l1.dims() != l2.dims() {
        bail!("graft {op}: shapes differ, {:?} and {:?}", l1.dims(), l2.dims());
    }
    let (a, b) = (f32_slice(s1, l1, op, an)?, f32_slice(s2, l2, op, bn)?);
    let mut out = output_vec(a.len());
    out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK))).for_each(|(o, (a, b))| {
        for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    });
    Ok((CpuStorage::F32(out), l1.shape().clone()))
}

/// Elements per parallel work item of the element-wise ops.
const CHUNK: usize = 16 * 1024;

/// `grad · act'(out)`; args: `out`, `grad`.
struct ActGradOp {
    act: Act,
}

impl CustomOp2 for ActGradOp {
    fn name(&self) -> &'static str {
        "graft-act-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let act = self.act;
        zip_map((s1, l1), (s2, l2), ["activation backward", "output", "gradient"], |r, g| g * act.pass(r))
    }
}

/// `grad · act'(out)` (the gradient before an activation whose output was `out`).
pub(crate) fn act_grad(out: &Tensor, grad: &Tensor, act: Act) -> Result<Tensor> {
    if act == Act::None {
        return Ok(grad.clone());
    }
    out.contiguous()?.apply_op2_no_bwd(&grad.contiguous()?, &ActGradOp { act })
}

/// Per-channel sums of an NCHW (or `(n, c)`) tensor: `(c,)`.
pub(crate) fn channel_sums(x: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    let (n, c, plane) = ncp(x.dims(), "channel sums")?;
    let sums = {
        let (s, l) = x.storage_and_layout();
        let xs = stored_f32(&s, l, "channel sums", "input")?;
        per_channel::<1>(n, c, plane, |off| [lanes_sum(&xs[off..off + plane], |v| v)])
    };
    Tensor::from_vec(sums.iter().map(|s| s[0] as f32).collect::<Vec<_>>(), c, x.device())
}

fn check_cpu_f32(what: &str, ts: &[&Tensor]) -> Result<()> {
    for t in ts {
        if !t.device().is_cpu() || t.dtype() != candle_core::DType::F32 {
            bail!("graft {what}: f32 CPU tensors only, got {:?} on {:?}", t.dtype(), t.device().location());
        }
    }
    Ok(())
}

/// Training-mode BatchNorm of `x (n, c, h, w)` (or `(n, c)`) with batch statistics, followed by
/// `act`. Returns the output and the batch's per-channel mean and biased variance (detached).
pub fn batch_norm_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, act: Act) -> Result<(Tensor, Tensor, Tensor)> {
    check_cpu_f32("batch norm", &[x, gamma, beta])?;
    let stats = Arc::new(Mutex::new(BatchStats::default()));
    let op = BatchNormTrainOp { act, stats: stats.clone() };
    let (x, gamma, beta) = (x.contiguous()?, gamma.contiguous()?, beta.contiguous()?);
    let out = x.apply_op3(&gamma, &beta, op)?;
    let s = stats.lock().expect("batch-norm stats lock").clone();
    let c = s.mean.len();
    let mean = Tensor::from_vec(s.mean, c, x.device())?;
    let var = Tensor::from_vec(s.var, c, x.device())?;
    Ok((out, mean, var))
}

/// `act(x·scale[c] + shift[c])` for `x (n, c, h, w)` (or `(n, c)`): BatchNorm with fixed
/// statistics once `scale = γ/√(var+ε)` and `shift = β − mean·scale`. Differentiable in all three.
pub fn scale_shift_act(x: &Tensor, scale: &Tensor, shift: &Tensor, act: Act) -> Result<Tensor> {
    check_cpu_f32("scale-shift", &[x, scale, shift])?;
    let (x, scale, shift) = (x.contiguous()?, scale.contiguous()?, shift.contiguous()?);
    x.apply_op3(&scale, &shift, ScaleShiftOp { act })
}

/// `act(x)` element-wise, one pass forward and one backward.
pub fn activation(x: &Tensor, act: Act) -> Result<Tensor> {
    check_cpu_f32("activation", &[x])?;
    if act == Act::None {
        return Ok(x.clone());
    }
    x.contiguous()?.apply_op1(ActOp { act })
}

/// `act(a + b)` for two tensors of the same shape.
pub fn add_act(a: &Tensor, b: &Tensor, act: Act) -> Result<Tensor> {
    check_cpu_f32("add", &[a, b])?;
    let (a, b) = (a.contiguous()?, b.contiguous()?);
    a.apply_op2(&b, AddActOp { act })
}
