//! A per-thread count of the multiply–accumulates graft's convolution kernels perform (forward,
//! input gradient and weight gradient alike), so that the trainer can measure what a training
//! step really computes for any method: frozen convs that only pass a gradient back count once
//! more, trained ones twice more, convs before the first trained module not at all. Candle ops
//! outside these kernels (linear layers, convs on another device) are not counted.

use std::cell::Cell;

thread_local! {
    static MACS: Cell<u64> = const { Cell::new(0) };
}

/// Adds `macs` multiply–accumulates to this thread's count.
pub(crate) fn add(macs: u64) {
    MACS.with(|c| c.set(c.get().wrapping_add(macs)));
}

/// Multiply–accumulates counted on this thread so far (compare two readings).
pub fn macs() -> u64 {
    MACS.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::macs;
    use candle_core::{Device, Tensor};

    #[test]
    fn a_convolution_counts_its_multiply_accumulates_worked_out_by_hand() {
        let x = Tensor::ones((2, 3, 8, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
        let w = Tensor::ones((4, 3, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let before = macs();
        crate::kernels::conv::conv2d(&x, &w, 1, 1, 1).unwrap();
        // 2 images × 4 outputs × 8 × 8 positions × 3 inputs × 3 × 3 taps.
        assert_eq!(macs() - before, 13_824);
        // Depthwise, stride 2: 2 × 3 channels × 4 × 4 positions × 1 input × 9 taps.
        let dw = Tensor::ones((3, 1, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let before = macs();
        crate::kernels::conv::conv2d(&x, &dw, 2, 1, 3).unwrap();
        assert_eq!(macs() - before, 864);
    }
}
