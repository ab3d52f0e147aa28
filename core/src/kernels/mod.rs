//! Hand-written CPU kernels that replace slow stock candle ops on the training hot path.
//!
//! Each kernel is a candle custom op with its own backward, so it composes with candle's
//! autograd like the op it replaces. Kernels are f32 and CPU only; they return a candle error
//! for anything else so callers can fall back to candle (see [`crate::backbone::conv2d`]).

mod blas;
pub mod conv;
mod direct;
pub mod flop_count;
mod cpu_slice;
pub mod norm;

pub use blas::uses_openblas;
pub use conv::{conv2d, conv2d_bias_act, conv2d_input_grad, conv2d_weight_grad};
pub use norm::{activation, add_act, batch_norm_train, scale_shift_act, Act};

/// Tunes the C allocator for training loops (glibc only; a no-op elsewhere): activation-sized
/// buffers come from the heap instead of fresh `mmap`s, and freed memory is kept for the next
/// step instead of being returned to the OS. Each step otherwise pays page faults and the
/// kernel's zeroing of every new page (about 5 % of a training step). Call it once at start-up,
/// from a binary: it changes process-wide allocator settings.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        // SAFETY: mallopt only changes allocator thresholds; both values are in range.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, 1 << 30);
        }
    }
}
