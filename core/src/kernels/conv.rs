//! Fast f32 CPU 2-D convolution (NCHW, OIHW weights) with its own backward.
//!
//! Forward: per image and per tile of output rows, im2col (`K = Cin/groups·kh·kw` rows, one
//! column per output position of the tile) and one `gemm` of `W (Cout/groups × K) · col`. The
//! tiles keep the column buffer in L2 and give work to both cores even at batch 1. A 1x1,
//! stride-1, unpadded conv reads the input directly (no im2col).
//!
//! Backward w.r.t. the input: per image `colgrad = Wᵀ · dY` and col2im (scatter-add).
//! Backward w.r.t. the weight: `dW = Σ_n dY_n · col_nᵀ`, accumulated in per-thread partial sums
//! that are reduced at the end. Both are custom ops of their own (no second-order gradients).
//!
//! Dilation is always 1. Work is spread over rayon's global pool; each `gemm` call is serial.

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use super::cpu_slice::{f32_slice, output_vec};
use super::direct;
use super::norm::{act_grad, channel_sums, Act};
use rayon::prelude::*;

/// Target size (in f32s) of one im2col tile: 64K floats = 256 KiB, about half an L2.
const COL_TILE_FLOATS: usize = 64 * 1024;
/// Fewest output positions per tile (below this the gemm gets inefficient).
const MIN_TILE_COLS: usize = 256;

/// Convolution geometry, validated.
#[derive(Clone, Copy, Debug)]
struct Geom {
    n: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
    groups: usize,
    hout: usize,
    wout: usize,
}

impl Geom {
    /// Multiply–accumulates of the convolution (and of each of its two gradients).
    fn macs(&self) -> u64 {
        (self.n * self.cout * self.hout * self.wout * (self.cin / self.groups) * self.kh * self.kw) as u64
    }

    /// Geometry of `x (n, cin, h, w)` convolved with `w (cout, cin/groups, kh, kw)`.
    fn new(x: &[usize], wt: &[usize], stride: usize, pad: usize, groups: usize) -> Result<Self> {
        if x.len() != 4 || wt.len() != 4 {
            bail!("graft conv2d: expected 4-D input (n,c,h,w) and weight (o,i,kh,kw), got {x:?} and {wt:?}");
        }
        if stride == 0 || groups == 0 {
            bail!("graft conv2d: stride ({stride}) and groups ({groups}) must be positive");
        }
        let (n, cin, h, w) = (x[0], x[1], x[2], x[3]);
        let (cout, cin_g, kh, kw) = (wt[0], wt[1], wt[2], wt[3]);
        if cin % groups != 0 || cout % groups != 0 || cin / groups != cin_g {
            bail!(
                "graft conv2d: input {x:?} and weight {wt:?} do not fit groups={groups} \
                 (need cin % groups == 0, cout % groups == 0, weight dim 1 == cin / groups)"
            );
        }
        if cin == 0 || cout == 0 || h == 0 || w == 0 {
            bail!("graft conv2d: empty channels or spatial size: input {x:?}, weight {wt:?}");
        }
        if kh == 0 || kw == 0 || h + 2 * pad < kh || w + 2 * pad < kw {
            bail!("graft conv2d: kernel {kh}x{kw} does not fit input {h}x{w} with padding {pad}");
        }
        let hout = (h + 2 * pad - kh) / stride + 1;
        let wout = (w + 2 * pad - kw) / stride + 1;
        Ok(Self { n, cin, h, w, cout, kh, kw, stride, pad, groups, hout, wout })
    }

    /// The same geometry for the direct kernel (stride 1, one group).
    fn direct(&self) -> direct::DirectGeom {
        direct::DirectGeom { cin: self.cin, h: self.h, w: self.w, cout: self.cout, kh: self.kh, kw: self.kw, pad: self.pad }
    }
    fn cin_g(&self) -> usize {
        self.cin / self.groups
    }
    fn cout_g(&self) -> usize {
        self.cout / self.groups
    }
    /// Rows of the im2col matrix (= columns of the per-group weight matrix).
    fn k(&self) -> usize {
        self.cin_g() * self.kh * self.kw
    }
    fn hw_in(&self) -> usize {
        self.h * self.w
    }
    fn hw_out(&self) -> usize {
        self.hout * self.wout
    }
    /// 1x1, stride 1, no padding: the input is its own im2col matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }
    /// Output rows per im2col tile.
    fn tile_rows(&self) -> usize {
        let cols = (COL_TILE_FLOATS / self.k()).max(MIN_TILE_COLS);
        let rows = (cols / self.wout).clamp(1, self.hout);
        // Balance the tiles: the same number of tiles, as even as possible.
        self.hout.div_ceil(self.hout.div_ceil(rows))
    }
    /// Number of row tiles per image.
    fn tiles(&self) -> usize {
        self.hout.div_ceil(self.tile_rows())
    }
    /// Output rows `[oh0, oh1)` of tile `t`.
    fn tile(&self, t: usize) -> (usize, usize) {
        let r = self.tile_rows();
        (t * r, ((t + 1) * r).min(self.hout))
    }
    fn out_shape(&self) -> Shape {
        Shape::from((self.n, self.cout, self.hout, self.wout))
    }
    /// `(start, end)` of the output columns `ow` whose input column `ow·s + kj - pad` is inside
    /// the image; empty when `start >= end`.
    fn valid_ow(&self, kj: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.pad);
        let lo = if p > kj { (p - kj).div_ceil(s) } else { 0 }.min(self.wout);
        let hi = if self.w + p > kj { ((self.w - 1 + p - kj) / s + 1).min(self.wout) } else { 0 };
        (lo, hi)
    }
}

/// im2col of one group of one image (`x`: `cin_g × h × w`) for output rows `[oh0, oh1)`, into
/// `col` (`K × nc` row-major, `nc = (oh1-oh0)·wout`).
fn im2col(x: &[f32], g: &Geom, oh0: usize, oh1: usize, col: &mut [f32]) {
    let (h, w, s, wout) = (g.h, g.w, g.stride, g.wout);
    let nc = (oh1 - oh0) * wout;
    let mut row = 0;
    for c in 0..g.cin_g() {
        let xc = &x[c * h * w..(c + 1) * h * w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let (lo, hi) = g.valid_ow(kj);
                let dst = &mut col[row * nc..(row + 1) * nc];
                row += 1;
                if s == 1 && wout == w {
                    im2col_row_same(xc, g, oh0, oh1, ki, kj, dst);
                    continue;
                }
                for (r, oh) in (oh0..oh1).enumerate() {
                    let d = &mut dst[r * wout..(r + 1) * wout];
                    let ih = oh * s + ki;
                    if ih < g.pad || ih - g.pad >= h || lo >= hi {
                        d.fill(0.0);
                        continue;
                    }
                    let xr = &xc[(ih - g.pad) * w..(ih - g.pad + 1) * w];
                    d[..lo].fill(0.0);
                    d[hi..].fill(0.0);
                    let iw0 = lo * s + kj - g.pad;
                    if s == 1 {
                        d[lo..hi].copy_from_slice(&xr[iw0..iw0 + (hi - lo)]);
                    } else {
                        for (i, v) in d[lo..hi].iter_mut().enumerate() {
                            *v = xr[iw0 + i * s];
                        }
                    }
                }
            }
        }
    }
}

/// One im2col row (tap `(ki, kj)` of one channel `xc`) when stride is 1 and the output is as
/// wide as the input: the valid output rows map to one contiguous run of the input, so copy it
/// in one go and then zero the few border columns that wrapped around to a neighbouring row.
fn im2col_row_same(xc: &[f32], g: &Geom, oh0: usize, oh1: usize, ki: usize, kj: usize, dst: &mut [f32]) {
    let (h, w, p) = (g.h, g.w, g.pad);
    let (lo, hi) = g.valid_ow(kj);
    // Output rows whose input row oh + ki - p lies inside the image.
    let a = oh0.max(p.saturating_sub(ki)).min(oh1);
    let b = oh1.min((h + p).saturating_sub(ki)).max(a);
    dst[..(a - oh0) * w].fill(0.0);
    dst[(b - oh0) * w..].fill(0.0);
    if a == b {
        return;
    }
    let run = &mut dst[(a - oh0) * w..(b - oh0) * w];
    // Input index of run[0]; may fall before the channel (only for border columns).
    let start = ((a + ki - p) * w) as isize + kj as isize - p as isize;
    let skip = (-start).max(0) as usize;
    let src0 = (start + skip as isize) as usize;
    let len = (run.len() - skip).min(xc.len() - src0);
    run[skip..skip + len].copy_from_slice(&xc[src0..src0 + len]);
    for r in run.chunks_exact_mut(w) {
        r[..lo].fill(0.0);
        r[hi..].fill(0.0);
    }
}

/// col2im with accumulation: the transpose of [`im2col`], adding `col` into `dx` (`cin_g × h × w`).
fn col2im_add(col: &[f32], g: &Geom, oh0: usize, oh1: usize, dx: &mut [f32]) {
    let (h, w, s, wout) = (g.h, g.w, g.stride, g.wout);
    let nc = (oh1 - oh0) * wout;
    let mut row = 0;
    for c in 0..g.cin_g() {
        let dxc = &mut dx[c * h * w..(c + 1) * h * w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let (lo, hi) = g.valid_ow(kj);
                let src = &col[row * nc..(row + 1) * nc];
                row += 1;
                if lo >= hi {
                    continue;
                }
                for (r, oh) in (oh0..oh1).enumerate() {
                    let ih = oh * s + ki;
                    if ih < g.pad || ih - g.pad >= h {
                        continue;
                    }
                    let d = &src[r * wout + lo..r * wout + hi];
                    let xr = &mut dxc[(ih - g.pad) * w..(ih - g.pad + 1) * w];
                    let iw0 = lo * s + kj - g.pad;
                    if s == 1 {
                        for (a, b) in xr[iw0..iw0 + (hi - lo)].iter_mut().zip(d) {
                            *a += *b;
                        }
                    } else {
                        for (i, b) in d.iter().enumerate() {
                            xr[iw0 + i * s] += *b;
                        }
                    }
                }
            }
        }
    }
}

/// A raw pointer that may be shared between rayon tasks writing disjoint regions.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    // A method (not field access) so closures capture the whole Send wrapper.
    fn get(self) -> *mut f32 {
        self.0
    }
}

use super::blas::matmul;

/// Per-output-channel bias and activation applied to each output block right after its
/// product, while it is still in cache.
#[derive(Clone, Copy)]
struct Epilogue<'a> {
    bias: &'a [f32],
    act: Act,
}

/// Forward: `y (n, cout, hout, wout)`, with the optional epilogue applied.
fn forward(x: &[f32], wt: &[f32], g: &Geom, epilogue: Option<Epilogue>) -> Vec<f32> {
    if prefer_direct(g, false) {
        return forward_direct(x, wt, g, epilogue);
    }
    let (k, cin_g, cout_g, hw_in, hw_out) = (g.k(), g.cin_g(), g.cout_g(), g.hw_in(), g.hw_out());
    let len = g.n * g.cout * hw_out;
    let mut y: Vec<f32> = Vec::with_capacity(len);
    // Written in full below (every image × tile × group block) before `set_len`.
    let yp = SendPtr(y.spare_capacity_mut().as_mut_ptr().cast::<f32>());
    let tiles = g.tiles();
    (0..g.n * tiles).into_par_iter().for_each_init(Vec::<f32>::new, |col, item| {
        let (img, t) = (item / tiles, item % tiles);
        let (oh0, oh1) = g.tile(t);
        let nc = (oh1 - oh0) * g.wout;
        for gi in 0..g.groups {
            let xg = &x[(img * g.cin + gi * cin_g) * hw_in..][..cin_g * hw_in];
            let wg = &wt[gi * cout_g * k..][..cout_g * k];
            let (rhs, rhs_rs) = if g.pointwise() {
                (xg[oh0 * g.wout..].as_ptr(), hw_in)
            } else {
                col.resize(k * nc, 0.0);
                im2col(xg, g, oh0, oh1, col);
                (col.as_ptr(), nc)
            };
            // SAFETY: each (image, tile, group) writes its own rows × columns block of y, and
            // all pointers stay inside their buffers for the given sizes and strides.
            unsafe {
                let dst = yp.get().add((img * g.cout + gi * cout_g) * hw_out + oh0 * g.wout);
                matmul(cout_g, nc, k, dst, hw_out, 1, false, wg.as_ptr(), k, 1, rhs, rhs_rs, 1);
                if let Some(e) = epilogue {
                    for co in 0..cout_g {
                        let row = std::slice::from_raw_parts_mut(dst.add(co * hw_out), nc);
                        e.act.apply_bias(row, e.bias[gi * cout_g + co]);
                    }
                }
            }
        }
    });
    // SAFETY: the gemm calls above (read_dst = false, k >= 1) wrote all `len` elements.
    unsafe { y.set_len(len) };
    y
}

/// Whether the direct kernel should run this conv (else im2col + GEMM). Measured on 2 AVX2
/// cores (docs/performance.md): direct is ~2x faster on narrow layers (16–32 channels) and on
/// small planes, while OpenBLAS on the im2col matrix wins by ~15 % on wide layers with large
/// planes (64→64 at 56x56); the weight gradient's per-tap dot products need long rows.
fn prefer_direct(g: &Geom, weight_grad: bool) -> bool {
    if g.stride != 1 || g.groups != 1 || g.pointwise() || !direct::available() {
        return false;
    }
    let wide = g.cin >= 64 && g.cout >= 64 && g.hw_out() >= 1024;
    if wide && super::blas::uses_openblas() {
        return false;
    }
    !weight_grad || g.hout * (g.w + 2 * g.pad) >= 256
}

/// Forward through the direct kernel, one image per task.
fn forward_direct(x: &[f32], wt: &[f32], g: &Geom, epilogue: Option<Epilogue>) -> Vec<f32> {
    let dg = g.direct();
    debug_assert_eq!(dg.out_hw(), (g.hout, g.wout));
    let per_out = g.cout * g.hw_out();
    let mut y = output_vec(g.n * per_out);
    let e = epilogue.map(|e| (e.bias, e.act));
    y.par_chunks_mut(per_out).enumerate().for_each_init(direct::Scratch::default, |scratch, (img, yi)| {
        let xi = &x[img * g.cin * g.hw_in()..][..g.cin * g.hw_in()];
        // SAFETY: `direct::available()` was checked and the slices match the geometry.
        unsafe { direct::conv_image(xi, wt, yi, &dg, e, scratch) };
    });
    y
}

/// Gradient w.r.t. the input: `dx (n, cin, h, w)` from `dy (n, cout, hout, wout)`.
///
/// Stride 1 with a square kernel and `pad < k` (every 3x3 "same" conv): a forward conv of `dy`
/// with the flipped, transposed weight and padding `k - 1 - pad` — a long-K gemm and no
/// scatter-add. Otherwise `Wᵀ · dY` per tile and col2im.
fn input_grad(dy: &[f32], wt: &[f32], g: &Geom) -> Vec<f32> {
    let (k, cin_g, cout_g, hw_in, hw_out) = (g.k(), g.cin_g(), g.cout_g(), g.hw_in(), g.hw_out());
    if g.stride == 1 && g.kh == g.kw && g.pad < g.kh && !g.pointwise() {
        let (kh, kw) = (g.kh, g.kw);
        // wf[gi·cin_g + ci, co, ki, kj] = w[gi·cout_g + co, ci, kh-1-ki, kw-1-kj]
        let mut wf = vec![0f32; wt.len()];
        for gi in 0..g.groups {
            for co in 0..cout_g {
                for ci in 0..cin_g {
                    let src = &wt[((gi * cout_g + co) * cin_g + ci) * kh * kw..][..kh * kw];
                    let dst = &mut wf[((gi * cin_g + ci) * cout_g + co) * kh * kw..][..kh * kw];
                    for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                        *d = *s;
                    }
                }
            }
        }
        let xd = [g.n, g.cout, g.hout, g.wout];
        let wd = [g.cin, cout_g, kh, kw];
        if let Ok(gt) = Geom::new(&xd, &wd, 1, kh - 1 - g.pad, g.groups) {
            debug_assert_eq!((gt.hout, gt.wout), (g.h, g.w));
            return forward(dy, &wf, &gt, None);
        }
    }
    let mut dx = vec![0f32; g.n * g.cin * hw_in];
    if dx.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(g.cin * hw_in).enumerate().for_each_init(Vec::<f32>::new, |col, (img, dxi)| {
        for gi in 0..g.groups {
            let dyg = &dy[(img * g.cout + gi * cout_g) * hw_out..][..cout_g * hw_out];
            let wg = &wt[gi * cout_g * k..][..cout_g * k];
            let dxg = &mut dxi[gi * cin_g * hw_in..][..cin_g * hw_in];
            if g.pointwise() {
                // SAFETY: dxg is cin_g × hw, wgᵀ is cin_g × cout_g, dyg is cout_g × hw.
                unsafe {
                    matmul(cin_g, hw_in, cout_g, dxg.as_mut_ptr(), hw_in, 1, false, wg.as_ptr(), 1, k, dyg.as_ptr(), hw_out, 1);
                }
                continue;
            }
            for t in 0..g.tiles() {
                let (oh0, oh1) = g.tile(t);
                let nc = (oh1 - oh0) * g.wout;
                col.resize(k * nc, 0.0);
                // SAFETY: col is k × nc, wgᵀ is k × cout_g, the dy tile is cout_g × nc (row stride hw_out).
                unsafe {
                    let rhs = dyg[oh0 * g.wout..].as_ptr();
                    matmul(k, nc, cout_g, col.as_mut_ptr(), nc, 1, false, wg.as_ptr(), 1, k, rhs, hw_out, 1);
                }
                col2im_add(&col[..k * nc], g, oh0, oh1, dxg);
            }
        }
    });
    dx
}

/// Most partial sums a weight gradient is split into.
const WGRAD_BLOCKS: usize = 16;

/// `Σ_i f(i)` over `items` work items, each adding into a `len`-float accumulator, computed in
/// parallel yet **deterministically**: the items are cut into a fixed number of contiguous
/// blocks (independent of the thread count), each block sums its items in order, and the block
/// sums are added in order. (A rayon `fold`/`reduce` would group items by work stealing, so the
/// float rounding, and with it training, would change from run to run.)
fn ordered_sum<S: Default>(items: usize, len: usize, f: impl Fn(&mut [f32], &mut S, usize) + Sync) -> Vec<f32> {
    let blocks = items.clamp(1, WGRAD_BLOCKS);
    let per = items.div_ceil(blocks).max(1);
    let partials: Vec<Vec<f32>> = (0..blocks)
        .into_par_iter()
        .map(|b| {
            let mut acc = vec![0f32; len];
            let mut scratch = S::default();
            for i in b * per..((b + 1) * per).min(items) {
                f(&mut acc, &mut scratch, i);
            }
            acc
        })
        .collect();
    let mut parts = partials.into_iter();
    let mut total = parts.next().unwrap_or_else(|| vec![0f32; len]);
    for p in parts {
        total.iter_mut().zip(&p).for_each(|(t, v)| *t += *v);
    }
    total
}

/// Weight gradient through the direct kernel: per-thread sums over images, then reduced.
fn weight_grad_direct(x: &[f32], dy: &[f32], g: &Geom) -> Vec<f32> {
    let dg = g.direct();
    let wlen = g.cout * g.k();
    let (per_x, per_y) = (g.cin * g.hw_in(), g.cout * g.hw_out());
    ordered_sum(g.n, wlen, |acc, scratch: &mut direct::Scratch, img| {
        // SAFETY: `direct::available()` was checked and the slices match the geometry.
        unsafe { direct::weight_grad_image(&x[img * per_x..][..per_x], &dy[img * per_y..][..per_y], acc, &dg, scratch) };
    })
}

/// Gradient w.r.t. the weight: `dw (cout, cin/groups, kh, kw)`.
fn weight_grad(x: &[f32], dy: &[f32], g: &Geom) -> Vec<f32> {
    if prefer_direct(g, true) {
        return weight_grad_direct(x, dy, g);
    }
    let (k, cin_g, cout_g, hw_in, hw_out) = (g.k(), g.cin_g(), g.cout_g(), g.hw_in(), g.hw_out());
    let wlen = g.cout * k;
    let tiles = g.tiles();
    ordered_sum(g.n * tiles, wlen, |acc, col: &mut Vec<f32>, item| {
        let (img, t) = (item / tiles, item % tiles);
        let (oh0, oh1) = g.tile(t);
        let nc = (oh1 - oh0) * g.wout;
        for gi in 0..g.groups {
            let xg = &x[(img * g.cin + gi * cin_g) * hw_in..][..cin_g * hw_in];
            let dyg = &dy[(img * g.cout + gi * cout_g) * hw_out..][..cout_g * hw_out];
            // colᵀ as an nc × k matrix: (row stride, column stride).
            let (rhs, rhs_rs, rhs_cs) = if g.pointwise() {
                (xg[oh0 * g.wout..].as_ptr(), 1, hw_in)
            } else {
                col.resize(k * nc, 0.0);
                im2col(xg, g, oh0, oh1, col);
                (col.as_ptr(), 1, nc)
            };
            let dst = &mut acc[gi * cout_g * k..][..cout_g * k];
            // SAFETY: dst is cout_g × k, the dy tile is cout_g × nc, colᵀ is nc × k.
            unsafe {
                let lhs = dyg[oh0 * g.wout..].as_ptr();
                matmul(cout_g, k, nc, dst.as_mut_ptr(), k, 1, true, lhs, hw_out, 1, rhs, rhs_rs, rhs_cs);
            }
        }
    })
}

/// The forward op; `arg1` is the input, `arg2` the weight.
#[derive(Clone, Copy, Debug)]
struct Conv2dOp {
    stride: usize,
    padding: usize,
    groups: usize,
}

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "graft-conv2d"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(l1.dims(), l2.dims(), self.stride, self.padding, self.groups)?;
        super::flop_count::add(g.macs());
        let y = forward(f32_slice(s1, l1, "conv2d", "input")?, f32_slice(s2, l2, "conv2d", "weight")?, &g, None);
        Ok((CpuStorage::F32(y), g.out_shape()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // A leaf that is not a variable never receives its gradient: skip the work.
        let dx = if x.track_op() {
            let (_, _, h, wd) = x.dims4()?;
            Some(conv2d_input_grad(dy, w, (h, wd), self.stride, self.padding, self.groups)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            let (_, _, kh, kw) = w.dims4()?;
            Some(conv2d_weight_grad(x, dy, (kh, kw), self.stride, self.padding, self.groups)?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// Convolution + per-channel bias + activation; args: input, weight, bias `(cout,)`.
#[derive(Clone, Copy, Debug)]
struct Conv2dBiasActOp {
    stride: usize,
    padding: usize,
    groups: usize,
    act: Act,
}

impl CustomOp3 for Conv2dBiasActOp {
    fn name(&self) -> &'static str {
        "graft-conv2d-bias-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(l1.dims(), l2.dims(), self.stride, self.padding, self.groups)?;
        if l3.dims() != [g.cout] {
            bail!("graft conv2d: bias must have shape [{}], got {:?}", g.cout, l3.dims());
        }
        let bias = f32_slice(s3, l3, "conv2d", "bias")?;
        let e = Epilogue { bias, act: self.act };
        super::flop_count::add(g.macs());
        let y = forward(f32_slice(s1, l1, "conv2d", "input")?, f32_slice(s2, l2, "conv2d", "weight")?, &g, Some(e));
        Ok((CpuStorage::F32(y), g.out_shape()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, b: &Tensor, res: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = act_grad(res, dy, self.act)?;
        let dx = if x.track_op() {
            let (_, _, h, wd) = x.dims4()?;
            Some(conv2d_input_grad(&g, w, (h, wd), self.stride, self.padding, self.groups)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            let (_, _, kh, kw) = w.dims4()?;
            Some(conv2d_weight_grad(x, &g, (kh, kw), self.stride, self.padding, self.groups)?)
        } else {
            None
        };
        let db = if b.track_op() { Some(channel_sums(&g)?) } else { None };
        Ok((dx, dw, db))
    }
}

/// Input-gradient op; `arg1` is `dy`, `arg2` the weight.
#[derive(Clone, Copy, Debug)]
struct InputGradOp {
    h: usize,
    w: usize,
    stride: usize,
    padding: usize,
    groups: usize,
}

impl CustomOp2 for InputGradOp {
    fn name(&self) -> &'static str {
        "graft-conv2d-input-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (dyd, wd) = (l1.dims(), l2.dims());
        if dyd.len() != 4 || wd.len() != 4 {
            bail!("graft conv2d input grad: expected 4-D dy and weight, got {dyd:?} and {wd:?}");
        }
        let xdims = [dyd[0], wd[1] * self.groups, self.h, self.w];
        let g = Geom::new(&xdims, wd, self.stride, self.padding, self.groups)?;
        if dyd != g.out_shape().dims() {
            bail!("graft conv2d input grad: dy {dyd:?} does not match output {:?}", g.out_shape());
        }
        super::flop_count::add(g.macs());
        let dx = input_grad(f32_slice(s1, l1, "conv2d", "dy")?, f32_slice(s2, l2, "conv2d", "weight")?, &g);
        Ok((CpuStorage::F32(dx), Shape::from(xdims.to_vec())))
    }
}

/// Weight-gradient op; `arg1` is the input, `arg2` is `dy`.
#[derive(Clone, Copy, Debug)]
struct WeightGradOp {
    kh: usize,
    kw: usize,
    stride: usize,
    padding: usize,
    groups: usize,
}

impl CustomOp2 for WeightGradOp {
    fn name(&self) -> &'static str {
        "graft-conv2d-weight-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (xd, dyd) = (l1.dims(), l2.dims());
        if xd.len() != 4 || dyd.len() != 4 {
            bail!("graft conv2d weight grad: expected 4-D input and dy, got {xd:?} and {dyd:?}");
        }
        if self.groups == 0 || xd[1] % self.groups != 0 {
            bail!("graft conv2d weight grad: groups {} does not divide input channels {}", self.groups, xd[1]);
        }
        let wdims = [dyd[1], xd[1] / self.groups, self.kh, self.kw];
        let g = Geom::new(xd, &wdims, self.stride, self.padding, self.groups)?;
        if dyd != g.out_shape().dims() {
            bail!("graft conv2d weight grad: dy {dyd:?} does not match output {:?}", g.out_shape());
        }
        super::flop_count::add(g.macs());
        let dw = weight_grad(f32_slice(s1, l1, "conv2d", "input")?, f32_slice(s2, l2, "conv2d", "dy")?, &g);
        Ok((CpuStorage::F32(dw), Shape::from(wdims.to_vec())))
    }
}

/// Checks that every tensor is an f32 CPU tensor.
fn check_cpu_f32(what: &str, ts: &[&Tensor]) -> Result<()> {
    for t in ts {
        if !t.device().is_cpu() {
            bail!("graft {what}: CPU only, got a tensor on {:?} (use candle's conv2d)", t.device().location());
        }
        if t.dtype() != DType::F32 {
            bail!("graft {what}: f32 only, got {:?} (use candle's conv2d)", t.dtype());
        }
    }
    Ok(())
}

/// 2-D convolution of `x (n, cin, h, w)` with `w (cout, cin/groups, kh, kw)`, zero `padding` on
/// every side, dilation 1. Same result as candle's `x.conv2d(w, padding, stride, 1, groups)`
/// (note the argument order here: stride before padding), with a fast f32 CPU backward.
///
/// Errors (so callers can fall back to candle) unless both tensors are f32 on the CPU; also on
/// shapes that do not fit. Non-contiguous inputs are copied to contiguous first.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize, groups: usize) -> Result<Tensor> {
    check_cpu_f32("conv2d", &[x, w])?;
    Geom::new(x.dims(), w.dims(), stride, padding, groups)?;
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    x.apply_op2(&w, Conv2dOp { stride, padding, groups })
}

/// `act(conv2d(x, w) + b)` with the bias and activation applied inside the kernel (one pass
/// less over the output). Used for inference-mode conv + BatchNorm with the BN folded into `w`
/// and `b`. Differentiable in all three arguments. Same errors as [`conv2d`].
pub fn conv2d_bias_act(x: &Tensor, w: &Tensor, b: &Tensor, stride: usize, padding: usize, groups: usize, act: Act) -> Result<Tensor> {
    check_cpu_f32("conv2d", &[x, w, b])?;
    Geom::new(x.dims(), w.dims(), stride, padding, groups)?;
    let (x, w, b) = (x.contiguous()?, w.contiguous()?, b.contiguous()?);
    x.apply_op3(&w, &b, Conv2dBiasActOp { stride, padding, groups, act })
}

/// Gradient of [`conv2d`] w.r.t. its input, given the output gradient `dy (n, cout, hout, wout)`,
/// the weight and the input's spatial size `(h, w)`. Not differentiable itself.
pub fn conv2d_input_grad(
    dy: &Tensor,
    w: &Tensor,
    input_hw: (usize, usize),
    stride: usize,
    padding: usize,
    groups: usize,
) -> Result<Tensor> {
    check_cpu_f32("conv2d input grad", &[dy, w])?;
    let (dy, w) = (dy.contiguous()?, w.contiguous()?);
    let op = InputGradOp { h: input_hw.0, w: input_hw.1, stride, padding, groups };
    dy.apply_op2_no_bwd(&w, &op)
}

/// Gradient of [`conv2d`] w.r.t. its weight, given the input `x`, the output gradient `dy` and
/// the kernel size `(kh, kw)`. Not differentiable itself.
pub fn conv2d_weight_grad(
    x: &Tensor,
    dy: &Tensor,
    kernel_hw: (usize, usize),
    stride: usize,
    padding: usize,
    groups: usize,
) -> Result<Tensor> {
    check_cpu_f32("conv2d weight grad", &[x, dy])?;
    let (x, dy) = (x.contiguous()?, dy.contiguous()?);
    let op = WeightGradOp { kh: kernel_hw.0, kw: kernel_hw.1, stride, padding, groups };
    x.apply_op2_no_bwd(&dy, &op)
}
