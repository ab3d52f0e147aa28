//! Seeded, stratified sampling: per-class limits, fractions, caps and train/val/test splits.
//!
//! Within each class the images are shuffled with the seed and the first ones taken; the chosen
//! images keep their original relative order in the output.

use super::{check_set, indices_by_class, rng};
use crate::error::{DatasetError, Result};
use graft_core::ImageSet;
use rand::seq::SliceRandom;

/// Splits `total` into integer parts proportional to `weights` (largest-remainder method; ties
/// go to the earlier part). The parts sum to exactly `total` when `weights` sum to > 0.
pub(crate) fn apportion(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    if sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut parts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut left = total.saturating_sub(parts.iter().sum());
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    parts
}

/// Shuffles each class's indices with one generator seeded by `seed`, in class order.
fn shuffled_classes(set: &ImageSet, seed: u64) -> Vec<Vec<usize>> {
    let mut r = rng(seed);
    let mut by_class = indices_by_class(set);
    for idx in &mut by_class {
        idx.shuffle(&mut r);
    }
    by_class
}

/// Keeps `quota[c]` images of each class `c` (chosen at random with `seed`), in original order.
fn take_quota(set: &ImageSet, quota: impl Fn(usize, usize) -> usize, seed: u64) -> ImageSet {
    let mut keep: Vec<usize> = shuffled_classes(set, seed)
        .into_iter()
        .enumerate()
        .flat_map(|(c, idx)| {
            let q = quota(c, idx.len()).min(idx.len());
            idx.into_iter().take(q)
        })
        .collect();
    keep.sort_unstable();
    set.subset(&keep)
}

/// Keeps at most `n` images of each class, chosen at random with `seed`. Errors when `n` is 0.
pub fn limit_per_class(set: &ImageSet, n: usize, seed: u64) -> Result<ImageSet> {
    check_set(set, "limit_per_class")?;
    if n == 0 {
        return Err(DatasetError::derive(
            "limit_per_class",
            "the per-class limit must be at least 1",
        ));
    }
    Ok(take_quota(set, |_, _| n, seed))
}

/// Keeps `round(fraction * count)` images of each class (at least one of every class present),
/// chosen at random with `seed`. Errors when `fraction` is outside `(0, 1]`.
pub fn take_fraction(set: &ImageSet, fraction: f32, seed: u64) -> Result<ImageSet> {
    check_set(set, "take_fraction")?;
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(DatasetError::derive(
            "take_fraction",
            format!("fraction must be in (0, 1], got {fraction}"),
        ));
    }
    Ok(take_quota(
        set,
        |_, count| ((fraction as f64 * count as f64).round() as usize).max(1),
        seed,
    ))
}

/// Keeps at most `max` images in total, stratified: each class keeps its share of `max`
/// (largest-remainder rounding, so exactly `min(max, len)` images remain). Errors when `max` is 0.
pub fn cap_stratified(set: &ImageSet, max: usize, seed: u64) -> Result<ImageSet> {
    check_set(set, "cap_stratified")?;
    if max == 0 {
        return Err(DatasetError::derive(
            "cap_stratified",
            "the cap must be at least 1",
        ));
    }
    if set.len() <= max {
        return Ok(set.clone());
    }
    let counts: Vec<f64> = indices_by_class(set)
        .iter()
        .map(|v| v.len() as f64)
        .collect();
    let quota = apportion(max, &counts);
    Ok(take_quota(set, |c, _| quota[c], seed))
}

/// Splits `set` into `fractions.len()` disjoint parts covering every image, stratified by class:
/// each class is shuffled with `seed` and cut into parts proportional to `fractions`
/// (largest-remainder rounding). Fractions must be `>= 0`, finite and sum to 1 (± 1e-4).
/// Deterministic given the seed.
pub fn stratified_split(set: &ImageSet, fractions: &[f32], seed: u64) -> Result<Vec<ImageSet>> {
    check_set(set, "stratified_split")?;
    let sum: f32 = fractions.iter().sum();
    if fractions.is_empty()
        || fractions.iter().any(|f| !f.is_finite() || *f < 0.0)
        || (sum - 1.0).abs() > 1e-4
    {
        return Err(DatasetError::derive(
            "stratified_split",
            format!("fractions must be >= 0 and sum to 1, got {fractions:?} (sum {sum})"),
        ));
    }
    let weights: Vec<f64> = fractions.iter().map(|&f| f as f64).collect();
    let mut parts = vec![Vec::new(); fractions.len()];
    for idx in shuffled_classes(set, seed) {
        let sizes = apportion(idx.len(), &weights);
        let mut rest = idx.as_slice();
        for (part, size) in parts.iter_mut().zip(sizes) {
            let (take, tail) = rest.split_at(size);
            part.extend_from_slice(take);
            rest = tail;
        }
    }
    Ok(parts
        .into_iter()
        .map(|mut p| {
            p.sort_unstable();
            set.subset(&p)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 70 images, class c has 10 + 2c of them; pixel = index so images can be traced.
    fn set() -> ImageSet {
        let mut labels = Vec::new();
        for c in 0..5u32 {
            labels.extend(std::iter::repeat(c).take(10 + 2 * c as usize));
        }
        let n = labels.len();
        // Interleave classes so that order preservation is visible.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (i * 7) % n);
        let labels: Vec<u32> = order.iter().map(|&i| labels[i]).collect();
        ImageSet::new((0..n).map(|i| i as f32).collect(), labels, 1, 1, 1).unwrap()
    }

    fn ids(s: &ImageSet) -> Vec<usize> {
        s.images.iter().map(|&v| v as usize).collect()
    }

    #[test]
    fn apportion_sums_exactly() {
        assert_eq!(apportion(10, &[0.7, 0.1, 0.2]), vec![7, 1, 2]);
        assert_eq!(apportion(1, &[0.7, 0.1, 0.2]), vec![1, 0, 0]);
        assert_eq!(apportion(3, &[0.7, 0.1, 0.2]), vec![2, 0, 1]);
        for total in 0..50 {
            assert_eq!(
                apportion(total, &[0.65, 0.15, 0.2]).iter().sum::<usize>(),
                total
            );
        }
    }

    #[test]
    fn split_is_deterministic_disjoint_and_covering() {
        let s = set();
        let a = stratified_split(&s, &[0.7, 0.1, 0.2], 3).unwrap();
        let b = stratified_split(&s, &[0.7, 0.1, 0.2], 3).unwrap();
        let c = stratified_split(&s, &[0.7, 0.1, 0.2], 4).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut all: Vec<usize> = a.iter().flat_map(ids).collect();
        assert_eq!(all.len(), s.len());
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), s.len(), "parts overlap");
        // Stratified: each class is cut 70/10/20 (up to rounding).
        for (part, f) in a.iter().zip([0.7, 0.1, 0.2]) {
            for (c, &n) in part.class_counts().iter().enumerate() {
                let want = f * (10.0 + 2.0 * c as f64);
                assert!((n as f64 - want).abs() < 1.0, "class {c}: {n} vs {want}");
            }
            // Original relative order is kept.
            assert!(ids(part).windows(2).all(|w| w[0] < w[1]));
        }
        assert!(stratified_split(&s, &[0.7, 0.2], 0).is_err());
        assert!(stratified_split(&s, &[1.2, -0.2], 0).is_err());
    }

    #[test]
    fn limits_fractions_and_caps() {
        let s = set();
        let l = limit_per_class(&s, 11, 1).unwrap();
        assert_eq!(l.class_counts(), vec![10, 11, 11, 11, 11]);
        assert_eq!(l, limit_per_class(&s, 11, 1).unwrap());
        assert_ne!(ids(&l), ids(&limit_per_class(&s, 11, 2).unwrap()));
        assert!(limit_per_class(&s, 0, 1).is_err());

        let f = take_fraction(&s, 0.5, 1).unwrap();
        assert_eq!(f.class_counts(), vec![5, 6, 7, 8, 9]);
        let tiny = take_fraction(&s, 0.01, 1).unwrap();
        assert_eq!(tiny.class_counts(), vec![1, 1, 1, 1, 1]);
        assert_eq!(take_fraction(&s, 1.0, 1).unwrap(), s);
        for bad in [0.0, -0.1, 1.5, f32::NAN] {
            let err = take_fraction(&s, bad, 1).unwrap_err().to_string();
            assert!(err.contains("(0, 1]"), "{err}");
        }

        let cap = cap_stratified(&s, 30, 1).unwrap();
        assert_eq!(cap.len(), 30);
        assert_eq!(cap.class_counts(), vec![4, 5, 6, 7, 8]);
        assert_eq!(cap_stratified(&s, 1000, 1).unwrap(), s);
    }
}
