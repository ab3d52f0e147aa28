//! Functional layers on candle tensors: convolution, BatchNorm, linear, pooling.

use super::graph::ConvDef;
use crate::error::Result;
use crate::kernels;
pub use crate::kernels::Act;
use candle_core::{DType, Tensor, D};

/// BatchNorm epsilon (PyTorch's default).
pub const BN_EPS: f64 = 1e-5;
/// BatchNorm running-statistics momentum (PyTorch's default).
pub const BN_MOMENTUM: f64 = 0.1;

/// 2-D convolution of `x (n, c, h, w)` with `weight` (and optional bias) per `def`.
///
/// f32 on the CPU uses graft's fast kernel ([`crate::kernels::conv2d`]); anything else candle's.
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, def: &ConvDef) -> Result<Tensor> {
    let fast = x.device().is_cpu() && x.dtype() == DType::F32 && weight.dtype() == DType::F32;
    let y = if fast {
        crate::kernels::conv2d(x, weight, def.stride, def.padding, def.groups)?
    } else {
        x.conv2d(weight, def.padding, def.stride, 1, def.groups)?
    };
    Ok(match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, def.out_channels, 1, 1))?)?,
        None => y,
    })
}

/// The per-channel mean and biased variance of `x (n, c, h, w)` over batch and space.
pub fn batch_moments(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let c = x.dim(1)?;
    let xt = x.transpose(0, 1)?.contiguous()?.reshape((c, ()))?;
    let mean = xt.mean(D::Minus1)?;
    let centered = xt.broadcast_sub(&mean.unsqueeze(1)?)?;
    let var = centered.sqr()?.mean(D::Minus1)?;
    Ok((mean, var))
}

/// Whether the fused f32 CPU kernels of [`crate::kernels`] can take these tensors.
fn fast(ts: &[&Tensor]) -> bool {
    ts.iter().all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// `act` applied with candle's own ops (the fallback of the fused kernels).
fn apply_act(x: Tensor, act: Act) -> Result<Tensor> {
    Ok(match act {
        Act::None => x,
        Act::Relu => x.relu()?,
        Act::Relu6 => x.clamp(0f32, 6f32)?,
    })
}

/// BatchNorm with the given statistics: `(x - mean) / sqrt(var + eps) * weight + bias`.
pub fn batch_norm(x: &Tensor, mean: &Tensor, var: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    batch_norm_act(x, mean, var, weight, bias, Act::None)
}

/// BatchNorm with the given (running) statistics followed by `act`; differentiable in `x`,
/// `weight` and `bias` (and the statistics). One fused pass on the CPU.
pub fn batch_norm_act(x: &Tensor, mean: &Tensor, var: &Tensor, weight: &Tensor, bias: &Tensor, act: Act) -> Result<Tensor> {
    let (scale, shift) = bn_scale_shift(weight, bias, mean, var)?;
    channel_affine_act(x, &scale, &shift, act)
}

/// BatchNorm with fixed statistics as a per-channel affine map: `scale = γ/√(var+ε)`,
/// `shift = β − mean·scale` (candle ops on `(c,)` vectors, so gradients reach all four).
fn bn_scale_shift(gamma: &Tensor, beta: &Tensor, mean: &Tensor, var: &Tensor) -> Result<(Tensor, Tensor)> {
    let scale = (gamma * (var + BN_EPS)?.sqrt()?.recip()?)?;
    let shift = (beta - (mean * &scale)?)?;
    Ok((scale, shift))
}

/// `act(x·scale[c] + shift[c])` over channel dim 1 of `x` (any rank ≥ 2): one fused pass on the
/// CPU, candle's broadcasting ops elsewhere.
fn channel_affine_act(x: &Tensor, scale: &Tensor, shift: &Tensor, act: Act) -> Result<Tensor> {
    if fast(&[x, scale, shift]) {
        return Ok(kernels::scale_shift_act(x, scale, shift, act)?);
    }
    let mut shape = vec![1usize; x.rank()];
    shape[1] = x.dim(1)?;
    apply_act(x.broadcast_mul(&scale.reshape(shape.as_slice())?)?.broadcast_add(&shift.reshape(shape.as_slice())?)?, act)
}

/// Inference-mode conv → BatchNorm (fixed statistics) → `act`, with the BN folded into the
/// conv: `w' = w·s`, `b' = β − mean·s + bias·s` where `s = γ/√(var+ε)`, and the bias and
/// activation applied inside the conv kernel on the CPU. Differentiable in every tensor (the
/// folding is made of candle ops), so weight-override methods train through it.
#[allow(clippy::too_many_arguments)]
pub fn conv_bn_act_eval(
    x: &Tensor,
    weight: &Tensor,
    conv_bias: Option<&Tensor>,
    def: &ConvDef,
    bn: [&Tensor; 4],
    act: Act,
) -> Result<Tensor> {
    let [gamma, beta, mean, var] = bn;
    let (scale, mut shift) = bn_scale_shift(gamma, beta, mean, var)?;
    if let Some(b) = conv_bias {
        shift = (shift + (b * &scale)?)?;
    }
    if fast(&[x, weight, &scale, &shift]) {
        let folded = weight.broadcast_mul(&scale.reshape((def.out_channels, 1, 1, 1))?)?;
        return Ok(kernels::conv2d_bias_act(x, &folded, &shift, def.stride, def.padding, def.groups, act)?);
    }
    channel_affine_act(&conv2d(x, weight, None, def)?, &scale, &shift, act)
}

/// Training-mode BatchNorm (batch statistics) followed by `act`. Returns the output and the
/// batch's per-channel mean and biased variance (detached, for the running statistics).
pub fn batch_norm_act_train(x: &Tensor, weight: &Tensor, bias: &Tensor, act: Act) -> Result<(Tensor, Tensor, Tensor)> {
    if fast(&[x, weight, bias]) {
        return Ok(kernels::batch_norm_train(x, weight, bias, act)?);
    }
    let (mean, var) = batch_moments(x)?;
    let out = batch_norm_act(x, &mean, &var, weight, bias, act)?;
    Ok((out, mean.detach(), var.detach()))
}

/// New running statistics after a training batch: `(1-m)·running + m·batch`, with the batch
/// variance made unbiased (`n/(n-1)`) as PyTorch does.
pub fn updated_running_stats(
    running_mean: &Tensor,
    running_var: &Tensor,
    batch_mean: &Tensor,
    batch_var: &Tensor,
    count: usize,
) -> Result<(Tensor, Tensor)> {
    let m = BN_MOMENTUM;
    let unbias = if count > 1 { count as f64 / (count - 1) as f64 } else { 1.0 };
    let mean = ((running_mean * (1.0 - m))? + (batch_mean.detach() * m)?)?;
    let var = ((running_var * (1.0 - m))? + (batch_var.detach() * (m * unbias))?)?;
    Ok((mean, var))
}

/// `max(x, 0)`.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    activate(x, Act::Relu)
}

/// `act(x)`; one fused pass (and one for the gradient) on the CPU.
pub fn activate(x: &Tensor, act: Act) -> Result<Tensor> {
    if fast(&[x]) {
        return Ok(kernels::activation(x, act)?);
    }
    apply_act(x.clone(), act)
}

/// `max(a + b, 0)`: the closing step of a residual block.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    add_act(a, b, Act::Relu)
}

/// `act(a + b)` for tensors of the same shape; one fused pass on the CPU.
pub fn add_act(a: &Tensor, b: &Tensor, act: Act) -> Result<Tensor> {
    if fast(&[a, b]) && a.dims() == b.dims() {
        return Ok(kernels::add_act(a, b, act)?);
    }
    apply_act((a + b)?, act)
}

/// `x Wᵀ + b` for `x (n, in)`, `W (out, in)`.
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    Ok(x.matmul(&weight.t()?)?.broadcast_add(bias)?)
}

/// Mean over the spatial dimensions: `(n, c, h, w)` → `(n, c)`.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    Ok(x.mean(D::Minus1)?.mean(D::Minus1)?)
}

/// Index of the largest logit per row, as u32.
pub fn argmax(logits: &Tensor) -> Result<Vec<u32>> {
    Ok(logits.argmax(D::Minus1)?.to_dtype(DType::U32)?.to_vec1::<u32>()?)
}

/// `min(max(x, 0), 6)` (MobileNetV2's activation); one pass forward and one backward on the CPU.
pub fn relu6(x: &Tensor) -> Result<Tensor> {
    activate(x, Act::Relu6)
}

/// `a + b` without an activation: the closing step of pre-activation and inverted residual blocks.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    add_act(a, b, Act::None)
}

/// Max pooling of `x (n, c, h, w)` with a square `kernel`, `stride` and `padding` on each side;
/// padded positions are `-inf`, so they are never selected (PyTorch's `MaxPool2d`). Built from
/// strided slices and element-wise maxima, so it has a gradient for any stride (ties share it).
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    use crate::error::GraftError;
    let (n, c, h, w) = x.dims4()?;
    if kernel == 0 || stride == 0 || h + 2 * padding < kernel || w + 2 * padding < kernel || 2 * padding > kernel {
        return Err(GraftError::Backbone(format!(
            "max pool {kernel}x{kernel}, stride {stride}, padding {padding} does not fit an input of {h}x{w}"
        )));
    }
    let oh = (h + 2 * padding - kernel) / stride + 1;
    let ow = (w + 2 * padding - kernel) / stride + 1;
    // Padded so that rows ky, ky+s, ..., ky+s(oh-1) are a contiguous run of s·oh rows for every ky.
    let ph = kernel - 1 + stride * oh;
    let pw = kernel - 1 + stride * ow;
    let fill = |shape: (usize, usize, usize, usize)| -> Result<Tensor> {
        Ok(Tensor::full(f32::NEG_INFINITY, shape, x.device())?.to_dtype(x.dtype())?)
    };
    let mut padded = x.clone();
    if ph > h || padding > 0 {
        padded = Tensor::cat(&[&fill((n, c, padding, w))?, &padded, &fill((n, c, ph - h - padding, w))?], 2)?;
    }
    if pw > w || padding > 0 {
        padded = Tensor::cat(&[&fill((n, c, ph, padding))?, &padded, &fill((n, c, ph, pw - w - padding))?], 3)?;
    }
    let mut out: Option<Tensor> = None;
    for ky in 0..kernel {
        let rows = padded.narrow(2, ky, stride * oh)?.reshape((n, c, oh, stride, pw))?.narrow(3, 0, 1)?.squeeze(3)?;
        for kx in 0..kernel {
            let v = rows.narrow(3, kx, stride * ow)?.reshape((n, c, oh, ow, stride))?.narrow(4, 0, 1)?.squeeze(4)?;
            out = Some(match out {
                None => v,
                Some(m) => m.maximum(&v)?,
            });
        }
    }
    Ok(out.expect("kernel >= 1"))
}

/// Adaptive average pooling of `x (n, c, h, w)` to `(oh, ow)` with PyTorch's bins (output cell
/// `i` averages rows `floor(i·h/oh) .. ceil((i+1)·h/oh)`), as two small matrix products.
pub fn adaptive_avg_pool2d(x: &Tensor, out: (usize, usize)) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if (h, w) == out {
        return Ok(x.clone());
    }
    let bins = |size: usize, o: usize| -> Vec<f32> {
        let mut m = vec![0f32; o * size];
        for i in 0..o {
            let start = i * size / o;
            let end = ((i + 1) * size).div_ceil(o);
            for j in start..end {
                m[i * size + j] = 1.0 / (end - start) as f32;
            }
        }
        m
    };
    let rows = Tensor::from_vec(bins(h, out.0), (out.0, h), x.device())?.to_dtype(x.dtype())?;
    let cols = Tensor::from_vec(bins(w, out.1), (out.1, w), x.device())?.to_dtype(x.dtype())?.t()?;
    let y = x.broadcast_matmul(&cols)?;
    Ok(rows.broadcast_matmul(&y)?)
}
