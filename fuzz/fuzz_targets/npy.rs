//! NumPy `.npy` arrays read as image sets and labels.
#![no_main]

use graft_datasets::npy::{npy_images, npy_labels, parse_npy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(array) = parse_npy(data, "fuzz.npy") else { return };
    if let Ok(images) = npy_images(&array, "fuzz.npy") {
        assert_eq!(images.values.len(), images.count * images.channels * images.height * images.width);
    }
    let _ = npy_labels(&array, "fuzz.npy");
});
