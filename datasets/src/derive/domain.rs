//! Domains: image transformations that turn one dataset into a new target domain (rotated,
//! mirrored, inverted, noisy).

use super::{check_set, rng};
use crate::error::{DatasetError, Result};
use graft_core::ImageSet;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A domain transformation applied to every image. Serialised in kebab-case: `"identity"`,
/// `"rotate90"`, `"rotate180"`, `"rotate270"`, `"flip-h"`, `"flip-v"`, `"invert"`, and
/// `{ noise = { std = 0.1 } }` (TOML) / `{"noise": {"std": 0.1}}` (json).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Domain {
    /// Images unchanged.
    #[default]
    Identity,
    /// Rotated 90° counter-clockwise (like `numpy.rot90`); square images only.
    Rotate90,
    /// Rotated 180°; square images only (so every rotation keeps the shape).
    Rotate180,
    /// Rotated 270° counter-clockwise (90° clockwise); square images only.
    Rotate270,
    /// Mirrored left–right (columns reversed).
    FlipH,
    /// Mirrored top–bottom (rows reversed).
    FlipV,
    /// Pixel values inverted: `1 - x`.
    Invert,
    /// Additive Gaussian noise of standard deviation `std`, clamped to `[0, 1]`; seeded.
    #[serde(rename_all = "kebab-case")]
    Noise {
        /// Standard deviation of the noise (pixel values are in `[0, 1]`); finite and `>= 0`.
        std: f32,
    },
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Identity => f.write_str("identity"),
            Domain::Rotate90 => f.write_str("rotate90"),
            Domain::Rotate180 => f.write_str("rotate180"),
            Domain::Rotate270 => f.write_str("rotate270"),
            Domain::FlipH => f.write_str("flip-h"),
            Domain::FlipV => f.write_str("flip-v"),
            Domain::Invert => f.write_str("invert"),
            Domain::Noise { std } => write!(f, "noise(std={std})"),
        }
    }
}

/// A standard normal sample (Box–Muller).
fn normal(r: &mut impl Rng) -> f32 {
    let u1: f64 = 1.0 - r.random::<f64>(); // (0, 1]
    let u2: f64 = r.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Applies `domain` to every image of `set`. `seed` is used by `noise` only. Rotations of
/// non-square images and a negative or non-finite noise `std` are errors.
pub fn apply_domain(set: &ImageSet, domain: Domain, seed: u64) -> Result<ImageSet> {
    check_set(set, "apply_domain")?;
    let (h, w) = (set.height, set.width);
    let mut out = set.clone();
    let rotation = matches!(
        domain,
        Domain::Rotate90 | Domain::Rotate180 | Domain::Rotate270
    );
    if rotation && h != w {
        return Err(DatasetError::derive(
            "apply_domain",
            format!("domain {domain} needs square images, but the images are {h}x{w}"),
        ));
    }
    // Source pixel (row, col) of output pixel (r, c) in an h x w plane, for geometric domains.
    type SourceOf = fn(usize, usize, usize, usize) -> (usize, usize);
    let source_of: SourceOf = match domain {
        Domain::Identity => return Ok(out),
        Domain::Invert => {
            out.images.iter_mut().for_each(|v| *v = 1.0 - *v);
            return Ok(out);
        }
        Domain::Noise { std } => {
            if !std.is_finite() || std < 0.0 {
                return Err(DatasetError::derive(
                    "apply_domain",
                    format!("noise std must be finite and >= 0, got {std}"),
                ));
            }
            let mut r = rng(seed);
            out.images
                .iter_mut()
                .for_each(|v| *v = (*v + std * normal(&mut r)).clamp(0.0, 1.0));
            return Ok(out);
        }
        // Rotations: square planes, h == w.
        Domain::Rotate90 => |r, c, _, w| (c, w - 1 - r),
        Domain::Rotate180 => |r, c, h, w| (h - 1 - r, w - 1 - c),
        Domain::Rotate270 => |r, c, h, _| (h - 1 - c, r),
        Domain::FlipH => |r, c, _, w| (r, w - 1 - c),
        Domain::FlipV => |r, c, h, _| (h - 1 - r, c),
    };
    for (dst, plane) in out
        .images
        .chunks_exact_mut(h * w)
        .zip(set.images.chunks_exact(h * w))
    {
        for r in 0..h {
            for c in 0..w {
                let (sr, sc) = source_of(r, c, h, w);
                dst[r * w + c] = plane[sr * w + sc];
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(c: usize, h: usize, w: usize, n: usize) -> ImageSet {
        let len = n * c * h * w;
        let images = (0..len).map(|i| i as f32 / len as f32).collect();
        ImageSet::new(images, vec![0; n], c, h, w).unwrap()
    }

    #[test]
    fn rotate90_matches_numpy_and_four_times_is_identity() {
        let s = ImageSet::new(vec![0.1, 0.2, 0.3, 0.4], vec![0], 1, 2, 2).unwrap();
        // numpy.rot90([[1,2],[3,4]]) == [[2,4],[1,3]]
        assert_eq!(
            apply_domain(&s, Domain::Rotate90, 0).unwrap().images,
            vec![0.2, 0.4, 0.1, 0.3]
        );
        assert_eq!(
            apply_domain(&s, Domain::Rotate270, 0).unwrap().images,
            vec![0.3, 0.1, 0.4, 0.2]
        );
        assert_eq!(
            apply_domain(&s, Domain::Rotate180, 0).unwrap().images,
            vec![0.4, 0.3, 0.2, 0.1]
        );
        let s = ramp(3, 5, 5, 2);
        let mut r = s.clone();
        for i in 0..4 {
            r = apply_domain(&r, Domain::Rotate90, 0).unwrap();
            assert_eq!(r == s, i == 3);
        }
        let twice = apply_domain(
            &apply_domain(&s, Domain::Rotate90, 0).unwrap(),
            Domain::Rotate90,
            0,
        )
        .unwrap();
        assert_eq!(twice, apply_domain(&s, Domain::Rotate180, 0).unwrap());
        let back = apply_domain(
            &apply_domain(&s, Domain::Rotate90, 0).unwrap(),
            Domain::Rotate270,
            0,
        )
        .unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn flips_twice_are_identity() {
        let s = ramp(2, 3, 4, 2);
        for d in [Domain::FlipH, Domain::FlipV] {
            let once = apply_domain(&s, d, 0).unwrap();
            assert_ne!(once, s);
            assert_eq!(apply_domain(&once, d, 0).unwrap(), s);
        }
        let s = ImageSet::new(vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6], vec![0], 1, 2, 3).unwrap();
        assert_eq!(
            apply_domain(&s, Domain::FlipH, 0).unwrap().images,
            vec![0.3, 0.2, 0.1, 0.6, 0.5, 0.4]
        );
        assert_eq!(
            apply_domain(&s, Domain::FlipV, 0).unwrap().images,
            vec![0.4, 0.5, 0.6, 0.1, 0.2, 0.3]
        );
    }

    #[test]
    fn invert_twice_is_identity() {
        let s = ramp(1, 4, 4, 3);
        let once = apply_domain(&s, Domain::Invert, 0).unwrap();
        assert!((once.images[1] - (1.0 - s.images[1])).abs() < 1e-7);
        let twice = apply_domain(&once, Domain::Invert, 0).unwrap();
        assert!(twice
            .images
            .iter()
            .zip(&s.images)
            .all(|(a, b)| (a - b).abs() <= 1e-6));
    }

    #[test]
    fn rotation_of_non_square_errors() {
        let err = apply_domain(&ramp(1, 3, 4, 1), Domain::Rotate90, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("3x4") && err.contains("square"), "{err}");
        assert!(apply_domain(&ramp(1, 3, 4, 1), Domain::FlipV, 0).is_ok());
    }

    #[test]
    fn noise_is_seeded_clamped_and_has_the_right_spread() {
        let s = ImageSet::new(vec![0.5; 4000], vec![0; 10], 1, 20, 20).unwrap();
        let a = apply_domain(&s, Domain::Noise { std: 0.1 }, 7).unwrap();
        let b = apply_domain(&s, Domain::Noise { std: 0.1 }, 7).unwrap();
        let c = apply_domain(&s, Domain::Noise { std: 0.1 }, 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let n = a.images.len() as f32;
        let mean = a.images.iter().sum::<f32>() / n;
        let sd = (a.images.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
        assert!(
            (mean - 0.5).abs() < 0.01 && (sd - 0.1).abs() < 0.01,
            "mean {mean} sd {sd}"
        );
        let big = apply_domain(&s, Domain::Noise { std: 5.0 }, 1).unwrap();
        assert!(big.images.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(big.images.contains(&0.0) && big.images.contains(&1.0));
        assert!(apply_domain(&s, Domain::Noise { std: -1.0 }, 1).is_err());
        assert!(apply_domain(&s, Domain::Noise { std: f32::NAN }, 1).is_err());
    }

    #[test]
    fn serde_names_are_kebab_case() {
        assert_eq!(serde_json::to_string(&Domain::FlipH).unwrap(), "\"flip-h\"");
        assert_eq!(
            serde_json::to_string(&Domain::Rotate90).unwrap(),
            "\"rotate90\""
        );
        let d: Domain = serde_json::from_str("{\"noise\":{\"std\":0.25}}").unwrap();
        assert_eq!(d, Domain::Noise { std: 0.25 });
        let err = serde_json::from_str::<Domain>("{\"noise\":{\"sigma\":0.25}}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sigma") && err.contains("std"), "{err}");
        let err = serde_json::from_str::<Domain>("\"rotate45\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rotate90") && err.contains("flip-v"), "{err}");
    }
}
