//! Criterion benchmark of graft's CPU conv kernel against candle's conv, forward and backward.
//!
//! Throughput is reported in "elements" = FLOPs (2 × MACs), so criterion's `Gelem/s` reads as
//! GFLOP/s. Backward counts both gradients (input and weight): 2 × the forward FLOPs.
//! Set `GRAFT_BENCH_CANDLE=0` to skip candle's (slow) side.

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use graft_core::kernels::{conv2d, conv2d_input_grad, conv2d_weight_grad};
use std::time::Duration;

struct Case {
    name: &'static str,
    x: (usize, usize, usize, usize),
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    /// Whether to time candle's backward too (very slow on big shapes).
    candle_bwd: bool,
}

/// Candle's own conv backward, as its autograd runs it (input grad via conv_transpose2d,
/// weight grad via a conv of the transposed tensors).
fn candle_bwd(x: &Tensor, w: &Tensor, dy: &Tensor, stride: usize, padding: usize) -> (Tensor, Tensor) {
    let out_size = (dy.dim(2).unwrap() - 1) * stride + (w.dim(2).unwrap() - 1) + 1 - 2 * padding;
    let out_padding = x.dim(2).unwrap() - out_size;
    let dx = dy.conv_transpose2d(w, padding, out_padding, stride, 1).unwrap();
    let dw = x
        .transpose(0, 1)
        .unwrap()
        .conv2d(&dy.transpose(0, 1).unwrap(), padding, 1, stride, 1)
        .unwrap()
        .transpose(0, 1)
        .unwrap();
    let (k0, k1) = (w.dim(2).unwrap(), w.dim(3).unwrap());
    let dw = if dw.dim(2).unwrap() != k0 || dw.dim(3).unwrap() != k1 {
        dw.narrow(2, 0, k0).unwrap().narrow(3, 0, k1).unwrap()
    } else {
        dw
    };
    (dx, dw)
}

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let with_candle = std::env::var("GRAFT_BENCH_CANDLE").map(|v| v != "0").unwrap_or(true);
    let cases = [
        Case { name: "3x3_16-16_b128_32x32", x: (128, 16, 32, 32), cout: 16, k: 3, stride: 1, padding: 1, groups: 1, candle_bwd: true },
        Case { name: "3x3_64-64_b32_56x56", x: (32, 64, 56, 56), cout: 64, k: 3, stride: 1, padding: 1, groups: 1, candle_bwd: false },
        Case { name: "3x3s2_16-32_b128_32x32", x: (128, 16, 32, 32), cout: 32, k: 3, stride: 2, padding: 1, groups: 1, candle_bwd: true },
        Case { name: "1x1_64-256_b32_28x28", x: (32, 64, 28, 28), cout: 256, k: 1, stride: 1, padding: 0, groups: 1, candle_bwd: false },
        Case { name: "dw3x3_96_b32_28x28", x: (32, 96, 28, 28), cout: 96, k: 3, stride: 1, padding: 1, groups: 96, candle_bwd: false },
    ];
    for case in &cases {
        let (n, cin, h, wd) = case.x;
        let x = Tensor::randn(0f32, 1., case.x, &dev).unwrap();
        let w = Tensor::randn(0f32, 1., (case.cout, cin / case.groups, case.k, case.k), &dev).unwrap();
        let y = conv2d(&x, &w, case.stride, case.padding, case.groups).unwrap();
        let dy = Tensor::randn(0f32, 1., y.shape(), &dev).unwrap();
        let (_, _, ho, wo) = y.dims4().unwrap();
        let flops = 2 * n * case.cout * ho * wo * (cin / case.groups) * case.k * case.k;
        let _ = (h, wd);

        let mut g = c.benchmark_group(format!("conv_{}", case.name));
        g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
        g.throughput(Throughput::Elements(flops as u64));
        g.bench_function(BenchmarkId::new("fwd", "graft"), |b| b.iter(|| conv2d(&x, &w, case.stride, case.padding, case.groups).unwrap()));
        if with_candle {
            g.bench_function(BenchmarkId::new("fwd", "candle"), |b| b.iter(|| x.conv2d(&w, case.padding, case.stride, 1, case.groups).unwrap()));
        }
        g.throughput(Throughput::Elements(2 * flops as u64));
        g.bench_function(BenchmarkId::new("bwd", "graft"), |b| {
            b.iter(|| {
                let dx = conv2d_input_grad(&dy, &w, (h, wd), case.stride, case.padding, case.groups).unwrap();
                let dw = conv2d_weight_grad(&x, &dy, (case.k, case.k), case.stride, case.padding, case.groups).unwrap();
                (dx, dw)
            })
        });
        g.throughput(Throughput::Elements(flops as u64));
        g.bench_function(BenchmarkId::new("bwd_input", "graft"), |b| {
            b.iter(|| conv2d_input_grad(&dy, &w, (h, wd), case.stride, case.padding, case.groups).unwrap())
        });
        g.bench_function(BenchmarkId::new("bwd_weight", "graft"), |b| {
            b.iter(|| conv2d_weight_grad(&x, &dy, (case.k, case.k), case.stride, case.padding, case.groups).unwrap())
        });
        g.throughput(Throughput::Elements(2 * flops as u64));
        if with_candle && case.candle_bwd {
            g.bench_function(BenchmarkId::new("bwd", "candle"), |b| b.iter(|| candle_bwd(&x, &w, &dy, case.stride, case.padding)));
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
