//! A PyTorch state dict (safetensors, torchvision names) imported into each of the fixtures'
//! architectures, strictly and not.
#![no_main]

use candle_core::Device;
use graft_core::backbone::BackboneSpec;
use graft_core::checkpoint::{parse_safetensors, KEY_BACKBONE};
use graft_core::torch_io::{import_state_dict_bytes, ImportOptions};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;

/// The specs of the PyTorch fixtures (core/tests/fixtures/*.ref.safetensors).
fn specs() -> &'static [BackboneSpec] {
    static SPECS: OnceLock<Vec<BackboneSpec>> = OnceLock::new();
    SPECS.get_or_init(|| {
        let refs: [&[u8]; 5] = [
            include_bytes!("../../core/tests/fixtures/resnet18_w8.ref.safetensors"),
            include_bytes!("../../core/tests/fixtures/resnet50_w4.ref.safetensors"),
            include_bytes!("../../core/tests/fixtures/mobilenetv2_0.25.ref.safetensors"),
            include_bytes!("../../core/tests/fixtures/vgg11_bn_d32.ref.safetensors"),
            include_bytes!("../../core/tests/fixtures/wrn_10_1.ref.safetensors"),
        ];
        refs.iter()
            .map(|bytes| {
                let file = parse_safetensors(bytes, Path::new("ref"), &Device::Cpu).expect("fixture reference");
                serde_json::from_str(&file.metadata[KEY_BACKBONE]).expect("fixture spec")
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the architecture and the import mode.
    let Some((&pick, file)) = data.split_first() else { return };
    let spec = specs()[pick as usize % specs().len()].clone();
    let opts = ImportOptions { strict: pick & 0x80 == 0, strip_prefix: (pick & 0x40 != 0).then(|| "module.".to_string()), seed: 0 };
    let _ = import_state_dict_bytes(file, Path::new("fuzz/state_dict.safetensors"), spec, &opts, &Device::Cpu);
});
