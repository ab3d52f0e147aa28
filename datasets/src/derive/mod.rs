//! Task derivations on an [`ImageSet`]: class subsets and superclasses, domains (rotation, flip,
//! inversion, noise), fitting to a backbone's input (resize, pad, channels), sample-count limits,
//! stratified splits and label noise.
//!
//! Every function is pure (it returns a new set) and seeded where it draws random numbers: the
//! same inputs and seed give the same output.

mod classes;
mod domain;
mod geometry;
mod label_noise;
mod sample;

pub use classes::{group_classes, select_classes};
pub use domain::{apply_domain, Domain};
pub use geometry::{pad_center, resize_bilinear, to_channels};
pub use label_noise::{label_noise, NoiseKind};
pub use sample::{cap_stratified, limit_per_class, stratified_split, take_fraction};

use crate::error::{DatasetError, Result};
use graft_core::ImageSet;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Checks that a set's pixel buffer matches its labels and shape (its fields are public, so it
/// may have been built by hand).
pub(crate) fn check_set(set: &ImageSet, op: &'static str) -> Result<()> {
    let per = set.image_len();
    if per == 0 || set.images.len() != set.labels.len() * per {
        return Err(DatasetError::derive(
            op,
            format!(
                "inconsistent image set: {} labels of shape {}x{}x{} need {} values, found {}",
                set.labels.len(),
                set.channels,
                set.height,
                set.width,
                set.labels.len() * per,
                set.images.len()
            ),
        ));
    }
    Ok(())
}

/// The random generator used by every seeded derivation.
pub(crate) fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A seed for an independent stream `stream` derived from `seed` (splitmix64 mixing), so that
/// the steps of one task draw unrelated random numbers from one user seed.
pub fn sub_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Indices of the images of each label, `by_class[c]` in increasing order.
pub(crate) fn indices_by_class(set: &ImageSet) -> Vec<Vec<usize>> {
    let k = set
        .labels
        .iter()
        .map(|&l| l as usize + 1)
        .max()
        .unwrap_or(0);
    let mut by_class = vec![Vec::new(); k];
    for (i, &l) in set.labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    by_class
}
