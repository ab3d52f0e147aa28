//! Helpers shared by the integration tests.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use graft_core::backbone::{Arch, InputSpec};
use graft_core::init::SeededRng;
use graft_core::{Backbone, BackboneSpec, ParamMap};

/// A spec for an architecture id on a `(c, h, w)` input with 10 classes.
pub fn spec(arch: &str, input: (usize, usize, usize)) -> BackboneSpec {
    let arch = arch.parse::<Arch>().unwrap_or_else(|e| panic!("{arch}: {e}"));
    BackboneSpec { arch, input: InputSpec::new(input.0, input.1, input.2), num_classes: 10 }
}

/// A freshly initialised backbone.
pub fn init(arch: &str, input: (usize, usize, usize), seed: u64) -> Backbone {
    Backbone::init(spec(arch, input), seed, &Device::Cpu).unwrap()
}

/// A backbone whose every tensor differs from its init, as a trained teacher's would: weights
/// and biases get N(0, 0.1²) noise, running means N(0, 0.1²), running variances U(0.5, 1.5).
pub fn trained_like(arch: &str, input: (usize, usize, usize), seed: u64) -> Backbone {
    let b = init(arch, input, seed);
    let mut rng = SeededRng::new(seed + 1000);
    let mut params = ParamMap::new();
    for (name, t) in b.params() {
        let n = t.elem_count();
        let v: Vec<f32> = if name.ends_with(".running_var") {
            rng.uniform_vec(n, 0.5, 1.5)
        } else {
            let base = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let noise = rng.normal_vec(n, 0.1);
            base.iter().zip(noise).map(|(x, e)| x + e).collect()
        };
        params.insert(name.clone(), Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap());
    }
    Backbone::from_params(b.spec().clone(), params, &Device::Cpu).unwrap()
}

/// The bits of every tensor, by name.
pub fn bits(b: &Backbone) -> Vec<(String, Vec<u32>)> {
    b.params().iter().map(|(k, t)| (k.clone(), tensor_bits(t))).collect()
}

/// The bits of one tensor.
pub fn tensor_bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()
}

/// The values of one tensor.
pub fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// A seeded batch of `[0, 1]` images for `b`.
pub fn images(b: &Backbone, n: usize, seed: u64) -> Tensor {
    let (c, h, w) = b.spec().input.shape();
    SeededRng::new(seed).uniform((n, c, h, w), 0.0, 1.0, &Device::Cpu).unwrap()
}
