//! Hand-written CPU kernels that replace slow stock candle ops on the training hot path.
//!
//! Each kernel is a candle custom op with its own backward, so it composes with candle's
//! autograd like the op it replaces. Kernels are f32 and CPU only; they return a candle error
//! for anything else so callers can fall back to candle (see [`crate::backbone::conv2d`]).

mod blas;
pub mod conv;
mod direct;
mod cpu_slice;
pub mod norm;

pub use blas::uses_openblas;
pub use conv::{conv2d, conv2d_bias_act, conv2d_input_grad, conv2d_weight_grad};
pub use norm::{add_act, batch_norm_train, scale_shift_act, Act};
