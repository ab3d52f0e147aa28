//! The backbone zoo (resnet-cifar, wrn, torchvision resnet, mobilenetv2, vgg): taps declared as
//! data match real outputs (timm's `feature_info` test), the structural description is a
//! well-formed graph consistent with the taps, parameters and FLOPs, parameter and FLOP counts
//! match hand computations and torchvision's published numbers, every hook works for every
//! architecture, and checkpoints round-trip.

use candle_core::{Device, Tensor};
use graft_core::backbone::{
    adaptive_avg_pool2d, count_flops, count_params, max_pool2d, Arch, BackboneSpec, InputSpec, LayerKind, TunedBackbone,
    VggConfig,
};
use graft_core::init::SeededRng;
use graft_core::{Backbone, GraftError, Hooks, NoHooks, Provenance, Source};
use std::collections::BTreeSet;

fn spec(arch: Arch, c: usize, h: usize, w: usize, classes: usize) -> BackboneSpec {
    BackboneSpec { arch, input: InputSpec::new(c, h, w), num_classes: classes }
}

/// One small configuration per family (and per block type), on inputs of odd sizes.
fn small_specs() -> Vec<BackboneSpec> {
    vec![
        spec(Arch::ResnetCifar { depth: 8, width: 4 }, 1, 12, 10, 3),
        spec(Arch::Wrn { depth: 10, widen: 2 }, 1, 11, 13, 4),
        spec(Arch::Resnet { depth: 18, width: 4 }, 3, 33, 29, 5),
        spec(Arch::Resnet { depth: 34, width: 2 }, 1, 32, 32, 3),
        spec(Arch::Resnet { depth: 50, width: 2 }, 3, 35, 41, 2),
        spec(Arch::Mobilenetv2 { width_mult: 0.25 }, 3, 30, 34, 6),
        spec(Arch::Vgg { config: VggConfig::Vgg11, width_div: 32, pool: 7 }, 1, 32, 36, 3),
        spec(Arch::Vgg { config: VggConfig::Vgg13, width_div: 64, pool: 1 }, 3, 37, 33, 2),
    ]
}

fn backbone(spec: &BackboneSpec, seed: u64) -> Backbone {
    // Random BN statistics and affine parameters, so eval-mode BN is not the identity.
    let bb = Backbone::init(spec.clone(), seed, &Device::Cpu).unwrap();
    let mut rng = SeededRng::new(seed + 100);
    let mut params = bb.params().clone();
    for (k, t) in params.iter_mut() {
        let n = t.elem_count();
        let v = if k.ends_with("running_var") || (k.ends_with(".weight") && t.rank() == 1 && !k.contains("classifier") && k != "fc.weight") {
            rng.uniform_vec(n, 0.5, 1.5)
        } else if k.ends_with("running_mean") || (k.ends_with(".bias") && t.rank() == 1) {
            rng.normal_vec(n, 0.2)
        } else {
            continue;
        };
        *t = Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap();
    }
    Backbone::from_params(spec.clone(), params, &Device::Cpu).unwrap()
}

fn images(spec: &BackboneSpec, n: usize, seed: u64) -> Tensor {
    let (c, h, w) = spec.input.shape();
    SeededRng::new(seed).uniform((n, c, h, w), 0.0, 1.0, &Device::Cpu).unwrap()
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn taps_declare_the_real_output_shapes_for_every_architecture() {
    for s in small_specs() {
        let bb = backbone(&s, 1);
        let taps: Vec<String> = bb.taps().iter().map(|t| t.name.clone()).collect();
        let names: Vec<&str> = taps.iter().map(String::as_str).collect();
        let x = images(&s, 2, 2);
        let out = bb.run(&x, None, "logits", &names, &NoHooks).unwrap();
        for t in bb.taps() {
            let mut want = vec![2];
            want.extend(bb.tap_shape(&t.name).unwrap());
            assert_eq!(out.taps[&t.name].dims(), want.as_slice(), "{}: tap {}", s.id(), t.name);
            if want.len() == 4 {
                assert_eq!((want[1], (want[2], want[3])), (t.channels, t.hw), "{}: {}", s.id(), t.name);
            } else {
                assert_eq!(want[1], t.channels, "{}: {}", s.id(), t.name);
            }
        }
        assert_eq!(out.output.dims(), &[2, s.num_classes]);
        for required in ["pool", "logits"] {
            assert!(taps.iter().any(|t| t == required), "{}: no '{required}' tap in {taps:?}", s.id());
        }
        // Reductions are products of strides: powers of two that never decrease.
        let red: Vec<usize> = bb.taps().iter().map(|t| t.reduction).collect();
        assert!(red.windows(2).all(|w| w[0] <= w[1]) && red.iter().all(|r| r.is_power_of_two()), "{}: {red:?}", s.id());
    }
}

#[test]
fn tap_names_follow_the_documented_scheme() {
    let taps = |a: Arch, h: usize| -> Vec<String> {
        Backbone::describe(&spec(a, 3, h, h, 10)).unwrap().0.into_iter().map(|u| u.tap).collect()
    };
    let r18 = taps(Arch::Resnet { depth: 18, width: 64 }, 224);
    assert_eq!(&r18[..4], ["stem", "stem.maxpool", "stage1.block0", "stage1.block1"]);
    assert_eq!(&r18[r18.len() - 3..], ["stage4.block1", "pool", "logits"]);
    let wrn = taps(Arch::Wrn { depth: 16, widen: 4 }, 32);
    assert_eq!(wrn, ["stem", "stage1.block0", "stage1.block1", "stage2.block0", "stage2.block1", "stage3.block0", "stage3.block1", "norm", "pool", "logits"]);
    let mb = taps(Arch::Mobilenetv2 { width_mult: 1.0 }, 224);
    assert_eq!(mb.len(), 1 + 17 + 3);
    assert_eq!(&mb[mb.len() - 4..], ["stage7.block0", "conv_head", "pool", "logits"]);
    let vgg = taps(Arch::Vgg { config: VggConfig::Vgg11, width_div: 1, pool: 7 }, 224);
    assert_eq!(&vgg[..3], ["stage1.conv0", "stage1.pool", "stage2.conv0"]);
    assert_eq!(&vgg[vgg.len() - 5..], ["stage5.pool", "avgpool", "fc1", "pool", "logits"]);
}

#[test]
fn the_structure_is_a_well_formed_graph_consistent_with_taps_params_and_flops() {
    for s in small_specs() {
        let bb = backbone(&s, 3);
        let layers = bb.structure();
        assert_eq!(layers[0].kind, LayerKind::Input);
        assert_eq!(layers[0].output_shape, vec![s.input.channels, s.input.height, s.input.width]);
        let mut params_seen = BTreeSet::new();
        for (i, l) in layers.iter().enumerate().skip(1) {
            assert!(!l.inputs.is_empty() && l.inputs.iter().all(|&j| j < i), "{}: {} reads {:?}", s.id(), l.name, l.inputs);
            let shapes: Vec<Vec<usize>> = l.inputs.iter().map(|&j| layers[j].output_shape.clone()).collect();
            assert_eq!(shapes, l.input_shapes, "{}: {}", s.id(), l.name);
            if l.is_merge() {
                assert!(l.inputs.len() >= 2, "{}: merge {} has one input", s.id(), l.name);
                assert!(l.input_shapes.iter().all(|sh| *sh == l.output_shape), "{}: {}", s.id(), l.name);
            } else {
                assert_eq!(l.inputs.len(), 1, "{}: {}", s.id(), l.name);
            }
            for (p, shape) in &l.params {
                assert!(params_seen.insert(p.clone()), "{}: parameter {p} read by two layers", s.id());
                assert_eq!(bb.param(p).unwrap().dims(), shape.as_slice(), "{}: {p}", s.id());
            }
        }
        // Every parameter belongs to exactly one layer.
        let all: BTreeSet<String> = bb.params().keys().cloned().collect();
        assert_eq!(params_seen, all, "{}", s.id());
        // The last layer of each tap's unit has the tap's shape.
        for t in bb.taps() {
            let last = layers.iter().rev().find(|l| l.tap == t.name).unwrap();
            assert_eq!(last.output_shape, bb.tap_shape(&t.name).unwrap(), "{}: {}", s.id(), t.name);
            assert_eq!(last.reduction, t.reduction, "{}: {}", s.id(), t.name);
        }
        assert_eq!(count_params(layers), bb.num_params(), "{}", s.id());
        assert_eq!(count_flops(layers), bb.flops_per_image(), "{}", s.id());
        // Per-tap FLOPs add up to the total.
        let taps = bb.taps();
        let mut sum = 0;
        let mut from: Option<&str> = None;
        for t in &taps {
            sum += bb.flops_between(from, &t.name).unwrap();
            from = Some(&t.name);
        }
        assert_eq!(sum, bb.flops_per_image(), "{}", s.id());
        // Conv listing: each conv's input is the output of the layer it reads.
        for c in bb.convs() {
            let l = layers.iter().find(|l| l.name == c.conv.name).unwrap();
            assert_eq!((l.input_shapes[0][1], l.input_shapes[0][2]), c.input_hw);
            assert_eq!(l.input_shapes[0][0], c.conv.in_channels);
        }
        assert_eq!(bb.bn_names().len(), layers.iter().filter(|l| l.kind == LayerKind::BatchNorm).count());
    }
}

#[test]
fn shortcut_convs_read_the_right_tensor() {
    // torchvision resnet: the downsample reads the block input (the previous block's output).
    let bb = Backbone::init(spec(Arch::Resnet { depth: 50, width: 4 }, 3, 64, 64, 2), 0, &Device::Cpu).unwrap();
    let l = bb.structure();
    let ds = l.iter().find(|x| x.name == "layer2.0.downsample.0").unwrap();
    assert_eq!(l[ds.inputs[0]].name, "stage1.block2.add.relu");
    assert_eq!(ds.input_shapes[0], vec![16, 16, 16]);
    let add = l.iter().find(|x| x.name == "stage2.block0.add").unwrap();
    let names: Vec<&str> = add.inputs.iter().map(|&i| l[i].name.as_str()).collect();
    assert_eq!(names, ["layer2.0.bn3", "layer2.0.downsample.1"]);
    // Pre-activation WRN: the 1x1 shortcut reads relu(bn1(x)); identity shortcuts read x.
    let bb = Backbone::init(spec(Arch::Wrn { depth: 16, widen: 2 }, 3, 16, 16, 2), 0, &Device::Cpu).unwrap();
    let l = bb.structure();
    let sc = l.iter().find(|x| x.name == "block2.layer.0.convShortcut").unwrap();
    assert_eq!(l[sc.inputs[0]].name, "block2.layer.0.bn1.relu");
    let add = l.iter().find(|x| x.name == "stage2.block1.add").unwrap();
    let names: Vec<&str> = add.inputs.iter().map(|&i| l[i].name.as_str()).collect();
    assert_eq!(names, ["block2.layer.1.conv2", "stage2.block0.add"]);
    let convs = bb.convs();
    let c = convs.iter().find(|c| c.conv.name == "block2.layer.0.convShortcut").unwrap();
    assert_eq!((c.input_hw, c.bn.clone()), ((16, 16), None));
    let c = convs.iter().find(|c| c.conv.name == "block2.layer.0.conv1").unwrap();
    assert_eq!(c.bn.as_deref(), Some("block2.layer.0.bn2"));
}

#[test]
fn params_and_flops_match_hand_computations() {
    // WRN-10-1 on 1x8x8, 10 classes. MACs per conv: out_c·oh·ow·in_c·k².
    // stem 16·64·1·9 = 9216; stage1 2 × 16·64·16·9 = 294912;
    // stage2 16→32 s2: 32·16·16·9 + 32·16·32·9 + shortcut 32·16·16 = 229376;
    // stage3 32→64 s2: 64·4·32·9 + 64·4·64·9 + 64·4·32 = 229376; fc 640.
    let s = spec(Arch::Wrn { depth: 10, widen: 1 }, 1, 8, 8, 10);
    let (_, layers) = Backbone::describe(&s).unwrap();
    assert_eq!(count_flops(&layers), 2 * (9216 + 294912 + 229376 + 229376 + 640));
    // conv1 144; stage1 bn 32 + 2304 + bn 32 + 2304; stage2 bn 32 + 4608 + bn 64 + 9216 + 512;
    // stage3 bn 64 + 18432 + bn 128 + 36864 + 2048; final bn 128; fc 650.
    assert_eq!(count_params(&layers), 144 + 4672 + 14432 + 57536 + 128 + 650);

    // resnet18 at width 2 on 1x32x32: stem 2·16·16·49 = 25088, then 8x8, 4x4, 2x2, 1x1 maps.
    // layer1: 4 convs 2·64·2·9; layers 2-4: conv1 (s2) 1152 + conv2 2304 + ds 128 + 2 × 2304.
    let s = spec(Arch::Resnet { depth: 18, width: 2 }, 1, 32, 32, 10);
    let (_, layers) = Backbone::describe(&s).unwrap();
    assert_eq!(count_flops(&layers), 2 * (25088 + 9216 + 3 * 8192 + 160));
    // stem 98 + bn 4; layer1 4·36 + 4 bn·4; layer2 72+144+8+144+144 + 5 bn·8;
    // layer3 288+576+32+576+576 + 5·16; layer4 1152+2304+128+2304+2304 + 5·32; fc 170.
    assert_eq!(count_params(&layers), 102 + 160 + 552 + 2128 + 8352 + 170);
    let bb = Backbone::init(s, 0, &Device::Cpu).unwrap();
    assert_eq!(bb.num_params(), 11464);
    assert_eq!(bb.flops_per_image(), 118080);
}

#[test]
fn full_size_models_have_torchvisions_published_sizes() {
    // Parameter counts and GMACs at 3x224x224 with 1000 classes as torchvision documents them
    // (its "GFLOPS" column counts multiply-accumulates); graft's FLOPs are 2 × MACs.
    let cases = [
        (Arch::Resnet { depth: 18, width: 64 }, 11_689_512, 1.81),
        (Arch::Resnet { depth: 34, width: 64 }, 21_797_672, 3.66),
        (Arch::Resnet { depth: 50, width: 64 }, 25_557_032, 4.09),
        (Arch::Resnet { depth: 101, width: 64 }, 44_549_160, 7.80),
        (Arch::Mobilenetv2 { width_mult: 1.0 }, 3_504_872, 0.30),
        (Arch::Vgg { config: VggConfig::Vgg11, width_div: 1, pool: 7 }, 132_868_840, 7.61),
        (Arch::Vgg { config: VggConfig::Vgg16, width_div: 1, pool: 7 }, 138_365_992, 15.47),
    ];
    for (arch, params, gmacs) in cases {
        let s = spec(arch, 3, 224, 224, 1000);
        let (_, layers) = Backbone::describe(&s).unwrap();
        assert_eq!(count_params(&layers), params, "{}", s.id());
        let got = count_flops(&layers) as f64 / 2e9;
        assert!((got - gmacs).abs() < 0.006, "{}: {got:.3} GMACs, torchvision says {gmacs}", s.id());
    }
    // Wide ResNets on CIFAR (3x32x32, 10 classes): the paper's Table 1 sizes, 36.5M and 8.9M.
    for (depth, widen, millions) in [(28, 10, 36.5), (40, 4, 8.9)] {
        let (_, layers) = Backbone::describe(&spec(Arch::Wrn { depth, widen }, 3, 32, 32, 10)).unwrap();
        let got = count_params(&layers) as f64 / 1e6;
        assert!((got - millions).abs() < 0.05, "wrn-{depth}-{widen}: {got:.2}M");
    }
}

#[test]
fn running_from_each_tap_equals_the_full_forward() {
    for s in small_specs() {
        let bb = backbone(&s, 4);
        let x = images(&s, 2, 5);
        let full = bb.forward(&x).unwrap();
        let taps: Vec<String> = bb.taps().iter().map(|t| t.name.clone()).collect();
        for t in &taps[..taps.len() - 1] {
            let mid = bb.run(&x, None, t, &[], &NoHooks).unwrap().output;
            let rest = bb.run(&mid, Some(t), "logits", &[], &NoHooks).unwrap().output;
            assert!(max_abs(&rest, &full) < 1e-5, "{}: from {t}", s.id());
        }
    }
}

struct ZeroOne(String);
impl Hooks for ZeroOne {
    fn param(&self, name: &str, frozen: &Tensor) -> graft_core::Result<Option<Tensor>> {
        Ok((name == self.0).then(|| frozen.zeros_like()).transpose()?)
    }
}

struct Doubling(String);
impl Hooks for Doubling {
    fn tap_output(&self, tap: &str, x: Tensor) -> graft_core::Result<Tensor> {
        if tap == self.0 {
            Ok((x * 2.0)?)
        } else {
            Ok(x)
        }
    }
}

#[test]
fn every_hook_reaches_every_architecture() {
    for s in small_specs() {
        let bb = backbone(&s, 6);
        let x = images(&s, 3, 7);
        let base = bb.forward(&x).unwrap();
        // A weight override on every conv changes the logits.
        for c in bb.convs() {
            let y = bb.run(&x, None, "logits", &[], &ZeroOne(c.conv.weight_name())).unwrap().output;
            assert!(max_abs(&y, &base) > 0.0, "{}: overriding {} changed nothing", s.id(), c.conv.name);
        }
        // A tap injection changes what later units see.
        let mid = &bb.taps()[bb.taps().len() / 2].name;
        let y = bb.run(&x, None, "logits", &[], &Doubling(mid.clone())).unwrap().output;
        assert!(max_abs(&y, &base) > 0.0, "{}: tap hook at {mid}", s.id());
        // Training every parameter: every BN (standalone ones too) uses batch statistics and
        // reports them, and every trainable tensor gets a gradient.
        let mut tuned = TunedBackbone::new(&bb, "t.", |_| true).unwrap();
        assert_eq!(tuned.tuned_bns().len(), bb.bn_names().len(), "{}", s.id());
        let logits = tuned.forward(&x, None, "logits", true).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &Tensor::new(&[0u32, 1, 0], &Device::Cpu).unwrap()).unwrap();
        let grads = loss.backward().unwrap();
        for v in tuned.vars().vars() {
            let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{}: a variable has no gradient", s.id()));
            assert!(g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().is_finite());
        }
        let names = tuned.vars().names();
        let with_grad = tuned.vars().vars().iter().filter(|v| {
            grads.get(v.as_tensor()).is_some_and(|g| g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0)
        }).count();
        assert_eq!(with_grad, names.len(), "{}: some parameters get a zero gradient", s.id());
        tuned.apply_bn_stats().unwrap();
        let merged = tuned.merged().unwrap();
        let changed = bb.bn_names().iter().all(|bn| {
            let k = format!("{bn}.running_mean");
            max_abs(merged.param(&k).unwrap(), bb.param(&k).unwrap()) > 0.0
        });
        assert!(changed, "{}: running statistics of some BN did not move", s.id());
    }
}

#[test]
fn head_params_name_the_source_classifier() {
    let head = |a: Arch| {
        let bb = Backbone::init(spec(a, 3, 32, 32, 4), 0, &Device::Cpu).unwrap();
        bb.head_params()
    };
    assert_eq!(head(Arch::Resnet { depth: 18, width: 4 }), ["fc.weight", "fc.bias"]);
    assert_eq!(head(Arch::Wrn { depth: 10, widen: 1 }), ["fc.weight", "fc.bias"]);
    assert_eq!(head(Arch::Mobilenetv2 { width_mult: 0.25 }), ["classifier.1.weight", "classifier.1.bias"]);
    assert_eq!(head(Arch::Vgg { config: VggConfig::Vgg11, width_div: 64, pool: 1 }), ["classifier.6.weight", "classifier.6.bias"]);
}

#[test]
fn init_save_load_gives_identical_logits() {
    let dir = tempfile::tempdir().unwrap();
    for s in small_specs() {
        let bb = backbone(&s, 8);
        let x = images(&s, 2, 9);
        let src = Source::new(bb.clone(), Provenance::default()).unwrap();
        let path = dir.path().join(format!("{}.safetensors", s.id()));
        src.save(&path).unwrap();
        let back = Source::load(&path, &Device::Cpu).unwrap();
        assert_eq!(back.hash, src.hash, "{}", s.id());
        assert_eq!(back.backbone.spec(), &s);
        assert_eq!(max_abs(&back.backbone.forward(&x).unwrap(), &bb.forward(&x).unwrap()), 0.0, "{}", s.id());
    }
}

#[test]
fn specs_round_trip_through_json_and_bad_ones_are_explained() {
    for s in small_specs() {
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<BackboneSpec>(&j).unwrap(), s);
    }
    let arch: Arch = serde_json::from_str(r#"{"name": "resnet", "depth": 50}"#).unwrap();
    assert_eq!(arch, Arch::Resnet { depth: 50, width: 64 });
    let arch: Arch = serde_json::from_str(r#"{"name": "vgg", "config": "vgg16"}"#).unwrap();
    assert_eq!(arch, Arch::Vgg { config: VggConfig::Vgg16, width_div: 1, pool: 7 });
    let bad = |a: Arch, h: usize, want: &[&str]| {
        let e = spec(a, 3, h, h, 2).validate().unwrap_err();
        assert!(matches!(e, GraftError::Backbone(_)), "{e:?}");
        let m = e.to_string();
        for w in want {
            assert!(m.contains(w), "'{w}' missing from: {m}");
        }
    };
    bad(Arch::Resnet { depth: 20, width: 64 }, 64, &["resnet depth", "18, 34, 50", "20"]);
    bad(Arch::Wrn { depth: 12, widen: 1 }, 32, &["6n+4", "12"]);
    bad(Arch::Wrn { depth: 16, widen: 0 }, 32, &["widen"]);
    bad(Arch::Mobilenetv2 { width_mult: 0.0 }, 32, &["width_mult"]);
    bad(Arch::Vgg { config: VggConfig::Vgg11, width_div: 3, pool: 7 }, 32, &["width_div", "power of two"]);
    // Too small an input names the layer and the size.
    bad(Arch::Vgg { config: VggConfig::Vgg11, width_div: 1, pool: 7 }, 16, &["vgg11-bn", "3x16x16", "too small", "features.28", "stage5.pool"]);
    assert!(spec(Arch::Vgg { config: VggConfig::Vgg11, width_div: 1, pool: 7 }, 3, 32, 32, 2).validate().is_ok());
    assert!(spec(Arch::Resnet { depth: 18, width: 64 }, 3, 1, 1, 2).validate().is_ok(), "padding keeps any size >= 1 valid");
    let e = serde_json::from_str::<Arch>(r#"{"name": "resnet", "depth": 18, "widen": 2}"#).unwrap_err().to_string();
    assert!(e.contains("widen"), "{e}");
}

#[test]
fn max_pool_matches_a_naive_reference_with_inf_padding_and_has_a_gradient() {
    let mut rng = SeededRng::new(11);
    let x = rng.normal((2, 3, 7, 6), 1.0, &Device::Cpu).unwrap();
    for (k, st, p) in [(3, 2, 1), (2, 2, 0), (3, 1, 1), (3, 3, 0)] {
        let y = max_pool2d(&x, k, st, p).unwrap();
        let data: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let (oh, ow) = ((7 + 2 * p - k) / st + 1, (6 + 2 * p - k) / st + 1);
        assert_eq!(y.dims(), &[2, 3, oh, ow]);
        let got: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        let mut i = 0;
        for nc in 0..6 {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut m = f32::NEG_INFINITY;
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix) = ((oy * st + ky) as isize - p as isize, (ox * st + kx) as isize - p as isize);
                            if iy >= 0 && ix >= 0 && iy < 7 && ix < 6 {
                                m = m.max(data[nc * 42 + iy as usize * 6 + ix as usize]);
                            }
                        }
                    }
                    assert_eq!(got[i], m, "k{k} s{st} p{p}");
                    i += 1;
                }
            }
        }
        // Gradient of the sum: one unit per output, routed to its (unique) maximum.
        let v = candle_core::Var::from_tensor(&x).unwrap();
        let g = max_pool2d(v.as_tensor(), k, st, p).unwrap().sum_all().unwrap().backward().unwrap();
        let gsum = g.get(v.as_tensor()).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!((gsum - (6 * oh * ow) as f32).abs() < 1e-4, "k{k} s{st} p{p}: {gsum}");
    }
    assert!(max_pool2d(&x, 3, 2, 2).is_err(), "padding over half the window is rejected");
}

#[test]
fn adaptive_avg_pool_uses_pytorchs_bins() {
    let x = Tensor::arange(0f32, 35.0, &Device::Cpu).unwrap().reshape((1, 1, 5, 7)).unwrap();
    let y = adaptive_avg_pool2d(&x, (3, 2)).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // Rows: bins [0,2), [1,4), [3,5); columns: [0,4), [3,7).
    let cell = |r0: usize, r1: usize, c0: usize, c1: usize| {
        let mut s = 0.0;
        for r in r0..r1 {
            for c in c0..c1 {
                s += (r * 7 + c) as f32;
            }
        }
        s / ((r1 - r0) * (c1 - c0)) as f32
    };
    let want = [cell(0, 2, 0, 4), cell(0, 2, 3, 7), cell(1, 4, 0, 4), cell(1, 4, 3, 7), cell(3, 5, 0, 4), cell(3, 5, 3, 7)];
    for (g, w) in y.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{y:?} vs {want:?}");
    }
    // 1x1 → 7x7 replicates.
    let one = Tensor::new(&[[[[2.5f32]]]], &Device::Cpu).unwrap();
    let r = adaptive_avg_pool2d(&one, (7, 7)).unwrap();
    assert_eq!(r.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![2.5; 49]);
}

/// Hooks that replace every parameter by `base + t·dir`.
struct Shifted<'a> {
    vars: &'a std::collections::BTreeMap<String, candle_core::Var>,
}
impl Hooks for Shifted<'_> {
    fn param(&self, name: &str, _frozen: &Tensor) -> graft_core::Result<Option<Tensor>> {
        Ok(self.vars.get(name).map(|v| v.as_tensor().clone()))
    }
}

#[test]
fn gradients_match_a_directional_finite_difference_for_every_architecture() {
    // Along the unit direction v = g/|g| of the backprop gradient g, the loss must change at the
    // rate |g|: central differences of L(θ + t·v) (a wrong gradient points elsewhere and gives
    // a smaller rate). BN runs in eval mode: with batch statistics over a handful of values
    // (1x1 maps, batch 4) the loss is too curved for finite differences; the train-mode BN
    // formula is checked in backbone_reference.rs.
    for s in small_specs() {
        let bb = backbone(&s, 12);
        let x = images(&s, 4, 13);
        let r = SeededRng::new(14).normal((4, s.num_classes), 1.0, &Device::Cpu).unwrap();
        let trainable: Vec<(String, Tensor)> =
            bb.params().iter().filter(|(k, _)| !graft_core::backbone::is_bn_buffer(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        let loss_along = |dirs: &[Tensor], t: f64| -> (f64, Vec<Tensor>) {
            let vars: std::collections::BTreeMap<String, candle_core::Var> = trainable
                .iter()
                .zip(dirs)
                .map(|((k, v), d)| (k.clone(), candle_core::Var::from_tensor(&(v + (d * t).unwrap()).unwrap()).unwrap()))
                .collect();
            let y = bb.run(&x, None, "logits", &[], &Shifted { vars: &vars }).unwrap().output;
            let loss = (y * &r).unwrap().sum_all().unwrap();
            let value = loss.to_scalar::<f32>().unwrap() as f64;
            if t != 0.0 {
                return (value, vec![]);
            }
            let grads = loss.backward().unwrap();
            let g = trainable
                .iter()
                .map(|(k, _)| grads.get(vars[k].as_tensor()).unwrap_or_else(|| panic!("{}: no gradient for {k}", s.id())).clone())
                .collect();
            (value, g)
        };
        let zeros: Vec<Tensor> = trainable.iter().map(|(_, v)| v.zeros_like().unwrap()).collect();
        let (_, g) = loss_along(&zeros, 0.0);
        let norm = g.iter().map(|t| t.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64).sum::<f64>().sqrt();
        let dirs: Vec<Tensor> = g.iter().map(|t| (t / norm).unwrap()).collect();
        let eps = 1e-4;
        let numeric = (loss_along(&dirs, eps).0 - loss_along(&dirs, -eps).0) / (2.0 * eps);
        let rel = (numeric - norm).abs() / norm;
        eprintln!("{}: |g| = {norm:.4}, finite difference {numeric:.4}", s.id());
        assert!(rel < 1e-2, "{}: |g| = {norm}, finite difference along g/|g| = {numeric} (rel {rel:.2e})", s.id());
    }
}

#[test]
fn architecture_ids_parse_back() {
    for s in small_specs() {
        let id = s.arch.id();
        assert_eq!(id.parse::<Arch>().unwrap(), s.arch, "{id}");
    }
    for id in ["resnet18", "resnet50-w8", "wrn-40-4", "mobilenetv2-1.0", "vgg16-bn", "vgg11-bn-d16-p1", "resnet-cifar-20-w16"] {
        assert_eq!(id.parse::<Arch>().unwrap().id(), id);
    }
    for bad in ["resnet19", "vgg11", "wrn-16", "alexnet", "mobilenetv2-x"] {
        let e = bad.parse::<Arch>().unwrap_err().to_string();
        assert!(e.contains(bad) || e.contains("resnet depth"), "{bad}: {e}");
    }
}
