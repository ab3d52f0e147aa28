//! Times individual candle ops on a typical activation (diagnostic).
use candle_core::{Device, Tensor, D};
use std::time::Instant;

fn time<F: FnMut() -> Tensor>(name: &str, mut f: F) {
    let _ = f();
    let s = Instant::now();
    for _ in 0..5 {
        let _ = f();
    }
    println!("{name:>28}: {:.2} ms", s.elapsed().as_secs_f64() * 1e3 / 5.0);
}

fn main() {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1., (128, 16, 32, 32), &dev).unwrap();
    let w = Tensor::randn(0f32, 1., (16, 16, 3, 3), &dev).unwrap();
    let s = Tensor::randn(0f32, 1., (1, 16, 1, 1), &dev).unwrap();
    time("conv2d 3x3 16-16", || x.conv2d(&w, 1, 1, 1, 1).unwrap());
    time("broadcast_mul (1,c,1,1)", || x.broadcast_mul(&s).unwrap());
    time("broadcast_add (1,c,1,1)", || x.broadcast_add(&s).unwrap());
    time("relu", || x.relu().unwrap());
    time("add", || (&x + &x).unwrap());
    time("transpose+contig", || x.transpose(0, 1).unwrap().contiguous().unwrap());
    time("mean over last dims", || x.mean(D::Minus1).unwrap().mean(D::Minus1).unwrap());
    let y = x.conv2d(&w, 1, 1, 1, 1).unwrap();
    time("conv_transpose2d (bwd-in)", || y.conv_transpose2d(&w, 1, 0, 1, 1).unwrap());
    let xt = x.transpose(0, 1).unwrap();
    let yt = y.transpose(0, 1).unwrap();
    time("conv2d wgrad", || xt.conv2d(&yt, 1, 0, 1, 1).unwrap());
}
