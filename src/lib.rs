//! # psychrnn
//!
//! Cognitive tasks, biologically constrained rate RNNs and their analysis, compatible with
//! PsychRNN (Ehrlich et al., eNeuro 2021): the same trials, the same network equations, the same
//! weight files.
//!
//! ```
//! use psychrnn::prelude::*;
//!
//! // A task and a batch of trials: x, y, mask are [batch, time, channels], time step 10 ms.
//! let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig { n_batch: 8, ..Default::default() })?;
//! let batch = task.batch(&mut TrialRng::seeded(42));
//!
//! // A rate RNN with Dale's law (80% excitatory), initialised as PsychRNN does.
//! let config = RateRnnConfig { dale_ratio: Some(0.8), ..RateRnnConfig::for_task(task.spec()) };
//! let model = config.init(&mut TrialRng::seeded(7))?;
//!
//! // Run it and score it.
//! let sim = Simulator::from_model(&model).run(&batch.x, &SimOptions::default())?;
//! let outputs = sim.outputs.mapv(|v| v as f32);
//! let accuracy = task.accuracy(batch.y.view(), outputs.view(), batch.mask.view());
//! assert!((0.0..=1.0).contains(&accuracy));
//! # Ok::<(), psychrnn::Error>(())
//! ```
//!
//! Reproducing PsychRNN's data exactly: `TrialRng::numpy(s)` is NumPy's legacy stream after
//! `np.random.seed(s)`, so `task.batch(&mut TrialRng::numpy(s))` equals PsychRNN's
//! `np.random.seed(s); task.get_trial_batch()`.

pub mod analysis;
pub mod display;
pub mod error;
pub mod io;
pub mod model;
pub mod plot;
pub mod rng;
pub mod simulate;
pub mod task;
pub mod train;

/// burn, for custom losses and regularisers (`burn::Tensor`) without a separate dependency.
pub use burn;
pub use error::{Error, Result};
/// ndarray, so notebooks can name the arrays psychrnn returns without their own dependency.
pub use ndarray;
/// polars, for the tables psychrnn returns.
pub use polars;

/// The names a notebook or script needs.
pub mod prelude {
    pub use crate::error::{Error, Result};
    pub use crate::io::{LoadOptions, WeightsFile};
    pub use crate::model::{
        Cell, Constraints, GatedRnn, GatedRnnConfig, GatedRnnParams, Initializer, RandInit, RateRnn, RateRnnConfig,
        RateRnnParams, Tau, Trainable, Transfer,
    };
    pub use crate::rng::TrialRng;
    pub use crate::simulate::{SimOptions, Simulation, Simulator};
    pub use crate::task::{
        DelayedDiscrimination, DelayedDiscriminationConfig, DelayedDiscriminationParams, MatchToCategory,
        MatchToCategoryConfig, MatchToCategoryParams, PerceptualDiscrimination, PerceptualDiscriminationConfig,
        PerceptualDiscriminationParams, Step, Task, TaskSpec, TrialBatch,
    };
    pub use crate::train::{
        Curriculum, FixedWeights, History, HistoryRow, Loss, LossInputs, PerformanceMeasure, Progress,
        RegularizerInputs, StopReason, TaskMixture, TrainConfig, TrainDevice, TrainReport, Trainer, TrialData,
    };
    pub use crate::{analysis, display, plot};
    pub use burn::Tensor;
    pub use ndarray::{Array1, Array2, Array3};
    pub use polars::prelude::DataFrame;
}
