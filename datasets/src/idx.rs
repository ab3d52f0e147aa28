//! The IDX file format (MNIST / Fashion-MNIST): unsigned-byte images (magic `0x00000803`) and
//! labels (magic `0x00000801`), optionally gzip-compressed (detected by the bytes `1f 8b`).
//!
//! Every reader checks the magic number, the dimensions and that the payload length matches the
//! header exactly; errors name the file and the expected and actual magic or byte counts.

use crate::error::{DatasetError, Result};
use crate::gzip::{gunzip_at_most, is_gzip};
use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

/// Magic number of an IDX file of unsigned-byte images (3 dimensions: count, rows, columns).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;

/// Magic number of an IDX file of unsigned-byte labels (1 dimension: count).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// The largest IDX file graft reads (decompressed): 4 GiB, 80 times Fashion-MNIST's training
/// set. A header that declares more is refused before anything is allocated.
pub const MAX_IDX_BYTES: usize = 1 << 32;

/// Unsigned-byte images read from an IDX file, row-major, image after image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows (height) of every image.
    pub rows: usize,
    /// Columns (width) of every image.
    pub cols: usize,
    /// `count * rows * cols` pixel values.
    pub pixels: Vec<u8>,
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| DatasetError::io(path, e))
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Checks the header length and magic; returns the (decompressed) bytes.
fn check_header(
    bytes: &[u8],
    name: &str,
    magic: u32,
    header: usize,
    what: &'static str,
) -> Result<()> {
    if bytes.len() < 4 {
        return Err(DatasetError::IdxSize {
            file: name.to_string(),
            expected: header,
            actual: bytes.len(),
            detail: format!("at least the {header}-byte header"),
        });
    }
    let actual = be_u32(bytes, 0);
    if actual != magic {
        return Err(DatasetError::IdxMagic {
            file: name.to_string(),
            expected: magic,
            actual,
            what,
        });
    }
    if bytes.len() < header {
        return Err(DatasetError::IdxSize {
            file: name.to_string(),
            expected: header,
            actual: bytes.len(),
            detail: format!("at least the {header}-byte header"),
        });
    }
    Ok(())
}

/// The bytes of an IDX file, decompressed when gzip. A gzip stream is read no further than one
/// byte past the length its header declares (`declared_len` of the first `header` bytes), so a
/// header claiming more than the file holds, or a stream that inflates without bound, allocates
/// no more than the data itself.
fn decompressed<'a>(
    bytes: &'a [u8],
    name: &str,
    header: usize,
    declared_len: impl Fn(&[u8]) -> Result<usize>,
) -> Result<Cow<'a, [u8]>> {
    if !is_gzip(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    let head = gunzip_at_most(bytes, name, header)?;
    if head.len() < header {
        // Too short for a header: the caller's header check names the problem.
        return Ok(Cow::Owned(head));
    }
    let len = declared_len(&head)?;
    Ok(Cow::Owned(gunzip_at_most(bytes, name, len.saturating_add(1))?))
}

/// The length an IDX file must have by its header (`header` bytes + `items` of one byte each),
/// refused when it overflows or exceeds [`MAX_IDX_BYTES`].
fn declared_len(name: &str, header: usize, items: Option<usize>, dims: &str) -> Result<usize> {
    let len = items.and_then(|n| n.checked_add(header)).ok_or_else(|| DatasetError::IdxHeader {
        file: name.to_string(),
        msg: format!("dimensions {dims} overflow"),
    })?;
    if len > MAX_IDX_BYTES {
        return Err(DatasetError::IdxHeader {
            file: name.to_string(),
            msg: format!(
                "the header declares {dims} = {len} bytes, more than the {MAX_IDX_BYTES} bytes graft reads; \
                 the file is corrupt or not an image set"
            ),
        });
    }
    Ok(len)
}

/// An IDX images header: (count, rows, columns, the file's declared length).
fn images_header(bytes: &[u8], name: &str) -> Result<(usize, usize, usize, usize)> {
    check_header(bytes, name, IDX_IMAGES_MAGIC, 16, "unsigned-byte images, 3 dimensions")?;
    let count = be_u32(bytes, 4) as usize;
    let rows = be_u32(bytes, 8) as usize;
    let cols = be_u32(bytes, 12) as usize;
    if rows == 0 || cols == 0 {
        return Err(DatasetError::IdxHeader {
            file: name.to_string(),
            msg: format!("images are {rows}x{cols}; both dimensions must be at least 1"),
        });
    }
    let items = count.checked_mul(rows).and_then(|v| v.checked_mul(cols));
    let len = declared_len(name, 16, items, &format!("{count}x{rows}x{cols}"))?;
    Ok((count, rows, cols, len))
}

/// An IDX labels header: (count, the file's declared length).
fn labels_header(bytes: &[u8], name: &str) -> Result<(usize, usize)> {
    check_header(bytes, name, IDX_LABELS_MAGIC, 8, "unsigned-byte labels, 1 dimension")?;
    let count = be_u32(bytes, 4) as usize;
    Ok((count, declared_len(name, 8, Some(count), &format!("{count} labels"))?))
}

/// The error for a file whose length is not what its header declares.
fn size_error(name: &str, expected: usize, actual: usize, gzip: bool, detail: String) -> DatasetError {
    // A gzip stream is read one byte past the declared length at most.
    let detail = if gzip && actual > expected { format!("{detail}; the data runs past it") } else { detail };
    DatasetError::IdxSize { file: name.to_string(), expected, actual, detail }
}

/// Parses IDX images from bytes (gzip or plain). `name` is used in error messages.
pub fn parse_idx_images(bytes: &[u8], name: &str) -> Result<IdxImages> {
    let gzip = is_gzip(bytes);
    let bytes = decompressed(bytes, name, 16, |head| images_header(head, name).map(|h| h.3))?;
    let (count, rows, cols, expected) = images_header(&bytes, name)?;
    if bytes.len() != expected {
        return Err(size_error(name, expected, bytes.len(), gzip, format!("16-byte header + {count}x{rows}x{cols} pixels")));
    }
    Ok(IdxImages { count, rows, cols, pixels: bytes[16..].to_vec() })
}

/// Parses IDX labels from bytes (gzip or plain). `name` is used in error messages.
pub fn parse_idx_labels(bytes: &[u8], name: &str) -> Result<Vec<u8>> {
    let gzip = is_gzip(bytes);
    let bytes = decompressed(bytes, name, 8, |head| labels_header(head, name).map(|h| h.1))?;
    let (count, expected) = labels_header(&bytes, name)?;
    if bytes.len() != expected {
        return Err(size_error(name, expected, bytes.len(), gzip, format!("8-byte header + {count} labels")));
    }
    Ok(bytes[8..].to_vec())
}

/// Reads an IDX images file (gzip or plain).
pub fn read_idx_images(path: &Path) -> Result<IdxImages> {
    parse_idx_images(&read_file(path)?, &path.display().to_string())
}

/// Reads an IDX labels file (gzip or plain).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    parse_idx_labels(&read_file(path)?, &path.display().to_string())
}

/// Encodes images as IDX bytes (plain, not compressed). Errors when `pixels` does not hold
/// `count * rows * cols` values or a dimension does not fit in 32 bits.
pub fn encode_idx_images(images: &IdxImages) -> Result<Vec<u8>> {
    let need = images.count * images.rows * images.cols;
    if images.pixels.len() != need {
        return Err(DatasetError::IdxHeader {
            file: "<encode>".into(),
            msg: format!(
                "{}x{}x{} images need {need} pixels, got {}",
                images.count,
                images.rows,
                images.cols,
                images.pixels.len()
            ),
        });
    }
    let mut out = Vec::with_capacity(16 + need);
    out.extend_from_slice(&IDX_IMAGES_MAGIC.to_be_bytes());
    for d in [images.count, images.rows, images.cols] {
        out.extend_from_slice(&dim_u32(d)?.to_be_bytes());
    }
    out.extend_from_slice(&images.pixels);
    Ok(out)
}

/// Encodes labels as IDX bytes (plain, not compressed).
pub fn encode_idx_labels(labels: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&IDX_LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&dim_u32(labels.len())?.to_be_bytes());
    out.extend_from_slice(labels);
    Ok(out)
}

fn dim_u32(d: usize) -> Result<u32> {
    u32::try_from(d).map_err(|_| DatasetError::IdxHeader {
        file: "<encode>".into(),
        msg: format!("dimension {d} does not fit in 32 bits"),
    })
}

/// Writes `bytes` to `path`, gzip-compressed when `gzip` is true.
pub fn write_idx_bytes(path: &Path, bytes: &[u8], gzip: bool) -> Result<()> {
    let data = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes)
            .map_err(|e| DatasetError::io(path, e))?;
        enc.finish().map_err(|e| DatasetError::io(path, e))?
    } else {
        bytes.to_vec()
    };
    std::fs::write(path, data).map_err(|e| DatasetError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IdxImages {
        IdxImages {
            count: 3,
            rows: 2,
            cols: 4,
            pixels: (0..24).map(|v| v * 10).collect(),
        }
    }

    #[test]
    fn round_trip_plain_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let images = sample();
        let labels = vec![7u8, 0, 9];
        for gzip in [false, true] {
            let ip = dir.path().join(format!("img-{gzip}"));
            let lp = dir.path().join(format!("lab-{gzip}"));
            write_idx_bytes(&ip, &encode_idx_images(&images).unwrap(), gzip).unwrap();
            write_idx_bytes(&lp, &encode_idx_labels(&labels).unwrap(), gzip).unwrap();
            let raw = std::fs::read(&ip).unwrap();
            assert_eq!(crate::gzip::is_gzip(&raw), gzip);
            assert_eq!(read_idx_images(&ip).unwrap(), images);
            assert_eq!(read_idx_labels(&lp).unwrap(), labels);
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gzip_stream_is_not_inflated_past_the_declared_length() {
        // One 2x2 image declared (20 bytes), then 64 MiB of zeros: a small file that would
        // inflate to 64 MiB if read to its end.
        let mut bytes = encode_idx_images(&IdxImages { count: 1, rows: 2, cols: 2, pixels: vec![1; 4] }).unwrap();
        bytes.resize(20 + (64 << 20), 0);
        let packed = gzip(&bytes);
        assert!(packed.len() < 1 << 20, "{}", packed.len());
        let err = parse_idx_images(&packed, "bomb-images").unwrap_err().to_string();
        // Read one byte past the declared 20, no further.
        assert!(err.contains("bomb-images") && err.contains("expected 20 bytes") && err.contains("found 21 bytes"), "{err}");
        assert!(err.contains("runs past it"), "{err}");
    }

    #[test]
    fn absurd_declared_sizes_are_refused_before_reading() {
        // (2^32-1)^3 bytes overflow; 60000 images of 4096x4096 exceed the 4 GiB bound.
        for (count, side, expect) in [(u32::MAX, u32::MAX, "overflow"), (60_000, 4_096, "more than the 4294967296 bytes")] {
            let mut header = IDX_IMAGES_MAGIC.to_be_bytes().to_vec();
            for d in [count, side, side] {
                header.extend_from_slice(&d.to_be_bytes());
            }
            for bytes in [header.clone(), gzip(&header)] {
                let err = parse_idx_images(&bytes, "huge-images").unwrap_err().to_string();
                assert!(err.contains("huge-images") && err.contains(expect), "{err}");
            }
        }
        let mut labels = IDX_LABELS_MAGIC.to_be_bytes().to_vec();
        labels.extend_from_slice(&u32::MAX.to_be_bytes());
        // 4 GiB - 1 labels + the 8-byte header: just past the bound.
        let err = parse_idx_labels(&gzip(&labels), "huge-labels").unwrap_err().to_string();
        assert!(err.contains("huge-labels") && err.contains("more than"), "{err}");
    }

    #[test]
    fn truncated_file_names_file_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = encode_idx_images(&sample()).unwrap();
        bytes.truncate(bytes.len() - 5);
        let path = dir.path().join("cut-images-idx3-ubyte");
        write_idx_bytes(&path, &bytes, false).unwrap();
        let err = read_idx_images(&path).unwrap_err().to_string();
        assert!(err.contains("cut-images-idx3-ubyte"), "{err}");
        assert!(err.contains("expected 40 bytes"), "{err}");
        assert!(err.contains("found 35 bytes"), "{err}");
        assert!(err.contains("truncated"), "{err}");

        // Same through gzip: sizes are counted after decompression.
        let gz = dir.path().join("cut.gz");
        write_idx_bytes(&gz, &bytes, true).unwrap();
        let err = read_idx_images(&gz).unwrap_err().to_string();
        assert!(
            err.contains("cut.gz") && err.contains("expected 40") && err.contains("found 35"),
            "{err}"
        );

        // A cut gzip stream is reported as such.
        let mut full = Vec::new();
        write_idx_bytes(&gz, &encode_idx_images(&sample()).unwrap(), true).unwrap();
        full.extend(std::fs::read(&gz).unwrap());
        full.truncate(full.len() - 6);
        let err = parse_idx_images(&full, "half.gz").unwrap_err().to_string();
        assert!(err.contains("half.gz") && err.contains("gzip"), "{err}");

        let mut labels = encode_idx_labels(&[1, 2, 3]).unwrap();
        labels.pop();
        let err = parse_idx_labels(&labels, "labels").unwrap_err().to_string();
        assert!(
            err.contains("expected 11 bytes") && err.contains("found 10"),
            "{err}"
        );
        let err = parse_idx_labels(&[0, 0], "tiny").unwrap_err().to_string();
        assert!(err.contains("tiny") && err.contains("found 2"), "{err}");
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode_idx_labels(&[1, 2, 3]).unwrap();
        bytes.push(0);
        let err = parse_idx_labels(&bytes, "long").unwrap_err().to_string();
        assert!(
            err.contains("expected 11") && err.contains("found 12") && err.contains("trailing"),
            "{err}"
        );
    }

    #[test]
    fn wrong_magic_is_named() {
        let labels = encode_idx_labels(&[1, 2, 3]).unwrap();
        let err = parse_idx_images(&labels, "labels-as-images")
            .unwrap_err()
            .to_string();
        assert!(err.contains("labels-as-images"), "{err}");
        assert!(
            err.contains("0x00000801") && err.contains("expected 0x00000803"),
            "{err}"
        );
        let images = encode_idx_images(&sample()).unwrap();
        let err = parse_idx_labels(&images, "x").unwrap_err().to_string();
        assert!(
            err.contains("0x00000803") && err.contains("expected 0x00000801"),
            "{err}"
        );
    }

    #[test]
    fn zero_dimension_is_rejected() {
        let mut bytes = encode_idx_images(&IdxImages {
            count: 0,
            rows: 2,
            cols: 2,
            pixels: vec![],
        })
        .unwrap();
        bytes[11] = 0; // rows = 0
        let err = parse_idx_images(&bytes, "z").unwrap_err().to_string();
        assert!(err.contains("0x2"), "{err}");
    }
}
