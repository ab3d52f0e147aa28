//! Pool of Experts learns on real data: an oracle pretrained on a Fashion-MNIST slice (all 10
//! classes, 16x16), a pool distilled from it over the superclasses (tops, footwear, other), and
//! the query footwear + other (6 classes) answered without training. Its test accuracy is far
//! above chance (1/6) and above the same consolidated model whose experts were not distilled
//! (the control without the mechanism). Needs Fashion-MNIST (`graft data fetch`).

use candle_core::Device;
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::optim::OptimizerKind;
use graft_core::train::{accuracy, Split};
use graft_core::{Backbone, FitContext, TrainConfig};
use graft_datasets::{DatasetName, TaskSpec};
use graft_poe::config::{paper_train, ExpertConfig, LibraryConfig, PoeConfig};
use graft_poe::{Consolidated, Pool};
use std::sync::Arc;
use std::time::Instant;

const SIDE: usize = 16;

fn fashion(name: &str, classes: Option<Vec<u32>>, n_train: usize) -> graft_core::Task {
    let mut spec = TaskSpec::new(name, DatasetName::FashionMnist);
    spec.classes = classes;
    spec.max_train = Some(n_train);
    spec.max_val = Some(100);
    spec.max_test = Some(600);
    spec.seed = 5;
    // The committed slice of Fashion-MNIST (its first 1,200 training and 1,000 test images).
    spec.build(&graft_datasets::test_data_dir(), (1, SIDE, SIDE)).unwrap()
}

#[test]
fn a_consolidated_query_is_accurate_without_training() {
    let dev = Device::Cpu;
    let all = fashion("fashion-10", None, 1200);
    let spec = BackboneSpec { arch: Arch::Wrn { depth: 10, widen: 2 }, input: InputSpec::new(1, SIDE, SIDE), num_classes: 10 };
    let cfg = TrainConfig { batch_size: 32, ..TrainConfig::default().with(3, OptimizerKind::Adam, 3e-3) };
    let (oracle, _) = graft_core::pretrain::pretrain(spec, &all, &cfg, &mut FitContext::new(dev.clone(), 0)).unwrap();
    eprintln!("oracle test accuracy (10 classes) {:.3}", oracle.provenance.test_accuracy);

    let mut train = paper_train(4);
    train.batch_size = 32;
    let defaults = PoeConfig::default();
    let library = LibraryConfig { depth: 10, train: train.clone(), ..Default::default() };
    let expert = ExpertConfig { train, ..Default::default() };
    let images = all.train.images_tensor(&dev).unwrap();
    let start = Instant::now();
    let pool = Pool::build(&oracle, &images, &defaults.groups, &library, &expert, 0, &mut FitContext::new(dev.clone(), 0)).unwrap();
    eprintln!("pool prepared in {:.1} s", start.elapsed().as_secs_f64());
    let pool = Arc::new(pool);

    // The query footwear + other: Fashion classes 1, 3, 5, 7, 8, 9, labelled in that order.
    let query = fashion("footwear+other", Some(vec![1, 3, 5, 7, 8, 9]), 10);
    let x = query.test.images_tensor(&dev).unwrap();
    let split = Split { x: &x, y: &query.test.labels };
    let start = Instant::now();
    let model = Consolidated::new(pool.clone(), &["footwear".into(), "other".into()], None).unwrap();
    let build_ms = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(model.classes, vec![1, 3, 5, 7, 8, 9]);
    let acc = accuracy(&|t| model.forward(t), split, 256).unwrap();

    // Control: the same consolidated architecture with experts that were never distilled.
    let mut raw = (*pool).clone();
    for (i, e) in raw.experts.iter_mut().enumerate() {
        e.net = Backbone::init(e.net.spec().clone(), 100 + i as u64, &dev).unwrap();
    }
    let control = Consolidated::new(Arc::new(raw), &["footwear".into(), "other".into()], None).unwrap();
    let control_acc = accuracy(&|t| control.forward(t), split, 256).unwrap();
    // The oracle restricted to the query's classes, for reference.
    let ids = candle_core::Tensor::from_slice(&[1u32, 3, 5, 7, 8, 9], 6, &dev).unwrap();
    let oracle_acc = accuracy(&|t| Ok(oracle.backbone.forward(t)?.index_select(&ids, 1)?), split, 256).unwrap();
    eprintln!(
        "footwear+other: PoE {acc:.3} (built in {build_ms:.2} ms, {} params, {} FLOPs/image), undistilled experts {control_acc:.3}, oracle on the 6 classes {oracle_acc:.3} ({} FLOPs/image)",
        model.num_params(),
        model.flops_per_image(),
        oracle.backbone.flops_per_image()
    );
    assert!(acc > 0.6, "PoE accuracy {acc} (chance 0.167)");
    assert!(acc > control_acc + 0.2, "PoE {acc} vs undistilled experts {control_acc}");
    assert!(model.flops_per_image() < oracle.backbone.flops_per_image());
}
