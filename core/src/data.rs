//! In-memory image sets and tasks: the data every method trains and is evaluated on.

use crate::error::{GraftError, Result};
use candle_core::{Device, Tensor};

/// Images in NCHW `f32` layout (values in `[0, 1]`) with one class label per image.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    /// Pixel values, `len() * channels * height * width` of them, image after image.
    pub images: Vec<f32>,
    /// One label per image, each `< num_classes` of the owning task.
    pub labels: Vec<u32>,
    /// Channels per image.
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
}

impl ImageSet {
    /// Builds an image set, checking that the pixel count matches the labels and the shape.
    pub fn new(
        images: Vec<f32>,
        labels: Vec<u32>,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<Self> {
        let per = channels * height * width;
        if per == 0 || images.len() != labels.len() * per {
            return Err(GraftError::Data(format!(
                "image set of {} labels with shape {channels}x{height}x{width} needs {} pixel values, got {}",
                labels.len(),
                labels.len() * per,
                images.len()
            )));
        }
        Ok(Self { images, labels, channels, height, width })
    }

    /// An empty set with the given image shape.
    pub fn empty(channels: usize, height: usize, width: usize) -> Self {
        Self { images: Vec::new(), labels: Vec::new(), channels, height, width }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image (`channels * height * width`).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// `(channels, height, width)` of every image.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// A new set holding the images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Self {
        let n = self.image_len();
        let mut images = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Self { images, labels, channels: self.channels, height: self.height, width: self.width }
    }

    /// The images at `indices` as a `(n, c, h, w)` tensor and their labels as a `(n,)` u32 tensor.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<(Tensor, Tensor)> {
        let sub = self.subset(indices);
        let x = Tensor::from_vec(sub.images, (indices.len(), self.channels, self.height, self.width), device)?;
        let y = Tensor::from_vec(sub.labels, indices.len(), device)?;
        Ok((x, y))
    }

    /// All images as one `(n, c, h, w)` tensor.
    pub fn images_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(&self.images, (self.len(), self.channels, self.height, self.width), device)?)
    }

    /// Number of images per label value, up to the largest label present.
    pub fn class_counts(&self) -> Vec<usize> {
        let k = self.labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
        let mut counts = vec![0; k];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

/// A classification task: seeded train/val/test splits with a name and where the data came from.
#[derive(Clone, Debug)]
pub struct Task {
    /// Short unique name, e.g. `digits-5to9` or `mnist-rot90`.
    pub name: String,
    /// Number of classes; every label is below it.
    pub num_classes: usize,
    /// Human-readable class names, one per class (may be generic, e.g. `"3"`).
    pub class_names: Vec<String>,
    /// For each class of the task, the class ids of the original dataset it holds: one id for a
    /// class subset (`classes = [9, 5]` gives `[[9], [5]]`), several for a superclass. Empty
    /// when the task does not come from a labelled dataset (synthetic tasks). Methods that map
    /// a task onto a source's classes (Pool of Experts) read it.
    pub class_ids: Vec<Vec<u32>>,
    /// Training split.
    pub train: ImageSet,
    /// Validation split (used for early stopping and model selection; may be empty).
    pub val: ImageSet,
    /// Test split: the reported accuracy is measured here.
    pub test: ImageSet,
    /// Where the data came from and how it was derived, for result provenance.
    pub provenance: String,
}

impl Task {
    /// Checks that all splits share one image shape and that every label is `< num_classes`.
    pub fn validate(&self) -> Result<()> {
        let shape = self.train.shape();
        for (split, set) in [("train", &self.train), ("val", &self.val), ("test", &self.test)] {
            if set.shape() != shape {
                return Err(GraftError::Data(format!(
                    "task '{}': {split} images are {:?} but train images are {:?}",
                    self.name,
                    set.shape(),
                    shape
                )));
            }
            if let Some(&bad) = set.labels.iter().find(|&&l| l as usize >= self.num_classes) {
                return Err(GraftError::Data(format!(
                    "task '{}': {split} label {bad} is out of range for {} classes",
                    self.name, self.num_classes
                )));
            }
        }
        if self.train.is_empty() {
            return Err(GraftError::Data(format!("task '{}' has no training images", self.name)));
        }
        if !self.class_ids.is_empty() && self.class_ids.len() != self.num_classes {
            return Err(GraftError::Data(format!(
                "task '{}': class_ids lists {} classes but the task has {}",
                self.name,
                self.class_ids.len(),
                self.num_classes
            )));
        }
        Ok(())
    }

    /// `(channels, height, width)` of the task's images.
    pub fn input_shape(&self) -> (usize, usize, usize) {
        self.train.shape()
    }
}
