//! Image folders in torchvision's `ImageFolder` layout: `root/<class>/<image files>`.
//!
//! * Classes are the visible sub-folders of the root, sorted byte-wise (as Python sorts the
//!   names, which is what torchvision does); a class's label is its index in that list.
//! * Images are the files ending in `.png`, `.jpg`, `.jpeg` or `.bmp` (any case) inside a class
//!   folder or its sub-folders, read in the order torchvision reads them: folders by path, files
//!   by name, byte-wise. Other files, and files or folders whose name starts with `.`, are
//!   ignored.
//! * When the root holds folders named `train` and `test` (and optionally `val`), each is an
//!   image folder of its own and all must list the same classes.
//!
//! Pixels become `f32` in `[0, 1]` (8-bit values / 255, 16-bit values / 65535) in NCHW layout.
//! Alpha is dropped. Images are not resized: every image of a folder must have the same size.

use crate::error::{DatasetError, Result};
use graft_core::ImageSet;
use image::DynamicImage;
use std::collections::HashSet;
use std::fs;
use std::io::{Cursor, ErrorKind};
use std::path::{Path, PathBuf};

/// File extensions read as images, compared case-insensitively.
pub const IMAGE_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// Luma weights of red, green and blue used to turn colour into grey: sRGB / Rec. 709, the
/// weights of the `image` crate's `to_luma*`. Applied to the `[0, 1]` values in `f32`, so the
/// grey value is not rounded to 8 bits.
pub const LUMA_WEIGHTS: [f32; 3] = [0.2126, 0.7152, 0.0722];

/// An image folder read into memory: its classes and one [`ImageSet`] per split.
#[derive(Clone, Debug)]
pub struct FolderDataset {
    /// Class names (the class folders' names), sorted byte-wise; label `i` is `class_names[i]`.
    pub class_names: Vec<String>,
    /// The images of `root/train/` when the root has split folders, else of the root itself.
    pub train: ImageSet,
    /// The images of `root/val/`, when the root has split folders and a `val` folder.
    pub val: Option<ImageSet>,
    /// The images of `root/test/`, when the root has split folders.
    pub test: Option<ImageSet>,
    /// The folder that was read.
    pub root: PathBuf,
}

/// Reads an image folder (see the module docs). `channels`: `None` keeps the images' own
/// channels (grey: 1, colour: 3); `Some(1)` turns colour into grey with [`LUMA_WEIGHTS`];
/// `Some(3)` repeats grey into three channels. Errors name the folder or file at fault: a missing
/// root, no class folders, a class folder without images, a split whose classes differ from
/// train's, an image that cannot be decoded, images of different sizes or channels.
pub fn load_image_folder(root: &Path, channels: Option<usize>) -> Result<FolderDataset> {
    check_channels(channels, root)?;
    let listings = list_splits(root)?;
    let mut first: Option<(PathBuf, (usize, usize, usize))> = None;
    let train = read_set(&listings.train, channels, &mut first)?;
    let val = listings.val.as_ref().map(|v| read_set(v, channels, &mut first)).transpose()?;
    let test = listings.test.as_ref().map(|t| read_set(t, channels, &mut first)).transpose()?;
    Ok(FolderDataset { class_names: listings.train.classes, train, val, test, root: root.to_path_buf() })
}

/// What an image folder holds, found without decoding any image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderLayout {
    /// Class names, sorted byte-wise (label `i` is `class_names[i]`).
    pub class_names: Vec<String>,
    /// Whether the root has a `val/` split folder.
    pub has_val: bool,
    /// Whether the root has `train/` and `test/` split folders.
    pub has_test: bool,
    /// Images per split: train, val (0 without), test (0 without).
    pub image_counts: [usize; 3],
}

/// Lists an image folder as [`load_image_folder`] would read it, with the same errors for its
/// layout (missing root, no class folders, empty classes, splits with different classes), but
/// decodes nothing: cheap enough to check a suite before any work starts.
pub fn image_folder_layout(root: &Path) -> Result<FolderLayout> {
    let l = list_splits(root)?;
    let count = |x: Option<&Listing>| x.map_or(0, |x| x.files.len());
    Ok(FolderLayout {
        has_val: l.val.is_some(),
        has_test: l.test.is_some(),
        image_counts: [l.train.files.len(), count(l.val.as_ref()), count(l.test.as_ref())],
        class_names: l.train.classes,
    })
}

/// The listings of a root's splits: train (or the root itself), val and test when present.
struct SplitListings {
    train: Listing,
    val: Option<Listing>,
    test: Option<Listing>,
}

fn list_splits(root: &Path) -> Result<SplitListings> {
    match fs::metadata(root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(folder_error(root, "is not a folder")),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(folder_error(root, "does not exist"))
        }
        Err(e) => return Err(DatasetError::io(root, e)),
    }
    let subdirs = visible_subdirs(root)?;
    let is_split = |name: &str| subdirs.iter().any(|(n, _)| n == name);
    if !(is_split("train") && is_split("test")) {
        return Ok(SplitListings { train: list_classes(root, subdirs)?, val: None, test: None });
    }
    if let Some((extra, _)) = subdirs
        .iter()
        .find(|(n, _)| !["train", "val", "test"].contains(&n.as_str()))
    {
        return Err(folder_error(
            root,
            format!(
                "holds the split folders train/ and test/ but also {extra}/; a root with splits \
                 may hold only train/, test/ and val/"
            ),
        ));
    }
    let split = |name: &str| -> Result<Listing> {
        let dir = root.join(name);
        list_classes(&dir, visible_subdirs(&dir)?)
    };
    let train = split("train")?;
    let test = split("test")?;
    let val = if is_split("val") { Some(split("val")?) } else { None };
    for (name, listing) in [("test", Some(&test)), ("val", val.as_ref())] {
        if let Some(listing) = listing {
            same_classes(&root.join(name), name, &listing.classes, &train.classes)?;
        }
    }
    Ok(SplitListings { train, val, test: Some(test) })
}

/// Reads one image file as `(values, channels, height, width)`: values in `[0, 1]`, CHW layout.
/// `channels` works as in [`load_image_folder`]. The format is recognised from the file's first
/// bytes, else from its extension.
pub fn read_image(path: &Path, channels: Option<usize>) -> Result<(Vec<f32>, usize, usize, usize)> {
    check_channels(channels, path)?;
    let bytes = fs::read(path).map_err(|e| DatasetError::io(path, e))?;
    let mut reader = image::ImageReader::new(Cursor::new(&bytes[..]));
    if let Ok(format) = image::ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    let reader = reader
        .with_guessed_format()
        .map_err(|e| DatasetError::io(path, e))?;
    let img = reader
        .decode()
        .map_err(|e| image_error(path, format!("cannot decode: {e}")))?;
    let (values, c, h, w) = planar(&img, path)?;
    let (values, c) = convert_channels(values, c, h * w, channels, path)?;
    Ok((values, c, h, w))
}

/// True when `path`'s extension is one of [`IMAGE_EXTENSIONS`] (any case).
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The classes of one image folder and its image files with their labels, in reading order.
struct Listing {
    classes: Vec<String>,
    files: Vec<(PathBuf, u32)>,
}

fn folder_error(path: &Path, msg: impl Into<String>) -> DatasetError {
    DatasetError::ImageFolder {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

fn image_error(path: &Path, msg: impl Into<String>) -> DatasetError {
    DatasetError::Image {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

fn check_channels(channels: Option<usize>, path: &Path) -> Result<()> {
    match channels {
        None | Some(1) | Some(3) => Ok(()),
        Some(c) => Err(image_error(
            path,
            format!("cannot convert images to {c} channels; channels must be 1, 3 or unset"),
        )),
    }
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// The visible sub-folders of `dir` (symbolic links followed) as `(name, path)`, sorted
/// byte-wise by name.
fn visible_subdirs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| DatasetError::io(dir, e))? {
        let entry = entry.map_err(|e| DatasetError::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        // A dangling link is no folder (as for torchvision).
        if is_hidden(&name) || !fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let name = name.into_string().map_err(|_| {
            folder_error(
                &path,
                "the folder name is not valid UTF-8, so it cannot name a class",
            )
        })?;
        out.push((name, path));
    }
    out.sort();
    Ok(out)
}

/// Lists the classes (`subdirs` of `dir`) and their image files.
fn list_classes(dir: &Path, subdirs: Vec<(String, PathBuf)>) -> Result<Listing> {
    if subdirs.is_empty() {
        return Err(folder_error(
            dir,
            format!(
                "holds no class folders; expected <root>/<class>/<image files> with images \
                 ending in {}",
                IMAGE_EXTENSIONS.join(", ")
            ),
        ));
    }
    let mut classes = Vec::with_capacity(subdirs.len());
    let mut files = Vec::new();
    for (label, (name, path)) in subdirs.into_iter().enumerate() {
        let images = class_images(&path)?;
        if images.is_empty() {
            return Err(folder_error(
                &path,
                format!(
                    "class folder '{name}' holds no images (files ending in {})",
                    IMAGE_EXTENSIONS.join(", ")
                ),
            ));
        }
        let label = u32::try_from(label).map_err(|_| folder_error(dir, "too many classes"))?;
        files.extend(images.into_iter().map(|p| (p, label)));
        classes.push(name);
    }
    Ok(Listing { classes, files })
}

/// The image files under `class_dir`, in torchvision's order: folders sorted by path, then the
/// files of each folder sorted by name. Symbolic links are followed; a folder reached twice
/// (a link loop) is read once.
pub(crate) fn class_images(class_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut folders: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![class_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let canonical = fs::canonicalize(&dir).map_err(|e| DatasetError::io(&dir, e))?;
        if !seen.insert(canonical) {
            continue;
        }
        let mut files = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| DatasetError::io(&dir, e))? {
            let entry = entry.map_err(|e| DatasetError::io(&dir, e))?;
            if is_hidden(&entry.file_name()) {
                continue;
            }
            let path = entry.path();
            match fs::metadata(&path) {
                Ok(m) if m.is_dir() => stack.push(path),
                _ if is_image_file(&path) => files.push(path),
                _ => {}
            }
        }
        files.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
        folders.push((dir, files));
    }
    folders.sort_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
    Ok(folders.into_iter().flat_map(|(_, files)| files).collect())
}

/// Checks that a split lists exactly train's classes, naming the first class that differs.
fn same_classes(dir: &Path, split: &str, classes: &[String], train: &[String]) -> Result<()> {
    if classes == train {
        return Ok(());
    }
    let msg = match (
        train.iter().find(|c| !classes.contains(c)),
        classes.iter().find(|c| !train.contains(c)),
    ) {
        (Some(missing), _) => format!("{split}/ has no class folder '{missing}', which train/ has"),
        (None, Some(extra)) => format!("{split}/ has class folder '{extra}', which train/ lacks"),
        (None, None) => format!("{split}/ classes {classes:?} differ from train/'s {train:?}"),
    };
    Err(folder_error(
        dir,
        format!("{msg}; every split must hold the same classes"),
    ))
}

/// Reads every image of `listing` into one set. `first` holds the first image read (across
/// splits) and its shape; every later image must have that shape.
fn read_set(
    listing: &Listing,
    channels: Option<usize>,
    first: &mut Option<(PathBuf, (usize, usize, usize))>,
) -> Result<ImageSet> {
    let mut images = Vec::new();
    let mut labels = Vec::with_capacity(listing.files.len());
    for (path, label) in &listing.files {
        let (values, c, h, w) = read_image(path, channels)?;
        match first {
            None => *first = Some((path.clone(), (c, h, w))),
            Some((first_path, first_shape)) if *first_shape != (c, h, w) => {
                return Err(DatasetError::ImageShape {
                    file: path.clone(),
                    shape: (c, h, w),
                    first: first_path.clone(),
                    first_shape: *first_shape,
                })
            }
            Some(_) => {}
        }
        if images.is_empty() {
            images.reserve_exact(values.len() * listing.files.len());
        }
        images.extend_from_slice(&values);
        labels.push(*label);
    }
    let (c, h, w) = first.as_ref().map_or((1, 1, 1), |f| f.1);
    Ok(ImageSet::new(images, labels, c, h, w)?)
}

/// The decoded image as `[0, 1]` values in CHW layout with its own channels (1 or 3; alpha
/// dropped).
fn planar(img: &DynamicImage, path: &Path) -> Result<(Vec<f32>, usize, usize, usize)> {
    let (h, w) = (img.height() as usize, img.width() as usize);
    if h == 0 || w == 0 {
        return Err(image_error(
            path,
            format!("image is {w}x{h} pixels; it must hold at least one"),
        ));
    }
    let n = h * w;
    let u8v = |v: u8| f32::from(v) / 255.0;
    let u16v = |v: u16| f32::from(v) / 65535.0;
    let (values, c) = match img {
        DynamicImage::ImageLuma8(b) => (deinterleave(b.as_raw(), 1, 1, n, u8v), 1),
        DynamicImage::ImageLumaA8(b) => (deinterleave(b.as_raw(), 2, 1, n, u8v), 1),
        DynamicImage::ImageRgb8(b) => (deinterleave(b.as_raw(), 3, 3, n, u8v), 3),
        DynamicImage::ImageRgba8(b) => (deinterleave(b.as_raw(), 4, 3, n, u8v), 3),
        DynamicImage::ImageLuma16(b) => (deinterleave(b.as_raw(), 1, 1, n, u16v), 1),
        DynamicImage::ImageLumaA16(b) => (deinterleave(b.as_raw(), 2, 1, n, u16v), 1),
        DynamicImage::ImageRgb16(b) => (deinterleave(b.as_raw(), 3, 3, n, u16v), 3),
        DynamicImage::ImageRgba16(b) => (deinterleave(b.as_raw(), 4, 3, n, u16v), 3),
        DynamicImage::ImageRgb32F(b) => (deinterleave(b.as_raw(), 3, 3, n, |v| v), 3),
        DynamicImage::ImageRgba32F(b) => (deinterleave(b.as_raw(), 4, 3, n, |v| v), 3),
        other => {
            return Err(image_error(
                path,
                format!("pixel format {:?} is not supported", other.color()),
            ))
        }
    };
    if let Some(bad) = values.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(image_error(
            path,
            format!("pixel value {bad} is outside [0, 1]"),
        ));
    }
    Ok((values, c, h, w))
}

/// Planes of the first `keep` of every `stride` interleaved samples, mapped by `f`.
fn deinterleave<T: Copy>(
    raw: &[T],
    stride: usize,
    keep: usize,
    pixels: usize,
    f: impl Fn(T) -> f32,
) -> Vec<f32> {
    let mut out = vec![0.0; keep * pixels];
    for (p, px) in raw.chunks_exact(stride).take(pixels).enumerate() {
        for (c, &v) in px[..keep].iter().enumerate() {
            out[c * pixels + p] = f(v);
        }
    }
    out
}

/// Converts CHW `values` with `c` channels (1 or 3) to `want` channels (see
/// [`load_image_folder`]).
fn convert_channels(
    values: Vec<f32>,
    c: usize,
    pixels: usize,
    want: Option<usize>,
    path: &Path,
) -> Result<(Vec<f32>, usize)> {
    match (c, want) {
        (_, None) | (1, Some(1)) | (3, Some(3)) => Ok((values, c)),
        (3, Some(1)) => {
            let (r, rest) = values.split_at(pixels);
            let (g, b) = rest.split_at(pixels);
            let [wr, wg, wb] = LUMA_WEIGHTS;
            let grey = r
                .iter()
                .zip(g)
                .zip(b)
                .map(|((r, g), b)| (wr * r + wg * g + wb * b).min(1.0))
                .collect();
            Ok((grey, 1))
        }
        (1, Some(3)) => Ok((values.repeat(3), 3)),
        (c, Some(want)) => Err(image_error(
            path,
            format!("cannot convert {c} channels to {want}; channels must be 1, 3 or unset"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_matched_case_insensitively() {
        for name in ["a.png", "b.PNG", "c.Jpg", "d.jpeg", "e.JPEG", "f.bmp"] {
            assert!(is_image_file(Path::new(name)), "{name}");
        }
        for name in ["a.txt", "png", "a.png.txt", "a.gif", "a.tif"] {
            assert!(!is_image_file(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn deinterleave_drops_alpha_and_splits_planes() {
        // Two RGBA pixels.
        let raw = [1u8, 2, 3, 200, 4, 5, 6, 201];
        let planes = deinterleave(&raw, 4, 3, 2, f32::from);
        assert_eq!(planes, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn channel_conversion_by_hand() {
        let p = Path::new("x.png");
        // One white and one pure-green pixel.
        let rgb = vec![1.0, 0.0, 1.0, 1.0, 1.0, 0.0];
        let (grey, c) = convert_channels(rgb.clone(), 3, 2, Some(1), p).unwrap();
        assert_eq!(c, 1);
        assert_eq!(grey, vec![1.0, 0.7152]);
        let (same, c) = convert_channels(rgb.clone(), 3, 2, None, p).unwrap();
        assert_eq!((same, c), (rgb, 3));
        let (three, c) = convert_channels(vec![0.25, 0.5], 1, 2, Some(3), p).unwrap();
        assert_eq!(c, 3);
        assert_eq!(three, vec![0.25, 0.5, 0.25, 0.5, 0.25, 0.5]);
        let e = convert_channels(vec![0.0; 2], 1, 2, Some(2), p).unwrap_err();
        assert!(e.to_string().contains("x.png"), "{e}");
        let e = read_image(p, Some(4)).unwrap_err().to_string();
        assert!(e.contains("4 channels"), "{e}");
    }
}
