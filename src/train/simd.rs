//! The kernel's f32 matrix products: register-tiled AVX-512 and AVX2+FMA micro-kernels, chosen
//! once per process from the CPU's features, and the `gemm` crate where neither exists.
//!
//! The recurrent products are small (`[b, N]·[N, N]` with `b` ≈ 64, `N` ≈ 50–256) and run 2·T
//! times per update, so per-call overhead and packing matter more than cache blocking: a tile of
//! `MR` rows × 32 (AVX-512) or 16 (AVX2) columns stays in registers over a block of `KC` of the
//! inner dimension, reading `A` by broadcast (any strides, so `Aᵀ` costs nothing) and `B` as
//! row-major rows (masked at the right edge). On one core of the development machine this runs
//! `[64, 256]·[256, 256]` at ~190 GFLOP/s where the `gemm` crate managed ~15.

use super::kernel::Real;

/// Which implementation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// AVX-512F micro-kernel (8 × 32 tiles).
    Avx512,
    /// AVX2 + FMA micro-kernel (6 × 16 tiles).
    Avx2,
    /// The `gemm` crate.
    Portable,
}

impl Path {
    /// The fastest path this CPU supports.
    pub fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Self::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Self::Avx2;
            }
        }
        Self::Portable
    }

    /// Whether this CPU can run the path.
    pub fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            Self::Avx512 | Self::Avx2 => false,
            Self::Portable => true,
        }
    }
}

/// Inner-dimension block: a `KC × 32` panel of `B` (32 KiB) stays in L1.
const KC: usize = 256;
/// Row block: `MC × KC` of `A` (64 KiB) stays in L2 while the column tiles pass over it.
const MC: usize = 64;
/// Products with fewer output columns than this take a narrow path.
const NARROW: usize = 8;

/// `C[m, n] (+)= A·B` on `path`. `A[i, l]` is `a[i·rsa + l·csa]`; `B` is row-major `[k, n]`; `C`
/// is row-major `[m, n]`, overwritten or (`accumulate`) added to.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    path: Path,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    c: &mut [f32],
    accumulate: bool,
) {
    if !checked(m, k, n, a, (rsa, csa), b, c, accumulate) {
        return;
    }
    assert!(path.supported(), "matmul: {path:?} is not supported by this CPU");
    // A few output columns (read-outs, `∂W_in`) would fill a 16/32-lane tile with 1–2 lanes.
    if n < NARROW && path != Path::Portable {
        if rsa == 1 && csa == m && m >= NARROW {
            // A is a dense `Aᵀ` ([k, m] row-major): Cᵀ = Bᵀ·Aᵀ puts the long side on the lanes.
            let mut ct = vec![0.0f32; n * m];
            matmul(path, n, k, m, b, (1, n), a, &mut ct, false);
            for (i, row) in c[..m * n].chunks_exact_mut(n).enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = ct[j * m + i] + if accumulate { *v } else { 0.0 };
                }
            }
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if csa == 1 && k >= 16 && path == Path::Avx512 {
            // Rows of A are contiguous: dot products along k against the columns of B.
            let bt = transpose(b, k, n);
            // SAFETY: as below; `bt` holds `n·k` elements.
            unsafe { x86::narrow512(m, k, n, a.as_ptr(), rsa, bt.as_ptr(), c.as_mut_ptr(), accumulate) };
            return;
        }
    }
    match path {
        // SAFETY: the CPU supports the path (asserted), every A index (i < m, l < k) is
        // `i·rsa + l·csa ≤ (m−1)·rsa + (k−1)·csa`, in bounds (asserted), B and C hold `k·n` and
        // `m·n` elements (asserted), and the kernels touch nothing else (edges are masked).
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => unsafe { x86::avx512(m, k, n, a.as_ptr(), rsa, csa, b.as_ptr(), c.as_mut_ptr(), accumulate) },
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { x86::avx2(m, k, n, a.as_ptr(), rsa, csa, b.as_ptr(), c.as_mut_ptr(), accumulate) },
        _ => portable(m, k, n, a, (rsa, csa), b, c, accumulate),
    }
}

/// `[r, c]` → `[c, r]`, row-major.
pub fn transpose<F: Copy>(a: &[F], r: usize, c: usize) -> Vec<F> {
    (0..c * r).map(|idx| a[(idx % r) * c + idx / r]).collect()
}

/// Checks [`matmul`]'s bounds; handles the empty cases and returns false for them.
#[allow(clippy::too_many_arguments)]
fn checked<T: Copy + Default>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    (rsa, csa): (usize, usize),
    b: &[T],
    c: &mut [T],
    accumulate: bool,
) -> bool {
    if m == 0 || n == 0 {
        return false;
    }
    assert!(c.len() >= m * n, "matmul: C has {} elements, needs {}", c.len(), m * n);
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(T::default());
        }
        return false;
    }
    assert!((m - 1) * rsa + (k - 1) * csa < a.len(), "matmul: A out of bounds");
    assert!(b.len() >= k * n, "matmul: B has {} elements, needs {}", b.len(), k * n);
    true
}

/// [`matmul`] through the `gemm` crate, for any float it supports (f64 for gradient checks).
#[allow(clippy::too_many_arguments)]
pub fn portable<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    (rsa, csa): (usize, usize),
    b: &[T],
    c: &mut [T],
    acc: bool,
) {
    if !checked(m, k, n, a, (rsa, csa), b, c, acc) {
        return;
    }
    // SAFETY: bounds checked above; C does not alias A or B (&mut borrow).
    // gemm's convention: dst = alpha·dst + beta·lhs·rhs.
    unsafe {
        gemm::gemm::<T>(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            acc,
            a.as_ptr(),
            csa as isize,
            rsa as isize,
            b.as_ptr(),
            1,
            n as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{KC, MC};

    /// Blocks the inner dimension and the rows, then covers C with `MR`-row tiles of `NR` columns.
    macro_rules! driver {
        ($name:ident, $feature:literal, $nr:expr, $mr:expr, $tile:ident) => {
            #[target_feature(enable = $feature)]
            #[allow(clippy::too_many_arguments)]
            pub(super) unsafe fn $name(
                m: usize,
                k: usize,
                n: usize,
                a: *const f32,
                rsa: usize,
                csa: usize,
                b: *const f32,
                c: *mut f32,
                acc: bool,
            ) {
                let mut k0 = 0;
                while k0 < k {
                    let kc = (k - k0).min(KC);
                    let acc = acc || k0 > 0;
                    // SAFETY (all below): offsets stay inside the bounds `matmul` checked.
                    let (a, b) = unsafe { (a.add(k0 * csa), b.add(k0 * n)) };
                    let mut ib = 0;
                    while ib < m {
                        let ie = (ib + MC).min(m);
                        let mut j0 = 0;
                        while j0 < n {
                            let w = (n - j0).min($nr);
                            let mut i0 = ib;
                            while i0 + $mr <= ie {
                                unsafe { $tile::<$mr>(i0, j0, w, kc, n, a, rsa, csa, b, c, acc) };
                                i0 += $mr;
                            }
                            while i0 + 4 <= ie {
                                unsafe { $tile::<4>(i0, j0, w, kc, n, a, rsa, csa, b, c, acc) };
                                i0 += 4;
                            }
                            while i0 < ie {
                                unsafe { $tile::<1>(i0, j0, w, kc, n, a, rsa, csa, b, c, acc) };
                                i0 += 1;
                            }
                            j0 += $nr;
                        }
                        ib = ie;
                    }
                    k0 += kc;
                }
            }
        };
    }
    driver!(avx512, "avx512f", 32, 8, tile512);
    driver!(avx2, "avx2,fma", 16, 6, tile256);

    /// Lanes `< w` of a 16-lane mask.
    #[inline(always)]
    fn mask16(w: usize) -> u16 {
        if w >= 16 { u16::MAX } else { ((1u32 << w) - 1) as u16 }
    }

    /// `C[i0.., j0..j0+w] (+)= A[i0.., ..k]·B[..k, j0..j0+w]` for `MR` rows, `w ≤ 32`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile512<const MR: usize>(
        i0: usize,
        j0: usize,
        w: usize,
        k: usize,
        n: usize,
        a: *const f32,
        rsa: usize,
        csa: usize,
        b: *const f32,
        c: *mut f32,
        acc: bool,
    ) {
        let (m0, m1) = (mask16(w), mask16(w.saturating_sub(16)));
        let mut s0 = [_mm512_setzero_ps(); MR];
        let mut s1 = [_mm512_setzero_ps(); MR];
        // SAFETY: rows i0..i0+MR < m, columns j0..j0+w ≤ n (masked), inner index < k.
        unsafe {
            let ap = a.add(i0 * rsa);
            let bp = b.add(j0);
            for l in 0..k {
                let b0 = _mm512_maskz_loadu_ps(m0, bp.add(l * n));
                let b1 = _mm512_maskz_loadu_ps(m1, bp.add(l * n + 16));
                for r in 0..MR {
                    let av = _mm512_set1_ps(*ap.add(r * rsa + l * csa));
                    s0[r] = _mm512_fmadd_ps(av, b0, s0[r]);
                    s1[r] = _mm512_fmadd_ps(av, b1, s1[r]);
                }
            }
            for r in 0..MR {
                let cp = c.add((i0 + r) * n + j0);
                if acc {
                    s0[r] = _mm512_add_ps(s0[r], _mm512_maskz_loadu_ps(m0, cp));
                    s1[r] = _mm512_add_ps(s1[r], _mm512_maskz_loadu_ps(m1, cp.add(16)));
                }
                _mm512_mask_storeu_ps(cp, m0, s0[r]);
                _mm512_mask_storeu_ps(cp.add(16), m1, s1[r]);
            }
        }
    }

    /// `C[m, n] (+)= A·B` for `n < NARROW` as dot products: `A[i, l]` is `a[i·rsa + l]`, `bt` is
    /// `Bᵀ` (`[n, k]` row-major).
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn narrow512(
        m: usize,
        k: usize,
        n: usize,
        a: *const f32,
        rsa: usize,
        bt: *const f32,
        c: *mut f32,
        acc: bool,
    ) {
        let tail = mask16(k % 16);
        let full = k / 16;
        // SAFETY: rows i < m of A span `k` elements from `i·rsa`; `bt` is `[n, k]`; C is `[m, n]`.
        unsafe {
            for i in 0..m {
                let ap = a.add(i * rsa);
                let mut s = [_mm512_setzero_ps(); super::NARROW];
                for q in 0..full {
                    let av = _mm512_loadu_ps(ap.add(16 * q));
                    for (j, sj) in s.iter_mut().enumerate().take(n) {
                        *sj = _mm512_fmadd_ps(av, _mm512_loadu_ps(bt.add(j * k + 16 * q)), *sj);
                    }
                }
                if tail != 0 {
                    let av = _mm512_maskz_loadu_ps(tail, ap.add(16 * full));
                    for (j, sj) in s.iter_mut().enumerate().take(n) {
                        *sj = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(tail, bt.add(j * k + 16 * full)), *sj);
                    }
                }
                let cp = c.add(i * n);
                for (j, sj) in s.iter().enumerate().take(n) {
                    let v = _mm512_reduce_add_ps(*sj);
                    *cp.add(j) = if acc { *cp.add(j) + v } else { v };
                }
            }
        }
    }

    /// Lanes `< w` of an 8-lane mask (all bits set in a lane = on).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn mask8(w: usize) -> __m256i {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(w.min(8) as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }

    /// [`tile512`] with 16 columns, AVX2 + FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile256<const MR: usize>(
        i0: usize,
        j0: usize,
        w: usize,
        k: usize,
        n: usize,
        a: *const f32,
        rsa: usize,
        csa: usize,
        b: *const f32,
        c: *mut f32,
        acc: bool,
    ) {
        let (m0, m1) = (mask8(w), mask8(w.saturating_sub(8)));
        let mut s0 = [_mm256_setzero_ps(); MR];
        let mut s1 = [_mm256_setzero_ps(); MR];
        // SAFETY: as in `tile512`.
        unsafe {
            let ap = a.add(i0 * rsa);
            let bp = b.add(j0);
            for l in 0..k {
                let b0 = _mm256_maskload_ps(bp.add(l * n), m0);
                let b1 = _mm256_maskload_ps(bp.add(l * n + 8), m1);
                for r in 0..MR {
                    let av = _mm256_broadcast_ss(&*ap.add(r * rsa + l * csa));
                    s0[r] = _mm256_fmadd_ps(av, b0, s0[r]);
                    s1[r] = _mm256_fmadd_ps(av, b1, s1[r]);
                }
            }
            for r in 0..MR {
                let cp = c.add((i0 + r) * n + j0);
                if acc {
                    s0[r] = _mm256_add_ps(s0[r], _mm256_maskload_ps(cp, m0));
                    s1[r] = _mm256_add_ps(s1[r], _mm256_maskload_ps(cp.add(8), m1));
                }
                _mm256_maskstore_ps(cp, m0, s0[r]);
                _mm256_maskstore_ps(cp.add(8), m1, s1[r]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::TrialRng;

    /// Every path against a plain triple loop in f64: shapes around the tile edges (MR 8/6/4/1,
    /// 16/32 columns, KC), plain and transposed A, overwrite and accumulate. Tolerance: 1e-5 of
    /// the largest |C| (f32 sums of up to 600 terms).
    #[test]
    fn every_path_matches_a_triple_loop() {
        let mut rng = TrialRng::seeded(5);
        let paths: Vec<Path> = [Path::Avx512, Path::Avx2, Path::Portable]
            .into_iter()
            .filter(|p| p.supported())
            .collect();
        for &(m, k, n) in &[
            (1, 1, 1),
            (7, 3, 5),
            (13, 50, 50),
            (64, 100, 33),
            (9, 600, 47),
            (30, 257, 64),
            (5, 2, 17),
            // Narrow: read-outs and input gradients.
            (300, 50, 2),
            (33, 17, 7),
            (50, 700, 2),
            (40, 16, 1),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| rng.normal() as f32).collect();
            for transposed in [false, true] {
                // A[i, l] from a buffer laid out [m, k] or (transposed) [k, m].
                let strides = if transposed { (1, m) } else { (k, 1) };
                let at = |i: usize, l: usize| a[i * strides.0 + l * strides.1] as f64;
                for accumulate in [false, true] {
                    let want: Vec<f64> = (0..m * n)
                        .map(|idx| {
                            let (i, j) = (idx / n, idx % n);
                            let dot: f64 = (0..k).map(|l| at(i, l) * b[l * n + j] as f64).sum();
                            dot + if accumulate { c0[idx] as f64 } else { 0.0 }
                        })
                        .collect();
                    let scale = want.iter().fold(1e-12f64, |s, v| s.max(v.abs()));
                    for &path in &paths {
                        let mut c = c0.clone();
                        matmul(path, m, k, n, &a, strides, &b, &mut c, accumulate);
                        let worst = c
                            .iter()
                            .zip(&want)
                            .map(|(&x, y)| (x as f64 - y).abs())
                            .fold(0.0, f64::max);
                        assert!(
                            worst < 1e-5 * scale,
                            "{path:?} m {m} k {k} n {n} transposed {transposed} accumulate {accumulate}: {worst}"
                        );
                    }
                }
            }
        }
    }

    /// Only `C[..m·n]` is written; a longer C keeps its tail.
    #[test]
    fn writes_only_its_block() {
        for path in [Path::Avx512, Path::Avx2, Path::Portable]
            .into_iter()
            .filter(|p| p.supported())
        {
            let mut c = vec![7.0f32; 3 * 5 + 4];
            matmul(path, 3, 2, 5, &[1.0; 6], (2, 1), &[1.0; 10], &mut c, false);
            assert!(c[..15].iter().all(|&v| v == 2.0), "{path:?}");
            assert!(c[15..].iter().all(|&v| v == 7.0), "{path:?}");
        }
    }
}
