//! graft as a library: one method crate (SNOW) on a frozen source, fit → save → load → predict.
//!
//! ```sh
//! cargo run --release -p graft-snow --example library
//! ```
//!
//! A crate that uses a method depends on `graft-core` and the method's crate, and names the
//! method crate once (`use graft_snow as _;`): methods register themselves with `inventory`
//! when linked, and an unnamed crate is not linked.

use candle_core::Device;
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::pretrain::pretrain;
use graft_core::registry;
use graft_core::train::TrainConfig;
use graft_core::{FitContext, Source, TaskInfo};
use graft_datasets::{DatasetName, TaskSpec};
use serde_json::json;
use std::error::Error;
use std::path::Path;

// Registers "snow" in graft's method registry.
use graft_snow as _;

fn main() -> Result<(), Box<dyn Error>> {
    let device = Device::Cpu;
    let data = Path::new("unused: the digits are embedded");

    // 1. A frozen source: here a small ResNet pretrained on digits 0-4 (in real use, a file:
    //    `Source::load(path, &device)`, or `graft_core::import::source_from_checkpoint` for a
    //    PyTorch state dict).
    let mut pre = TaskSpec::new("digits-0to4", DatasetName::Digits);
    pre.classes = Some(vec![0, 1, 2, 3, 4]);
    let spec = BackboneSpec { arch: Arch::ResnetCifar { depth: 8, width: 8 }, input: InputSpec::new(1, 8, 8), num_classes: 5 };
    let cfg = TrainConfig { epochs: 10, batch_size: 32, ..TrainConfig::default() };
    let (source, _) = pretrain(spec, &pre.build(data, (1, 8, 8))?, &cfg, &mut FitContext::new(device.clone(), 0))?;

    // 2. Fit SNOW on a new task: digits 5-9. Only SNOW's own parameters train.
    let mut target = TaskSpec::new("digits-5to9", DatasetName::Digits);
    target.classes = Some(vec![5, 6, 7, 8, 9]);
    let task = target.build(data, (1, 8, 8))?;
    let snow = registry::build("snow", Some(&json!({ "width_fraction": 0.25, "train": { "epochs": 12, "batch_size": 32 } })))?;
    let model = snow.fit(&source, &task, &mut FitContext::new(device.clone(), 1))?;
    let footprint = model.footprint();
    println!("fitted {}: {} trainable parameters, {} bytes stored", model.method(), footprint.trainable_params, footprint.stored_bytes);

    // 3. Save the delta (SNOW's tensors only, not the source), with the task's class names so
    //    that `graft predict` can use it too.
    let dir = std::env::temp_dir().join("graft-library-example");
    std::fs::create_dir_all(&dir)?;
    let (source_path, delta_path) = (dir.join("source.safetensors"), dir.join("digits-5to9.safetensors"));
    source.save(&source_path)?;
    let mut delta = model.delta()?;
    delta.task = Some(TaskInfo { name: task.name.clone(), class_names: task.class_names.clone(), fit: "resize".into() });
    delta.save(&delta_path)?;

    // 4. In the serving code: load the source and the delta (the delta's source hash is checked).
    let source = Source::load(&source_path, &device)?;
    let served = registry::load_task_model(&source, &delta_path, &device)?;

    // 5. Predict: logits for a batch of 1x8x8 images in [0, 1], one row per image.
    let x = task.test.images_tensor(&device)?.narrow(0, 0, 8)?;
    let predicted: Vec<u32> = served.forward(&x)?.argmax(1)?.to_vec1()?;
    for (p, label) in predicted.iter().zip(&task.test.labels) {
        println!("predicted {:>1}  true {:>1}", task.class_names[*p as usize], task.class_names[*label as usize]);
    }
    Ok(())
}
