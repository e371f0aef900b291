//! The fused rate-RNN kernel: forward over all time steps and its hand-written backward (BPTT)
//! on contiguous row-major buffers, generic over f32 (training) and f64 (gradient checks).
//!
//! Per step the forward costs one GEMM (`[B,N]·[N,N]`) plus a fused elementwise update; the input
//! projection and the output read-out are one GEMM each over all `T·B` rows. The backward costs
//! one GEMM per step for the recurrence, and the weight gradients are single GEMMs over all
//! `T·B` rows at the end. Buffers are time-major (`[T, B, ·]`) so each step is one contiguous block.
//!
//! With `x_k` the pre-activation state, `r = f(x)`, `u_k` the input and `α` per unit:
//!
//! ```text
//! x_k = (1 − α)⊙x_{k−1} + α⊙(r_{k−1}·W_recᵀ + u_k·W_inᵀ + b_rec) + σ_k⊙ξ_k,   x_{−1} = init_state
//! z_k = r_k·W_outᵀ + b_out
//! ```

use crate::model::Transfer;
use crate::rng::TrialRng;

/// Floats the kernel runs on (f32, f64).
pub trait Real:
    Copy
    + Default
    + PartialOrd
    + Send
    + Sync
    + std::fmt::Debug
    + std::iter::Sum
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + 'static
{
    /// 0.
    fn zero() -> Self;
    /// 1.
    fn one() -> Self;
    /// To f64.
    fn to_f64(self) -> f64;
    /// `max(self, other)`.
    fn max(self, other: Self) -> Self;
    /// `|x|`.
    fn abs(self) -> Self;
    /// `e^x`.
    fn exp(self) -> Self;
    /// `ln(1 + x)`.
    fn ln_1p(self) -> Self;
    /// `tanh(x)`.
    fn tanh(self) -> Self;
    /// `C ← αAB + βC` with arbitrary strides (the `gemm` crate burn-flex uses).
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: &[Self],
        a_strides: (isize, isize),
        b: &[Self],
        b_strides: (isize, isize),
        beta: Self,
        c: &mut [Self],
        rsc: isize,
    );
    /// From f64.
    fn of(v: f64) -> Self;
}

macro_rules! impl_real {
    ($t:ty) => {
        impl Real for $t {
            #[inline]
            fn gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: &[Self],
                (rsa, csa): (isize, isize),
                b: &[Self],
                (rsb, csb): (isize, isize),
                beta: Self,
                c: &mut [Self],
                rsc: isize,
            ) {
                if m == 0 || n == 0 {
                    return;
                }
                let last = |rows: usize, cols: usize, rs: isize, cs: isize| {
                    (rows as isize - 1) * rs + (cols as isize - 1) * cs
                };
                assert!(
                    k == 0 || (last(m, k, rsa, csa) as usize) < a.len(),
                    "gemm: A out of bounds"
                );
                assert!(
                    k == 0 || (last(k, n, rsb, csb) as usize) < b.len(),
                    "gemm: B out of bounds"
                );
                assert!((last(m, n, rsc, 1) as usize) < c.len(), "gemm: C out of bounds");
                // SAFETY: the asserts above keep every accessed element inside the slices, and C
                // (row stride rsc ≥ n, unit column stride) does not alias A or B (&mut borrow).
                // gemm's convention: dst = alpha·dst + beta·lhs·rhs.
                unsafe {
                    gemm::gemm::<$t>(
                        m,
                        n,
                        k,
                        c.as_mut_ptr(),
                        1,
                        rsc,
                        beta != <$t>::default(),
                        a.as_ptr(),
                        csa,
                        rsa,
                        b.as_ptr(),
                        csb,
                        rsb,
                        beta,
                        alpha,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                }
            }
            #[inline(always)]
            fn of(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn zero() -> Self {
                0.0
            }
            #[inline(always)]
            fn one() -> Self {
                1.0
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
        }
    };
}
impl_real!(f32);
impl_real!(f64);

/// `C[m,n] (+)= A[m,k]·B[k,n]` on dense row-major buffers, with optional transposes.
#[allow(clippy::too_many_arguments)]
#[inline]
fn matmul<F: Real>(
    m: usize,
    k: usize,
    n: usize,
    a: &[F],
    a_t: bool,
    b: &[F],
    b_t: bool,
    c: &mut [F],
    accumulate: bool,
) {
    let sa = if a_t { (1, m as isize) } else { (k as isize, 1) };
    let sb = if b_t { (1, k as isize) } else { (n as isize, 1) };
    let beta = if accumulate { F::one() } else { F::zero() };
    F::gemm(m, k, n, F::one(), a, sa, b, sb, beta, c, n as isize);
}

/// Sizes of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Trials `B`.
    pub batch: usize,
    /// Time steps `T`.
    pub steps: usize,
    /// Inputs `I`.
    pub n_in: usize,
    /// Recurrent units `N`.
    pub n_rec: usize,
    /// Outputs `O`.
    pub n_out: usize,
}

/// Effective weights (row-major) and per-unit α.
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a, F> {
    /// `[N, I]`.
    pub w_in: &'a [F],
    /// `[N, N]`.
    pub w_rec: &'a [F],
    /// `[O, N]`.
    pub w_out: &'a [F],
    /// `[N]`.
    pub b_rec: &'a [F],
    /// `[O]`.
    pub b_out: &'a [F],
    /// `[N]`.
    pub init_state: &'a [F],
    /// `[N]`.
    pub alpha: &'a [F],
}

/// A model's effective weights and α in the kernel's layout (owned; [`Effective::weights`]
/// borrows them together with the biases and initial state).
#[derive(Clone, Debug)]
pub struct Effective {
    /// `[N, I]`.
    pub w_in: ndarray::Array2<f32>,
    /// `[N, N]`.
    pub w_rec: ndarray::Array2<f32>,
    /// `[O, N]`.
    pub w_out: ndarray::Array2<f32>,
    /// `[N]`.
    pub alpha: Vec<f32>,
}

impl Effective {
    /// Derives them from `model` (Dale's law and masks applied).
    pub fn of(model: &crate::model::RateRnn) -> Self {
        Self {
            w_in: model.effective_w_in(),
            w_rec: model.effective_w_rec(),
            w_out: model.effective_w_out(),
            alpha: model.alpha().iter().map(|&a| a as f32).collect(),
        }
    }

    /// The kernel's view; `model` supplies biases and initial state.
    pub fn weights<'a>(&'a self, model: &'a crate::model::RateRnn) -> Weights<'a, f32> {
        let [init_state, _, _, _, b_rec, b_out] = model.params.slices();
        let c = "effective weights are contiguous";
        Weights {
            w_in: self.w_in.as_slice().expect(c),
            w_rec: self.w_rec.as_slice().expect(c),
            w_out: self.w_out.as_slice().expect(c),
            b_rec,
            b_out,
            init_state,
            alpha: &self.alpha,
        }
    }
}

/// Gradients with respect to the effective weights (same shapes as [`Weights`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Grads<F> {
    /// `[N, I]`.
    pub w_in: Vec<F>,
    /// `[N, N]`.
    pub w_rec: Vec<F>,
    /// `[O, N]`.
    pub w_out: Vec<F>,
    /// `[N]`.
    pub b_rec: Vec<F>,
    /// `[O]`.
    pub b_out: Vec<F>,
    /// `[N]`.
    pub init_state: Vec<F>,
}

/// What the forward keeps for the backward.
#[derive(Clone, Debug)]
pub struct Forward<F> {
    /// Sizes.
    pub dims: Dims,
    /// Inputs, time-major `[T, B, I]`.
    pub x: Vec<F>,
    /// Pre-activation states, time-major `[T, B, N]`.
    pub states: Vec<F>,
    /// Rates `f(states)`, time-major `[T, B, N]`.
    pub rates: Vec<F>,
    /// Outputs, time-major `[T, B, O]`.
    pub outputs: Vec<F>,
}

/// `[B, T, C]` → `[T, B, C]` (or back, with `batch`/`steps` swapped).
pub fn swap_bt<F: Copy>(a: &[F], batch: usize, steps: usize, c: usize) -> Vec<F> {
    let mut out = Vec::with_capacity(a.len());
    for k in 0..steps {
        for b in 0..batch {
            let at = (b * steps + k) * c;
            out.extend_from_slice(&a[at..at + c]);
        }
    }
    out
}

impl Transfer {
    /// `f(x)` in the kernel's float type.
    #[inline(always)]
    pub fn apply_f<F: Real>(self, x: F) -> F {
        match self {
            Self::Relu => x.max(F::zero()),
            Self::Tanh => x.tanh(),
            Self::Sigmoid => F::one() / (F::one() + (-x).exp()),
            Self::Softplus => x.max(F::zero()) + (-x.abs()).exp().ln_1p(),
            Self::Linear => x,
        }
    }

    /// `f′(x)` given `x` and `r = f(x)`.
    #[inline(always)]
    pub fn derivative_f<F: Real>(self, x: F, r: F) -> F {
        match self {
            Self::Relu => {
                if x > F::zero() {
                    F::one()
                } else {
                    F::zero()
                }
            }
            Self::Tanh => F::one() - r * r,
            Self::Sigmoid => r * (F::one() - r),
            Self::Softplus => F::one() / (F::one() + (-x).exp()),
            Self::Linear => F::one(),
        }
    }
}

/// Trials are split into this many independent chunks, run on separate threads where cores
/// allow. The split is fixed (not the core count) so results do not depend on the machine.
pub const CHUNKS: usize = 2;

fn chunk_bounds(batch: usize) -> Vec<(usize, usize)> {
    let n = CHUNKS.min(batch).max(1);
    (0..n).map(|c| (c * batch / n, (c + 1) * batch / n)).collect()
}

/// Runs `f` on each chunk, in parallel when more than one core is available; results in order.
fn per_chunk<R: Send>(bounds: &[(usize, usize)], f: impl Fn(usize, (usize, usize)) -> R + Sync) -> Vec<R> {
    let parallel = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) && bounds.len() > 1;
    if !parallel {
        return bounds.iter().enumerate().map(|(c, &b)| f(c, b)).collect();
    }
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = bounds
            .iter()
            .enumerate()
            .skip(1)
            .map(|(c, &b)| scope.spawn(move || f(c, b)))
            .collect();
        let mut out = vec![f(0, bounds[0])];
        out.extend(handles.into_iter().map(|h| h.join().expect("kernel thread panicked")));
        out
    })
}

/// Rows `[lo, hi)` of every time step of a time-major `[T, B, C]` buffer.
fn gather_rows<F: Copy>(a: &[F], steps: usize, batch: usize, c: usize, (lo, hi): (usize, usize)) -> Vec<F> {
    let mut out = Vec::with_capacity(steps * (hi - lo) * c);
    for k in 0..steps {
        out.extend_from_slice(&a[(k * batch + lo) * c..(k * batch + hi) * c]);
    }
    out
}

/// Inverse of [`gather_rows`] over all chunks.
fn scatter_rows<F: Copy + Default>(
    parts: &[&[F]],
    bounds: &[(usize, usize)],
    steps: usize,
    batch: usize,
    c: usize,
) -> Vec<F> {
    let mut out = vec![F::default(); steps * batch * c];
    for (part, &(lo, hi)) in parts.iter().zip(bounds) {
        let rows = hi - lo;
        for k in 0..steps {
            out[(k * batch + lo) * c..(k * batch + hi) * c].copy_from_slice(&part[k * rows * c..(k + 1) * rows * c]);
        }
    }
    out
}

/// Runs the network. `x` is batch-major `[B, T, I]` (as tasks produce it). With `noise`
/// `(rng, σ)`, each step adds `σ·sqrt(2α)·ξ`; each chunk of trials ([`CHUNKS`]) draws ξ from its
/// own stream seeded from `rng`, in `[T, b, N]` order.
pub fn forward<F: Real>(
    dims: Dims,
    w: &Weights<'_, F>,
    transfer: Transfer,
    x: &[F],
    noise: Option<(&mut TrialRng, f64)>,
) -> Forward<F> {
    assert_eq!(x.len(), dims.batch * dims.steps * dims.n_in, "x must be [B, T, I]");
    let bounds = chunk_bounds(dims.batch);
    let seeds: Option<(Vec<u64>, f64)> =
        noise.map(|(rng, sigma)| (bounds.iter().map(|_| rng.next_seed()).collect(), sigma));
    let row = dims.steps * dims.n_in;
    let parts = per_chunk(&bounds, |c, (lo, hi)| {
        let sub = Dims { batch: hi - lo, ..dims };
        let mut rng = seeds.as_ref().map(|(s, sigma)| (TrialRng::seeded(s[c]), *sigma));
        forward_chunk(
            sub,
            w,
            transfer,
            &x[lo * row..hi * row],
            rng.as_mut().map(|(r, s)| (r, *s)),
        )
    });
    let (t, b) = (dims.steps, dims.batch);
    let merge = |get: &dyn Fn(&Forward<F>) -> &[F], c: usize| {
        let slices: Vec<&[F]> = parts.iter().map(get).collect();
        scatter_rows(&slices, &bounds, t, b, c)
    };
    Forward {
        dims,
        x: merge(&|f| &f.x, dims.n_in),
        states: merge(&|f| &f.states, dims.n_rec),
        rates: merge(&|f| &f.rates, dims.n_rec),
        outputs: merge(&|f| &f.outputs, dims.n_out),
    }
}

/// Adds `σ_j·ξ` to each row of `block` (`[rows, N]`), drawing ξ row by row.
fn add_noise<F: Real>(rng: &mut TrialRng, std: &[f64], block: &mut [F]) {
    for row in block.chunks_exact_mut(std.len()) {
        for (s, sd) in row.iter_mut().zip(std) {
            *s = *s + F::of(sd * rng.normal());
        }
    }
}

/// The recurrent noise [`forward`] adds, `σ·sqrt(2α)·ξ`, time-major `[T, B, N]`, drawn from `rng`
/// in the same order (one stream per chunk of trials).
pub fn noise(dims: Dims, alpha: &[f32], sigma: f64, rng: &mut TrialRng) -> Vec<f32> {
    let (t, b, n) = (dims.steps, dims.batch, dims.n_rec);
    let std: Vec<f64> = alpha.iter().map(|&a| sigma * (2.0 * a as f64).sqrt()).collect();
    let bounds = chunk_bounds(b);
    let seeds: Vec<u64> = bounds.iter().map(|_| rng.next_seed()).collect();
    let mut out = vec![0.0f32; t * b * n];
    for (&(lo, hi), seed) in bounds.iter().zip(seeds) {
        let mut r = TrialRng::seeded(seed);
        for k in 0..t {
            add_noise(&mut r, &std, &mut out[(k * b + lo) * n..(k * b + hi) * n]);
        }
    }
    out
}

fn forward_chunk<F: Real>(
    dims: Dims,
    w: &Weights<'_, F>,
    transfer: Transfer,
    x: &[F],
    noise: Option<(&mut TrialRng, f64)>,
) -> Forward<F> {
    let Dims {
        batch: b,
        steps: t,
        n_in: i,
        n_rec: n,
        n_out: o,
    } = dims;
    assert_eq!(x.len(), b * t * i, "x must be [B, T, I]");
    let x = swap_bt(x, b, t, i);
    // Input drive of every step at once: u·W_inᵀ + b_rec, [T·B, N].
    let mut states = vec![F::zero(); t * b * n];
    for row in states.chunks_exact_mut(n) {
        row.copy_from_slice(w.b_rec);
    }
    matmul(t * b, i, n, &x, false, w.w_in, true, &mut states, true);

    let mut rates = vec![F::zero(); t * b * n];
    let init_rates: Vec<F> = w.init_state.iter().map(|&v| transfer.apply_f(v)).collect();
    let prev_init_rates: Vec<F> = init_rates.repeat(b);
    let prev_init_states: Vec<F> = w.init_state.repeat(b);
    let noise_std: Vec<f64> = match &noise {
        Some((_, sigma)) => w.alpha.iter().map(|a| sigma * (2.0 * a.to_f64()).sqrt()).collect(),
        None => Vec::new(),
    };
    let mut rng = noise.map(|(r, _)| r);
    let mut rec = vec![F::zero(); b * n];
    let block = b * n;
    for k in 0..t {
        let (done, rest) = states.split_at_mut(k * block);
        let cur = &mut rest[..block];
        let (prev_s, prev_r): (&[F], &[F]) = if k == 0 {
            (&prev_init_states, &prev_init_rates)
        } else {
            (&done[(k - 1) * block..], &rates[(k - 1) * block..k * block])
        };
        matmul(b, n, n, prev_r, false, w.w_rec, true, &mut rec, false);
        for ((c, p), r) in cur
            .chunks_exact_mut(n)
            .zip(prev_s.chunks_exact(n))
            .zip(rec.chunks_exact(n))
        {
            for j in 0..n {
                let a = w.alpha[j];
                c[j] = (F::one() - a) * p[j] + a * (r[j] + c[j]);
            }
        }
        if let Some(rng) = rng.as_deref_mut() {
            add_noise(rng, &noise_std, cur);
        }
        for (r, &s) in rates[k * block..(k + 1) * block].iter_mut().zip(cur.iter()) {
            *r = transfer.apply_f(s);
        }
    }
    // Read-out of every step at once: f(x)·W_outᵀ + b_out, [T·B, O].
    let mut outputs = vec![F::zero(); t * b * o];
    for row in outputs.chunks_exact_mut(o) {
        row.copy_from_slice(w.b_out);
    }
    matmul(t * b, n, o, &rates, false, w.w_out, true, &mut outputs, true);
    Forward {
        dims,
        x,
        states,
        rates,
        outputs,
    }
}

/// BPTT. `g_outputs` is `∂L/∂z`, time-major `[T, B, O]`; `g_states` (optional) adds a direct
/// `∂L/∂x`, time-major `[T, B, N]` (e.g. from a firing-rate regulariser). Returns the gradients
/// with respect to the effective weights (chunks summed in a fixed order).
pub fn backward<F: Real>(
    fwd: &Forward<F>,
    w: &Weights<'_, F>,
    transfer: Transfer,
    g_outputs: &[F],
    g_states: Option<&[F]>,
) -> Grads<F> {
    let d = fwd.dims;
    assert_eq!(g_outputs.len(), d.steps * d.batch * d.n_out);
    let bounds = chunk_bounds(d.batch);
    let parts = per_chunk(&bounds, |_, range| {
        let g = |a: &[F], c: usize| gather_rows(a, d.steps, d.batch, c, range);
        let sub = Forward {
            dims: Dims {
                batch: range.1 - range.0,
                ..d
            },
            x: g(&fwd.x, d.n_in),
            states: g(&fwd.states, d.n_rec),
            rates: g(&fwd.rates, d.n_rec),
            outputs: Vec::new(),
        };
        let gs = g_states.map(|a| g(a, d.n_rec));
        backward_chunk(&sub, w, transfer, &g(g_outputs, d.n_out), gs.as_deref())
    });
    let mut parts = parts.into_iter();
    let mut total = parts.next().expect("at least one chunk");
    for p in parts {
        for (acc, add) in [
            (&mut total.w_in, &p.w_in),
            (&mut total.w_rec, &p.w_rec),
            (&mut total.w_out, &p.w_out),
            (&mut total.b_rec, &p.b_rec),
            (&mut total.b_out, &p.b_out),
            (&mut total.init_state, &p.init_state),
        ] {
            acc.iter_mut().zip(add).for_each(|(a, &b)| *a = *a + b);
        }
    }
    total
}

fn backward_chunk<F: Real>(
    fwd: &Forward<F>,
    w: &Weights<'_, F>,
    transfer: Transfer,
    g_outputs: &[F],
    g_states: Option<&[F]>,
) -> Grads<F> {
    let Dims {
        batch: b,
        steps: t,
        n_in: i,
        n_rec: n,
        n_out: o,
    } = fwd.dims;
    let rows = t * b;
    assert_eq!(g_outputs.len(), rows * o);
    let mut grads = Grads {
        w_in: vec![F::zero(); n * i],
        w_rec: vec![F::zero(); n * n],
        w_out: vec![F::zero(); o * n],
        b_rec: vec![F::zero(); n],
        b_out: vec![F::zero(); o],
        init_state: vec![F::zero(); n],
    };
    // Read-out: dW_out = G_zᵀ·R over all rows; db_out = Σ G_z; dR = G_z·W_out.
    matmul(o, rows, n, g_outputs, true, &fwd.rates, false, &mut grads.w_out, false);
    for row in g_outputs.chunks_exact(o) {
        for (g, &v) in grads.b_out.iter_mut().zip(row) {
            *g = *g + v;
        }
    }
    // `p` holds ∂L/∂r_k from the read-out, then is overwritten in place by P_k = α⊙∂L/∂x_k.
    let mut p = vec![F::zero(); rows * n];
    matmul(rows, o, n, g_outputs, false, w.w_out, false, &mut p, false);
    if let Some(gs) = g_states {
        assert_eq!(gs.len(), rows * n);
    }
    let block = b * n;
    // carry = P_{k+1}·W_rec (∂L/∂r_k through the recurrence), and D_{k+1} for the leak.
    let mut carry = vec![F::zero(); block];
    let mut d_next = vec![F::zero(); block];
    for k in (0..t).rev() {
        let range = k * block..(k + 1) * block;
        let (s, r) = (&fwd.states[range.clone()], &fwd.rates[range.clone()]);
        let gs = g_states.map(|g| &g[range.clone()]);
        let pk = &mut p[range.clone()];
        for row in 0..b {
            let at = row * n;
            for j in 0..n {
                let idx = at + j;
                let a = w.alpha[j];
                let mut d =
                    (pk[idx] + carry[idx]) * transfer.derivative_f(s[idx], r[idx]) + (F::one() - a) * d_next[idx];
                if let Some(gs) = gs {
                    d = d + gs[idx];
                }
                d_next[idx] = d;
                pk[idx] = a * d;
            }
        }
        matmul(b, n, n, pk, false, w.w_rec, false, &mut carry, false);
    }
    // Initial state: x_{−1} feeds the leak and the recurrence of step 0; summed over trials.
    for bb in 0..b {
        for j in 0..n {
            let idx = bb * n + j;
            let x0 = w.init_state[j];
            let r0 = transfer.apply_f(x0);
            let d = carry[idx] * transfer.derivative_f(x0, r0) + (F::one() - w.alpha[j]) * d_next[idx];
            grads.init_state[j] = grads.init_state[j] + d;
        }
    }
    // dW_rec = Σ_k P_kᵀ·r_{k−1}: rows of step 0 pair with the initial rates.
    let init_rates: Vec<F> = w.init_state.iter().map(|&v| transfer.apply_f(v)).collect();
    let p0: Vec<F> = p[..block].to_vec();
    let p0_sum: Vec<F> = (0..n).map(|j| (0..b).map(|bb| p0[bb * n + j]).sum()).collect();
    for (row, &p) in grads.w_rec.chunks_exact_mut(n).zip(&p0_sum) {
        for (g, &r) in row.iter_mut().zip(&init_rates) {
            *g = p * r;
        }
    }
    if t > 1 {
        matmul(
            n,
            (t - 1) * b,
            n,
            &p[block..],
            true,
            &fwd.rates[..(t - 1) * block],
            false,
            &mut grads.w_rec,
            true,
        );
    }
    matmul(n, rows, i, &p, true, &fwd.x, false, &mut grads.w_in, false);
    for row in p.chunks_exact(n) {
        for (g, &v) in grads.b_rec.iter_mut().zip(row) {
            *g = *g + v;
        }
    }
    grads
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Net {
        dims: Dims,
        w_in: Vec<f64>,
        w_rec: Vec<f64>,
        w_out: Vec<f64>,
        b_rec: Vec<f64>,
        b_out: Vec<f64>,
        init: Vec<f64>,
        alpha: Vec<f64>,
        x: Vec<f64>,
        target: Vec<f64>,
        g_state_coef: Vec<f64>,
    }

    impl Net {
        fn new(seed: u64) -> Self {
            let dims = Dims {
                batch: 3,
                steps: 7,
                n_in: 2,
                n_rec: 5,
                n_out: 2,
            };
            let mut rng = TrialRng::seeded(seed);
            let mut v = |len: usize, s: f64| (0..len).map(|_| s * rng.normal()).collect::<Vec<_>>();
            Self {
                w_in: v(10, 0.7),
                w_rec: v(25, 0.6),
                w_out: v(10, 0.7),
                b_rec: v(5, 0.2),
                b_out: v(2, 0.2),
                init: v(5, 0.5),
                alpha: vec![0.1, 0.2, 0.3, 0.5, 0.9],
                x: v(42, 1.0),
                target: v(42, 1.0),
                g_state_coef: v(105, 0.3),
                dims,
            }
        }

        fn weights(&self) -> Weights<'_, f64> {
            Weights {
                w_in: &self.w_in,
                w_rec: &self.w_rec,
                w_out: &self.w_out,
                b_rec: &self.b_rec,
                b_out: &self.b_out,
                init_state: &self.init,
                alpha: &self.alpha,
            }
        }

        /// L = ½Σ(z − target)² + Σ c⊙x (so ∂L/∂z = z − target and ∂L/∂x = c).
        fn loss(&self, transfer: Transfer) -> f64 {
            let f = forward(self.dims, &self.weights(), transfer, &self.x, None);
            let target = swap_bt(&self.target, 3, 7, 2);
            let mse: f64 = f.outputs.iter().zip(&target).map(|(z, y)| 0.5 * (z - y).powi(2)).sum();
            mse + f.states.iter().zip(&self.g_state_coef).map(|(s, c)| s * c).sum::<f64>()
        }

        fn grads(&self, transfer: Transfer) -> Grads<f64> {
            let f = forward(self.dims, &self.weights(), transfer, &self.x, None);
            let target = swap_bt(&self.target, 3, 7, 2);
            let g: Vec<f64> = f.outputs.iter().zip(&target).map(|(z, y)| z - y).collect();
            backward(&f, &self.weights(), transfer, &g, Some(&self.g_state_coef))
        }
    }

    /// Central differences in f64 (h = 1e-6) against the analytic BPTT, every parameter entry.
    #[test]
    fn backward_matches_finite_differences_for_every_transfer() {
        for transfer in Transfer::ALL {
            let mut net = Net::new(17);
            let grads = net.grads(transfer);
            let h = 1e-6;
            let mut worst: f64 = 0.0;
            macro_rules! check {
                ($field:ident, $g:expr) => {
                    for idx in 0..net.$field.len() {
                        let orig = net.$field[idx];
                        net.$field[idx] = orig + h;
                        let up = net.loss(transfer);
                        net.$field[idx] = orig - h;
                        let down = net.loss(transfer);
                        net.$field[idx] = orig;
                        let fd = (up - down) / (2.0 * h);
                        let err = (fd - $g[idx]).abs() / (1.0 + fd.abs());
                        worst = worst.max(err);
                        assert!(
                            err < 1e-6,
                            "{transfer} {}[{idx}]: fd {fd}, bptt {}",
                            stringify!($field),
                            $g[idx]
                        );
                    }
                };
            }
            check!(w_in, grads.w_in);
            check!(w_rec, grads.w_rec);
            check!(w_out, grads.w_out);
            check!(b_rec, grads.b_rec);
            check!(b_out, grads.b_out);
            check!(init, grads.init_state);
            assert!(worst < 1e-6);
        }
    }

    /// The forward equals the f64 simulator used for analysis (itself checked against PsychRNN).
    #[test]
    fn forward_matches_simulator() {
        use crate::model::RateRnnConfig;
        use crate::simulate::{SimOptions, Simulator};
        let model = RateRnnConfig {
            n_rec: 12,
            dale_ratio: Some(0.75),
            transfer: Transfer::Softplus,
            ..Default::default()
        }
        .init(&mut TrialRng::seeded(1))
        .unwrap();
        let x = ndarray::Array3::from_shape_fn((4, 30, 2), |(b, k, c)| ((b + 2 * k + 3 * c) % 7) as f32 * 0.3);
        let sim = Simulator::from_model(&model).run(&x, &SimOptions::default()).unwrap();
        let eff = Effective::of(&model);
        let w = eff.weights(&model);
        let dims = Dims {
            batch: 4,
            steps: 30,
            n_in: 2,
            n_rec: 12,
            n_out: 2,
        };
        let f = forward(dims, &w, Transfer::Softplus, x.as_slice().unwrap(), None);
        let outputs = swap_bt(&f.outputs, 30, 4, 2);
        let states = swap_bt(&f.states, 30, 4, 12);
        let d = |a: &[f32], b: &ndarray::Array3<f64>| {
            a.iter()
                .zip(b.iter())
                .map(|(&p, &q)| (p as f64 - q).abs())
                .fold(0.0, f64::max)
        };
        assert!(d(&outputs, &sim.outputs) < 1e-5);
        assert!(d(&states, &sim.states) < 1e-5);
    }
}
