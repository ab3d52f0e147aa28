//! End-to-end: pretrain a tiny source on digits 0–4, transfer to digits 5–9 with every baseline.

use candle_core::Device;
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::pretrain::pretrain;
use graft_core::train::{accuracy, Split, TrainConfig};
use graft_core::{registry, FitContext, Task};
use graft_datasets::{DatasetName, TaskSpec};
use std::path::Path;

use graft_baselines as _;

fn task(name: &str, classes: &[u32]) -> Task {
    let mut spec = TaskSpec::new(name, DatasetName::Digits);
    spec.classes = Some(classes.to_vec());
    spec.build(Path::new("/nonexistent"), (1, 16, 16)).unwrap()
}

#[test]
fn baselines_transfer_digits() {
    let dev = Device::Cpu;
    let src_task = task("digits-0to4", &[0, 1, 2, 3, 4]);
    let spec = BackboneSpec {
        arch: Arch::ResnetCifar { depth: 8, width: 8 },
        input: InputSpec::new(1, 16, 16),
        num_classes: 5,
    };
    let mut cfg = TrainConfig::default();
    cfg.epochs = 8;
    let t0 = std::time::Instant::now();
    let (source, _) = pretrain(spec, &src_task, &cfg, &mut FitContext::new(dev.clone(), 0)).unwrap();
    eprintln!("pretrain {:.1}s acc {}", t0.elapsed().as_secs_f32(), source.provenance.test_accuracy);
    let target = task("digits-5to9", &[5, 6, 7, 8, 9]);
    let x = target.test.images_tensor(&dev).unwrap();
    for m in ["linear-probe", "feature-extractor", "fine-tune", "scratch"] {
        let t0 = std::time::Instant::now();
        let method = registry::build(m, None).unwrap();
        let model = method.fit(&source, &target, &mut FitContext::new(dev.clone(), 0)).unwrap();
        let acc = accuracy(&|x| model.forward(x), Split { x: &x, y: &target.test.labels }, 256).unwrap();
        eprintln!("{m}: acc {acc:.3} in {:.1}s, {:?}", t0.elapsed().as_secs_f32(), model.footprint());
    }
}
