//! Bit-packing of binary masks: 8 mask entries per byte, least significant bit first.
//!
//! Entry `j` of the flattened (row-major) mask is bit `j % 8` of byte `j / 8`; the unused high
//! bits of the last byte are zero. A mask of `n` entries packs into `ceil(n / 8)` bytes, stored
//! as a 1-D `u8` tensor.

use crate::error::KsmError;
use candle_core::{DType, Device, Tensor};
use graft_core::Result;

/// Bytes needed for a packed mask of `n` entries: `ceil(n / 8)`.
pub fn packed_len(n: usize) -> usize {
    n.div_ceil(8)
}

/// Packs booleans, 8 per byte, least significant bit first; padding bits are 0.
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; packed_len(bits.len())];
    for (j, &b) in bits.iter().enumerate() {
        if b {
            out[j / 8] |= 1 << (j % 8);
        }
    }
    out
}

/// Unpacks `n` booleans from `bytes`; the length must be exactly `ceil(n / 8)` and the padding
/// bits of the last byte must be 0 (anything else means the bytes belong to another mask).
pub fn unpack_bits(bytes: &[u8], n: usize) -> std::result::Result<Vec<bool>, String> {
    if bytes.len() != packed_len(n) {
        return Err(format!("holds {} bytes, but {n} mask entries pack into {} bytes", bytes.len(), packed_len(n)));
    }
    let used = n % 8;
    if used != 0 {
        let last = bytes[bytes.len() - 1];
        if last >> used != 0 {
            return Err(format!("padding bits of the last byte are set (byte {last:#010b}, {used} bits used)"));
        }
    }
    Ok((0..n).map(|j| bytes[j / 8] >> (j % 8) & 1 == 1).collect())
}

/// Packs a binary tensor (every entry exactly 0 or 1, any shape) into a 1-D `u8` tensor of
/// `ceil(n / 8)` bytes on the same device. `name` is used in errors.
pub fn pack_mask(name: &str, mask: &Tensor) -> Result<Tensor> {
    let values = mask.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let mut bits = Vec::with_capacity(values.len());
    for (index, &value) in values.iter().enumerate() {
        if value == 0.0 {
            bits.push(false);
        } else if value == 1.0 {
            bits.push(true);
        } else {
            return Err(KsmError::NotBinary { name: name.into(), index, value }.into());
        }
    }
    let bytes = pack_bits(&bits);
    let len = bytes.len();
    Ok(Tensor::from_vec(bytes, len, mask.device())?)
}

/// Unpacks the packed mask `name` into an f32 tensor of 0s and 1s of `shape` on `device`.
/// The packed tensor must be 1-D `u8` with exactly `ceil(n / 8)` bytes and zero padding bits;
/// otherwise the error names the tensor, its shape and dtype, and the mask shape it should fit.
pub fn unpack_mask(name: &str, packed: &Tensor, shape: &[usize], device: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let bad = |msg: String| -> graft_core::GraftError {
        KsmError::BadPackedMask {
            name: name.into(),
            msg: format!("{msg}; expected a u8 tensor of shape [{}] for a mask of shape {shape:?} ({n} entries, 8 per byte)", packed_len(n)),
        }
        .into()
    };
    if packed.dtype() != DType::U8 {
        return Err(bad(format!("has dtype {:?} and shape {:?}", packed.dtype(), packed.dims())));
    }
    if packed.rank() != 1 {
        return Err(bad(format!("has shape {:?}", packed.dims())));
    }
    let bytes = packed.to_vec1::<u8>()?;
    let bits = unpack_bits(&bytes, n).map_err(|m| bad(format!("has shape {:?} and {m}", packed.dims())))?;
    let values: Vec<f32> = bits.into_iter().map(|b| if b { 1.0 } else { 0.0 }).collect();
    Ok(Tensor::from_vec(values, shape, device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_for_every_length_up_to_33() {
        for n in 0usize..=33 {
            let bits: Vec<bool> = (0..n).map(|j| (j * 7 + 3) % 5 < 2).collect();
            let packed = pack_bits(&bits);
            assert_eq!(packed.len(), n.div_ceil(8));
            assert_eq!(unpack_bits(&packed, n).unwrap(), bits, "n = {n}");
        }
    }

    #[test]
    fn least_significant_bit_first() {
        assert_eq!(pack_bits(&[true, false, false, false, false, false, false, false, false, true]), vec![1, 2]);
    }

    #[test]
    fn set_padding_bits_and_wrong_lengths_are_rejected() {
        assert!(unpack_bits(&[0b1000_0000], 7).unwrap_err().contains("padding"));
        assert!(unpack_bits(&[0, 0], 8).unwrap_err().contains("2 bytes"));
    }
}
