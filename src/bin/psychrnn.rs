//! The `psychrnn` command line: trial batches, simulation of saved networks, accuracy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use psychrnn::error::{Error, Result};
use psychrnn::io::{self, LoadOptions, NpyArray, WeightsFile, refuse_overwrite, to_npy};
use psychrnn::model::{RateRnn, Tau, Transfer};
use psychrnn::rng::TrialRng;
use psychrnn::simulate::{SimOptions, Simulator};
use psychrnn::task::{BuiltinTask, params_to_arrays};
use serde_json::Value;

#[derive(Parser)]
#[command(
    name = "psychrnn",
    version,
    about = "Cognitive tasks and biologically constrained rate RNNs (PsychRNN-compatible)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a batch of trials and write x, y, mask ([batch, time, ·], float32) and p_<param> arrays.
    Batch(BatchArgs),
    /// Run a saved network (PsychRNN or psychrnn .npz) on inputs; writes outputs and states.
    Simulate(SimulateArgs),
    /// Print a task's accuracy for outputs against a batch's targets and mask.
    Accuracy(AccuracyArgs),
}

#[derive(Args)]
struct BatchArgs {
    /// perceptual-discrimination | delayed-discrimination | match-to-category
    #[arg(long)]
    task: String,
    /// JSON object of PsychRNN constructor arguments (dt, tau, T, N_batch, coherence, ...).
    #[arg(long)]
    task_config: Option<PathBuf>,
    /// JSON array of trial-parameter objects (PsychRNN's keys): generate exactly these trials.
    #[arg(long)]
    trials: Option<PathBuf>,
    /// Number of trials (overrides N_batch).
    #[arg(long)]
    n: Option<usize>,
    /// Seed of psychrnn's default stream.
    #[arg(long, default_value_t = 0, conflicts_with = "numpy_seed")]
    seed: u64,
    /// Use NumPy's legacy stream: same batch as PsychRNN after np.random.seed(S).
    #[arg(long)]
    numpy_seed: Option<u32>,
    /// Output .npz file.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct SimulateArgs {
    /// Weights file (.npz) written by PsychRNN or psychrnn.
    #[arg(long)]
    weights: PathBuf,
    /// Inputs [batch, time, n_in]: a .npy file, or an .npz with key x (float32 or float64).
    #[arg(long)]
    inputs: PathBuf,
    /// Output .npz file (outputs, states as float64).
    #[arg(long)]
    out: PathBuf,
    /// Time step (ms).
    #[arg(long, default_value_t = 10.0, conflicts_with = "alpha")]
    dt: f64,
    /// Time constant (ms).
    #[arg(long, default_value_t = 100.0, conflicts_with = "alpha")]
    tau: f64,
    /// alpha = dt/tau directly, instead of --dt and --tau.
    #[arg(long)]
    alpha: Option<f64>,
    /// Recurrent noise sigma (0 = off).
    #[arg(long, default_value_t = 0.0)]
    rec_noise: f64,
    /// Seed of the noise stream (needed when --rec-noise > 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Transfer function (default: the file's, else relu).
    #[arg(long)]
    transfer: Option<Transfer>,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct AccuracyArgs {
    /// The task whose accuracy function to use.
    #[arg(long)]
    task: String,
    /// .npz with key outputs [batch, time, n_out].
    #[arg(long)]
    outputs: PathBuf,
    /// .npz with keys y and mask (as written by `psychrnn batch`).
    #[arg(long)]
    batch: PathBuf,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn batch(args: BatchArgs) -> Result<()> {
    refuse_overwrite(&args.out, args.force)?;
    let mut config = match &args.task_config {
        Some(p) => read_json(p)?,
        None => Value::Object(Default::default()),
    };
    if let (Some(n), Value::Object(map)) = (args.n, &mut config) {
        map.insert("N_batch".into(), n.into());
    }
    let task = BuiltinTask::new(&args.task, &config)?;
    let trials = args.trials.as_deref().map(read_json).transpose()?;
    let mut rng = match args.numpy_seed {
        Some(s) => TrialRng::numpy(s),
        None => TrialRng::seeded(args.seed),
    };
    let b = task.batch_json(&mut rng, trials.as_ref())?;
    let spec = task.spec();
    let mut entries = vec![
        ("x".to_string(), to_npy(&b.x, true)),
        ("y".into(), to_npy(&b.y, true)),
        ("mask".into(), to_npy(&b.mask, true)),
        ("dt".into(), NpyArray::scalar_f64(spec.dt)),
        ("tau".into(), NpyArray::scalar_f64(spec.tau)),
    ];
    entries.extend(params_to_arrays(&b.params));
    io::npy::write_npz(&args.out, &entries)?;
    println!(
        "wrote {} trials x {} steps to {}",
        b.n_trials(),
        b.n_steps(),
        args.out.display()
    );
    Ok(())
}

fn simulate(args: SimulateArgs) -> Result<()> {
    refuse_overwrite(&args.out, args.force)?;
    let file = WeightsFile::read(&args.weights)?;
    // alpha alone is expressed as dt = alpha, tau = 1.
    let (dt, tau) = match args.alpha {
        Some(a) => (a, 1.0),
        None => (args.dt, args.tau),
    };
    let options = LoadOptions {
        dt,
        tau: Tau::Scalar(tau),
        rec_noise: args.rec_noise,
        transfer: args.transfer,
    };
    let model = RateRnn::from_weights(&file, &options)?;
    let x = io::read_array3(&args.inputs, "x")?;
    let sim = Simulator::from_model(&model).run(
        &x,
        &SimOptions {
            seed: args.seed,
            ..Default::default()
        },
    )?;
    io::npy::write_npz(
        &args.out,
        &[
            ("outputs".into(), to_npy(&sim.outputs, false)),
            ("states".into(), to_npy(&sim.states, false)),
        ],
    )?;
    println!(
        "simulated {} trials x {} steps; wrote {}",
        x.dim().0,
        x.dim().1,
        args.out.display()
    );
    Ok(())
}

fn accuracy(args: AccuracyArgs) -> Result<()> {
    let task = BuiltinTask::new(&args.task, &Value::Null)?;
    let f32s = |a: ndarray::Array3<f64>| a.mapv(|v| v as f32);
    let outputs = f32s(io::read_array3(&args.outputs, "outputs")?);
    let y = f32s(io::read_array3(&args.batch, "y")?);
    let mask = f32s(io::read_array3(&args.batch, "mask")?);
    for (field, a) in [("outputs", &outputs), ("mask", &mask)] {
        if a.shape() != y.shape() {
            return Err(Error::shape(field, y.shape(), a.shape()));
        }
    }
    println!("{}", task.accuracy(y.view(), outputs.view(), mask.view()));
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Batch(a) => batch(a),
        Command::Simulate(a) => simulate(a),
        Command::Accuracy(a) => accuracy(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
