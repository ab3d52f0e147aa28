//! Images for inference: files, or folders of them, read and fitted to a backbone's input the
//! way a task fits its images (the images' own channels converted to the input's, then resized
//! or padded), so that a model predicts on them as it was tested.

use crate::derive::{pad_center, resize_bilinear, to_channels};
use crate::error::{DatasetError, Result};
use crate::folder::{is_image_file, read_image};
use crate::task::Fit;
use graft_core::ImageSet;
use std::path::{Path, PathBuf};

/// The image files named by `paths`: a file is taken as it is (it must have an image
/// extension: png, jpg, jpeg, bmp); a folder gives every image file under it, sorted by path.
/// Hidden files and folders are skipped. An error names a path that does not exist, a file that
/// is not an image, or a folder holding no image.
pub fn image_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = out.len();
            walk(path, &mut out)?;
            out[before..].sort();
            if out.len() == before {
                return Err(DatasetError::ImageFolder { path: path.clone(), msg: "holds no image files (png, jpg, jpeg, bmp)".into() });
            }
        } else if !path.exists() {
            return Err(DatasetError::ImageFolder { path: path.clone(), msg: "does not exist".into() });
        } else if is_image_file(path) {
            out.push(path.clone());
        } else {
            return Err(DatasetError::Image { path: path.clone(), msg: "is not an image file (png, jpg, jpeg, bmp)".into() });
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| DatasetError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| DatasetError::io(dir, e))?.path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else if is_image_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads the image at `path` and fits it to `input = (channels, height, width)` with `fit`:
/// one image, label 0.
pub fn fitted_image(path: &Path, input: (usize, usize, usize), fit: Fit) -> Result<ImageSet> {
    let (values, c, h, w) = read_image(path, None)?;
    let set = to_channels(&ImageSet::new(values, vec![0], c, h, w)?, input.0)?;
    match fit {
        Fit::Resize => resize_bilinear(&set, input.1, input.2),
        Fit::Pad => pad_center(&set, input.1, input.2).map_err(|e| DatasetError::Image {
            path: path.to_path_buf(),
            msg: format!("cannot be padded to the model's {}x{} input: {e}", input.1, input.2),
        }),
    }
}
