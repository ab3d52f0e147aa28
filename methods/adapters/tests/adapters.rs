//! Residual adapters on a frozen trunk: identity at initialisation, every zoo family, and the
//! errors of a bad conv selection or a damaged delta.

use candle_core::Device;
use graft_core::kit::{HEAD_BIAS, HEAD_WEIGHT};
use graft_adapters::{AdaptedConvs, AdapterConfig, AdapterModel, AdapterNet, Layout, Placement, ResidualAdapters};
use graft_core::backbone::linear;
use graft_core::conformance::{tiny_source, tiny_task, zoo_cases};
use graft_core::{Backbone, FitContext, Provenance, Source, TaskModel, Trainable};

const PLACEMENTS: [Placement; 2] = [Placement::Series, Placement::Parallel];

fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
}

/// Adapters as initialised (parallel A = 0; series BN γ = β = 0) change nothing: the model's
/// logits are the frozen trunk's pooled features through the same head. (Up to rounding: the
/// adapted convs run unfused, the frozen reference fused.)
#[test]
fn fresh_adapters_are_the_identity() {
    let source = tiny_source(4);
    let task = tiny_task(4);
    let x = task.test.images_tensor(&Device::Cpu).unwrap();
    let features = source.backbone.features(&x, "pool", 64).unwrap();
    for placement in PLACEMENTS {
        let config = AdapterConfig::default();
        let layout = Layout::new(&config, placement, &source.backbone).unwrap();
        let net = AdapterNet::new(&source.backbone, layout, task.num_classes, 9).unwrap();
        let state = net.state().unwrap();
        let expected = linear(&features, &state[HEAD_WEIGHT], &state[HEAD_BIAS]).unwrap();
        let model = AdapterModel::from_tensors(config, placement, &source, state, task.num_classes).unwrap();
        let got = model.forward(&x).unwrap();
        let diff = max_abs_diff(&got, &expected);
        assert!(diff < 1e-5, "{placement:?}: fresh adapters moved the logits by {diff}");
        let diff = max_abs_diff(&net.eval_logits(&x).unwrap(), &expected);
        assert!(diff < 1e-5, "{placement:?}: the training net's eval pass differs by {diff}");
    }
}

/// Trained adapters do change the logits (the hooks are really on the forward pass).
#[test]
fn trained_adapters_change_the_logits() {
    let source = tiny_source(4);
    let task = tiny_task(4);
    let x = task.test.images_tensor(&Device::Cpu).unwrap();
    for placement in PLACEMENTS {
        let mut config = AdapterConfig { domain_bn: false, ..AdapterConfig::default() };
        config.train.epochs = 2;
        config.train.batch_size = 16;
        let model = ResidualAdapters { placement, config: config.clone() }.fit_model(&source, &task, &mut FitContext::new(Device::Cpu, 1)).unwrap();
        // The same stored tensors with every adapter weight set back to zero (parallel) or its
        // BN's γ, β to zero (series) must give the head-on-frozen-features logits.
        let mut neutral = model.delta_tensors().unwrap();
        for (k, v) in neutral.iter_mut() {
            let off = match placement {
                Placement::Parallel => k.ends_with(".adapter.weight"),
                Placement::Series => k.ends_with(".adapter_bn.weight") || k.ends_with(".adapter_bn.bias"),
            };
            if off {
                *v = v.zeros_like().unwrap();
            }
        }
        let features = source.backbone.features(&x, "pool", 64).unwrap();
        let head_only = linear(&features, &neutral[HEAD_WEIGHT], &neutral[HEAD_BIAS]).unwrap();
        let switched_off = AdapterModel::from_tensors(config, placement, &source, neutral, task.num_classes).unwrap();
        assert!(max_abs_diff(&switched_off.forward(&x).unwrap(), &head_only) < 1e-5, "{placement:?}");
        assert!(max_abs_diff(&model.forward(&x).unwrap(), &head_only) > 1e-3, "{placement:?}: the adapters did nothing");
    }
}

#[test]
fn every_zoo_family_takes_both_placements() {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    for (spec, task) in zoo_cases() {
        let bb = Backbone::init(spec.clone(), 2, &dev).unwrap();
        let source = Source::new(bb.clone(), Provenance::default()).unwrap();
        let three: Vec<_> = bb.convs().into_iter().filter(|c| c.conv.kernel == 3).collect();
        assert!(!three.is_empty(), "{}: no 3x3 conv", spec.id());
        let bn: usize = bb.bn_names().iter().map(|n| 2 * bb.param(&format!("{n}.weight")).unwrap().elem_count()).sum();
        let head = (bb.tap("pool").unwrap().channels + 1) * task.num_classes;
        for placement in PLACEMENTS {
            let adapters: usize = three
                .iter()
                .map(|c| match placement {
                    Placement::Series => c.conv.out_channels * c.conv.out_channels + 2 * c.conv.out_channels,
                    Placement::Parallel => c.conv.out_channels * c.conv.in_channels,
                })
                .sum();
            let mut config = AdapterConfig::default();
            config.train.epochs = 1;
            config.train.batch_size = 16;
            let model = ResidualAdapters { placement, config }
                .fit_model(&source, &task, &mut FitContext::new(dev.clone(), 3))
                .unwrap_or_else(|e| panic!("{} {placement:?}: {e}", spec.id()));
            let fp = model.footprint();
            assert_eq!(fp.trainable_params, adapters + bn + head, "{} {placement:?}", spec.id());
            assert_eq!(fp.stored_bytes, model.delta().unwrap().tensor_bytes(), "{} {placement:?}", spec.id());
            let x = task.test.images_tensor(&dev).unwrap();
            let y = model.forward(&x).unwrap();
            let path = dir.path().join(format!("{}-{placement:?}.safetensors", spec.id()));
            model.save(&path).unwrap();
            let loaded = graft_core::registry::load_task_model(&source, &path, &dev).unwrap();
            assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), loaded.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), "{}", spec.id());
        }
    }
}

#[test]
fn a_conv_that_is_not_a_3x3_conv_is_refused_with_the_list() {
    let source = tiny_source(1);
    let config = AdapterConfig { convs: AdaptedConvs::Only(vec!["layer2.0.downsample.0".into()]), ..AdapterConfig::default() };
    let err = Layout::new(&config, Placement::Series, &source.backbone).unwrap_err().to_string();
    assert!(err.contains("'layer2.0.downsample.0'") && err.contains("layer3.0.conv2"), "{err}");
}

#[test]
fn a_damaged_delta_names_the_tensor() {
    let source = tiny_source(1);
    let task = tiny_task(1);
    let mut config = AdapterConfig::default();
    config.train.epochs = 1;
    let model = ResidualAdapters { placement: Placement::Parallel, config: config.clone() }.fit_model(&source, &task, &mut FitContext::new(Device::Cpu, 1)).unwrap();
    let mut tensors = model.delta_tensors().unwrap();
    let key = "residual-adapter-parallel.layer1.0.conv2.adapter.weight".to_string();
    tensors.insert(key.clone(), candle_core::Tensor::zeros((4, 3, 1, 1), candle_core::DType::F32, &Device::Cpu).unwrap());
    let err = AdapterModel::from_tensors(config.clone(), Placement::Parallel, &source, tensors.clone(), 3).err().unwrap().to_string();
    assert!(err.contains(&key) && err.contains("[4, 4, 1, 1]"), "{err}");
    tensors.remove(&key);
    let err = AdapterModel::from_tensors(config, Placement::Parallel, &source, tensors, 3).err().unwrap().to_string();
    assert!(err.contains("missing tensor") && err.contains(&key), "{err}");
}
