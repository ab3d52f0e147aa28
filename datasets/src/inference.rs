//! Images for inference: files, or folders of them, read and fitted to a backbone's input the
//! way a task fits its images (the images' own channels converted to the input's, then resized
//! or padded), so that a model predicts on them as it was tested.

use crate::derive::{pad_center, resize_bilinear, to_channels};
use crate::error::{DatasetError, Result};
use crate::folder::{class_images, is_image_file, read_image};
use crate::task::Fit;
use graft_core::ImageSet;
use std::path::{Path, PathBuf};

/// The image files named by `paths`: a file is taken as it is (it must have an image
/// extension: png, jpg, jpeg, bmp); a folder gives every image file under it, in the order an
/// image folder's class lists them (torchvision's walk order; hidden files and folders skipped,
/// each folder visited once however links loop). An error names a path that does not exist, a file that
/// is not an image, or a folder holding no image.
pub fn image_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let images = class_images(path)?;
            if images.is_empty() {
                return Err(DatasetError::ImageFolder { path: path.clone(), msg: "holds no image files (png, jpg, jpeg, bmp)".into() });
            }
            out.extend(images);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_expand_in_folder_order_and_bad_paths_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("imgs/sub")).unwrap();
        std::fs::create_dir_all(d.join("imgs/.hidden")).unwrap();
        std::fs::create_dir_all(d.join("empty")).unwrap();
        for f in ["imgs/b.png", "imgs/a.JPG", "imgs/sub/c.png", "imgs/.hidden/x.png", "imgs/notes.txt", "single.bmp", "notes.txt"] {
            std::fs::write(d.join(f), b"").unwrap();
        }
        // A link back to its own folder is visited once.
        std::os::unix::fs::symlink(d.join("imgs"), d.join("imgs/sub/loop")).unwrap();
        let got = image_files(&[d.join("single.bmp"), d.join("imgs")]).unwrap();
        let names: Vec<String> = got.iter().map(|p| p.strip_prefix(d).unwrap().display().to_string()).collect();
        assert_eq!(names, ["single.bmp", "imgs/a.JPG", "imgs/b.png", "imgs/sub/c.png"]);
        let e = image_files(&[d.join("notes.txt")]).unwrap_err().to_string();
        assert!(e.contains("notes.txt") && e.contains("not an image file"), "{e}");
        let e = image_files(&[d.join("empty")]).unwrap_err().to_string();
        assert!(e.contains("empty") && e.contains("holds no image files"), "{e}");
        let e = image_files(&[d.join("missing")]).unwrap_err().to_string();
        assert!(e.contains("missing") && e.contains("does not exist"), "{e}");
    }
}
