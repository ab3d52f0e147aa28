//! Channel pooling: a learnable weight per source channel at a tap; the top-K channels by weight
//! (plus Gaussian noise while training) are scaled by their weights and handed to the delta.

use candle_core::{Tensor, Var};
use graft_core::init::SeededRng;
use graft_core::{GraftError, Result};

/// Indices of the `k` largest `values`, in increasing index order. Ties go to the lower index,
/// so the selection is a deterministic function of `values`.
pub fn top_k(values: &[f32], k: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..values.len() as u32).collect();
    order.sort_by(|&a, &b| values[b as usize].total_cmp(&values[a as usize]).then(a.cmp(&b)));
    order.truncate(k);
    order.sort_unstable();
    order
}

/// The channel-pooling weights of one tap.
#[derive(Clone)]
pub struct ChannelPool {
    /// Source tap the channels are read from.
    pub tap: String,
    /// Channels selected, K.
    pub k: usize,
    /// One weight per source channel at the tap, `(channels,)`.
    pub weight: Var,
}

/// A fixed selection: the channels and the weights they are scaled by.
#[derive(Clone, Debug)]
pub struct Selection {
    /// Selected channel indices, increasing, `(k,)` u32.
    pub index: Tensor,
    /// Their weights, `(k,)`: part of the graph to the pooling weights while training.
    pub weight: Tensor,
}

impl Selection {
    /// `weight ⊙ x[:, index]` for source features `x` `(n, channels, h, w)` (any float dtype).
    pub fn pool(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_dtype(candle_core::DType::F32)?;
        let k = self.index.dim(0)?;
        let picked = x.index_select(&self.index, 1)?;
        Ok(picked.broadcast_mul(&self.weight.reshape((1, k, 1, 1))?)?)
    }
}

impl ChannelPool {
    /// Pooling over `channels` source channels at `tap`, every weight starting at `init`.
    pub fn new(tap: &str, channels: usize, k: usize, init: f64, device: &candle_core::Device) -> Result<Self> {
        if k > channels {
            return Err(GraftError::Config {
                method: "snow".into(),
                msg: format!("k = {k} but tap '{tap}' has only {channels} channels"),
            });
        }
        let weight = Var::from_tensor(&Tensor::full(init as f32, channels, device)?)?;
        Ok(Self { tap: tap.to_string(), k, weight })
    }

    /// The training selection: top-K of `w + N(0, noise_std²)`; the pooled weights stay in the
    /// graph, so only the selected entries of `w` receive gradient.
    pub fn train_selection(&self, noise_std: f64, rng: &mut SeededRng) -> Result<Selection> {
        let mut w = self.weight.as_tensor().to_vec1::<f32>()?;
        if noise_std > 0.0 {
            let noise = rng.normal_vec(w.len(), noise_std);
            for (v, n) in w.iter_mut().zip(noise) {
                *v += n;
            }
        }
        self.select(&top_k(&w, self.k))
    }

    /// The evaluation selection: top-K of `w`, no noise, detached.
    pub fn eval_selection(&self) -> Result<Selection> {
        let w = self.weight.as_tensor().to_vec1::<f32>()?;
        let s = self.select(&top_k(&w, self.k))?;
        Ok(Selection { index: s.index, weight: s.weight.detach() })
    }

    fn select(&self, index: &[u32]) -> Result<Selection> {
        let index = Tensor::from_slice(index, index.len(), self.weight.device())?;
        let weight = self.weight.as_tensor().index_select(&index, 0)?;
        Ok(Selection { index, weight })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_picks_the_largest_and_breaks_ties_by_index() {
        assert_eq!(top_k(&[0.1, 0.9, 0.5, 0.9, -1.0], 3), vec![1, 2, 3]);
        assert_eq!(top_k(&[1.0; 6], 2), vec![0, 1]);
        assert_eq!(top_k(&[3.0, f32::NAN, 1.0], 1), vec![1], "NaN sorts above every number (total order)");
        assert_eq!(top_k(&[0.0, 2.0], 5), vec![0, 1]);
    }
}
