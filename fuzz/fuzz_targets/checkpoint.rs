//! Source and delta checkpoints: the safetensors header, the graft metadata (kind, backbone
//! spec, provenance, method config, data hash) and the tensors against the spec.
#![no_main]

use candle_core::Device;
use graft_core::{Delta, Source};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = Source::from_bytes(data, Path::new("fuzz/source.safetensors"), &Device::Cpu);
    let _ = Delta::from_bytes(data, Path::new("fuzz/delta.safetensors"), &Device::Cpu);
});
