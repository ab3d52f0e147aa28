//! The resnet-cifar backbone checked against a naive reference written in plain f64 loops from
//! the architecture's description (He et al. 2016, §4.2, torchvision names), not from the code:
//! forward (BN eval and train), tap shapes, running from a tap, FLOPs, conv listing, gradients
//! through hook-supplied variables (finite differences), frozen forward and error messages.

use candle_core::{DType, Device, Tensor, Var};
use graft_core::backbone::{Arch, BackboneSpec, ConvInfo, InputSpec, TapInfo};
use graft_core::init::SeededRng;
use graft_core::{Backbone, GraftError, Hooks, NoHooks, ParamMap};
use std::collections::HashMap;

const BN_EPS: f64 = 1e-5;

// ---------------------------------------------------------------------------------------------
// Naive reference
// ---------------------------------------------------------------------------------------------

/// An NCHW f64 tensor.
#[derive(Clone, Debug)]
struct T4 {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    d: Vec<f64>,
}

impl T4 {
    fn zeros(n: usize, c: usize, h: usize, w: usize) -> Self {
        Self { n, c, h, w, d: vec![0.0; n * c * h * w] }
    }
    fn idx(&self, n: usize, c: usize, y: usize, x: usize) -> usize {
        ((n * self.c + c) * self.h + y) * self.w + x
    }
    fn at(&self, n: usize, c: usize, y: usize, x: usize) -> f64 {
        self.d[self.idx(n, c, y, x)]
    }
    fn from_tensor(t: &Tensor) -> Self {
        let (n, c, h, w) = t.dims4().unwrap();
        let d = t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f64::from).collect();
        Self { n, c, h, w, d }
    }
    fn shape(&self) -> Vec<usize> {
        vec![self.n, self.c, self.h, self.w]
    }
}

/// Weight `(o, i, k, k)` as a flat f64 vector.
fn pv(params: &ParamMap, name: &str) -> Vec<f64> {
    let t = params.get(name).unwrap_or_else(|| panic!("reference needs parameter '{name}'"));
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f64::from).collect()
}

fn conv(x: &T4, w: &[f64], out_c: usize, k: usize, stride: usize, pad: usize) -> T4 {
    assert_eq!(w.len(), out_c * x.c * k * k, "reference conv weight size");
    let oh = (x.h + 2 * pad - k) / stride + 1;
    let ow = (x.w + 2 * pad - k) / stride + 1;
    let mut y = T4::zeros(x.n, out_c, oh, ow);
    for n in 0..x.n {
        for o in 0..out_c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = 0.0;
                    for i in 0..x.c {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * stride + ky) as isize - pad as isize;
                                let ix = (ox * stride + kx) as isize - pad as isize;
                                if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
                                    continue;
                                }
                                s += x.at(n, i, iy as usize, ix as usize) * w[((o * x.c + i) * k + ky) * k + kx];
                            }
                        }
                    }
                    let id = y.idx(n, o, oy, ox);
                    y.d[id] = s;
                }
            }
        }
    }
    y
}

/// Per-channel mean and biased variance over batch and space.
fn moments(x: &T4) -> (Vec<f64>, Vec<f64>) {
    let cnt = (x.n * x.h * x.w) as f64;
    let mut mean = vec![0.0; x.c];
    let mut var = vec![0.0; x.c];
    for c in 0..x.c {
        let mut s = 0.0;
        for n in 0..x.n {
            for y in 0..x.h {
                for xx in 0..x.w {
                    s += x.at(n, c, y, xx);
                }
            }
        }
        mean[c] = s / cnt;
        let mut v = 0.0;
        for n in 0..x.n {
            for y in 0..x.h {
                for xx in 0..x.w {
                    v += (x.at(n, c, y, xx) - mean[c]).powi(2);
                }
            }
        }
        var[c] = v / cnt;
    }
    (mean, var)
}

struct RefStats {
    bn: String,
    mean: Vec<f64>,
    var: Vec<f64>,
    count: usize,
}

/// BatchNorm `bn`: with running statistics, or with the batch's when `train`.
fn bn(x: &T4, params: &ParamMap, name: &str, train: bool, stats: &mut Vec<RefStats>) -> T4 {
    let g = pv(params, &format!("{name}.weight"));
    let b = pv(params, &format!("{name}.bias"));
    let (mean, var) = if train {
        let (m, v) = moments(x);
        stats.push(RefStats { bn: name.to_string(), mean: m.clone(), var: v.clone(), count: x.n * x.h * x.w });
        (m, v)
    } else {
        (pv(params, &format!("{name}.running_mean")), pv(params, &format!("{name}.running_var")))
    };
    let mut y = x.clone();
    for n in 0..x.n {
        for c in 0..x.c {
            for yy in 0..x.h {
                for xx in 0..x.w {
                    let id = x.idx(n, c, yy, xx);
                    y.d[id] = (x.d[id] - mean[c]) / (var[c] + BN_EPS).sqrt() * g[c] + b[c];
                }
            }
        }
    }
    y
}

/// ReLU; records which inputs were positive (the activation pattern) in `pattern`.
fn relu(mut x: T4, pattern: &mut Vec<bool>) -> T4 {
    pattern.extend(x.d.iter().map(|v| *v > 0.0));
    x.d.iter_mut().for_each(|v| *v = v.max(0.0));
    x
}

fn add(a: &T4, b: &T4) -> T4 {
    assert_eq!(a.shape(), b.shape(), "reference residual add");
    let mut y = a.clone();
    y.d.iter_mut().zip(&b.d).for_each(|(p, q)| *p += q);
    y
}

/// One conv of the reference architecture.
#[derive(Clone, Debug, PartialEq)]
struct RefConv {
    name: String,
    in_c: usize,
    out_c: usize,
    k: usize,
    stride: usize,
    pad: usize,
    bn: String,
    tap: String,
    input_hw: (usize, usize),
}

/// One residual block of the reference architecture.
struct RefBlock {
    tap: String,
    prefix: String,
    in_c: usize,
    out_c: usize,
    stride: usize,
}

struct RefNet {
    depth: usize,
    width: usize,
    channels: usize,
    h: usize,
    w: usize,
    classes: usize,
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl RefNet {
    fn spec(&self) -> BackboneSpec {
        BackboneSpec {
            arch: Arch::ResnetCifar { depth: self.depth, width: self.width },
            input: InputSpec {
                channels: self.channels,
                height: self.h,
                width: self.w,
                mean: self.mean.clone(),
                std: self.std.clone(),
            },
            num_classes: self.classes,
        }
    }

    /// Three stages of (depth-2)/6 blocks; widths w, 2w, 4w; the first block of stages 2 and 3
    /// has stride 2; a 1x1 conv + BN shortcut wherever the shape changes.
    fn blocks(&self) -> Vec<RefBlock> {
        let n = (self.depth - 2) / 6;
        let mut out = Vec::new();
        let mut in_c = self.width;
        for s in 1..=3usize {
            let out_c = self.width * (1 << (s - 1));
            for b in 0..n {
                let stride = if s > 1 && b == 0 { 2 } else { 1 };
                out.push(RefBlock {
                    tap: format!("stage{s}.block{b}"),
                    prefix: format!("layer{s}.{b}"),
                    in_c,
                    out_c,
                    stride,
                });
                in_c = out_c;
            }
        }
        out
    }

    /// Every conv with its BN, tap and input size, in forward order (main path, then shortcut).
    fn convs(&self) -> Vec<RefConv> {
        let out_hw = |hw: (usize, usize), k: usize, s: usize, p: usize| ((hw.0 + 2 * p - k) / s + 1, (hw.1 + 2 * p - k) / s + 1);
        let mut v = vec![RefConv {
            name: "conv1".into(),
            in_c: self.channels,
            out_c: self.width,
            k: 3,
            stride: 1,
            pad: 1,
            bn: "bn1".into(),
            tap: "stem".into(),
            input_hw: (self.h, self.w),
        }];
        let mut hw = out_hw((self.h, self.w), 3, 1, 1);
        for b in self.blocks() {
            let p = &b.prefix;
            let mid = out_hw(hw, 3, b.stride, 1);
            v.push(RefConv {
                name: format!("{p}.conv1"),
                in_c: b.in_c,
                out_c: b.out_c,
                k: 3,
                stride: b.stride,
                pad: 1,
                bn: format!("{p}.bn1"),
                tap: b.tap.clone(),
                input_hw: hw,
            });
            v.push(RefConv {
                name: format!("{p}.conv2"),
                in_c: b.out_c,
                out_c: b.out_c,
                k: 3,
                stride: 1,
                pad: 1,
                bn: format!("{p}.bn2"),
                tap: b.tap.clone(),
                input_hw: mid,
            });
            if b.stride != 1 || b.in_c != b.out_c {
                v.push(RefConv {
                    name: format!("{p}.downsample.0"),
                    in_c: b.in_c,
                    out_c: b.out_c,
                    k: 1,
                    stride: b.stride,
                    pad: 0,
                    bn: format!("{p}.downsample.1"),
                    tap: b.tap.clone(),
                    input_hw: hw,
                });
            }
            hw = mid;
        }
        v
    }

    fn final_channels(&self) -> usize {
        self.width * 4
    }

    /// Taps in forward order with the real output shape per image.
    fn taps(&self) -> Vec<(String, usize, usize, (usize, usize))> {
        let mut out = Vec::new();
        let mut hw = (self.h, self.w);
        let mut red = 1;
        out.push(("stem".to_string(), self.width, red, hw));
        for b in self.blocks() {
            hw = ((hw.0 + 2 - 3) / b.stride + 1, (hw.1 + 2 - 3) / b.stride + 1);
            red *= b.stride;
            out.push((b.tap, b.out_c, red, hw));
        }
        out.push(("pool".to_string(), self.final_channels(), red, (1, 1)));
        out.push(("logits".to_string(), self.classes, red, (1, 1)));
        out
    }

    /// Analytic FLOPs (2 × MACs of convs and fc) of each tap's unit.
    fn flops_per_unit(&self) -> Vec<(String, u64)> {
        let mut per: Vec<(String, u64)> = self.taps().iter().map(|t| (t.0.clone(), 0)).collect();
        for c in self.convs() {
            let (oh, ow) = ((c.input_hw.0 + 2 * c.pad - c.k) / c.stride + 1, (c.input_hw.1 + 2 * c.pad - c.k) / c.stride + 1);
            let macs = (c.out_c * oh * ow * c.in_c * c.k * c.k) as u64;
            per.iter_mut().find(|(t, _)| *t == c.tap).unwrap().1 += 2 * macs;
        }
        per.iter_mut().find(|(t, _)| t == "logits").unwrap().1 += 2 * (self.final_channels() * self.classes) as u64;
        per
    }

    /// The naive forward pass from `[0, 1]` images.
    fn forward(&self, params: &ParamMap, images: &T4, train: bool) -> RefOut {
        let mut stats = Vec::new();
        let mut tap_shapes = Vec::new();
        // (x - mean) / std per channel.
        let mut x = images.clone();
        for n in 0..x.n {
            for c in 0..x.c {
                for yy in 0..x.h {
                    for xx in 0..x.w {
                        let id = x.idx(n, c, yy, xx);
                        x.d[id] = (x.d[id] - self.mean[c] as f64) / self.std[c] as f64;
                    }
                }
            }
        }
        let mut pattern = Vec::new();
        let stem = bn(&conv(&x, &pv(params, "conv1.weight"), self.width, 3, 1, 1), params, "bn1", train, &mut stats);
        let mut h = relu(stem, &mut pattern);
        tap_shapes.push(("stem".to_string(), h.shape()));
        for b in self.blocks() {
            let p = &b.prefix;
            let m = conv(&h, &pv(params, &format!("{p}.conv1.weight")), b.out_c, 3, b.stride, 1);
            let m = relu(bn(&m, params, &format!("{p}.bn1"), train, &mut stats), &mut pattern);
            let m = conv(&m, &pv(params, &format!("{p}.conv2.weight")), b.out_c, 3, 1, 1);
            let m = bn(&m, params, &format!("{p}.bn2"), train, &mut stats);
            let short = if b.stride != 1 || b.in_c != b.out_c {
                let s = conv(&h, &pv(params, &format!("{p}.downsample.0.weight")), b.out_c, 1, b.stride, 0);
                bn(&s, params, &format!("{p}.downsample.1"), train, &mut stats)
            } else {
                h.clone()
            };
            h = relu(add(&m, &short), &mut pattern);
            tap_shapes.push((b.tap.clone(), h.shape()));
        }
        // Global average pool.
        let pooled: Vec<Vec<f64>> = (0..h.n)
            .map(|n| {
                (0..h.c)
                    .map(|c| {
                        let mut s = 0.0;
                        for yy in 0..h.h {
                            for xx in 0..h.w {
                                s += h.at(n, c, yy, xx);
                            }
                        }
                        s / (h.h * h.w) as f64
                    })
                    .collect()
            })
            .collect();
        tap_shapes.push(("pool".to_string(), vec![h.n, h.c]));
        // fc: y = x Wᵀ + b.
        let w = pv(params, "fc.weight");
        let bias = pv(params, "fc.bias");
        let logits: Vec<Vec<f64>> = pooled
            .iter()
            .map(|row| {
                (0..self.classes)
                    .map(|o| bias[o] + (0..h.c).map(|i| w[o * h.c + i] * row[i]).sum::<f64>())
                    .collect()
            })
            .collect();
        tap_shapes.push(("logits".to_string(), vec![h.n, self.classes]));
        RefOut { logits, tap_shapes, stats, pattern }
    }
}

struct RefOut {
    logits: Vec<Vec<f64>>,
    tap_shapes: Vec<(String, Vec<usize>)>,
    stats: Vec<RefStats>,
    /// Sign of every ReLU input, in forward order.
    pattern: Vec<bool>,
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// depth 8, width 2, 2x6x6 input (odd sizes after stride 2: 6 → 3 → 2), 3 classes.
fn net_a() -> RefNet {
    RefNet { depth: 8, width: 2, channels: 2, h: 6, w: 6, classes: 3, mean: vec![0.3, 0.6], std: vec![0.2, 0.4] }
}

/// depth 14 (two blocks per stage: identity shortcuts inside stages 2 and 3), width 3, 1x8x8.
fn net_b() -> RefNet {
    RefNet { depth: 14, width: 3, channels: 1, h: 8, w: 8, classes: 3, mean: vec![0.45], std: vec![0.3] }
}

/// `Backbone::init` with every BN's weight, bias and running statistics replaced by random values.
fn backbone_with_random_bn(net: &RefNet, seed: u64) -> Backbone {
    let dev = Device::Cpu;
    let base = Backbone::init(net.spec(), seed, &dev).unwrap();
    let mut params = base.params().clone();
    let mut rng = SeededRng::new(seed + 1000);
    let bns: Vec<String> =
        params.keys().filter_map(|k| k.strip_suffix(".running_mean").map(str::to_string)).collect();
    assert!(!bns.is_empty());
    for b in bns {
        let c = params[&format!("{b}.weight")].dim(0).unwrap();
        params.insert(format!("{b}.weight"), rng.uniform(c, 0.5, 1.5, &dev).unwrap());
        params.insert(format!("{b}.bias"), rng.normal(c, 0.3, &dev).unwrap());
        params.insert(format!("{b}.running_mean"), rng.normal(c, 0.3, &dev).unwrap());
        params.insert(format!("{b}.running_var"), rng.uniform(c, 0.5, 2.0, &dev).unwrap());
    }
    Backbone::from_params(net.spec(), params, &dev).unwrap()
}

fn images(net: &RefNet, n: usize, seed: u64) -> Tensor {
    SeededRng::new(seed).uniform((n, net.channels, net.h, net.w), 0.0, 1.0, &Device::Cpu).unwrap()
}

/// BN in training mode everywhere, optional parameter substitutes.
struct Sub {
    map: HashMap<String, Tensor>,
    batch_stats: bool,
}

impl Hooks for Sub {
    fn param(&self, name: &str, _frozen: &Tensor) -> graft_core::Result<Option<Tensor>> {
        Ok(self.map.get(name).cloned())
    }
    fn bn_uses_batch_stats(&self, _bn: &str) -> bool {
        self.batch_stats
    }
}

fn assert_close_rel(actual: &[Vec<f32>], expected: &[Vec<f64>], rel: f64, what: &str) {
    let scale = expected.iter().flatten().fold(0f64, |m, v| m.max(v.abs())).max(1e-3);
    assert_eq!(actual.len(), expected.len(), "{what}: rows");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a.len(), e.len(), "{what}: row {i} length");
        for (j, (a, e)) in a.iter().zip(e).enumerate() {
            assert!(
                (*a as f64 - e).abs() <= rel * scale,
                "{what}: [{i}][{j}] = {a}, reference {e} (tolerance {} of max |logit| {scale})",
                rel
            );
        }
    }
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
}

// ---------------------------------------------------------------------------------------------
// (a) logits
// ---------------------------------------------------------------------------------------------

#[test]
fn logits_match_naive_reference_with_bn_in_eval_mode() {
    for (net, seed) in [(net_a(), 1u64), (net_b(), 2)] {
        let bb = backbone_with_random_bn(&net, seed);
        let x = images(&net, 3, seed + 7);
        let logits = bb.forward(&x).unwrap();
        let r = net.forward(bb.params(), &T4::from_tensor(&x), false);
        assert_close_rel(&logits.to_vec2::<f32>().unwrap(), &r.logits, 1e-4, &format!("{} eval", net.spec().id()));
    }
}

#[test]
fn logits_match_naive_reference_with_bn_in_train_mode() {
    for (net, seed) in [(net_a(), 3u64), (net_b(), 4)] {
        let bb = backbone_with_random_bn(&net, seed);
        let x = images(&net, 4, seed + 7);
        let hooks = Sub { map: HashMap::new(), batch_stats: true };
        let out = bb.run(&x, None, "logits", &[], &hooks).unwrap();
        let r = net.forward(bb.params(), &T4::from_tensor(&x), true);
        assert_close_rel(&out.output.to_vec2::<f32>().unwrap(), &r.logits, 1e-4, &format!("{} train", net.spec().id()));
        // The batch statistics reported for running-stat updates are those of the reference.
        assert_eq!(
            out.bn_stats.iter().map(|s| s.bn.clone()).collect::<Vec<_>>(),
            r.stats.iter().map(|s| s.bn.clone()).collect::<Vec<_>>(),
            "BN order"
        );
        for (s, rs) in out.bn_stats.iter().zip(&r.stats) {
            assert_eq!(s.count, rs.count, "{}: count", s.bn);
            for (a, e) in s.mean.to_vec1::<f32>().unwrap().iter().zip(&rs.mean) {
                assert!((*a as f64 - e).abs() < 1e-4 * (1.0 + e.abs()), "{}: mean {a} vs {e}", s.bn);
            }
            for (a, e) in s.var.to_vec1::<f32>().unwrap().iter().zip(&rs.var) {
                assert!((*a as f64 - e).abs() < 1e-4 * (1.0 + e.abs()), "{}: var {a} vs {e} (biased)", s.bn);
            }
        }
        // Training mode differs from evaluation mode here (random running stats), so the
        // comparison above really exercised batch statistics.
        let eval = bb.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        let diff = eval.iter().flatten().zip(out.output.to_vec2::<f32>().unwrap().iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff > 1e-3, "train and eval BN gave the same logits");
    }
}

// ---------------------------------------------------------------------------------------------
// (b) taps, (c) running from a tap
// ---------------------------------------------------------------------------------------------

#[test]
fn taps_declare_the_real_output_shapes() {
    for (net, seed) in [(net_a(), 5u64), (net_b(), 6)] {
        let bb = backbone_with_random_bn(&net, seed);
        let declared = bb.taps();
        let expected: Vec<TapInfo> = net
            .taps()
            .into_iter()
            .map(|(name, channels, reduction, hw)| TapInfo { name, channels, reduction, hw })
            .collect();
        assert_eq!(declared, expected, "{}: taps()", net.spec().id());

        let n = 2;
        let x = images(&net, n, seed);
        let names: Vec<String> = declared.iter().map(|t| t.name.clone()).collect();
        let collect: Vec<&str> = names.iter().map(String::as_str).collect();
        let out = bb.run(&x, None, "logits", &collect, &NoHooks).unwrap();
        assert_eq!(out.taps.len(), declared.len(), "every requested tap is returned");
        let r = net.forward(bb.params(), &T4::from_tensor(&x), false);
        for (t, (rname, rshape)) in declared.iter().zip(&r.tap_shapes) {
            assert_eq!(&t.name, rname);
            let real = out.taps[&t.name].dims().to_vec();
            let want = if t.name == "pool" || t.name == "logits" {
                vec![n, t.channels]
            } else {
                vec![n, t.channels, t.hw.0, t.hw.1]
            };
            assert_eq!(real, want, "tap '{}': real output vs taps()", t.name);
            assert_eq!(&real, rshape, "tap '{}': real output vs reference", t.name);
            assert_eq!(bb.tap(&t.name).unwrap(), *t);
        }
        // The last tap's output is the run's output.
        assert_eq!(bits(&out.taps["logits"]), bits(&out.output));
    }
}

#[test]
fn running_from_each_tap_equals_the_full_forward() {
    for (net, seed) in [(net_a(), 7u64), (net_b(), 8)] {
        let bb = backbone_with_random_bn(&net, seed);
        let x = images(&net, 3, seed);
        let full = bb.forward(&x).unwrap();
        let taps: Vec<String> = bb.taps().iter().map(|t| t.name.clone()).collect();
        for tap in &taps[..taps.len() - 1] {
            let h = bb.run(&x, None, tap, &[], &NoHooks).unwrap().output;
            let rest = bb.run(&h, Some(tap), "logits", &[], &NoHooks).unwrap().output;
            assert_eq!(bits(&rest), bits(&full), "{}: running from '{tap}'", net.spec().id());
            // features() in batches gives the same tap output.
            let f = bb.features(&x, tap, 2).unwrap();
            // Batches of another size may round differently (GEMM blocking): compare closely.
            let (f, h) = (f.flatten_all().unwrap().to_vec1::<f32>().unwrap(), h.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            let scale = h.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
            assert_eq!(f.len(), h.len());
            for (a, b) in f.iter().zip(&h) {
                assert!((a - b).abs() <= 1e-5 * scale, "features('{tap}') in batches of 2: {a} vs {b}");
            }
        }
        // Explicitly the case from the brief.
        let h = bb.run(&x, None, "stage2.block0", &["stage2.block0"], &NoHooks).unwrap();
        assert_eq!(bits(&h.output), bits(&h.taps["stage2.block0"]));
        let rest = bb.run(&h.output, Some("stage2.block0"), "logits", &["pool"], &NoHooks).unwrap();
        assert_eq!(bits(&rest.output), bits(&full));
        assert_eq!(rest.taps["pool"].dims(), &[3, net.final_channels()]);
    }
}

#[test]
fn tap_output_hook_replaces_what_later_units_see() {
    let net = net_a();
    let bb = backbone_with_random_bn(&net, 9);
    struct Zero;
    impl Hooks for Zero {
        fn tap_output(&self, tap: &str, x: Tensor) -> graft_core::Result<Tensor> {
            Ok(if tap == "stage3.block0" { x.zeros_like()? } else { x })
        }
    }
    let x = images(&net, 2, 9);
    let out = bb.run(&x, None, "logits", &["stage3.block0"], &Zero).unwrap();
    assert_eq!(out.taps["stage3.block0"].abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    // pool of zeros = 0, so the logits are the fc bias.
    let bias = bb.param("fc.bias").unwrap().to_vec1::<f32>().unwrap();
    for row in out.output.to_vec2::<f32>().unwrap() {
        assert_eq!(row, bias);
    }
}

// ---------------------------------------------------------------------------------------------
// (d) FLOPs
// ---------------------------------------------------------------------------------------------

#[test]
fn flops_match_an_independent_count() {
    // Hand count for net A (MACs): stem 2·36·2·9 = 1296; stage1 2·(2·36·2·9) = 2592;
    // stage2 4·9·2·9 + 4·9·4·9 + 4·9·2 = 2016; stage3 8·4·4·9 + 8·4·8·9 + 8·4·4 = 3584; fc 24.
    let a = backbone_with_random_bn(&net_a(), 10);
    assert_eq!(a.flops_per_image(), 2 * (1296 + 2592 + 2016 + 3584 + 24));

    for (net, seed) in [(net_a(), 10u64), (net_b(), 11)] {
        let bb = backbone_with_random_bn(&net, seed);
        let per = net.flops_per_unit();
        let total: u64 = per.iter().map(|p| p.1).sum();
        assert_eq!(bb.flops_per_image(), total, "{}", net.spec().id());
        for j in 0..per.len() {
            let to = per[j].0.as_str();
            let from_input: u64 = per[..=j].iter().map(|p| p.1).sum();
            assert_eq!(bb.flops_between(None, to).unwrap(), from_input, "input..{to}");
            for i in 0..j {
                let from = per[i].0.as_str();
                let want: u64 = per[i + 1..=j].iter().map(|p| p.1).sum();
                assert_eq!(bb.flops_between(Some(from), to).unwrap(), want, "{from}..{to}");
            }
        }
        // Running backwards is an error.
        let e = bb.flops_between(Some("stage3.block0"), "stem").unwrap_err().to_string();
        assert!(e.contains("stage3.block0") && e.contains("stem"), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// (e) gradients through hook-supplied variables vs finite differences
// ---------------------------------------------------------------------------------------------

fn weighted_sum(logits: &Tensor, r: &Tensor) -> Tensor {
    (logits * r).unwrap().sum_all().unwrap()
}

fn loss_f64(bb: &Backbone, x: &Tensor, r: &[Vec<f32>], map: HashMap<String, Tensor>, batch_stats: bool) -> f64 {
    let hooks = Sub { map, batch_stats };
    let l = bb.run(x, None, "logits", &[], &hooks).unwrap().output.to_vec2::<f32>().unwrap();
    l.iter().flatten().zip(r.iter().flatten()).map(|(a, b)| *a as f64 * *b as f64).sum()
}

fn check_gradients(batch_stats: bool) {
    let net = net_a();
    let bb = backbone_with_random_bn(&net, 12);
    let dev = Device::Cpu;
    let x = images(&net, 4, 13);
    let r = SeededRng::new(14).normal((4, 3), 1.0, &dev).unwrap();
    let r_rows = r.to_vec2::<f32>().unwrap();
    let names = ["layer2.0.conv1.weight", "layer1.0.bn2.weight", "conv1.weight", "layer3.0.downsample.1.weight"];

    let vars: Vec<(String, Var)> =
        names.iter().map(|n| (n.to_string(), Var::from_tensor(bb.param(n).unwrap()).unwrap())).collect();
    let map: HashMap<String, Tensor> = vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
    let out = bb.run(&x, None, "logits", &[], &Sub { map, batch_stats }).unwrap().output;
    assert!(out.track_op(), "a hook-supplied variable must put the logits in a graph");
    let grads = weighted_sum(&out, &r).backward().unwrap();

    for (name, var) in &vars {
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient reached '{name}'"));
        assert_eq!(g.dims(), var.dims());
        let ad = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let base = bb.param(name).unwrap();
        let shape = base.shape().clone();
        let flat = base.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let eps = 1e-3f32;
        let xt = T4::from_tensor(&x);
        let mut checked = 0;
        let mut fds = Vec::new();
        for j in 0..flat.len() {
            let mut plus = flat.clone();
            plus[j] += eps;
            let mut minus = flat.clone();
            minus[j] -= eps;
            let (plus, minus) = (Tensor::from_vec(plus, &shape, &dev).unwrap(), Tensor::from_vec(minus, &shape, &dev).unwrap());
            // A central difference across a ReLU kink is not a derivative: the reference says
            // whether any ReLU changes side between the two points, and such entries are skipped.
            let pattern = |t: &Tensor| {
                let mut p = bb.params().clone();
                p.insert(name.clone(), t.clone());
                net.forward(&p, &xt, batch_stats).pattern
            };
            let smooth = pattern(&plus) == pattern(&minus);
            let lp = loss_f64(&bb, &x, &r_rows, HashMap::from([(name.clone(), plus)]), batch_stats);
            let lm = loss_f64(&bb, &x, &r_rows, HashMap::from([(name.clone(), minus)]), batch_stats);
            fds.push(((lp - lm) / (2.0 * eps as f64), smooth));
        }
        let scale = fds.iter().fold(0f64, |m, v| m.max(v.0.abs()));
        assert!(scale > 1e-3, "'{name}': finite differences are all ~0 ({scale}); the check would be vacuous");
        for (j, &(f, smooth)) in fds.iter().enumerate() {
            if !smooth {
                continue;
            }
            checked += 1;
            let a = ad[j] as f64;
            assert!(
                (a - f).abs() <= 2e-2 * f.abs().max(0.1 * scale),
                "'{name}'[{j}] (batch stats {batch_stats}): autograd {a}, finite difference {f}"
            );
        }
        assert!(
            checked * 4 >= flat.len() * 3,
            "'{name}': only {checked} of {} entries had no ReLU kink within ±{eps}",
            flat.len()
        );
    }
}

#[test]
fn gradients_match_finite_differences_with_bn_in_eval_mode() {
    check_gradients(false);
}

#[test]
fn gradients_match_finite_differences_with_bn_in_train_mode() {
    check_gradients(true);
}

// ---------------------------------------------------------------------------------------------
// (f) frozen forward
// ---------------------------------------------------------------------------------------------

#[test]
fn frozen_forward_keeps_no_graph_and_is_deterministic() {
    let net = net_a();
    let dev = Device::Cpu;
    // Hand from_params variables: the backbone must detach them.
    let init = backbone_with_random_bn(&net, 15);
    let as_vars: ParamMap =
        init.params().iter().map(|(k, t)| (k.clone(), Var::from_tensor(t).unwrap().as_tensor().clone())).collect();
    assert!(as_vars.values().all(|t| t.is_variable()));
    let bb = Backbone::from_params(net.spec(), as_vars, &dev).unwrap();
    let x = images(&net, 3, 16);
    let a = bb.forward(&x).unwrap();
    for (k, t) in bb.params() {
        assert!(!t.is_variable() && !t.track_op(), "backbone parameter '{k}' is tracked by autograd");
    }
    assert!(!a.track_op(), "frozen forward output carries a graph");
    let f = bb.features(&x, "stage2.block0", 2).unwrap();
    assert!(!f.track_op(), "features() carries a graph");
    let b = bb.forward(&x).unwrap();
    assert_eq!(bits(&a), bits(&b), "same input twice gave different logits");
    // And it equals the backbone built from plain tensors.
    assert_eq!(bits(&a), bits(&init.forward(&x).unwrap()));
}

// ---------------------------------------------------------------------------------------------
// (g) errors
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_input_shape_names_expected_and_actual() {
    let net = net_a();
    let bb = backbone_with_random_bn(&net, 17);
    let dev = Device::Cpu;
    for bad in [vec![2usize, 1, 8, 8], vec![2, 2, 6], vec![2, 2, 6, 7]] {
        let x = Tensor::zeros(bad.as_slice(), DType::F32, &dev).unwrap();
        let e = bb.forward(&x).unwrap_err();
        assert!(matches!(e, GraftError::Backbone(_)), "{e:?}");
        let m = e.to_string();
        assert!(m.contains("(n, 2, 6, 6)"), "expected shape missing: {m}");
        assert!(m.contains(&format!("{bad:?}")), "actual shape missing: {m}");
    }
    // Running from a tap checks the tap's shape.
    let x = Tensor::zeros((2, 3, 3, 3), DType::F32, &dev).unwrap();
    let m = bb.run(&x, Some("stage2.block0"), "logits", &[], &NoHooks).unwrap_err().to_string();
    assert!(m.contains("stage2.block0") && m.contains("[4, 3, 3]") && m.contains("[2, 3, 3, 3]"), "{m}");
}

#[test]
fn unknown_tap_lists_available_taps() {
    let net = net_a();
    let bb = backbone_with_random_bn(&net, 18);
    let x = images(&net, 1, 18);
    let all: Vec<String> = bb.taps().iter().map(|t| t.name.clone()).collect();
    let errs = [
        bb.run(&x, None, "stage4.block0", &[], &NoHooks).unwrap_err(),
        bb.run(&x, Some("stem2"), "logits", &[], &NoHooks).unwrap_err(),
        bb.run(&x, None, "logits", &["layer1.0"], &NoHooks).unwrap_err(),
        bb.tap("fc").unwrap_err(),
        bb.flops_between(None, "nope").unwrap_err(),
    ];
    for e in errs {
        match &e {
            GraftError::UnknownTap { available, .. } => assert_eq!(available, &all),
            other => panic!("expected UnknownTap, got {other:?}"),
        }
        let m = e.to_string();
        for t in &all {
            assert!(m.contains(t.as_str()), "'{t}' not listed in: {m}");
        }
    }
    // A collected tap outside the run's range is an error, not silently dropped.
    let m = bb.run(&x, None, "stage1.block0", &["pool"], &NoHooks).unwrap_err().to_string();
    assert!(m.contains("pool"), "{m}");
    // Running backwards names both taps.
    let h = bb.run(&x, None, "stage3.block0", &[], &NoHooks).unwrap().output;
    let m = bb.run(&h, Some("stage3.block0"), "stem", &[], &NoHooks).unwrap_err().to_string();
    assert!(m.contains("stage3.block0") && m.contains("stem"), "{m}");
}

#[test]
fn invalid_specs_name_the_problem() {
    let dev = Device::Cpu;
    let spec = |f: &dyn Fn(&mut BackboneSpec)| {
        let mut s = net_a().spec();
        f(&mut s);
        s
    };
    let cases: Vec<(BackboneSpec, Vec<&str>)> = vec![
        (spec(&|s| s.arch = Arch::ResnetCifar { depth: 9, width: 2 }), vec!["depth", "9"]),
        (spec(&|s| s.arch = Arch::ResnetCifar { depth: 2, width: 2 }), vec!["depth", "2"]),
        (spec(&|s| s.arch = Arch::ResnetCifar { depth: 8, width: 0 }), vec!["width"]),
        (spec(&|s| s.input.mean = vec![0.5; 3]), vec!["mean", "2", "3"]),
        (spec(&|s| s.input.std = vec![0.5]), vec!["std", "2", "1"]),
        (spec(&|s| s.input.std = vec![0.5, 0.0]), vec!["std"]),
        (spec(&|s| s.input.height = 0), vec!["zero"]),
        (spec(&|s| s.num_classes = 0), vec!["num_classes"]),
    ];
    for (s, words) in cases {
        let e = match Backbone::init(s.clone(), 0, &dev) {
            Ok(_) => panic!("spec {s:?} was accepted"),
            Err(e) => e,
        };
        assert!(matches!(e, GraftError::Backbone(_)), "{e:?}");
        let m = e.to_string();
        for w in words {
            assert!(m.contains(w), "'{w}' missing from: {m}");
        }
        assert!(s.validate().is_err());
    }
    // Specs are strict JSON.
    let mut v = serde_json::to_value(net_a().spec()).unwrap();
    v["arch"]["widht"] = serde_json::json!(4);
    let e = serde_json::from_value::<BackboneSpec>(v).unwrap_err().to_string();
    assert!(e.contains("widht"), "{e}");
}

#[test]
fn from_params_lists_every_mismatch() {
    let net = net_a();
    let bb = backbone_with_random_bn(&net, 19);
    let dev = Device::Cpu;
    let mut p = bb.params().clone();
    p.remove("layer1.0.bn1.running_var");
    p.insert("layer2.0.conv2.weight".into(), Tensor::zeros((4, 4, 1, 1), DType::F32, &dev).unwrap());
    p.insert("fc.bias".into(), Tensor::zeros(3, DType::F64, &dev).unwrap());
    p.insert("head.weight".into(), Tensor::zeros(3, DType::F32, &dev).unwrap());
    let m = match Backbone::from_params(net.spec(), p, &dev) {
        Ok(_) => panic!("mismatched params were accepted"),
        Err(e) => e.to_string(),
    };
    for w in ["layer1.0.bn1.running_var", "layer2.0.conv2.weight", "[4, 4, 1, 1]", "[4, 4, 3, 3]", "fc.bias", "F64", "head.weight"] {
        assert!(m.contains(w), "'{w}' missing from: {m}");
    }
}

// ---------------------------------------------------------------------------------------------
// (h) convs
// ---------------------------------------------------------------------------------------------

#[test]
fn convs_list_every_conv_with_its_bn_and_input_size() {
    for (net, seed) in [(net_a(), 20u64), (net_b(), 21)] {
        let bb = backbone_with_random_bn(&net, seed);
        let got: Vec<RefConv> = bb
            .convs()
            .into_iter()
            .map(|ConvInfo { conv, bn, tap, input_hw }| {
                assert_eq!(conv.groups, 1, "{}", conv.name);
                assert!(!conv.bias, "{}", conv.name);
                RefConv {
                    name: conv.name,
                    in_c: conv.in_channels,
                    out_c: conv.out_channels,
                    k: conv.kernel,
                    stride: conv.stride,
                    pad: conv.padding,
                    bn: bn.expect("every resnet-cifar conv has a BN"),
                    tap,
                    input_hw,
                }
            })
            .collect();
        assert_eq!(got, net.convs(), "{}", net.spec().id());
        // Every conv weight in the parameters has its declared shape, and nothing is unlisted.
        let listed: Vec<String> = bb.convs().iter().map(|c| c.conv.weight_name()).collect();
        for c in bb.convs() {
            assert_eq!(bb.param(&c.conv.weight_name()).unwrap().dims(), &c.conv.weight_shape());
        }
        let conv_keys: Vec<&String> = bb
            .params()
            .keys()
            .filter(|k| k.ends_with(".weight") && bb.params()[*k].rank() == 4)
            .collect();
        assert_eq!(conv_keys.len(), listed.len());
        // num_params counts conv weights, BN affine and fc, not running statistics.
        let want: usize = net
            .convs()
            .iter()
            .map(|c| c.out_c * c.in_c * c.k * c.k + 2 * c.out_c)
            .sum::<usize>()
            + net.final_channels() * net.classes
            + net.classes;
        assert_eq!(bb.num_params(), want);
    }
}


// ---------------------------------------------------------------------------------------------
// Smaller contracts
// ---------------------------------------------------------------------------------------------

#[test]
fn features_of_no_images_have_the_taps_shape() {
    let net = net_a();
    let bb = backbone_with_random_bn(&net, 22);
    let none = Tensor::zeros((0, 2, 6, 6), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(bb.features(&none, "pool", 4).unwrap().dims(), &[0, 8]);
    assert_eq!(bb.features(&none, "logits", 4).unwrap().dims(), &[0, 3]);
}

#[test]
fn features_of_no_images_have_a_spatial_taps_shape() {
    let net = net_a();
    let bb = backbone_with_random_bn(&net, 22);
    let none = Tensor::zeros((0, 2, 6, 6), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(bb.features(&none, "stage2.block0", 4).unwrap().dims(), &[0, 4, 3, 3]);
}

#[test]
fn last_stage_input_tap_is_the_tap_before_stage3() {
    assert_eq!(backbone_with_random_bn(&net_a(), 23).last_stage_input_tap(), "stage2.block0");
    assert_eq!(backbone_with_random_bn(&net_b(), 23).last_stage_input_tap(), "stage2.block1");
}

#[test]
fn running_stats_update_like_pytorch() {
    let dev = Device::Cpu;
    let t = |v: &[f32]| Tensor::new(v, &dev).unwrap();
    let (m, v) = graft_core::backbone::updated_running_stats(&t(&[1.0, -2.0]), &t(&[1.0, 4.0]), &t(&[3.0, 0.0]), &t(&[2.0, 0.5]), 5).unwrap();
    let (m, v) = (m.to_vec1::<f32>().unwrap(), v.to_vec1::<f32>().unwrap());
    // running·0.9 + batch·0.1, the batch variance made unbiased (n/(n-1) = 5/4).
    let want_m = [0.9 * 1.0 + 0.1 * 3.0, 0.9 * -2.0 + 0.0];
    let want_v = [0.9 * 1.0 + 0.1 * 2.0 * 1.25, 0.9 * 4.0 + 0.1 * 0.5 * 1.25];
    for i in 0..2 {
        assert!((m[i] - want_m[i]).abs() < 1e-6, "mean {m:?} vs {want_m:?}");
        assert!((v[i] - want_v[i]).abs() < 1e-6, "var {v:?} vs {want_v:?}");
    }
}
