//! What a method's delta must hold: every stored tensor's name, dtype and shape, checked when a
//! delta is loaded.

use crate::params::ParamMap;
use candle_core::DType;
use std::collections::BTreeMap;

/// The tensors a fitted model stores, by name: f32 tensors of a given shape, other dtypes (e.g.
/// f16 scales), and bit-packed masks (u8; their length is checked when they are unpacked, with
/// a message that names the mask's shape).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExpectedTensors {
    tensors: BTreeMap<String, (DType, Vec<usize>)>,
}

impl ExpectedTensors {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// An f32 tensor `name` of `shape`.
    pub fn f32(&mut self, name: impl Into<String>, shape: Vec<usize>) -> &mut Self {
        self.typed(name, DType::F32, shape)
    }

    /// f32 tensors, by name and shape.
    pub fn f32_all(&mut self, tensors: impl IntoIterator<Item = (String, Vec<usize>)>) -> &mut Self {
        for (name, shape) in tensors {
            self.f32(name, shape);
        }
        self
    }

    /// A tensor `name` of `dtype` and `shape`.
    pub fn typed(&mut self, name: impl Into<String>, dtype: DType, shape: Vec<usize>) -> &mut Self {
        self.tensors.insert(name.into(), (dtype, shape));
        self
    }

    /// A bit-packed mask `name` (u8, one byte per 8 entries).
    pub fn packed_mask(&mut self, name: impl Into<String>, bytes: usize) -> &mut Self {
        self.typed(name, DType::U8, vec![bytes])
    }

    /// Every expected name with its dtype and shape, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &(DType, Vec<usize>))> {
        self.tensors.iter()
    }

    /// Bytes of the expected tensors: `Σ elements · dtype size`.
    pub fn bytes(&self) -> usize {
        self.tensors.values().map(|(d, s)| s.iter().product::<usize>() * d.size_in_bytes()).sum()
    }

    /// Checks stored `tensors`: every expected one present with its dtype and shape (a packed
    /// mask's presence only), nothing else. The error lists every offending tensor (and
    /// `context`, e.g. the config, after unexpected ones).
    pub fn check(&self, tensors: &ParamMap, context: &str) -> Result<(), String> {
        let mut problems = Vec::new();
        for (name, (dtype, shape)) in &self.tensors {
            match tensors.get(name) {
                None => problems.push(format!("missing tensor '{name}' ({} {shape:?})", dtype_name(*dtype))),
                Some(_) if *dtype == DType::U8 => {}
                Some(t) if t.dtype() != *dtype || t.dims() != shape.as_slice() => {
                    problems.push(format!("tensor '{name}' is {:?} {:?}, expected {} {shape:?}", t.dtype(), t.dims(), dtype_name(*dtype)))
                }
                Some(_) => {}
            }
        }
        let extra: Vec<&String> = tensors.keys().filter(|k| !self.tensors.contains_key(*k)).collect();
        if !extra.is_empty() {
            problems.push(format!("unexpected tensors {extra:?} ({context})"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// The lower-case name of a dtype (`f32`, `f16`, `u8`), as configs spell them.
fn dtype_name(dtype: DType) -> &'static str {
    dtype.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn stored_tensors_are_checked_by_name_shape_and_dtype() {
        let dev = Device::Cpu;
        let mut expected = ExpectedTensors::new();
        expected.f32("a", vec![2]).f32("b", vec![1, 3]).typed("s", DType::F16, vec![2]).packed_mask("m", 3);
        // 2·4 + 3·4 + 2·2 + 3·1 bytes.
        assert_eq!(expected.bytes(), 27);
        let good = ParamMap::from([
            ("a".to_string(), Tensor::zeros(2, DType::F32, &dev).unwrap()),
            ("b".to_string(), Tensor::zeros((1, 3), DType::F32, &dev).unwrap()),
            ("s".to_string(), Tensor::zeros(2, DType::F16, &dev).unwrap()),
            ("m".to_string(), Tensor::zeros(5, DType::U8, &dev).unwrap()),
        ]);
        assert!(expected.check(&good, "cfg").is_ok());
        let mut bad = good.clone();
        bad.insert("b".into(), Tensor::zeros((3, 1), DType::F32, &dev).unwrap());
        bad.insert("s".into(), Tensor::zeros(2, DType::F32, &dev).unwrap());
        bad.insert("c".into(), Tensor::zeros(1, DType::F32, &dev).unwrap());
        bad.remove("a");
        let err = expected.check(&bad, "cfg").unwrap_err();
        assert!(err.contains("missing tensor 'a' (f32 [2])"), "{err}");
        assert!(err.contains("tensor 'b' is F32 [3, 1], expected f32 [1, 3]"), "{err}");
        assert!(err.contains("tensor 's' is F32 [2], expected f16 [2]"), "{err}");
        assert!(err.contains("unexpected tensors [\"c\"] (cfg)"), "{err}");
    }
}
