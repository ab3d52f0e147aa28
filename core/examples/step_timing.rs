//! Times forward and backward of a small resnet-cifar training step (diagnostic).
use candle_core::{Device, Tensor};
use graft_core::backbone::{Arch, BackboneSpec, InputSpec, TunedBackbone};
use graft_core::init::SeededRng;
use std::time::Instant;

fn main() {
    graft_core::kernels::tune_allocator();
    let dev = Device::Cpu;
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let (depth, width, hw, batch) = (args[0], args[1], args[2], args[3]);
    let spec = BackboneSpec { arch: Arch::ResnetCifar { depth, width }, input: InputSpec::new(1, hw, hw), num_classes: 10 };
    let b = graft_core::Backbone::init(spec, 0, &dev).unwrap();
    let mut t = TunedBackbone::new(&b, "", |_| true).unwrap();
    let x = SeededRng::new(0).uniform((batch, 1, hw, hw), 0.0, 1.0, &dev).unwrap();
    for _ in 0..2 {
        let _ = b.forward(&x).unwrap();
    }
    let n = 5;
    let s = Instant::now();
    for _ in 0..n {
        let _ = b.forward(&x).unwrap();
    }
    let f = s.elapsed().as_secs_f64() / n as f64;
    let s = Instant::now();
    let mut fw = 0.0;
    for _ in 0..n {
        let s2 = Instant::now();
        let y = t.forward(&x, None, "logits", true).unwrap();
        let l = y.sqr().unwrap().sum_all().unwrap();
        let _ = l.to_scalar::<f32>();
        fw += s2.elapsed().as_secs_f64();
        let _g = l.backward().unwrap();
    }
    let tr = s.elapsed().as_secs_f64() / n as f64;
    println!("eval fwd {:.1} ms ({:.0} img/s); train step {:.1} ms (fwd {:.1} ms) ({:.0} img/s); {:.2} MFLOP/img",
        f * 1e3, batch as f64 / f, tr * 1e3, fw / n as f64 * 1e3, batch as f64 / tr, b.flops_per_image() as f64 / 1e6);
    let _ = Tensor::zeros(1, candle_core::DType::F32, &dev);
}
