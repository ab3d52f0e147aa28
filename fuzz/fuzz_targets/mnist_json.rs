//! One digit file of the MNIST JSON package (`{"data": [...]}`).
#![no_main]

use graft_datasets::mnist_json::parse_digit_file;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(values) = parse_digit_file(data, Path::new("fuzz/3.json")) {
        assert!(!values.is_empty() && values.len() % 784 == 0);
        assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    }
});
