//! Access to the f32 data behind candle CPU storage, and a vector-friendly sum.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, Layout, Result, Storage};

/// The contiguous f32 data of a CPU storage; `op` and `what` name the caller and the argument
/// in the error.
pub fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str, what: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(d) => d,
        other => bail!("graft {op}: {what} must be f32, got {:?}", other.dtype()),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("graft {op}: {what} must be contiguous"),
    }
}

/// Like [`f32_slice`] for a tensor's storage (from `Tensor::storage_and_layout`), which must be
/// on the CPU.
pub fn stored_f32<'a>(s: &'a Storage, l: &Layout, op: &str, what: &str) -> Result<&'a [f32]> {
    match s {
        Storage::Cpu(cs) => f32_slice(cs, l, op, what),
        _ => bail!("graft {op}: {what} must be on the CPU"),
    }
}

/// `Σ f(v)` over `xs`, accumulated in 16 independent f32 lanes (so the loop vectorises) and
/// summed in f64 at the end.
#[inline]
pub fn lanes_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut lanes = [0f32; 16];
    let mut chunks = xs.chunks_exact(16);
    for ch in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(ch) {
            *l += f(v);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v) as f64).sum();
    lanes.iter().map(|&v| v as f64).sum::<f64>() + tail
}

/// A vector of `len` f32s whose contents are unspecified, for outputs that the caller writes
/// in full before reading (saves the zeroing pass of `vec![0.0; len]`; candle's own CPU
/// backend allocates its outputs the same way).
#[allow(clippy::uninit_vec)]
pub fn output_vec(len: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: f32 has no invalid bit patterns, and every caller overwrites all `len` elements
    // before any is read.
    unsafe { v.set_len(len) };
    v
}
