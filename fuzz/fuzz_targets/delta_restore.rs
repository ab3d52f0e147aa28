//! A delta restored into its method on a fixed source (the one the seed deltas were fitted on),
//! then run on one image: whatever tensors and config a delta carries, restoring gives a model
//! or an error, never a panic. The source hash is set to the source's so inputs get past the
//! identity check to the method's own loading.
#![no_main]

use candle_core::{Device, Tensor};
use graft_core::registry::{restore_standalone, restore_task_model};
use graft_core::{Delta, Source};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;

// Method crates register themselves when linked.
use graft_adapters as _;
use graft_attention as _;
use graft_baselines as _;
use graft_ksm as _;
use graft_piggyback as _;
use graft_poe as _;
use graft_snow as _;
use graft_tli as _;

fn source() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| {
        // Made by fuzz/make-seeds.sh, which fuzz/run.sh runs first.
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/seeds/source.safetensors"));
        Source::load(path, &Device::Cpu).expect("the seed source loads (run fuzz/make-seeds.sh)")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz/delta.safetensors");
    let Ok(mut delta) = Delta::from_bytes(data, path, &Device::Cpu) else { return };
    let source = source();
    delta.source_hash = source.hash.clone();
    let model = if delta.needs_source { restore_task_model(source, &delta, path) } else { restore_standalone(&delta, path) };
    if let Ok(model) = model {
        let (c, h, w) = source.backbone.spec().input.shape();
        let image = Tensor::zeros((1, c, h, w), candle_core::DType::F32, &Device::Cpu).expect("an image");
        if let Ok(logits) = model.forward(&image) {
            assert_eq!(logits.dims()[0], 1);
        }
    }
});
