//! Fitting images to a backbone's input: bilinear resize, centred zero padding, channel count.

use super::check_set;
use crate::error::{DatasetError, Result};
use graft_core::ImageSet;

/// Source index and interpolation weights along one axis, as PyTorch computes them for
/// `F.interpolate(mode="bilinear", align_corners=False)` without a scale factor:
/// `src = max(0, (dst + 0.5) * in / out - 0.5)`, `i0 = floor(src)`, `i1 = min(i0 + 1, in - 1)`.
fn axis_weights(input: usize, output: usize) -> Vec<(usize, usize, f32)> {
    let scale = input as f64 / output as f64;
    (0..output)
        .map(|d| {
            let src = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(input - 1);
            let i1 = (i0 + 1).min(input - 1);
            let lambda = (src - i0 as f64) as f32;
            (i0, i1, lambda)
        })
        .collect()
}

/// Resizes every image to `height x width` by bilinear interpolation with
/// `align_corners = false`, matching PyTorch's `F.interpolate(..., mode="bilinear")` (no
/// antialiasing when shrinking). Errors when a target side is 0.
pub fn resize_bilinear(set: &ImageSet, height: usize, width: usize) -> Result<ImageSet> {
    check_set(set, "resize_bilinear")?;
    if height == 0 || width == 0 {
        return Err(DatasetError::derive(
            "resize_bilinear",
            format!("target size {height}x{width} has a zero side"),
        ));
    }
    if (height, width) == (set.height, set.width) {
        return Ok(set.clone());
    }
    let (ih, iw) = (set.height, set.width);
    let ys = axis_weights(ih, height);
    let xs = axis_weights(iw, width);
    let planes = set.len() * set.channels;
    let mut images = Vec::with_capacity(planes * height * width);
    for plane in set.images.chunks_exact(ih * iw) {
        for &(y0, y1, ly) in &ys {
            let (r0, r1) = (
                &plane[y0 * iw..(y0 + 1) * iw],
                &plane[y1 * iw..(y1 + 1) * iw],
            );
            for &(x0, x1, lx) in &xs {
                let top = r0[x0] + (r0[x1] - r0[x0]) * lx;
                let bottom = r1[x0] + (r1[x1] - r1[x0]) * lx;
                images.push(top + (bottom - top) * ly);
            }
        }
    }
    Ok(ImageSet {
        images,
        labels: set.labels.clone(),
        channels: set.channels,
        height,
        width,
    })
}

/// Places every image at the centre of a zero `height x width` canvas (top/left offsets are
/// `(height - h) / 2` and `(width - w) / 2`, rounded down). Errors when the canvas is smaller
/// than the images.
pub fn pad_center(set: &ImageSet, height: usize, width: usize) -> Result<ImageSet> {
    check_set(set, "pad_center")?;
    let (ih, iw) = (set.height, set.width);
    if height < ih || width < iw {
        return Err(DatasetError::derive(
            "pad_center",
            format!("cannot pad {ih}x{iw} images to the smaller size {height}x{width} (use resize instead)"),
        ));
    }
    let (top, left) = ((height - ih) / 2, (width - iw) / 2);
    let planes = set.len() * set.channels;
    let mut images = vec![0.0; planes * height * width];
    for (dst, src) in images
        .chunks_exact_mut(height * width)
        .zip(set.images.chunks_exact(ih * iw))
    {
        for r in 0..ih {
            let d = (top + r) * width + left;
            dst[d..d + iw].copy_from_slice(&src[r * iw..(r + 1) * iw]);
        }
    }
    Ok(ImageSet {
        images,
        labels: set.labels.clone(),
        channels: set.channels,
        height,
        width,
    })
}

/// Converts every image to `channels` channels: 1 → c replicates the plane, c → 1 averages the
/// planes, same count is a copy; anything else is an error.
pub fn to_channels(set: &ImageSet, channels: usize) -> Result<ImageSet> {
    check_set(set, "to_channels")?;
    let c = set.channels;
    if channels == c {
        return Ok(set.clone());
    }
    let plane = set.height * set.width;
    let images: Vec<f32> = if c == 1 && channels > 1 {
        set.images
            .chunks_exact(plane)
            .flat_map(|p| std::iter::repeat(p).take(channels).flatten().copied())
            .collect()
    } else if channels == 1 {
        set.images
            .chunks_exact(c * plane)
            .flat_map(|img| {
                (0..plane).map(move |i| (0..c).map(|k| img[k * plane + i]).sum::<f32>() / c as f32)
            })
            .collect()
    } else {
        return Err(DatasetError::derive(
            "to_channels",
            format!("cannot convert {c}-channel images to {channels} channels (only 1 -> c and c -> 1 are supported)"),
        ));
    };
    Ok(ImageSet {
        images,
        labels: set.labels.clone(),
        channels,
        height: set.height,
        width: set.width,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_2x2_to_4x4_matches_pytorch() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]), size=(4, 4),
        // mode="bilinear", align_corners=False), computed by hand: along each axis the four
        // outputs sit at source coordinates -0.25 (clamped to 0), 0.25, 0.75, 1.25 (i1 clamped).
        let s = ImageSet::new(vec![0.0, 1.0, 2.0, 3.0], vec![0], 1, 2, 2).unwrap();
        let out = resize_bilinear(&s, 4, 4).unwrap();
        #[rustfmt::skip]
        let expected = [
            0.0, 0.25, 0.75, 1.0,
            0.5, 0.75, 1.25, 1.5,
            1.5, 1.75, 2.25, 2.5,
            2.0, 2.25, 2.75, 3.0,
        ];
        assert_eq!(out.shape(), (1, 4, 4));
        for (a, b) in out.images.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{:?}", out.images);
        }
    }

    #[test]
    fn resize_downsample_matches_pytorch() {
        // 4 -> 2 along one axis: sources at 0.5 and 2.5, i.e. the means of pairs (no antialias).
        let s = ImageSet::new(vec![0.0, 0.1, 0.2, 0.3], vec![0], 1, 1, 4).unwrap();
        let out = resize_bilinear(&s, 1, 2).unwrap();
        assert!(
            (out.images[0] - 0.05).abs() < 1e-6 && (out.images[1] - 0.25).abs() < 1e-6,
            "{:?}",
            out.images
        );
    }

    #[test]
    fn resize_constant_stays_constant() {
        let s = ImageSet::new(vec![0.37; 2 * 3 * 8 * 8], vec![0, 1], 3, 8, 8).unwrap();
        for (h, w) in [(16, 16), (5, 11), (28, 28), (3, 3)] {
            let out = resize_bilinear(&s, h, w).unwrap();
            assert_eq!(out.shape(), (3, h, w));
            assert_eq!(out.labels, vec![0, 1]);
            assert!(out.images.iter().all(|v| (v - 0.37).abs() < 1e-6));
        }
        assert!(resize_bilinear(&s, 0, 4).is_err());
    }

    #[test]
    fn pad_centres_and_refuses_to_shrink() {
        let s = ImageSet::new(vec![1.0; 4], vec![0], 1, 2, 2).unwrap();
        let out = pad_center(&s, 5, 4).unwrap();
        #[rustfmt::skip]
        let expected = vec![
            0.0, 0.0, 0.0, 0.0,
            0.0, 1.0, 1.0, 0.0,
            0.0, 1.0, 1.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(out.images, expected);
        let err = pad_center(&s, 1, 4).unwrap_err().to_string();
        assert!(err.contains("2x2") && err.contains("1x4"), "{err}");
    }

    #[test]
    fn channels_replicate_and_average() {
        let s = ImageSet::new(vec![0.1, 0.2, 0.3, 0.4], vec![0, 1], 1, 1, 2).unwrap();
        let rgb = to_channels(&s, 3).unwrap();
        assert_eq!(
            rgb.images,
            vec![0.1, 0.2, 0.1, 0.2, 0.1, 0.2, 0.3, 0.4, 0.3, 0.4, 0.3, 0.4]
        );
        let back = to_channels(&rgb, 1).unwrap();
        assert!(back
            .images
            .iter()
            .zip(&s.images)
            .all(|(a, b)| (a - b).abs() < 1e-6));
        let two = ImageSet::new(vec![0.0, 1.0, 0.5, 0.5], vec![0], 2, 1, 2).unwrap();
        assert_eq!(to_channels(&two, 1).unwrap().images, vec![0.25, 0.75]);
        let err = to_channels(&rgb, 2).unwrap_err().to_string();
        assert!(
            err.contains("3-channel") && err.contains("2 channels"),
            "{err}"
        );
    }
}
