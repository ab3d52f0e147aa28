//! Direct (no im2col) stride-1 convolution for x86-64 with AVX2 + FMA.
//!
//! Per image, the input is copied once into a zero-padded buffer of row width `wp = w + 2·pad`.
//! Computed over that padded width, output position `j = oh·wp + ow` of channel `co` is
//! `Σ_ci Σ_(ki,kj) w[co, ci, ki, kj] · xpad[ci, j + ki·wp + kj]`: every kernel tap reads the
//! padded channel at a constant offset, so the inner loop is R ≤ 6 output channels × V = 2 vectors of 8
//! consecutive positions, each step one broadcast weight per channel and one unaligned load per
//! vector feeding R·V fused multiply-adds — no im2col matrix, no packing. The `wp − wout` extra
//! columns per row are computed and dropped when the block is copied out (with the optional
//! bias and activation).

#![allow(clippy::too_many_arguments)]

use super::norm::Act;

/// Whether this CPU can run the direct kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *OK.get_or_init(|| {
            std::env::var("GRAFT_DIRECT_CONV").map_or(true, |v| v != "off")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Output positions per register block: V = 2 vectors of 8.
const BLOCK: usize = 16;

/// Geometry of one direct conv.
#[derive(Clone, Copy, Debug)]
pub struct DirectGeom {
    /// Input channels.
    pub cin: usize,
    /// Input height and width.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Zero padding on every side.
    pub pad: usize,
}

impl DirectGeom {
    fn wp(&self) -> usize {
        self.w + 2 * self.pad
    }
    fn hp(&self) -> usize {
        self.h + 2 * self.pad
    }
    /// Output height and width.
    pub fn out_hw(&self) -> (usize, usize) {
        (self.hp() + 1 - self.kh, self.wp() + 1 - self.kw)
    }
    /// Offset of each kernel tap `(ki, kj)` in the padded input, in tap order.
    fn tap_offsets(&self) -> Vec<usize> {
        let wp = self.wp();
        (0..self.kh).flat_map(|ki| (0..self.kw).map(move |kj| ki * wp + kj)).collect()
    }
    /// Positions computed per channel (rounded up to whole blocks).
    fn positions(&self) -> usize {
        (self.out_hw().0 * self.wp()).div_ceil(BLOCK) * BLOCK
    }
    /// Floats of the padded input buffer, with slack so the last block's loads stay inside.
    fn padded_len(&self) -> usize {
        let reach = (self.kh - 1) * self.wp() + self.kw - 1;
        (self.cin * self.hp() * self.wp()).max((self.cin - 1) * self.hp() * self.wp() + self.positions() + reach)
    }
}

/// Scratch buffers one worker reuses across images.
#[derive(Default)]
pub struct Scratch {
    padded: Vec<f32>,
    out: Vec<f32>,
}

impl Scratch {
    /// Copies `x (cin, h, w)` into the zero-padded buffer of row width `wp`.
    fn pad_input(&mut self, x: &[f32], g: &DirectGeom) {
        let (hp, wp) = (g.hp(), g.wp());
        self.padded.clear();
        self.padded.resize(g.padded_len(), 0.0);
        for c in 0..g.cin {
            for r in 0..g.h {
                let dst = (c * hp + r + g.pad) * wp + g.pad;
                self.padded[dst..dst + g.w].copy_from_slice(&x[(c * g.h + r) * g.w..][..g.w]);
            }
        }
    }
}

/// Convolves one image `x (cin, h, w)` with `wt (cout, cin, kh, kw)` into `y (cout, hout, wout)`,
/// adding `bias[co]` and applying `act` when given.
///
/// # Safety
/// [`available`] must be true; the slices must have the sizes the geometry implies.
pub unsafe fn conv_image(x: &[f32], wt: &[f32], y: &mut [f32], g: &DirectGeom, epilogue: Option<(&[f32], Act)>, s: &mut Scratch) {
    let wp = g.wp();
    let (hout, wout) = g.out_hw();
    s.pad_input(x, g);
    let positions = g.positions();
    s.out.resize(g.cout * positions, 0.0);
    let offsets = g.tap_offsets();
    let mut co = 0;
    while co < g.cout {
        let rows = (g.cout - co).min(6);
        match rows {
            6 => channels::<6>(&s.padded, wt, &mut s.out, co, g, &offsets, positions),
            5 => channels::<5>(&s.padded, wt, &mut s.out, co, g, &offsets, positions),
            4 => channels::<4>(&s.padded, wt, &mut s.out, co, g, &offsets, positions),
            3 => channels::<3>(&s.padded, wt, &mut s.out, co, g, &offsets, positions),
            2 => channels::<2>(&s.padded, wt, &mut s.out, co, g, &offsets, positions),
            _ => channels::<1>(&s.padded, wt, &mut s.out, co, g, &offsets, positions),
        }
        co += rows;
    }
    for c in 0..g.cout {
        for r in 0..hout {
            let src = &s.out[c * positions + r * wp..][..wout];
            let dst = &mut y[(c * hout + r) * wout..][..wout];
            dst.copy_from_slice(src);
            if let Some((bias, act)) = epilogue {
                act.apply_bias(dst, bias[c]);
            }
        }
    }
}

/// Output channels `co..co+R` over every position block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn channels<const R: usize>(
    padded: &[f32],
    wt: &[f32],
    out: &mut [f32],
    co: usize,
    g: &DirectGeom,
    offsets: &[usize],
    positions: usize,
) {
    use std::arch::x86_64::*;
    let taps = offsets.len();
    let plane = g.hp() * g.wp();
    let k = g.cin * taps;
    let wbase = wt.as_ptr().add(co * k);
    let xbase = padded.as_ptr();
    let obase = out.as_mut_ptr();
    let mut j = 0;
    while j < positions {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for ci in 0..g.cin {
            let xc = xbase.add(ci * plane + j);
            let wc = wbase.add(ci * taps);
            for (t, &off) in offsets.iter().enumerate() {
                let x0 = _mm256_loadu_ps(xc.add(off));
                let x1 = _mm256_loadu_ps(xc.add(off + 8));
                for (r, a) in acc.iter_mut().enumerate() {
                    let wv = _mm256_broadcast_ss(&*wc.add(r * k + t));
                    a[0] = _mm256_fmadd_ps(wv, x0, a[0]);
                    a[1] = _mm256_fmadd_ps(wv, x1, a[1]);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            let o = obase.add((co + r) * positions + j);
            _mm256_storeu_ps(o, a[0]);
            _mm256_storeu_ps(o.add(8), a[1]);
        }
        j += BLOCK;
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn channels<const R: usize>(_: &[f32], _: &[f32], _: &mut [f32], _: usize, _: &DirectGeom, _: &[usize], _: usize) {
    unreachable!("the direct conv kernel is only used where `available()` is true")
}

/// Adds one image's weight gradient into `dw (cout, cin, kh, kw)`: `x (cin, h, w)` is the
/// conv's input and `dy (cout, hout, wout)` its output gradient.
///
/// `dw[co, ci, tap] = Σ_j dy_p[co, j] · xpad[ci, j + offset(tap)]` over the padded-width
/// positions `j`, where `dy_p` is `dy` re-laid at row width `wp` with zeros in the extra
/// columns. Blocks of 4 output channels × 3 taps keep 12 vector accumulators.
///
/// # Safety
/// [`available`] must be true; the slices must have the sizes the geometry implies.
pub unsafe fn weight_grad_image(x: &[f32], dy: &[f32], dw: &mut [f32], g: &DirectGeom, s: &mut Scratch) {
    let (hp, wp) = (g.hp(), g.wp());
    let (hout, wout) = g.out_hw();
    s.pad_input(x, g);
    let positions = g.positions();
    s.out.clear();
    s.out.resize(g.cout * positions, 0.0);
    for c in 0..g.cout {
        for r in 0..hout {
            s.out[c * positions + r * wp..][..wout].copy_from_slice(&dy[(c * hout + r) * wout..][..wout]);
        }
    }
    let offsets = g.tap_offsets();
    let plane = hp * wp;
    let taps = offsets.len();
    // Position chunks keep 4 rows of dy and one input channel in L1 across the taps.
    let mut j0 = 0;
    while j0 < positions {
        let j1 = (j0 + WGRAD_CHUNK).min(positions);
        for ci in 0..g.cin {
            let xc = &s.padded[ci * plane..];
            let mut co = 0;
            while co < g.cout {
                let rows = (g.cout - co).min(4);
                for t0 in (0..taps).step_by(3) {
                    let offs = &offsets[t0..(t0 + 3).min(taps)];
                    let at = Dots { positions, j0, j1, co, ci, t0, cin: g.cin, taps };
                    match rows {
                        4 => tap_dots::<4>(&s.out, xc, offs, dw, &at),
                        3 => tap_dots::<3>(&s.out, xc, offs, dw, &at),
                        2 => tap_dots::<2>(&s.out, xc, offs, dw, &at),
                        _ => tap_dots::<1>(&s.out, xc, offs, dw, &at),
                    }
                }
                co += rows;
            }
        }
        j0 = j1;
    }
}

/// Positions per weight-gradient chunk (a multiple of 8).
const WGRAD_CHUNK: usize = 512;

/// Where one [`tap_dots`] call reads and writes.
#[derive(Clone, Copy)]
struct Dots {
    positions: usize,
    j0: usize,
    j1: usize,
    co: usize,
    ci: usize,
    t0: usize,
    cin: usize,
    taps: usize,
}

/// For output channels `co..co+R` and up to 3 taps `offs` (starting at tap `t0`) of input
/// channel `ci`: `dw[co+r, ci, t0+t] += Σ_j dy_p[co+r, j] · x[j + offs[t]]` over `j0 ≤ j < j1`
/// (multiples of 8). R·3 accumulators; each loaded vector feeds several multiply-adds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tap_dots<const R: usize>(dy: &[f32], x: &[f32], offs: &[usize], dw: &mut [f32], at: &Dots) {
    use std::arch::x86_64::*;
    let Dots { positions, j0, j1, co, ci, t0, cin, taps } = *at;
    let mut acc = [[_mm256_setzero_ps(); 3]; R];
    let n = offs.len();
    let (o0, o1, o2) = (offs[0], offs[n.min(2) - 1], offs[n - 1]);
    let (dp, xp) = (dy.as_ptr().add(co * positions), x.as_ptr());
    let mut j = j0;
    while j < j1 {
        let x0 = _mm256_loadu_ps(xp.add(j + o0));
        let x1 = _mm256_loadu_ps(xp.add(j + o1));
        let x2 = _mm256_loadu_ps(xp.add(j + o2));
        for (r, a) in acc.iter_mut().enumerate() {
            let d = _mm256_loadu_ps(dp.add(r * positions + j));
            a[0] = _mm256_fmadd_ps(d, x0, a[0]);
            a[1] = _mm256_fmadd_ps(d, x1, a[1]);
            a[2] = _mm256_fmadd_ps(d, x2, a[2]);
        }
        j += 8;
    }
    for (r, a) in acc.iter().enumerate() {
        for (t, v) in a.iter().take(n).enumerate() {
            let hi = _mm256_extractf128_ps(*v, 1);
            let q = _mm_add_ps(_mm256_castps256_ps128(*v), hi);
            let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
            let q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
            dw[((co + r) * cin + ci) * taps + t0 + t] += _mm_cvtss_f32(q);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tap_dots<const R: usize>(_: &[f32], _: &[f32], _: &[usize], _: &mut [f32], _: &Dots) {
    unreachable!("the direct conv kernel is only used where `available()` is true")
}
