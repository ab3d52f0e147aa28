//! Times graft's conv kernels on one shape by CPU time as well as wall time (diagnostic; CPU
//! time stays meaningful on a busy machine when run with RAYON_NUM_THREADS=1).
//!
//! `cargo run --release -p graft-core --example conv_timing -- N CIN H W COUT K STRIDE PAD ITERS`
use candle_core::{Device, Tensor};
use graft_core::kernels::{conv2d, conv2d_input_grad, conv2d_weight_grad};
use std::time::Instant;

fn cpu_seconds() -> f64 {
    let mut ru = std::mem::MaybeUninit::<[i64; 18]>::uninit();
    // getrusage(RUSAGE_SELF): user time is the first timeval.
    extern "C" {
        fn getrusage(who: i32, usage: *mut [i64; 18]) -> i32;
    }
    unsafe {
        getrusage(0, ru.as_mut_ptr());
        let r = ru.assume_init();
        r[0] as f64 + r[1] as f64 * 1e-6 + r[2] as f64 + r[3] as f64 * 1e-6
    }
}

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let (n, cin, h, w, cout, k, s, p, iters) = (a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]);
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1., (n, cin, h, w), &dev).unwrap();
    let wt = Tensor::randn(0f32, 1., (cout, cin, k, k), &dev).unwrap();
    let y = conv2d(&x, &wt, s, p, 1).unwrap();
    let (_, _, ho, wo) = y.dims4().unwrap();
    let gflop = 2.0 * (n * cout * ho * wo * cin * k * k) as f64 / 1e9;
    let run = |name: &str, f: &dyn Fn() -> Tensor| {
        let _ = f();
        let (c0, t0) = (cpu_seconds(), Instant::now());
        for _ in 0..iters {
            let _ = f();
        }
        let (c, t) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
        println!("{name:>10}: {:6.1} GFLOP/s of CPU time, {:6.1} GFLOP/s wall", gflop * iters as f64 / c, gflop * iters as f64 / t);
    };
    run("fwd", &|| conv2d(&x, &wt, s, p, 1).unwrap());
    run("bwd_input", &|| conv2d_input_grad(&y, &wt, (h, w), s, p, 1).unwrap());
    run("bwd_weight", &|| conv2d_weight_grad(&x, &y, (k, k), s, p, 1).unwrap());
}
