//! Every architecture of the zoo learns: pretraining a small configuration on a Fashion-MNIST
//! slice (4 well-separated classes: T-shirt/top, Trouser, Sneaker, Bag; a few hundred training
//! images, 3 epochs of Adam) reaches a test accuracy well above chance (0.25). Needs
//! Fashion-MNIST (`graft data fetch`, or the Debian package `dataset-fashion-mnist`).
//!
//! MobileNetV2 needs the most steps: trained from scratch this briefly, its eval-mode BatchNorm
//! (running statistics) lags the weights and the test accuracy sits at chance while the
//! training accuracy climbs; PyTorch's torchvision model does the same on this slice.

use candle_core::Device;
use graft_core::backbone::{Arch, BackboneSpec, InputSpec, VggConfig};
use graft_core::optim::OptimizerKind;
use graft_core::{FitContext, TrainConfig};
use graft_datasets::{DatasetName, TaskSpec};

/// Pretrains `arch` on `side`×`side` images of the 4-class slice with `n_train` training images
/// and returns the test accuracy.
fn test_accuracy(arch: Arch, side: usize, n_train: usize) -> f32 {
    let mut task = TaskSpec::new("fashion-4", DatasetName::FashionMnist);
    task.classes = Some(vec![0, 1, 7, 8]);
    task.max_train = Some(n_train);
    task.max_val = Some(80);
    task.max_test = Some(400);
    task.seed = 3;
    // The committed slice of Fashion-MNIST (its first 1,200 training and 1,000 test images).
    let task = task.build(&graft_datasets::test_data_dir(), (1, side, side)).unwrap();
    let spec = BackboneSpec { arch, input: InputSpec::new(1, side, side), num_classes: task.num_classes };
    let id = spec.id();
    let cfg = TrainConfig { batch_size: 16, ..TrainConfig::default().with(3, OptimizerKind::Adam, 3e-3) };
    let mut ctx = FitContext::new(Device::Cpu, 0);
    let (source, report) = graft_core::pretrain::pretrain(spec, &task, &cfg, &mut ctx).unwrap();
    let acc = source.provenance.test_accuracy;
    let per_epoch: Vec<(f32, Option<f32>)> = report.epochs.iter().map(|e| (e.train_acc, e.val_acc)).collect();
    eprintln!("{id}: test accuracy {acc:.3}; (train, val) accuracy per epoch {per_epoch:?}");
    acc
}

fn learns(arch: Arch, side: usize, n_train: usize) {
    let id = arch.id();
    let acc = test_accuracy(arch, side, n_train);
    assert!(acc > 0.6, "{id}: test accuracy {acc} (chance 0.25)");
}

#[test]
fn resnet_cifar_learns() {
    learns(Arch::ResnetCifar { depth: 8, width: 4 }, 16, 480);
}

#[test]
fn wrn_learns() {
    learns(Arch::Wrn { depth: 10, widen: 1 }, 12, 480);
}

#[test]
fn resnet18_learns() {
    learns(Arch::Resnet { depth: 18, width: 4 }, 28, 480);
}

#[test]
fn resnet50_learns() {
    learns(Arch::Resnet { depth: 50, width: 8 }, 28, 480);
}

#[test]
fn mobilenetv2_learns() {
    learns(Arch::Mobilenetv2 { width_mult: 0.5 }, 20, 640);
}

#[test]
fn vgg_learns() {
    learns(Arch::Vgg { config: VggConfig::Vgg11, width_div: 32, pool: 1 }, 32, 480);
}
