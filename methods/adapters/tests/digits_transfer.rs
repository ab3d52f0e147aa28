//! Learning test on real data: pretrain a small source on UCI digits 0–4, then transfer to
//! digits 5–9 (five new classes, chance = 20 %) with adapters in series and in parallel, against
//! the control that lacks the adapters' mechanism: a linear probe on the same frozen features.

use candle_core::Device;
use graft_adapters::{AdapterConfig, Placement, ResidualAdapters};
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::pretrain::pretrain;
use graft_core::train::{accuracy, Split, TrainConfig};
use graft_core::{FitContext, Source, Task, TaskModel};
use graft_datasets::{DatasetName, TaskSpec};
use serde_json::json;
use std::path::Path;

use graft_baselines as _;

fn digits_task(name: &str, classes: &[u32]) -> Task {
    let mut spec = TaskSpec::new(name, DatasetName::Digits);
    spec.classes = Some(classes.to_vec());
    spec.build(Path::new("unused: digits are embedded"), (1, 8, 8)).unwrap()
}

fn source() -> Source {
    let spec = BackboneSpec { arch: Arch::ResnetCifar { depth: 8, width: 8 }, input: InputSpec::new(1, 8, 8), num_classes: 5 };
    let cfg = TrainConfig { epochs: 10, batch_size: 32, lr: 0.05, ..TrainConfig::default() };
    let (source, _) = pretrain(spec, &digits_task("digits-0to4", &[0, 1, 2, 3, 4]), &cfg, &mut FitContext::new(Device::Cpu, 0)).unwrap();
    assert!(source.provenance.test_accuracy > 0.9, "source only reached {}", source.provenance.test_accuracy);
    source
}

fn test_accuracy(model: &dyn TaskModel, task: &Task) -> f32 {
    let x = task.test.images_tensor(&Device::Cpu).unwrap();
    accuracy(&|x| model.forward(x), Split { x: &x, y: &task.test.labels }, 256).unwrap()
}

#[test]
fn adapters_learn_new_digit_classes_and_beat_a_linear_probe() {
    let source = source();
    let target = digits_task("digits-5to9", &[5, 6, 7, 8, 9]);
    let probe = graft_core::registry::build("linear-probe", Some(&json!({ "train": { "epochs": 6, "batch_size": 32 } }))).unwrap();
    let probe_acc = test_accuracy(probe.fit(&source, &target, &mut FitContext::new(Device::Cpu, 1)).unwrap().as_ref(), &target);
    for placement in [Placement::Series, Placement::Parallel] {
        // With domain BNs (the default) and without them (the adapters alone on the frozen BNs).
        for domain_bn in [true, false] {
            let mut config = AdapterConfig { domain_bn, ..AdapterConfig::default() };
            config.train.epochs = 6;
            config.train.batch_size = 64; // the protocol run's batch, at which its lr was chosen
            let model = ResidualAdapters { placement, config }.fit_model(&source, &target, &mut FitContext::new(Device::Cpu, 1)).unwrap();
            let acc = test_accuracy(&model, &target);
            eprintln!("adapters {placement:?} (domain_bn {domain_bn}) digits 0-4 -> 5-9: test accuracy {acc:.3} (linear probe {probe_acc:.3})");
            assert!(acc > 0.85, "{placement:?} domain_bn {domain_bn}: accuracy {acc} (chance 0.2)");
            assert!(acc > probe_acc + 0.1, "{placement:?} domain_bn {domain_bn}: {acc} does not clearly beat the linear probe's {probe_acc}");
        }
    }
}
