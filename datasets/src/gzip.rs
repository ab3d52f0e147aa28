//! Transparent gzip decompression (detected by the gzip magic bytes `1f 8b`).

use crate::error::{DatasetError, Result};
use std::borrow::Cow;
use std::io::Read;

/// True when `bytes` start with the gzip magic `1f 8b`.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// Returns `bytes` decompressed when they are gzip, or unchanged otherwise. `name` is used in
/// the error when the gzip stream is corrupt or truncated.
pub fn maybe_gunzip<'a>(bytes: &'a [u8], name: &str) -> Result<Cow<'a, [u8]>> {
    if !is_gzip(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::with_capacity(bytes.len() * 4);
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|source| DatasetError::Gzip {
            file: name.to_string(),
            source,
        })?;
    Ok(Cow::Owned(out))
}

/// Decompresses the gzip stream `bytes`, stopping after `limit` bytes of output: a stream that
/// inflates further (a decompression bomb, or data past what a header declared) costs no more
/// memory than `limit`. `name` is used in the error when the stream is corrupt or truncated.
pub fn gunzip_at_most(bytes: &[u8], name: &str, limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(limit.min(bytes.len().saturating_mul(4)));
    flate2::read::MultiGzDecoder::new(bytes)
        .take(limit as u64)
        .read_to_end(&mut out)
        .map_err(|source| DatasetError::Gzip { file: name.to_string(), source })?;
    Ok(out)
}
