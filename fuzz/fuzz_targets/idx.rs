//! IDX images and labels (plain or gzip), as read from Fashion-MNIST files: any bytes give a
//! result or an error, never a panic or an allocation beyond what the file holds.
#![no_main]

use graft_datasets::idx::{parse_idx_images, parse_idx_labels};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(images) = parse_idx_images(data, "fuzz-images") {
        assert_eq!(images.pixels.len(), images.count * images.rows * images.cols);
    }
    let _ = parse_idx_labels(data, "fuzz-labels");
});
