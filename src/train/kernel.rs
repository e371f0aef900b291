//! The fused rate-RNN kernel: forward over all time steps and its hand-written backward (BPTT)
//! on contiguous row-major buffers, generic over f32 (training) and f64 (gradient checks).
//!
//! Trials are split into [`CHUNKS`] fixed chunks, each run on its own thread with its own
//! time-major buffers (`[T, b, ·]`), so one step of a chunk and all steps of a chunk are each one
//! contiguous block. Per step the forward costs one GEMM (`[b,N]·[N,N]`) plus a fused elementwise
//! update; the backward one GEMM for the recurrence. The input projection, the read-out and the
//! weight gradients are GEMMs over many rows at once: all `T·b` rows, or (weight gradients) windows
//! of about [`WINDOW_ROWS`] rows, so only the rates `[T, B, N]` are kept for the backward; `f′` is
//! computed from the rate.
//!
//! With `x_k` the pre-activation state, `r = f(x)`, `u_k` the input and `α` per unit:
//!
//! ```text
//! x_k = (1 − α)⊙x_{k−1} + α⊙(r_{k−1}·W_recᵀ + u_k·W_inᵀ + b_rec) + σ_k⊙ξ_k,   x_{−1} = init_state
//! z_k = r_k·W_outᵀ + b_out
//! ```

use super::simd::{self, transpose};
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
    /// `e^x − 1`.
    fn exp_m1(self) -> Self;
    /// `tanh(x)`.
    fn tanh(self) -> Self;
    /// `C[m, n] (+)= A·B`: `A[i, l]` is `a[i·rsa + l·csa]`, `B` row-major `[k, n]`, `C` row-major
    /// `[m, n]`, overwritten or (`accumulate`) added to.
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        a_strides: (usize, usize),
        b: &[Self],
        c: &mut [Self],
        accumulate: bool,
    );
    /// From f64.
    fn of(v: f64) -> Self;
}

macro_rules! impl_real {
    ($t:ty, $matmul:path) => {
        impl Real for $t {
            #[inline]
            fn matmul(
                m: usize,
                k: usize,
                n: usize,
                a: &[Self],
                s: (usize, usize),
                b: &[Self],
                c: &mut [Self],
                acc: bool,
            ) {
                $matmul(m, k, n, a, s, b, c, acc)
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
            fn exp_m1(self) -> Self {
                <$t>::exp_m1(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
        }
    };
}
impl_real!(f32, matmul_f32);
impl_real!(f64, simd::portable::<f64>);

/// f32 products on the fastest SIMD path of this CPU (chosen once per process).
#[allow(clippy::too_many_arguments)]
fn matmul_f32(m: usize, k: usize, n: usize, a: &[f32], s: (usize, usize), b: &[f32], c: &mut [f32], acc: bool) {
    static PATH: std::sync::OnceLock<simd::Path> = std::sync::OnceLock::new();
    simd::matmul(*PATH.get_or_init(simd::Path::best), m, k, n, a, s, b, c, acc)
}

/// `C[m,n] (+)= A·B` on dense row-major buffers; `A` is `[m,k]` or (`a_t`) `[k,m]`, `B` `[k,n]`.
#[allow(clippy::too_many_arguments)]
#[inline]
fn matmul<F: Real>(m: usize, k: usize, n: usize, a: &[F], a_t: bool, b: &[F], c: &mut [F], accumulate: bool) {
    let strides = if a_t { (1, m) } else { (k, 1) };
    F::matmul(m, k, n, a, strides, b, c, accumulate);
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

/// What the forward keeps for the backward: per chunk of trials its inputs and rates; the outputs
/// of all trials for the loss.
#[derive(Clone, Debug)]
pub struct Forward<F> {
    /// Sizes.
    pub dims: Dims,
    /// Trial range `[lo, hi)` of each chunk.
    bounds: Vec<(usize, usize)>,
    /// Per chunk: inputs, time-major `[T, b, I]`.
    x: Vec<Vec<F>>,
    /// Per chunk: rates `f(x)`, time-major `[T, b, N]`.
    rates: Vec<Vec<F>>,
    /// Outputs, time-major `[T, B, O]`.
    pub outputs: Vec<F>,
}

impl<F: Copy + Default> Forward<F> {
    /// A pass computed elsewhere (one chunk): inputs `[T, B, I]`, rates `[T, B, N]` and outputs
    /// `[T, B, O]`, all time-major.
    pub fn from_time_major(dims: Dims, x: Vec<F>, rates: Vec<F>, outputs: Vec<F>) -> Self {
        let Dims {
            batch: b,
            steps: t,
            n_in: i,
            n_rec: n,
            n_out: o,
        } = dims;
        assert_eq!((x.len(), rates.len(), outputs.len()), (t * b * i, t * b * n, t * b * o));
        Self {
            dims,
            bounds: vec![(0, b)],
            x: vec![x],
            rates: vec![rates],
            outputs,
        }
    }

    /// Rates of all trials, time-major `[T, B, N]` (a copy).
    pub fn rates(&self) -> Vec<F> {
        let parts: Vec<&[F]> = self.rates.iter().map(Vec::as_slice).collect();
        scatter_rows(&parts, &self.bounds, self.dims.steps, self.dims.batch, self.dims.n_rec)
    }
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

    /// `f′(x)` from the rate `r = f(x)` alone (softplus: `σ(x) = 1 − e^{−r}`; relu: `r > 0`).
    #[inline(always)]
    pub fn derivative_f<F: Real>(self, r: F) -> F {
        match self {
            Self::Relu => {
                if r > F::zero() {
                    F::one()
                } else {
                    F::zero()
                }
            }
            Self::Tanh => F::one() - r * r,
            Self::Sigmoid => r * (F::one() - r),
            Self::Softplus => -(-r).exp_m1(),
            Self::Linear => F::one(),
        }
    }
}

/// A transfer function fixed at compile time, so the elementwise loops carry no branch on it.
trait Act: Send + Sync {
    const F: Transfer;
}

macro_rules! acts {
    ($($name:ident),*) => {
        $(
            struct $name;
            impl Act for $name {
                const F: Transfer = Transfer::$name;
            }
        )*
        /// Calls `$body` with `$a` naming the [`Act`] of `$t`.
        macro_rules! with_act {
            ($t:expr, $a:ident, $body:expr) => {
                match $t {
                    $(Transfer::$name => {
                        type $a = $name;
                        $body
                    })*
                }
            };
        }
    };
}
acts!(Relu, Tanh, Sigmoid, Softplus, Linear);

/// Trials are split into this many independent chunks, run on separate threads where cores
/// allow. The split is fixed (not the core count) so results do not depend on the machine.
pub const CHUNKS: usize = 2;

/// The backward keeps `α⊙∂L/∂x` for windows of about this many rows (steps × trials of a chunk)
/// and turns each window into weight gradients with one GEMM: large enough for GEMM efficiency,
/// small next to the rates.
pub const WINDOW_ROWS: usize = 2048;

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

/// Rows `[lo, hi)` of every time step of a time-major `[T, B, C]` buffer, as `[T, hi − lo, C]`.
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
        let x = swap_bt(&x[lo * row..hi * row], sub.batch, dims.steps, dims.n_in);
        let mut rng = seeds.as_ref().map(|(s, sigma)| (TrialRng::seeded(s[c]), *sigma));
        let noise = rng.as_mut().map(|(r, s)| (r, *s));
        let (rates, outputs) = with_act!(transfer, A, forward_chunk::<F, A>(sub, w, &x, noise));
        (x, rates, outputs)
    });
    let outputs: Vec<&[F]> = parts.iter().map(|p| p.2.as_slice()).collect();
    let outputs = scatter_rows(&outputs, &bounds, dims.steps, dims.batch, dims.n_out);
    let (x, rates) = parts.into_iter().map(|(x, r, _)| (x, r)).unzip();
    Forward {
        dims,
        bounds,
        x,
        rates,
        outputs,
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

/// One chunk's forward on time-major inputs `x` (`[T, b, I]`): its rates `[T, b, N]` and outputs
/// `[T, b, O]`.
fn forward_chunk<F: Real, A: Act>(
    dims: Dims,
    w: &Weights<'_, F>,
    x: &[F],
    noise: Option<(&mut TrialRng, f64)>,
) -> (Vec<F>, Vec<F>) {
    let Dims {
        batch: b,
        steps: t,
        n_in: i,
        n_rec: n,
        n_out: o,
    } = dims;
    let block = b * n;
    // The input drive of every step at once, u·W_inᵀ + b_rec ([T·b, N]), in the rates' buffer:
    // step k's drive is read just before step k's rates overwrite it.
    let mut rates = vec![F::zero(); t * block];
    for row in rates.chunks_exact_mut(n) {
        row.copy_from_slice(w.b_rec);
    }
    let (w_in_t, w_rec_t, w_out_t) = (
        transpose(w.w_in, n, i),
        transpose(w.w_rec, n, n),
        transpose(w.w_out, o, n),
    );
    matmul(t * b, i, n, x, false, &w_in_t, &mut rates, true);

    let leak: Vec<F> = w.alpha.iter().map(|&a| F::one() - a).collect();
    let init_rates: Vec<F> = w
        .init_state
        .iter()
        .map(|&v| A::F.apply_f(v))
        .collect::<Vec<_>>()
        .repeat(b);
    let mut state: Vec<F> = w.init_state.repeat(b);
    let noise_std: Vec<f64> = match &noise {
        Some((_, sigma)) => w.alpha.iter().map(|a| sigma * (2.0 * a.to_f64()).sqrt()).collect(),
        None => Vec::new(),
    };
    let mut rng = noise.map(|(r, _)| r);
    for k in 0..t {
        let (done, rest) = rates.split_at_mut(k * block);
        let prev: &[F] = if k == 0 { &init_rates } else { &done[(k - 1) * block..] };
        let cur = &mut rest[..block];
        // cur = drive + r_{k−1}·W_recᵀ
        matmul(b, n, n, prev, false, &w_rec_t, cur, true);
        for (s, c) in state.chunks_exact_mut(n).zip(cur.chunks_exact(n)) {
            for (((s, &c), &l), &a) in s.iter_mut().zip(c).zip(&leak).zip(w.alpha) {
                *s = l * *s + a * c;
            }
        }
        if let Some(rng) = rng.as_deref_mut() {
            add_noise(rng, &noise_std, &mut state);
        }
        for (r, &s) in cur.iter_mut().zip(&state) {
            *r = A::F.apply_f(s);
        }
    }
    // Read-out of every step at once: f(x)·W_outᵀ + b_out, [T·b, O].
    let mut outputs = vec![F::zero(); t * b * o];
    for row in outputs.chunks_exact_mut(o) {
        row.copy_from_slice(w.b_out);
    }
    matmul(t * b, n, o, &rates, false, &w_out_t, &mut outputs, true);
    (rates, outputs)
}

impl<F: Real> Grads<F> {
    fn zeros(d: Dims) -> Self {
        let (i, n, o) = (d.n_in, d.n_rec, d.n_out);
        Self {
            w_in: vec![F::zero(); n * i],
            w_rec: vec![F::zero(); n * n],
            w_out: vec![F::zero(); o * n],
            b_rec: vec![F::zero(); n],
            b_out: vec![F::zero(); o],
            init_state: vec![F::zero(); n],
        }
    }

    fn add(&mut self, other: &Self) {
        for (acc, add) in [
            (&mut self.w_in, &other.w_in),
            (&mut self.w_rec, &other.w_rec),
            (&mut self.w_out, &other.w_out),
            (&mut self.b_rec, &other.b_rec),
            (&mut self.b_out, &other.b_out),
            (&mut self.init_state, &other.init_state),
        ] {
            acc.iter_mut().zip(add).for_each(|(a, &b)| *a = *a + b);
        }
    }
}

/// Adds each row of `rows` (`[·, len]`) to `acc`.
fn add_rows<F: Real>(acc: &mut [F], rows: &[F]) {
    for row in rows.chunks_exact(acc.len()) {
        acc.iter_mut().zip(row).for_each(|(a, &v)| *a = *a + v);
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
    backward_windowed(fwd, w, transfer, g_outputs, g_states, WINDOW_ROWS)
}

/// [`backward`] with windows of `window_rows` rows.
fn backward_windowed<F: Real>(
    fwd: &Forward<F>,
    w: &Weights<'_, F>,
    transfer: Transfer,
    g_outputs: &[F],
    g_states: Option<&[F]>,
    window_rows: usize,
) -> Grads<F> {
    let d = fwd.dims;
    assert_eq!(
        g_outputs.len(),
        d.steps * d.batch * d.n_out,
        "g_outputs must be [T, B, O]"
    );
    if let Some(gs) = g_states {
        assert_eq!(gs.len(), d.steps * d.batch * d.n_rec, "g_states must be [T, B, N]");
    }
    let parts = per_chunk(&fwd.bounds, |c, range| {
        let chunk = Chunk {
            dims: Dims {
                batch: range.1 - range.0,
                ..d
            },
            x: &fwd.x[c],
            rates: &fwd.rates[c],
            g_outputs: gather_rows(g_outputs, d.steps, d.batch, d.n_out, range),
            g_states: g_states.map(|g| (g, range.0, d.batch)),
        };
        with_act!(transfer, A, backward_chunk::<F, A>(&chunk, w, window_rows))
    });
    let mut parts = parts.into_iter();
    let mut total = parts.next().expect("at least one chunk");
    parts.for_each(|p| total.add(&p));
    total
}

/// One chunk's part of the backward.
struct Chunk<'a, F> {
    /// Sizes, `batch` = the chunk's trials `b`.
    dims: Dims,
    /// `[T, b, I]`.
    x: &'a [F],
    /// `[T, b, N]`.
    rates: &'a [F],
    /// `∂L/∂z`, `[T, b, O]`.
    g_outputs: Vec<F>,
    /// `∂L/∂x` of all trials (`[T, B, N]`), the chunk's first trial and `B`.
    g_states: Option<(&'a [F], usize, usize)>,
}

fn backward_chunk<F: Real, A: Act>(c: &Chunk<'_, F>, w: &Weights<'_, F>, window_rows: usize) -> Grads<F> {
    let Dims {
        batch: b,
        steps: t,
        n_in: i,
        n_rec: n,
        n_out: o,
    } = c.dims;
    let (rates, x, g_out) = (c.rates, c.x, &c.g_outputs[..]);
    let mut grads = Grads::zeros(c.dims);
    // Read-out: dW_out = G_zᵀ·R over all rows; db_out = Σ G_z.
    matmul(o, t * b, n, g_out, true, rates, &mut grads.w_out, false);
    add_rows(&mut grads.b_out, g_out);

    let block = b * n;
    let window = window_rows.div_ceil(b).clamp(1, t);
    // P_k = α⊙∂L/∂x_k for the steps of the current window.
    let mut p = vec![F::zero(); window * block];
    // ∂L/∂r_k: P_{k+1}·W_rec through the recurrence, then plus G_z·W_out from the read-out.
    let mut carry = vec![F::zero(); block];
    // ∂L/∂x_{k+1}, for the leak.
    let mut d_next = vec![F::zero(); block];
    let zeros = vec![F::zero(); block];
    let leak: Vec<F> = w.alpha.iter().map(|&a| F::one() - a).collect();
    let init_rates: Vec<F> = w.init_state.iter().map(|&v| A::F.apply_f(v)).collect();
    let mut end = t;
    while end > 0 {
        let start = end.saturating_sub(window);
        for k in (start..end).rev() {
            matmul(
                b,
                o,
                n,
                &g_out[k * b * o..(k + 1) * b * o],
                false,
                w.w_out,
                &mut carry,
                true,
            );
            let r = &rates[k * block..(k + 1) * block];
            let gs = match c.g_states {
                Some((gs, lo, batch)) => &gs[(k * batch + lo) * n..(k * batch + lo + b) * n],
                None => &zeros,
            };
            let pk = &mut p[(k - start) * block..(k - start + 1) * block];
            for at in (0..block).step_by(n) {
                let (cr, rr, g) = (&carry[at..at + n], &r[at..at + n], &gs[at..at + n]);
                let (dn, pr) = (&mut d_next[at..at + n], &mut pk[at..at + n]);
                let (leak, alpha) = (&leak[..n], &w.alpha[..n]);
                for j in 0..n {
                    let dx = cr[j] * A::F.derivative_f(rr[j]) + leak[j] * dn[j] + g[j];
                    dn[j] = dx;
                    pr[j] = alpha[j] * dx;
                }
            }
            matmul(b, n, n, pk, false, w.w_rec, &mut carry, false);
        }
        // The window's weight gradients: dW_rec += Σ_k P_kᵀ·r_{k−1}, dW_in += Σ_k P_kᵀ·u_k.
        let pw = &p[..(end - start) * block];
        if start == 0 {
            // Step 0 pairs with the initial rates, shared by all trials.
            let mut p0 = vec![F::zero(); n];
            add_rows(&mut p0, &pw[..block]);
            for (row, &pj) in grads.w_rec.chunks_exact_mut(n).zip(&p0) {
                row.iter_mut().zip(&init_rates).for_each(|(g, &r)| *g = *g + pj * r);
            }
            if end > 1 {
                let rows = (end - 1) * b;
                matmul(
                    n,
                    rows,
                    n,
                    &pw[block..],
                    true,
                    &rates[..rows * n],
                    &mut grads.w_rec,
                    true,
                );
            }
        } else {
            let rows = (end - start) * b;
            let prev = &rates[(start - 1) * block..(end - 1) * block];
            matmul(n, rows, n, pw, true, prev, &mut grads.w_rec, true);
        }
        let rows = (end - start) * b;
        matmul(
            n,
            rows,
            i,
            pw,
            true,
            &x[start * b * i..end * b * i],
            &mut grads.w_in,
            true,
        );
        add_rows(&mut grads.b_rec, pw);
        end = start;
    }
    // Initial state: x_{−1} feeds the leak and the recurrence of step 0; summed over trials.
    for (cr, dn) in carry.chunks_exact(n).zip(d_next.chunks_exact(n)) {
        for j in 0..n {
            let d = cr[j] * A::F.derivative_f(init_rates[j]) + leak[j] * dn[j];
            grads.init_state[j] = grads.init_state[j] + d;
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

        /// Pre-activation states, time-major `[T, B, N]`, by a plain step loop (independent of
        /// the kernel).
        fn states(&self, transfer: Transfer) -> Vec<f64> {
            let Dims {
                batch: b,
                steps: t,
                n_in: ni,
                n_rec: n,
                ..
            } = self.dims;
            let mut out = Vec::with_capacity(t * b * n);
            for k in 0..t {
                for bb in 0..b {
                    let prev: Vec<f64> = if k == 0 {
                        self.init.clone()
                    } else {
                        out[((k - 1) * b + bb) * n..((k - 1) * b + bb + 1) * n].to_vec()
                    };
                    for j in 0..n {
                        let rec: f64 = (0..n).map(|l| self.w_rec[j * n + l] * transfer.apply_f(prev[l])).sum();
                        let inp: f64 = (0..ni)
                            .map(|c| self.w_in[j * ni + c] * self.x[(bb * t + k) * ni + c])
                            .sum();
                        let a = self.alpha[j];
                        out.push((1.0 - a) * prev[j] + a * (rec + inp + self.b_rec[j]));
                    }
                }
            }
            out
        }

        /// L = ½Σ(z − target)² + Σ c⊙x (so ∂L/∂z = z − target and ∂L/∂x = c).
        fn loss(&self, transfer: Transfer) -> f64 {
            let f = forward(self.dims, &self.weights(), transfer, &self.x, None);
            let target = swap_bt(&self.target, 3, 7, 2);
            let mse: f64 = f.outputs.iter().zip(&target).map(|(z, y)| 0.5 * (z - y).powi(2)).sum();
            let states = self.states(transfer);
            let rates = f.rates();
            for (x, r) in states.iter().zip(&rates) {
                assert!((transfer.apply_f(*x) - r).abs() < 1e-12, "kernel rates = f(states)");
            }
            mse + states.iter().zip(&self.g_state_coef).map(|(s, c)| s * c).sum::<f64>()
        }

        /// BPTT with windows of `window_rows` rows (trials × steps of a chunk).
        fn grads(&self, transfer: Transfer, window_rows: usize) -> Grads<f64> {
            let f = forward(self.dims, &self.weights(), transfer, &self.x, None);
            let target = swap_bt(&self.target, 3, 7, 2);
            let g: Vec<f64> = f.outputs.iter().zip(&target).map(|(z, y)| z - y).collect();
            backward_windowed(&f, &self.weights(), transfer, &g, Some(&self.g_state_coef), window_rows)
        }
    }

    /// Central differences in f64 (h = 1e-6) against the analytic BPTT, every parameter entry.
    /// Windows of 2 rows: the chunks (1 and 2 trials) take 2 and 1 steps per window, so every
    /// window boundary case is crossed.
    #[test]
    fn backward_matches_finite_differences_for_every_transfer() {
        for transfer in Transfer::ALL {
            let mut net = Net::new(17);
            let grads = net.grads(transfer, 2);
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

    /// One window over all steps (the default size here) gives the gradients of many small windows.
    #[test]
    fn backward_windows_agree() {
        let net = Net::new(3);
        for transfer in Transfer::ALL {
            let one = net.grads(transfer, WINDOW_ROWS);
            for rows in [1, 3, 4] {
                let many = net.grads(transfer, rows);
                for (a, b) in [
                    (&one.w_in, &many.w_in),
                    (&one.w_rec, &many.w_rec),
                    (&one.b_rec, &many.b_rec),
                    (&one.init_state, &many.init_state),
                ] {
                    let worst = a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
                    assert!(worst < 1e-12, "{transfer}, windows of {rows} rows: {worst}");
                }
                assert_eq!((&one.w_out, &one.b_out), (&many.w_out, &many.b_out));
            }
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
        let rates = swap_bt(&f.rates(), 30, 4, 12);
        let d = |a: &[f32], b: &ndarray::Array3<f64>| {
            a.iter()
                .zip(b.iter())
                .map(|(&p, &q)| (p as f64 - q).abs())
                .fold(0.0, f64::max)
        };
        assert!(d(&outputs, &sim.outputs) < 1e-5);
        assert!(d(&rates, &sim.rates(Transfer::Softplus)) < 1e-5);
    }
}
