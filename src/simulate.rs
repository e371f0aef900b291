//! Running a rate RNN forward on plain arrays (no autodiff), in f64 like PsychRNN's
//! `BasicSimulator`: any batch size, noise on or off with a seed, optional per-step recurrent
//! connectivity for lesions.
//!
//! ```
//! use psychrnn::prelude::*;
//! let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig { n_batch: 3, ..Default::default() })?;
//! let batch = task.batch(&mut TrialRng::seeded(0));
//! let model = RateRnnConfig::for_task(task.spec()).init(&mut TrialRng::seeded(1))?;
//! let sim = Simulator::from_model(&model).run(&batch.x, &SimOptions::default())?;
//! assert_eq!(sim.outputs.shape(), &[3, 200, 2]); // [batch, time, n_out]
//! assert_eq!(sim.states.shape(), &[3, 200, 50]); // [batch, time, n_rec], pre-activation
//! # Ok::<(), psychrnn::Error>(())
//! ```

use ndarray::{Array1, Array2, Array3, ArrayBase, Axis, Data, Ix3, s};

use crate::error::{Error, Result};
use crate::model::{RateRnn, Transfer};
use crate::rng::TrialRng;

/// Options of one simulation run.
#[derive(Clone, Debug, Default)]
pub struct SimOptions {
    /// Recurrent noise σ; `None` uses the model's `rec_noise`. `Some(0.0)` switches noise off.
    pub rec_noise: Option<f64>,
    /// Seed of the noise stream (required when the noise is non-zero).
    pub seed: Option<u64>,
    /// Per-step elementwise mask of the (effective) recurrent weights, `[time, n_rec, n_rec]`,
    /// for lesions and perturbations (PsychRNN's `t_connectivity`).
    pub connectivity: Option<Array3<f64>>,
}

/// Outputs and states of a run.
#[derive(Clone, Debug)]
pub struct Simulation {
    /// `[batch, time, n_out]`.
    pub outputs: Array3<f64>,
    /// Pre-activation states `[batch, time, n_rec]` (the initial state is not included).
    pub states: Array3<f64>,
    /// Time step (ms).
    pub dt: f64,
}

impl Simulation {
    /// Rates `f(states)`, `[batch, time, n_rec]`.
    pub fn rates(&self, transfer: Transfer) -> Array3<f64> {
        self.states.mapv(|x| transfer.apply(x))
    }
}

/// Effective weights in f64, ready to run.
#[derive(Clone, Debug)]
pub struct Simulator {
    w_in: Array2<f64>,
    w_rec: Array2<f64>,
    w_out: Array2<f64>,
    b_rec: Array1<f64>,
    b_out: Array1<f64>,
    init_state: Array1<f64>,
    alpha: Array1<f64>,
    rec_noise: f64,
    transfer: Transfer,
    dt: f64,
}

impl Simulator {
    /// Takes the effective weights, α, noise and transfer function of `model`.
    pub fn from_model(model: &RateRnn) -> Self {
        let f = |a: Array2<f32>| a.mapv(f64::from);
        let v = |a: &Array1<f32>| a.mapv(f64::from);
        Self {
            w_in: f(model.effective_w_in()),
            w_rec: f(model.effective_w_rec()),
            w_out: f(model.effective_w_out()),
            b_rec: v(&model.params.b_rec),
            b_out: v(&model.params.b_out),
            init_state: v(&model.params.init_state),
            alpha: Array1::from(model.alpha()),
            rec_noise: model.config.rec_noise,
            transfer: model.config.transfer,
            dt: model.config.dt,
        }
    }

    /// Number of inputs.
    pub fn n_in(&self) -> usize {
        self.w_in.ncols()
    }

    /// Number of recurrent units.
    pub fn n_rec(&self) -> usize {
        self.w_rec.nrows()
    }

    /// Runs inputs `x` `[batch, time, n_in]` (f32 or f64).
    pub fn run<S, A>(&self, x: &ArrayBase<S, Ix3>, options: &SimOptions) -> Result<Simulation>
    where
        S: Data<Elem = A>,
        A: Copy + Into<f64>,
    {
        let (b, t, n_in) = x.dim();
        if n_in != self.n_in() {
            return Err(Error::shape("inputs", &[b, t, self.n_in()], &[b, t, n_in]));
        }
        if b == 0 || t == 0 {
            return Err(Error::Empty {
                what: format!("input batch of shape [{b}, {t}, {n_in}]"),
            });
        }
        let n = self.n_rec();
        if let Some(c) = &options.connectivity
            && c.dim() != (t, n, n)
        {
            return Err(Error::shape("connectivity", &[t, n, n], c.shape()));
        }
        let rec_noise = options.rec_noise.unwrap_or(self.rec_noise);
        if !(rec_noise.is_finite() && rec_noise >= 0.0) {
            return Err(Error::range("rec_noise", rec_noise, "finite and >= 0"));
        }
        let mut noise = match (rec_noise > 0.0, options.seed) {
            (false, _) => None,
            (true, Some(seed)) => Some(TrialRng::seeded(seed)),
            (true, None) => {
                return Err(Error::range(
                    "seed",
                    "none",
                    "given when rec_noise > 0 (every random draw is seeded)",
                ));
            }
        };
        let noise_std: Array1<f64> = self.alpha.mapv(|a| (2.0 * a * rec_noise * rec_noise).sqrt());

        // Input projection for all steps at once: [B·T, n_in]·W_inᵀ.
        let x2 = Array2::from_shape_vec((b * t, n_in), x.iter().map(|&v| v.into()).collect()).expect("dims");
        let drive = x2.dot(&self.w_in.t()) + &self.b_rec;
        let drive = drive.into_shape_with_order((b, t, n)).expect("dims");

        let mut states = Array3::<f64>::zeros((b, t, n));
        let mut outputs = Array3::<f64>::zeros((b, t, self.w_out.nrows()));
        let mut state = Array2::from_shape_fn((b, n), |(_, j)| self.init_state[j]);
        let one_minus_alpha = self.alpha.mapv(|a| 1.0 - a);
        let mut lesioned;
        for k in 0..t {
            let w_rec = match &options.connectivity {
                Some(c) => {
                    lesioned = &self.w_rec * &c.index_axis(Axis(0), k);
                    &lesioned
                }
                None => &self.w_rec,
            };
            let rates = state.mapv(|v| self.transfer.apply(v));
            let rec = rates.dot(&w_rec.t());
            let drive_k = drive.index_axis(Axis(1), k);
            ndarray::Zip::from(&mut state)
                .and(&rec)
                .and(&drive_k)
                .and_broadcast(&one_minus_alpha)
                .and_broadcast(&self.alpha)
                .for_each(|s, &r, &d, &oma, &a| *s = oma * *s + a * (r + d));
            if let Some(rng) = noise.as_mut() {
                for mut row in state.rows_mut() {
                    for (s, sd) in row.iter_mut().zip(&noise_std) {
                        *s += sd * rng.normal();
                    }
                }
            }
            let out = state.mapv(|v| self.transfer.apply(v)).dot(&self.w_out.t()) + &self.b_out;
            states.slice_mut(s![.., k, ..]).assign(&state);
            outputs.slice_mut(s![.., k, ..]).assign(&out);
        }
        Ok(Simulation {
            outputs,
            states,
            dt: self.dt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RateRnnConfig;

    fn tiny() -> RateRnn {
        RateRnnConfig {
            n_in: 1,
            n_rec: 2,
            n_out: 1,
            ..Default::default()
        }
        .init(&mut TrialRng::seeded(0))
        .unwrap()
    }

    #[test]
    fn one_step_by_hand() {
        // Hand-derived: x_0 = (1−α)·s + α·(W_rec·relu(s) + W_in·u + b), z_0 = W_out·relu(x_0) + b_out.
        let mut m = tiny();
        m.params.w_rec = ndarray::arr2(&[[0.5, -1.0], [2.0, 0.0]]);
        m.params.w_in = ndarray::arr2(&[[1.0], [-1.0]]);
        m.params.w_out = ndarray::arr2(&[[1.0, 3.0]]);
        m.params.b_rec = ndarray::arr1(&[0.1, 0.2]);
        m.params.b_out = ndarray::arr1(&[-0.5]);
        m.params.init_state = ndarray::arr1(&[1.0, -2.0]);
        let x = Array3::from_elem((1, 1, 1), 2.0f32);
        let sim = Simulator::from_model(&m).run(&x, &SimOptions::default()).unwrap();
        // relu(s) = [1, 0]; W_rec·r = [0.5, 2]; W_in·u = [2, −2]; α = 0.1.
        let x0 = [
            0.9 * 1.0 + 0.1 * (0.5 + 2.0 + 0.1),
            0.9 * -2.0 + 0.1 * (2.0 - 2.0 + 0.2),
        ];
        // b_rec is f32, so 0.1 carries a 1.5e-9 rounding error.
        assert!((sim.states[[0, 0, 0]] - x0[0]).abs() < 1e-8);
        assert!((sim.states[[0, 0, 1]] - x0[1]).abs() < 1e-8);
        let z0 = x0[0].max(0.0) + 3.0 * x0[1].max(0.0) - 0.5;
        assert!((sim.outputs[[0, 0, 0]] - z0).abs() < 1e-8);
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let sim = Simulator::from_model(&tiny());
        let wrong = Array3::<f32>::zeros((2, 5, 3));
        assert!(
            matches!(sim.run(&wrong, &SimOptions::default()), Err(Error::Shape { ref field, .. }) if field == "inputs")
        );
        let empty = Array3::<f32>::zeros((0, 5, 1));
        assert!(matches!(
            sim.run(&empty, &SimOptions::default()),
            Err(Error::Empty { .. })
        ));
        let ok = Array3::<f32>::zeros((2, 5, 1));
        let bad_conn = SimOptions {
            connectivity: Some(Array3::ones((4, 2, 2))),
            ..Default::default()
        };
        assert!(matches!(sim.run(&ok, &bad_conn), Err(Error::Shape { ref field, .. }) if field == "connectivity"));
        let unseeded = SimOptions {
            rec_noise: Some(0.1),
            ..Default::default()
        };
        assert!(matches!(sim.run(&ok, &unseeded), Err(Error::OutOfRange { ref field, .. }) if field == "seed"));
    }

    #[test]
    fn noise_is_seeded_and_lesions_change_dynamics() {
        let m = RateRnnConfig::default().init(&mut TrialRng::seeded(3)).unwrap();
        let sim = Simulator::from_model(&m);
        let x = Array3::from_elem((2, 30, 2), 0.5f32);
        let noisy = |seed| SimOptions {
            rec_noise: Some(0.1),
            seed: Some(seed),
            ..Default::default()
        };
        let a = sim.run(&x, &noisy(1)).unwrap();
        let b = sim.run(&x, &noisy(1)).unwrap();
        let c = sim.run(&x, &noisy(2)).unwrap();
        assert_eq!(a.states, b.states);
        assert_ne!(a.states, c.states);
        // All-ones connectivity equals none; silencing every connection leaves a leaky integrator.
        let clean = sim.run(&x, &SimOptions::default()).unwrap();
        let ones = SimOptions {
            connectivity: Some(Array3::ones((30, 50, 50))),
            ..Default::default()
        };
        assert_eq!(sim.run(&x, &ones).unwrap().states, clean.states);
        let zeros = SimOptions {
            connectivity: Some(Array3::zeros((30, 50, 50))),
            ..Default::default()
        };
        assert_ne!(sim.run(&x, &zeros).unwrap().states, clean.states);
    }
}
