//! Label noise: a chosen fraction of the labels is replaced by wrong ones.

use super::{check_set, rng};
use crate::error::{DatasetError, Result};
use graft_core::ImageSet;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a noisy label is chosen. Serialised as `symmetric` / `asymmetric`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseKind {
    /// Uniformly among the other `k - 1` classes.
    #[default]
    Symmetric,
    /// The next class: `c -> (c + 1) mod k` (a fixed, class-dependent confusion).
    Asymmetric,
}

impl fmt::Display for NoiseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoiseKind::Symmetric => "symmetric",
            NoiseKind::Asymmetric => "asymmetric",
        })
    }
}

/// Replaces exactly `round(rate * len)` labels, chosen at random with `seed`, by a different
/// class (see [`NoiseKind`]). Returns the noisy set and the number of labels changed. Errors when
/// `rate` is outside `[0, 1)`, `num_classes < 2`, or a label is `>= num_classes`.
pub fn label_noise(
    set: &ImageSet,
    rate: f32,
    num_classes: usize,
    kind: NoiseKind,
    seed: u64,
) -> Result<(ImageSet, usize)> {
    check_set(set, "label_noise")?;
    if !(0.0..1.0).contains(&rate) {
        return Err(DatasetError::derive(
            "label_noise",
            format!("rate must be in [0, 1), got {rate}"),
        ));
    }
    if num_classes < 2 {
        return Err(DatasetError::derive(
            "label_noise",
            format!("needs at least 2 classes, got {num_classes}"),
        ));
    }
    if let Some(&bad) = set.labels.iter().find(|&&l| l as usize >= num_classes) {
        return Err(DatasetError::derive(
            "label_noise",
            format!("label {bad} is out of range for {num_classes} classes"),
        ));
    }
    let n = set.len();
    let flips = ((rate as f64 * n as f64).round() as usize).min(n);
    let mut r = rng(seed);
    let mut out = set.clone();
    let k = num_classes as u32;
    for i in rand::seq::index::sample(&mut r, n, flips) {
        let old = out.labels[i];
        out.labels[i] = match kind {
            NoiseKind::Symmetric => {
                let v = r.random_range(0..k - 1);
                if v >= old {
                    v + 1
                } else {
                    v
                }
            }
            NoiseKind::Asymmetric => (old + 1) % k,
        };
    }
    Ok((out, flips))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize) -> ImageSet {
        let labels: Vec<u32> = (0..n as u32).map(|i| i % 4).collect();
        ImageSet::new(vec![0.0; n], labels, 1, 1, 1).unwrap()
    }

    #[test]
    fn symmetric_flips_exactly_and_never_to_itself() {
        let s = set(203);
        for (rate, seed) in [(0.0, 0), (0.2, 1), (0.37, 2), (0.9, 3)] {
            let (noisy, flipped) = label_noise(&s, rate, 4, NoiseKind::Symmetric, seed).unwrap();
            let want = (rate as f64 * 203.0).round() as usize;
            assert_eq!(flipped, want);
            let changed = noisy
                .labels
                .iter()
                .zip(&s.labels)
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(changed, want, "rate {rate}");
            assert!(noisy.labels.iter().all(|&l| l < 4));
        }
        // Every wrong class gets used (uniform among the others).
        let (noisy, _) = label_noise(&s, 0.9, 4, NoiseKind::Symmetric, 5).unwrap();
        for c in 0..4u32 {
            let targets: std::collections::BTreeSet<u32> = noisy
                .labels
                .iter()
                .zip(&s.labels)
                .filter(|(a, b)| a != b && **b == c)
                .map(|(a, _)| *a)
                .collect();
            assert_eq!(targets.len(), 3, "class {c} -> {targets:?}");
        }
        let again = label_noise(&s, 0.9, 4, NoiseKind::Symmetric, 5).unwrap().0;
        assert_eq!(noisy, again);
    }

    #[test]
    fn asymmetric_maps_to_next_class() {
        let s = set(100);
        let (noisy, flipped) = label_noise(&s, 0.3, 4, NoiseKind::Asymmetric, 9).unwrap();
        assert_eq!(flipped, 30);
        let mut changed = 0;
        for (a, b) in noisy.labels.iter().zip(&s.labels) {
            if a != b {
                assert_eq!(*a, (b + 1) % 4);
                changed += 1;
            }
        }
        assert_eq!(changed, 30);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let s = set(10);
        assert!(label_noise(&s, 1.0, 4, NoiseKind::Symmetric, 0)
            .unwrap_err()
            .to_string()
            .contains("[0, 1)"));
        assert!(label_noise(&s, -0.1, 4, NoiseKind::Symmetric, 0).is_err());
        assert!(label_noise(&s, 0.1, 1, NoiseKind::Symmetric, 0).is_err());
        assert!(label_noise(&s, 0.1, 3, NoiseKind::Symmetric, 0)
            .unwrap_err()
            .to_string()
            .contains("label 3"));
    }
}
