//! The one serial matrix product the conv kernels use: the system OpenBLAS when the build
//! found it (see `core/build.rs`), else the portable `gemm` crate.
//!
//! Products run single-threaded: the kernels spread independent products over rayon's pool,
//! so OpenBLAS's own threads are switched off once, before the first call.

/// Smallest `m` and `n` of a product sent to OpenBLAS.
#[cfg(graft_openblas)]
const BLAS_MIN_DIM: usize = 32;

/// `dst (m × n) = [dst +] lhs (m × k) · rhs (k × n)`; every matrix is given as a pointer and
/// (row stride, column stride) in elements. `dst`'s column stride must be 1.
///
/// # Safety
/// Each pointer must address a matrix of the given size and strides, `dst` must not overlap
/// the inputs, and no other thread may write `dst`'s elements during the call.
#[allow(clippy::too_many_arguments)]
#[inline]
pub unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    dst_cs: usize,
    accumulate: bool,
    lhs: *const f32,
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: *const f32,
    rhs_rs: usize,
    rhs_cs: usize,
) {
    #[cfg(graft_openblas)]
    // OpenBLAS wins on the wide products; the gemm crate's packing is cheaper for the skinny
    // ones of narrow (16-channel) layers.
    if uses_openblas() && dst_cs == 1 && m >= BLAS_MIN_DIM && n >= BLAS_MIN_DIM && k > 0 {
        if let (Some(a), Some(b)) = (openblas::operand(m, k, lhs_rs, lhs_cs), openblas::operand(k, n, rhs_rs, rhs_cs)) {
            openblas::sgemm(m, n, k, a, lhs, b, rhs, dst, dst_rs.max(n), accumulate);
            return;
        }
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_cs as isize,
        dst_rs as isize,
        accumulate,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

/// Whether the matrix products go through the system OpenBLAS: the build found it and
/// `GRAFT_BLAS` is not `off` at run time.
pub fn uses_openblas() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| cfg!(graft_openblas) && std::env::var("GRAFT_BLAS").map_or(true, |v| v != "off"))
}

#[cfg(graft_openblas)]
mod openblas {
    use std::ffi::c_int;
    use std::sync::Once;

    const ROW_MAJOR: c_int = 101;
    const NO_TRANS: c_int = 111;
    const TRANS: c_int = 112;

    extern "C" {
        fn cblas_sgemm(
            layout: c_int,
            trans_a: c_int,
            trans_b: c_int,
            m: c_int,
            n: c_int,
            k: c_int,
            alpha: f32,
            a: *const f32,
            lda: c_int,
            b: *const f32,
            ldb: c_int,
            beta: f32,
            c: *mut f32,
            ldc: c_int,
        );
        fn openblas_set_num_threads(n: c_int);
    }

    static SERIAL: Once = Once::new();

    /// CBLAS transpose flag and leading dimension for a `rows × cols` matrix with the given
    /// strides, when one of them is 1.
    pub fn operand(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<(c_int, c_int)> {
        let ld = |v: usize, min: usize| c_int::try_from(v.max(min).max(1)).ok();
        if cs == 1 || cols == 1 {
            Some((NO_TRANS, ld(if rows == 1 { cols } else { rs }, cols)?))
        } else if rs == 1 || rows == 1 {
            Some((TRANS, ld(if cols == 1 { rows } else { cs }, rows)?))
        } else {
            None
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub unsafe fn sgemm(
        m: usize,
        n: usize,
        k: usize,
        (ta, lda): (c_int, c_int),
        a: *const f32,
        (tb, ldb): (c_int, c_int),
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        SERIAL.call_once(|| unsafe { openblas_set_num_threads(1) });
        let beta = if accumulate { 1.0 } else { 0.0 };
        cblas_sgemm(ROW_MAJOR, ta, tb, m as c_int, n as c_int, k as c_int, 1.0, a, lda, b, ldb, beta, c, ldc as c_int);
    }
}
