//! Sequential fine-tuning on real data: learning a second task with the carried network changes
//! (and forgets) the first.

use candle_core::{Device, Tensor};
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::pretrain::pretrain;
use graft_core::train::{accuracy, Split, TrainConfig};
use graft_core::{registry, FitContext, Source, Task, TaskModel};
use graft_datasets::{DatasetName, Domain, TaskSpec};
use serde_json::json;
use std::path::Path;

use graft_baselines as _;

fn digits_task(name: &str, classes: &[u32], domain: Domain) -> Task {
    let mut spec = TaskSpec::new(name, DatasetName::Digits);
    spec.classes = Some(classes.to_vec());
    spec.domain = domain;
    spec.build(Path::new("unused: digits are embedded"), (1, 8, 8)).unwrap()
}

fn source() -> Source {
    let spec = BackboneSpec { arch: Arch::ResnetCifar { depth: 8, width: 8 }, input: InputSpec::new(1, 8, 8), num_classes: 5 };
    let cfg = TrainConfig { epochs: 10, batch_size: 32, lr: 0.05, ..TrainConfig::default() };
    let (source, _) = pretrain(spec, &digits_task("digits-0to4", &[0, 1, 2, 3, 4], Domain::Identity), &cfg, &mut FitContext::new(Device::Cpu, 0)).unwrap();
    source
}

fn test_accuracy(model: &dyn TaskModel, task: &Task) -> f32 {
    let x = task.test.images_tensor(&Device::Cpu).unwrap();
    accuracy(&|x| model.forward(x), Split { x: &x, y: &task.test.labels }, 256).unwrap()
}

fn logits(model: &dyn TaskModel, task: &Task) -> Vec<f32> {
    let x = task.test.images_tensor(&Device::Cpu).unwrap();
    model.forward(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    a.flatten_all().unwrap().to_vec1::<f32>().unwrap() == b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn learning_a_second_task_with_the_carried_network_forgets_the_first() {
    let source = source();
    let first = digits_task("digits-5to9", &[5, 6, 7, 8, 9], Domain::Identity);
    // The same digits with inverted intensities: a task that pulls the early layers elsewhere.
    let second = digits_task("digits-0to4-inverted", &[0, 1, 2, 3, 4], Domain::Invert);
    let config = json!({ "train": { "epochs": 10, "batch_size": 32, "lr": 0.1 } });
    let method = registry::build("sequential-fine-tune", Some(&config)).unwrap();
    let continual = method.continual().expect("sequential fine-tuning is continual");

    let a = method.fit(&source, &first, &mut FitContext::new(Device::Cpu, 1)).unwrap();
    let a_delta = a.delta().unwrap();
    let acc_a = test_accuracy(a.as_ref(), &first);
    // The first task with its own network: its head on its own delta is the model itself.
    let a_again = continual.as_of(&source, &a_delta, &a_delta).unwrap();
    assert_eq!(logits(a_again.as_ref(), &first), logits(a.as_ref(), &first));

    let b = continual.fit_after(&source, &a_delta, &second, &mut FitContext::new(Device::Cpu, 2)).unwrap();
    let b_delta = b.delta().unwrap();
    // The second task starts from the first task's network, not from the source.
    let b_from_source = method.fit(&source, &second, &mut FitContext::new(Device::Cpu, 2)).unwrap();
    assert_ne!(logits(b.as_ref(), &second), logits(b_from_source.as_ref(), &second));
    // Every trunk tensor of the second model is one fine-tuning carried on: the first task's
    // head is kept in `as_of`, the trunk is the second's.
    let a_after_b = continual.as_of(&source, &a_delta, &b_delta).unwrap();
    let a_after_delta = a_after_b.delta().unwrap();
    for (k, t) in &a_after_delta.tensors {
        let want = if k.starts_with("head.") { &a_delta.tensors[k] } else { &b_delta.tensors[k] };
        assert!(same(t, want), "{k} is not the expected one");
    }

    let acc_a_after = test_accuracy(a_after_b.as_ref(), &first);
    let acc_b = test_accuracy(b.as_ref(), &second);
    eprintln!("first task {acc_a:.3} when learned, {acc_a_after:.3} after the second ({acc_b:.3})");
    assert!(acc_a > 0.8 && acc_b > 0.8, "both tasks are learned: {acc_a}, {acc_b}");
    assert!(acc_a - acc_a_after > 0.1, "the first task should be forgotten: {acc_a} -> {acc_a_after}");
}

#[test]
fn deltas_of_another_method_or_source_are_refused_by_name() {
    let source = graft_core::conformance::tiny_source(3);
    let task = graft_core::conformance::tiny_task(3);
    let short = json!({ "train": { "epochs": 1, "batch_size": 16 } });
    let ft = registry::build("fine-tune", Some(&short)).unwrap().fit(&source, &task, &mut FitContext::new(Device::Cpu, 0)).unwrap();
    let method = registry::build("sequential-fine-tune", Some(&short)).unwrap();
    let continual = method.continual().unwrap();
    let err = continual.fit_after(&source, &ft.delta().unwrap(), &task, &mut FitContext::new(Device::Cpu, 0)).err().unwrap().to_string();
    assert!(err.contains("previous delta was written by 'fine-tune'"), "{err}");
    let own = method.fit(&source, &task, &mut FitContext::new(Device::Cpu, 0)).unwrap().delta().unwrap();
    let other = graft_core::conformance::tiny_source(4);
    let err = continual.as_of(&other, &own, &own).err().unwrap().to_string();
    assert!(err.contains("earlier delta was trained on source"), "{err}");
    assert!(registry::build("fine-tune", None).unwrap().continual().is_none());
}
