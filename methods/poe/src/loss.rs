//! The distillation losses, as the paper writes them.
//!
//! Knowledge distillation (library):   `L_KD = T² · KL(softmax(z_O/T) ‖ softmax(z_S/T))`.
//! Conditional KD (expert for classes H):
//! `L = T² · KL(softmax(z_O[H]/T) ‖ softmax(z_E/T)) + α · mean|z_E − z_O[H]|`,
//! where `z_O[H]` are the oracle's logits of the classes in H only. The KL term is summed over
//! classes and averaged over the batch; the L1 term is averaged over batch and classes.

use candle_core::{Tensor, D};
use candle_nn::ops::log_softmax;
use graft_core::Result;

/// `T² · KL(softmax(teacher/T) ‖ softmax(student/T))`, batch mean; both `(n, k)`.
pub fn kd_loss(student: &Tensor, teacher: &Tensor, temperature: f64) -> Result<Tensor> {
    let log_q = log_softmax(&(student / temperature)?, D::Minus1)?;
    let log_p = log_softmax(&(teacher.detach() / temperature)?, D::Minus1)?;
    let kl = (log_p.exp()? * (log_p - log_q)?)?.sum(D::Minus1)?.mean_all()?;
    Ok((kl * (temperature * temperature))?)
}

/// Conditional KD: [`kd_loss`] of the expert's logits `z_e` against the oracle's logits of the
/// expert's classes `z_o_h`, plus `alpha · mean|z_e − z_o_h|`; both `(n, |H|)`.
pub fn conditional_kd(z_e: &Tensor, z_o_h: &Tensor, temperature: f64, alpha: f64) -> Result<Tensor> {
    let kd = kd_loss(z_e, z_o_h, temperature)?;
    let l1 = (z_e - z_o_h.detach())?.abs()?.mean_all()?;
    Ok((kd + (l1 * alpha)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn conditional_kd_matches_a_hand_computation() {
        // One sample, two classes: z_E = (0, 0), z_O[H] = (4 ln 3, 0), T = 4, α = 0.3.
        // softmax(z_O[H]/4) = (3/4, 1/4); softmax(z_E/4) = (1/2, 1/2).
        // KL = 3/4 ln(3/2) + 1/4 ln(1/2); L1 mean = (4 ln 3 + 0) / 2 = 2 ln 3.
        let dev = Device::Cpu;
        let ln3 = 3f64.ln();
        let z_e = Tensor::new(&[[0f32, 0.0]], &dev).unwrap();
        let z_o = Tensor::new(&[[(4.0 * ln3) as f32, 0.0]], &dev).unwrap();
        let kl = 0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln();
        let expected = 16.0 * kl + 0.3 * 2.0 * ln3;
        let got = conditional_kd(&z_e, &z_o, 4.0, 0.3).unwrap().to_scalar::<f32>().unwrap() as f64;
        assert!((got - expected).abs() < 1e-5, "got {got}, expected {expected}");
        // Identical logits: both terms vanish.
        let zero = conditional_kd(&z_o, &z_o, 4.0, 0.3).unwrap().to_scalar::<f32>().unwrap();
        assert!(zero.abs() < 1e-6, "{zero}");
    }

    #[test]
    fn the_batch_is_averaged_and_the_kl_is_summed_over_classes() {
        // Two samples: the first as above, the second identical logits (loss 0): half the loss.
        let dev = Device::Cpu;
        let ln3 = 3f64.ln() as f32;
        let z_e = Tensor::new(&[[0f32, 0.0], [1.0, 2.0]], &dev).unwrap();
        let z_o = Tensor::new(&[[4.0 * ln3, 0.0], [1.0, 2.0]], &dev).unwrap();
        let one = conditional_kd(&z_e.narrow(0, 0, 1).unwrap(), &z_o.narrow(0, 0, 1).unwrap(), 4.0, 0.3).unwrap();
        let both = conditional_kd(&z_e, &z_o, 4.0, 0.3).unwrap();
        let (one, both) = (one.to_scalar::<f32>().unwrap(), both.to_scalar::<f32>().unwrap());
        assert!((both - one / 2.0).abs() < 1e-6, "{both} vs {one}");
    }
}
