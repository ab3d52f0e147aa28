//! NumPy `.npy` arrays (format versions 1.0, 2.0 and 3.0), read without NumPy.
//!
//! A `.npy` file is the magic `\x93NUMPY`, the format version (major, minor), the header length
//! (little-endian `u16` in version 1, `u32` in versions 2 and 3), a header that is a Python dict
//! literal such as `{'descr': '<f4', 'fortran_order': False, 'shape': (10, 28, 28), }` padded
//! with spaces and ending in `\n`, then the array's bytes in C order.
//!
//! graft reads little-endian integers (`|u1`, `|i1`, `<u2` ... `<i8`) and floats (`<f4`, `<f8`)
//! in C order; big-endian data, Fortran order, structured and object dtypes are refused. The data
//! length the header declares is checked against the bytes actually present before anything is
//! allocated. Errors name the file, what was found and what was expected.
//!
//! [`load_npy`] reads an image set from two files: images `(N, H, W)` or channels-last
//! `(N, H, W, C)` with `C` 1 or 3 (`uint8`, divided by 255, or floats already in `[0, 1]`), and
//! integer labels `(N,)`.

use crate::error::{DatasetError, Result};
use graft_core::ImageSet;
use std::path::Path;

/// The six bytes every `.npy` file starts with.
pub const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The element types graft reads, by their NumPy `descr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NpyDtype {
    /// `|u1`: `uint8`.
    U8,
    /// `|i1`: `int8`.
    I8,
    /// `<u2`: little-endian `uint16`.
    U16,
    /// `<i2`: little-endian `int16`.
    I16,
    /// `<u4`: little-endian `uint32`.
    U32,
    /// `<i4`: little-endian `int32`.
    I32,
    /// `<u8`: little-endian `uint64`.
    U64,
    /// `<i8`: little-endian `int64`.
    I64,
    /// `<f4`: little-endian `float32`.
    F32,
    /// `<f8`: little-endian `float64`.
    F64,
}

/// The `descr` strings graft accepts, for error messages.
const SUPPORTED_DESCRS: &str = "|u1, |i1, <u2, <i2, <u4, <i4, <u8, <i8, <f4, <f8";

impl NpyDtype {
    /// The dtype of a `descr` string: `<` (little-endian) followed by `u1`, `i1`, `u2`, `i2`,
    /// `u4`, `i4`, `u8`, `i8`, `f4` or `f8`, or `|` (no byte order) for the one-byte types.
    /// `None` for anything else, big-endian (`>`) and native-order (`=`) included.
    pub fn from_descr(descr: &str) -> Option<Self> {
        let (order, code) = descr.split_at_checked(1)?;
        let dtype = match code {
            "u1" => Self::U8,
            "i1" => Self::I8,
            "u2" => Self::U16,
            "i2" => Self::I16,
            "u4" => Self::U32,
            "i4" => Self::I32,
            "u8" => Self::U64,
            "i8" => Self::I64,
            "f4" => Self::F32,
            "f8" => Self::F64,
            _ => return None,
        };
        match order {
            "<" => Some(dtype),
            "|" if dtype.size() == 1 => Some(dtype),
            _ => None,
        }
    }

    /// The `descr` NumPy writes for this dtype, e.g. `|u1` or `<f4`.
    pub fn descr(self) -> &'static str {
        match self {
            Self::U8 => "|u1",
            Self::I8 => "|i1",
            Self::U16 => "<u2",
            Self::I16 => "<i2",
            Self::U32 => "<u4",
            Self::I32 => "<i4",
            Self::U64 => "<u8",
            Self::I64 => "<i8",
            Self::F32 => "<f4",
            Self::F64 => "<f8",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 => 8,
        }
    }

    /// True for the integer dtypes.
    pub fn is_integer(self) -> bool {
        !matches!(self, Self::F32 | Self::F64)
    }
}

/// A parsed `.npy` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// Format version `(major, minor)`: `(1, 0)`, `(2, 0)` or `(3, 0)`.
    pub version: (u8, u8),
    /// Element type (`descr`).
    pub dtype: NpyDtype,
    /// True when the data is in Fortran (column-major) order.
    pub fortran_order: bool,
    /// The array's shape; empty for a scalar.
    pub shape: Vec<usize>,
    /// Offset of the first data byte in the file (preamble + header).
    pub data_offset: usize,
}

impl NpyHeader {
    /// Number of elements the shape declares (1 for a scalar); `None` when it overflows `usize`.
    pub fn element_count(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// Bytes of data the header declares; `None` when that overflows `usize`.
    pub fn data_len(&self) -> Option<usize> {
        self.element_count()?.checked_mul(self.dtype.size())
    }
}

/// An array's elements: one-byte unsigned values as they are, other integers widened to 64 bits.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    /// `|u1` elements.
    U8(Vec<u8>),
    /// Signed integer elements (`|i1`, `<i2`, `<i4`, `<i8`), widened.
    I64(Vec<i64>),
    /// Unsigned integer elements of 2 to 8 bytes (`<u2`, `<u4`, `<u8`), widened.
    U64(Vec<u64>),
    /// `<f4` elements.
    F32(Vec<f32>),
    /// `<f8` elements.
    F64(Vec<f64>),
}

/// A C-order array read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// Element type as stored in the file.
    pub dtype: NpyDtype,
    /// Shape; the product of its dimensions is the number of elements.
    pub shape: Vec<usize>,
    /// The elements in C (row-major) order.
    pub data: NpyData,
}

impl NpyArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            NpyData::U8(v) => v.len(),
            NpyData::I64(v) => v.len(),
            NpyData::U64(v) => v.len(),
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
        }
    }

    /// True when the array holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn npy_error(name: &str, msg: impl Into<String>) -> DatasetError {
    DatasetError::Npy {
        file: name.to_string(),
        msg: msg.into(),
    }
}

/// A shape as Python writes it: `(3,)`, `(2, 28, 28)`, `()`.
fn shape_str(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The multi-index of flat C-order position `i` in `shape`, written like a shape.
fn index_str(mut i: usize, shape: &[usize]) -> String {
    let mut idx = vec![0; shape.len()];
    for (slot, &d) in idx.iter_mut().zip(shape).rev() {
        if d > 0 {
            *slot = i % d;
            i /= d;
        }
    }
    shape_str(&idx)
}

/// The start of `bytes` as text, for error messages.
fn preview(bytes: &[u8]) -> String {
    const MAX: usize = 120;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    let text = text.trim_end();
    if bytes.len() > MAX {
        format!("{text:?}...")
    } else {
        format!("{text:?}")
    }
}

/// Parses the preamble and header of a `.npy` file held in `bytes` (the data may follow or not).
/// Checks the magic, the version, that the declared header fits in `bytes`, that the header is a
/// dict with exactly the keys `descr`, `fortran_order` and `shape`, and that `descr` is one of
/// the supported dtypes. `name` is used in error messages.
pub fn parse_npy_header(bytes: &[u8], name: &str) -> Result<NpyHeader> {
    if bytes.len() < 8 || bytes[..6] != NPY_MAGIC[..] {
        return Err(npy_error(
            name,
            format!(
                "does not start with the .npy magic \"\\x93NUMPY\" plus a version (found {} in its \
                 first bytes); not a NumPy .npy file",
                preview(&bytes[..bytes.len().min(8)])
            ),
        ));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let len_bytes = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(npy_error(
                name,
                format!(
                    "format version {major}.{minor} is not supported; expected 1.0, 2.0 or 3.0"
                ),
            ))
        }
    };
    let start = 8 + len_bytes;
    if bytes.len() < start {
        return Err(npy_error(
            name,
            format!(
                "the file is truncated: {} bytes, shorter than the {start}-byte preamble of \
                 version {major}.0",
                bytes.len()
            ),
        ));
    }
    let header_len = if len_bytes == 2 {
        usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))
    } else {
        let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        usize::try_from(len).unwrap_or(usize::MAX)
    };
    let end = start.saturating_add(header_len);
    if end > bytes.len() {
        return Err(npy_error(
            name,
            format!(
                "the preamble declares a {header_len}-byte header but only {} bytes follow it \
                 (the file is truncated)",
                bytes.len() - start
            ),
        ));
    }
    let text = &bytes[start..end];
    let header = parse_dict(text)
        .map_err(|msg| npy_error(name, format!("header {}: {msg}", preview(text))))?;
    let dtype = NpyDtype::from_descr(&header.descr).ok_or_else(|| {
        let d = &header.descr;
        let msg = match d.strip_prefix('>') {
            Some(code) => format!(
                "dtype '{d}' is big-endian; graft reads little-endian data only (expected one of \
                 {SUPPORTED_DESCRS}; numpy: arr.astype('<{code}'))"
            ),
            None => format!("dtype '{d}' is not supported; expected one of {SUPPORTED_DESCRS}"),
        };
        npy_error(name, msg)
    })?;
    Ok(NpyHeader {
        version: (major, minor),
        dtype,
        fortran_order: header.fortran_order,
        shape: header.shape,
        data_offset: end,
    })
}

/// Parses a whole `.npy` file held in memory. Refuses Fortran order, and any data length other
/// than the one the header declares, before allocating anything. `name` is used in error
/// messages. Never panics, whatever `bytes` holds.
pub fn parse_npy(bytes: &[u8], name: &str) -> Result<NpyArray> {
    let header = parse_npy_header(bytes, name)?;
    let shape = shape_str(&header.shape);
    let descr = header.dtype.descr();
    if header.fortran_order {
        return Err(npy_error(
            name,
            "fortran_order is True (column-major data); expected False (C order; numpy: \
                 np.save(f, np.ascontiguousarray(arr)))",
        ));
    }
    let need = header.data_len().ok_or_else(|| {
        npy_error(
            name,
            format!("shape {shape} of {descr} declares more bytes than can be addressed"),
        )
    })?;
    let data = &bytes[header.data_offset..];
    if data.len() != need {
        let why = if data.len() < need {
            "the file is truncated or its header is wrong"
        } else {
            "trailing bytes after the data"
        };
        return Err(npy_error(
            name,
            format!(
                "shape {shape} of {descr} needs {need} bytes of data after the {}-byte header, \
                 found {} ({why})",
                header.data_offset,
                data.len()
            ),
        ));
    }
    let data = match header.dtype {
        NpyDtype::U8 => NpyData::U8(data.to_vec()),
        NpyDtype::I8 => NpyData::I64(data.iter().map(|&b| i64::from(b as i8)).collect()),
        NpyDtype::U16 => NpyData::U64(decode(data, |b: [u8; 2]| u64::from(u16::from_le_bytes(b)))),
        NpyDtype::I16 => NpyData::I64(decode(data, |b: [u8; 2]| i64::from(i16::from_le_bytes(b)))),
        NpyDtype::U32 => NpyData::U64(decode(data, |b: [u8; 4]| u64::from(u32::from_le_bytes(b)))),
        NpyDtype::I32 => NpyData::I64(decode(data, |b: [u8; 4]| i64::from(i32::from_le_bytes(b)))),
        NpyDtype::U64 => NpyData::U64(decode(data, u64::from_le_bytes)),
        NpyDtype::I64 => NpyData::I64(decode(data, i64::from_le_bytes)),
        NpyDtype::F32 => NpyData::F32(decode(data, f32::from_le_bytes)),
        NpyDtype::F64 => NpyData::F64(decode(data, f64::from_le_bytes)),
    };
    Ok(NpyArray {
        dtype: header.dtype,
        shape: header.shape,
        data,
    })
}

/// Decodes consecutive `N`-byte little-endian elements.
fn decode<const N: usize, T>(data: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N)
        .map(|c| {
            let mut b = [0u8; N];
            b.copy_from_slice(c);
            f(b)
        })
        .collect()
}

/// Reads a `.npy` file (see [`parse_npy`]).
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    // A device or pipe (`/dev/zero`) would be read forever.
    let meta = std::fs::metadata(path).map_err(|e| DatasetError::io(path, e))?;
    if !meta.is_file() {
        return Err(npy_error(&path.display().to_string(), "is not a regular file".to_string()));
    }
    let bytes = std::fs::read(path).map_err(|e| DatasetError::io(path, e))?;
    parse_npy(&bytes, &path.display().to_string())
}

/// Images read from an array: NCHW `f32` values in `[0, 1]` and their shape.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyImages {
    /// `count * channels * height * width` values, image after image, channel after channel.
    pub values: Vec<f32>,
    /// Number of images (`N`).
    pub count: usize,
    /// Channels per image (1 or 3).
    pub channels: usize,
    /// Image height (`H`).
    pub height: usize,
    /// Image width (`W`).
    pub width: usize,
}

/// The images of an array, converted to NCHW `f32` values in `[0, 1]`. The array is
/// `(N, H, W)` (one channel) or channels-last `(N, H, W, C)` with `C` 1 or 3; `|u1` values are
/// divided by 255, `<f4`/`<f8` values must already lie in `[0, 1]` (the first one outside, NaN
/// included, is named with its index). `name` is used in error messages.
pub fn npy_images(array: &NpyArray, name: &str) -> Result<NpyImages> {
    let shape = shape_str(&array.shape);
    let (n, h, w, c) = match array.shape[..] {
        [n, h, w] => (n, h, w, 1),
        [n, h, w, c] if c == 1 || c == 3 => (n, h, w, c),
        [_, _, _, c] => {
            return Err(npy_error(
                name,
                format!(
                    "images of shape {shape} have {c} channels in their last dimension; expected \
                     channels-last (N, H, W, C) with C 1 or 3 (numpy, for channels-first \
                     arrays: np.moveaxis(arr, 1, -1))"
                ),
            ))
        }
        _ => {
            return Err(npy_error(
                name,
                format!(
                    "images of shape {shape} have {} dimensions; expected (N, H, W) or \
                     (N, H, W, C) with C 1 or 3",
                    array.shape.len()
                ),
            ))
        }
    };
    if h == 0 || w == 0 {
        return Err(npy_error(
            name,
            format!("images of shape {shape} are {h}x{w} pixels; both must be at least 1"),
        ));
    }
    let outside = |i: usize, v: f64| {
        npy_error(
            name,
            format!(
                "value {v} at index {} is outside [0, 1]; float images must hold values in \
                 [0, 1] (uint8 images are divided by 255)",
                index_str(i, &array.shape)
            ),
        )
    };
    let in_unit = |v: f64| (0.0..=1.0).contains(&v);
    let flat: Vec<f32> = match &array.data {
        NpyData::U8(v) => v.iter().map(|&b| f32::from(b) / 255.0).collect(),
        NpyData::F32(v) => {
            if let Some((i, &x)) = v.iter().enumerate().find(|(_, &x)| !in_unit(f64::from(x))) {
                return Err(outside(i, f64::from(x)));
            }
            v.clone()
        }
        NpyData::F64(v) => {
            if let Some((i, &x)) = v.iter().enumerate().find(|(_, &x)| !in_unit(x)) {
                return Err(outside(i, x));
            }
            v.iter().map(|&x| x as f32).collect()
        }
        NpyData::I64(_) | NpyData::U64(_) => {
            return Err(npy_error(
                name,
                format!(
                    "images of dtype {} are not supported; expected |u1 (0..255, divided by 255), \
                     <f4 or <f8 (values in [0, 1])",
                    array.dtype.descr()
                ),
            ))
        }
    };
    if c == 1 {
        return Ok(NpyImages {
            values: flat,
            count: n,
            channels: 1,
            height: h,
            width: w,
        });
    }
    // Channels-last to channels-first.
    let hw = h * w;
    let mut out = vec![0.0; flat.len()];
    for (img, src) in flat.chunks_exact(hw * c).enumerate() {
        let dst = &mut out[img * hw * c..(img + 1) * hw * c];
        for (p, px) in src.chunks_exact(c).enumerate() {
            for (ch, &v) in px.iter().enumerate() {
                dst[ch * hw + p] = v;
            }
        }
    }
    Ok(NpyImages {
        values: out,
        count: n,
        channels: c,
        height: h,
        width: w,
    })
}

/// The labels of a `(N,)` integer array as `u32` class indices; a negative label or one above
/// `u32::MAX` is named with its index. `name` is used in error messages.
pub fn npy_labels(array: &NpyArray, name: &str) -> Result<Vec<u32>> {
    if array.shape.len() != 1 {
        return Err(npy_error(
            name,
            format!(
                "labels of shape {} have {} dimensions; expected (N,)",
                shape_str(&array.shape),
                array.shape.len()
            ),
        ));
    }
    let bad = |i: usize, v: String| {
        npy_error(
            name,
            format!(
                "label {v} at index {i} is not a class index (expected 0 ..= {})",
                u32::MAX
            ),
        )
    };
    match &array.data {
        NpyData::U8(v) => Ok(v.iter().map(|&l| u32::from(l)).collect()),
        NpyData::I64(v) => v
            .iter()
            .enumerate()
            .map(|(i, &l)| u32::try_from(l).map_err(|_| bad(i, l.to_string())))
            .collect(),
        NpyData::U64(v) => v
            .iter()
            .enumerate()
            .map(|(i, &l)| u32::try_from(l).map_err(|_| bad(i, l.to_string())))
            .collect(),
        NpyData::F32(_) | NpyData::F64(_) => Err(npy_error(
            name,
            format!(
                "labels of dtype {} are not integers; expected one of |u1, |i1, <u2, <i2, <u4, \
                 <i4, <u8, <i8",
                array.dtype.descr()
            ),
        )),
    }
}

/// Reads an image set from a `.npy` file of images (see [`npy_images`]) and one of labels (see
/// [`npy_labels`]), which must hold one label per image.
pub fn load_npy(images: &Path, labels: &Path) -> Result<ImageSet> {
    let image_name = images.display().to_string();
    let label_name = labels.display().to_string();
    let NpyImages {
        values,
        count: n,
        channels: c,
        height: h,
        width: w,
    } = npy_images(&read_npy(images)?, &image_name)?;
    let labels = npy_labels(&read_npy(labels)?, &label_name)?;
    if labels.len() != n {
        return Err(npy_error(
            &image_name,
            format!(
                "holds {n} images but the labels file {label_name} holds {} labels; expected one \
                 label per image",
                labels.len()
            ),
        ));
    }
    Ok(ImageSet::new(values, labels, c, h, w)?)
}

/// The fields of a `.npy` header dict.
struct HeaderDict {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value of a `.npy` header dict.
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parses the header dict (a Python literal, see the module docs). Errors say what was found
/// where and what was expected.
fn parse_dict(text: &[u8]) -> std::result::Result<HeaderDict, String> {
    let mut p = Parser { s: text, pos: 0 };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.ws();
    p.expect(b'{', "'{'")?;
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        if !["descr", "fortran_order", "shape"].contains(&key.as_str()) {
            return Err(format!(
                "unexpected key '{key}'; a .npy header holds exactly 'descr', 'fortran_order' \
                 and 'shape'"
            ));
        }
        p.ws();
        p.expect(b':', "':'")?;
        p.ws();
        let value = p.value()?;
        let (slot_set, ok) = match key.as_str() {
            "descr" => match value {
                Value::Str(s) => (descr.replace(s).is_some(), true),
                _ => (false, false),
            },
            "fortran_order" => match value {
                Value::Bool(b) => (fortran.replace(b).is_some(), true),
                _ => (false, false),
            },
            _ => match value {
                Value::Tuple(t) => (shape.replace(t).is_some(), true),
                _ => (false, false),
            },
        };
        if !ok {
            let want = match key.as_str() {
                "descr" => "a string such as '<f4' (structured dtypes are not supported)",
                "fortran_order" => "True or False",
                _ => "a tuple of integers",
            };
            return Err(format!("'{key}' must be {want}"));
        }
        if slot_set {
            return Err(format!("key '{key}' appears twice"));
        }
        p.ws();
        if p.eat(b',') {
            continue;
        }
        p.expect(b'}', "',' or '}'")?;
        break;
    }
    p.ws();
    if p.pos != p.s.len() {
        return Err(format!("unexpected {} after the closing '}}'", p.found()));
    }
    let missing = |k: &str| format!("missing key '{k}'");
    Ok(HeaderDict {
        descr: descr.ok_or_else(|| missing("descr"))?,
        fortran_order: fortran.ok_or_else(|| missing("fortran_order"))?,
        shape: shape.ok_or_else(|| missing("shape"))?,
    })
}

/// A cursor over a header's bytes.
struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn found(&self) -> String {
        match self.peek() {
            None => "the end of the header".to_string(),
            Some(c) if c.is_ascii_graphic() || c == b' ' => {
                format!("'{}' at byte {}", c as char, self.pos)
            }
            Some(c) => format!("byte 0x{c:02x} at byte {}", self.pos),
        }
    }

    fn expect(&mut self, c: u8, what: &str) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected {what}, found {}", self.found()))
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => {
                return Err(format!(
                    "expected a quoted key or string, found {}",
                    self.found()
                ))
            }
        };
        let start = self.pos + 1;
        let len = self.s[start..]
            .iter()
            .position(|&b| b == quote)
            .ok_or_else(|| format!("the string starting at byte {} is not closed", self.pos))?;
        let raw = &self.s[start..start + len];
        if raw.contains(&b'\\') {
            return Err(format!(
                "escapes in strings are not supported (string at byte {})",
                self.pos
            ));
        }
        let text = std::str::from_utf8(raw)
            .map_err(|_| format!("the string at byte {} is not valid UTF-8", self.pos))?;
        self.pos = start + len + 1;
        Ok(text.to_string())
    }

    fn value(&mut self) -> std::result::Result<Value, String> {
        let rest = &self.s[self.pos..];
        if rest.starts_with(b"True") {
            self.pos += 4;
            return Ok(Value::Bool(true));
        }
        if rest.starts_with(b"False") {
            self.pos += 5;
            return Ok(Value::Bool(false));
        }
        match self.peek() {
            Some(b'\'' | b'"') => self.string().map(Value::Str),
            Some(b'(') => self.tuple().map(Value::Tuple),
            Some(b'[') => Err(format!(
                "found a list at byte {}; structured dtypes are not supported (expected a dtype \
                 string such as '<f4')",
                self.pos
            )),
            _ => Err(format!(
                "expected a string, True, False or a tuple of integers, found {}",
                self.found()
            )),
        }
    }

    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(', "'('")?;
        let mut dims = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                break;
            }
            dims.push(self.int()?);
            // Python 2 wrote long integers as `3L`.
            self.eat(b'L');
            self.ws();
            if self.eat(b',') {
                continue;
            }
            self.expect(b')', "',' or ')' in the shape")?;
            break;
        }
        Ok(dims)
    }

    fn int(&mut self) -> std::result::Result<usize, String> {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(format!(
                "expected a dimension (an integer >= 0), found {}",
                self.found()
            ));
        }
        let digits = &self.s[start..self.pos];
        digits
            .iter()
            .try_fold(0usize, |n, &d| {
                n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
            })
            .ok_or_else(|| {
                format!(
                    "dimension {} at byte {start} does not fit in {} bits",
                    String::from_utf8_lossy(digits),
                    usize::BITS
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_refused_before_it_is_read() {
        // /dev/zero would never end; /dev/null stands for any file that is not a regular one.
        for dev in ["/dev/zero", "/dev/null"] {
            let e = read_npy(Path::new(dev)).unwrap_err().to_string();
            assert!(e.contains(dev) && e.contains("is not a regular file"), "{e}");
        }
    }

    /// A version-1.0 file: header padded with spaces to a multiple of 64 bytes, ending in '\n'.
    fn v1(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut header = dict.to_string();
        let pad = (64 - (10 + header.len() + 1) % 64) % 64;
        header.push_str(&" ".repeat(pad));
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn descr_round_trip_and_refusals() {
        for d in [
            NpyDtype::U8,
            NpyDtype::I8,
            NpyDtype::U16,
            NpyDtype::I16,
            NpyDtype::U32,
            NpyDtype::I32,
            NpyDtype::U64,
            NpyDtype::I64,
            NpyDtype::F32,
            NpyDtype::F64,
        ] {
            assert_eq!(NpyDtype::from_descr(d.descr()), Some(d));
            assert_eq!(d.descr().contains('f'), !d.is_integer(), "{d:?}");
        }
        assert_eq!(NpyDtype::from_descr("<u1"), Some(NpyDtype::U8));
        for bad in [
            ">f4", "=f4", "|f4", "<f2", "<c8", "O", "", "<", "\u{e9}f4", "<U10",
        ] {
            assert_eq!(NpyDtype::from_descr(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_dict_variants() {
        let h = parse_dict(b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }    \n")
            .unwrap();
        assert_eq!(
            (h.descr.as_str(), h.fortran_order, h.shape),
            ("<f4", false, vec![2, 3])
        );
        // Double quotes, no trailing comma, Python 2 longs, one-element and empty tuples.
        let h =
            parse_dict(b"{\"shape\": (7L,), \"descr\": \"|u1\", \"fortran_order\": True}").unwrap();
        assert_eq!((h.fortran_order, h.shape), (true, vec![7]));
        let h = parse_dict(b"{'descr': '<i8', 'fortran_order': False, 'shape': ()}").unwrap();
        assert!(h.shape.is_empty());
        for (bad, says) in [
            (
                &b"{'descr': '<f4', 'fortran_order': False}"[..],
                "missing key 'shape'",
            ),
            (
                b"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
                "unexpected key 'x'",
            ),
            (
                b"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}",
                "twice",
            ),
            (
                b"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': ()}",
                "structured",
            ),
            (
                b"{'descr': '<f4', 'fortran_order': 0, 'shape': ()}",
                "expected a string, True",
            ),
            (
                b"{'descr': '<f4', 'fortran_order': 'no', 'shape': ()}",
                "True or False",
            ),
            (
                b"{'descr': '<f4', 'fortran_order': False, 'shape': (1,,)}",
                "expected a dimension",
            ),
            (
                b"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
                "expected a dimension",
            ),
            (
                b"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
                "does not fit",
            ),
            (
                b"{'descr': '<f4' 'fortran_order': False, 'shape': ()}",
                "expected ',' or '}'",
            ),
            (
                b"{'descr': '<f4', 'fortran_order': False, 'shape': ()} x",
                "after the closing",
            ),
            (b"{'descr': '<f4", "not closed"),
            (b"", "expected '{'"),
        ] {
            let text = String::from_utf8_lossy(bad);
            let e = parse_dict(bad)
                .err()
                .unwrap_or_else(|| panic!("{text} parsed"));
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn multi_index_of_flat_positions() {
        assert_eq!(index_str(0, &[2, 3, 4]), "(0, 0, 0)");
        assert_eq!(index_str(23, &[2, 3, 4]), "(1, 2, 3)");
        assert_eq!(index_str(13, &[2, 3, 4]), "(1, 0, 1)");
        assert_eq!(index_str(5, &[6]), "(5,)");
    }

    #[test]
    fn every_truncation_of_a_valid_file_is_refused_without_panicking() {
        let data: Vec<u8> = (0..24u8).collect();
        let file = v1(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3, 4), }",
            &data,
        );
        assert_eq!(file.len() % 64, 24);
        let full = parse_npy(&file, "t.npy").unwrap();
        assert_eq!(full.data, NpyData::U8(data));
        for cut in 0..file.len() {
            let e = parse_npy(&file[..cut], "t.npy").unwrap_err().to_string();
            assert!(e.contains("t.npy"), "cut {cut}: {e}");
        }
        // Every single-byte corruption either parses or errors: never panics.
        for at in 0..file.len() {
            for v in [0u8, b'(', b')', b',', b'\'', b'9', 0xff] {
                let mut f = file.clone();
                f[at] = v;
                let _ = parse_npy(&f, "t.npy");
            }
        }
    }
}
