//! Bit-packing of binary masks: 8 mask entries per byte, so a per-task mask costs 1/32 of its f32 size.
use crate::error::{GraftError, Result};
use candle_core::{DType, Device, Tensor};

/// Bytes needed to hold `n` mask entries at 8 per byte.
pub fn packed_len(n: usize) -> usize {
    n.div_ceil(8)
}

/// Packs booleans 8 per byte, least significant bit first; unused bits of the last byte are 0.
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; packed_len(bits.len())];
    for (j, &b) in bits.iter().enumerate() {
        if b {
            out[j / 8] |= 1 << (j % 8);
        }
    }
    out
}

/// Inverse of [`pack_bits`]: rejects a wrong byte count or set padding bits, with a message saying which.
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

/// Packs an exactly binary (0/1) tensor into a rank-1 u8 tensor; any other value is an error naming `name` and the entry.
pub fn pack_mask(name: &str, mask: &Tensor) -> Result<Tensor> {
    let values = mask.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let mut bits = Vec::with_capacity(values.len());
    for (index, &value) in values.iter().enumerate() {
        if value == 0.0 {
            bits.push(false);
        } else if value == 1.0 {
            bits.push(true);
        } else {
            return Err(GraftError::Incompatible(format!("mask '{name}' is not binary: entry {index} is {value}")));
        }
    }
    let bytes = pack_bits(&bits);
    let len = bytes.len();
    Ok(Tensor::from_vec(bytes, len, mask.device())?)
}

/// Unpacks a tensor written by [`pack_mask`] into an f32 0/1 mask of `shape`, checking dtype, rank and length.
pub fn unpack_mask(name: &str, packed: &Tensor, shape: &[usize], device: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let bad = |msg: String| {
        GraftError::Incompatible(format!(
            "packed mask '{name}': {msg}; expected a u8 tensor of shape [{}] for a mask of shape {shape:?} ({n} entries, 8 per byte)",
            packed_len(n)
        ))
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
