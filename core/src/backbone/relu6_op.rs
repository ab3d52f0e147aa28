//! ReLU6 as a candle custom op with its own backward: one pass forward, one pass backward
//! (candle's `clamp` builds its gradient from broadcast comparisons and is ~5x slower, which
//! dominated MobileNetV2 training steps).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};

/// `min(max(x, 0), 6)` on contiguous f32 CPU tensors; its gradient is `g · 1[0 < x < 6]`
/// (PyTorch's `hardtanh_backward`).
struct Relu6;

/// The gradient of [`Relu6`]: `g · 1[0 < x < 6]` for `x` and `g` of the same shape.
struct Relu6Grad;

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { candle_core::bail!("{op}: expects f32") };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{op}: expects a contiguous tensor"),
    }
}

impl CustomOp1 for Relu6 {
    fn name(&self) -> &'static str {
        "graft-relu6"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, self.name())?;
        let y: Vec<f32> = x.iter().map(|&v| v.clamp(0.0, 6.0)).collect();
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &Relu6Grad)?))
    }
}

impl CustomOp2 for Relu6Grad {
    fn name(&self) -> &'static str {
        "graft-relu6-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let g = contiguous_f32(s2, l2, self.name())?;
        if x.len() != g.len() {
            candle_core::bail!("{}: shapes {:?} and {:?} differ", self.name(), l1.shape(), l2.shape());
        }
        let out: Vec<f32> = x.iter().zip(g).map(|(&x, &g)| if x > 0.0 && x < 6.0 { g } else { 0.0 }).collect();
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// ReLU6 of `x`: the custom op for f32 on the CPU, candle's `clamp` otherwise.
pub fn relu6(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1(Relu6)
    } else {
        x.clamp(0f32, 6f32)
    }
}
