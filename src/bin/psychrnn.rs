//! The `psychrnn` command line: trial batches, simulation of saved networks, accuracy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use psychrnn::analysis::{self, ReportOptions};
use psychrnn::error::{Error, Result};
use psychrnn::io::{self, LoadOptions, NpyArray, WeightsFile, refuse_overwrite, to_npy};
use psychrnn::model::{Cell, GatedRnn, GatedRnnConfig, Initializer, RateRnn, RateRnnConfig, Tau, Transfer};
use psychrnn::rng::TrialRng;
use psychrnn::simulate::{SimOptions, Simulator};
use psychrnn::task::{BuiltinTask, TaskSpec, params_to_arrays};
use psychrnn::train::{TrainConfig, TrainDevice, TrainModel, Trainer, TrialData};
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
    /// Train a rate RNN on a task or fixed data; writes weights.npz, config.json,
    /// history.csv/.parquet and the loss curves (history.svg) to --out.
    Train(TrainArgs),
    /// Analyse a trained rate RNN: trial table, psychometric curve and fits, PCA, fixed points
    /// with Jacobian spectra, single-unit lesions; writes tables, JSON and SVG figures to --out.
    Analyze(AnalyzeArgs),
}

#[derive(Args)]
struct AnalyzeArgs {
    /// A folder written by `psychrnn train` (weights.npz and config.json).
    #[arg(long, required_unless_present = "weights", conflicts_with = "weights")]
    run: Option<PathBuf>,
    /// A PsychRNN or psychrnn weights file (needs --task).
    #[arg(long, requires = "task")]
    weights: Option<PathBuf>,
    /// perceptual-discrimination | delayed-discrimination | match-to-category (with --weights).
    #[arg(long, conflicts_with = "run")]
    task: Option<String>,
    /// JSON object of PsychRNN task constructor arguments (with --weights).
    #[arg(long, conflicts_with = "run")]
    task_config: Option<PathBuf>,
    /// JSON object of analysis settings (psychrnn's ReportOptions keys); --seed overrides its seed.
    #[arg(long)]
    options: Option<PathBuf>,
    /// Seed of the trials and the noise.
    #[arg(long)]
    seed: Option<u64>,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Also write each figure as PNG (2× its SVG size).
    #[arg(long)]
    png: bool,
    /// Replace files already in --out.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct TrainArgs {
    /// perceptual-discrimination | delayed-discrimination | match-to-category
    #[arg(long, required_unless_present = "data", conflicts_with = "data")]
    task: Option<String>,
    /// Train on the fixed x, y, mask ([trials, time, ·]) of this .npz (e.g. from `psychrnn batch`),
    /// batch after batch in order; its dt and tau keys, when present, set the time grid.
    #[arg(long)]
    data: Option<PathBuf>,
    /// JSON object of PsychRNN task constructor arguments (dt, tau, T, ...).
    #[arg(long, conflicts_with = "data")]
    task_config: Option<PathBuf>,
    /// JSON object of training parameters (psychrnn's TrainConfig keys); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// rate (PsychRNN's Basic rate RNN), lstm, psychrnn-lstm (h = o·σ(c), as PsychRNN) or gru.
    #[arg(long, default_value = "rate")]
    network: String,
    /// Recurrent (hidden) units.
    #[arg(long, default_value_t = 50)]
    n_rec: usize,
    /// Fraction of excitatory units (Dale's law); off when absent.
    #[arg(long)]
    dale_ratio: Option<f64>,
    /// Recurrent noise sigma.
    #[arg(long, default_value_t = 0.0)]
    rec_noise: f64,
    /// Transfer function.
    #[arg(long, default_value_t = Transfer::Relu)]
    transfer: Transfer,
    /// Seed of the initial weights, the trials and the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Trials per update (N_batch).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Trials to train on (updates = ceil(trials / batch size)); default 50000.
    #[arg(long, conflicts_with = "iterations")]
    training_iters: Option<usize>,
    /// Number of updates instead of --training-iters.
    #[arg(long)]
    iterations: Option<usize>,
    /// Learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Start from these weights (PsychRNN or psychrnn .npz); the optimiser starts fresh.
    #[arg(long, conflicts_with = "resume")]
    init_weights: Option<PathBuf>,
    /// Continue a run folder written by `psychrnn train` (weights, Adam state, counters, seed);
    /// --training-iters/--iterations then count the additional trials/updates.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Where the forward/backward pass runs: flex (pure-Rust CPU, default), libtorch,
    /// libtorch-cuda or libtorch-cuda:N (builds with `--features tch`).
    #[arg(long)]
    device: Option<String>,
    /// Output folder (must be empty or absent unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Write into a non-empty --out.
    #[arg(long)]
    force: bool,
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

/// Parses `value` as `T`, naming `path` in the error.
fn parse<T: serde::de::DeserializeOwned>(value: Value, path: &Path) -> Result<T> {
    serde_json::from_value(value).map_err(|e| Error::Config {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// A built-in task from `--task`, `--task-config` and an optional `N_batch` override; also
/// returns the config as used, for the run record.
fn load_task(name: &str, config: Option<&Path>, n_batch: Option<usize>) -> Result<(BuiltinTask, Value)> {
    let mut config = match config {
        Some(p) => read_json(p)?,
        None => Value::Object(Default::default()),
    };
    if let (Some(n), Value::Object(map)) = (n_batch, &mut config) {
        map.insert("N_batch".into(), n.into());
    }
    Ok((BuiltinTask::new(name, &config)?, config))
}

fn batch(args: BatchArgs) -> Result<()> {
    refuse_overwrite(&args.out, args.force)?;
    let (task, _) = load_task(&args.task, args.task_config.as_deref(), args.n)?;
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

/// Accuracy on fresh batches, at least 512 trials in all.
fn fresh_accuracy<M: TrainModel>(trainer: &Trainer<M>, task: &BuiltinTask, seed: u64) -> Result<f64> {
    let mut rng = TrialRng::seeded(seed);
    let n = 512usize.div_ceil(task.spec().n_batch);
    let mut total = 0.0;
    for _ in 0..n {
        total += trainer.accuracy(task, &mut rng)?;
    }
    Ok(total / n as f64)
}

/// Training data from a `psychrnn batch`-style `.npz`: x, y, mask, and dt/tau when present.
fn load_data(path: &Path, batch_size: Option<usize>) -> Result<TrialData> {
    let file = WeightsFile::read(path)?;
    let f32s = |key: &str| -> Result<ndarray::Array3<f32>> { Ok(io::read_array3(path, key)?.mapv(|v| v as f32)) };
    let scalar = |key: &str, default: f64| {
        file.get(key)
            .and_then(NpyArray::to_f64_vec)
            .and_then(|v| v.first().copied())
            .unwrap_or(default)
    };
    TrialData::new(
        f32s("x")?,
        f32s("y")?,
        f32s("mask")?,
        batch_size.unwrap_or(128),
        scalar("dt", 10.0),
        scalar("tau", 100.0),
    )
}

fn train(args: TrainArgs) -> Result<()> {
    let nonempty = std::fs::read_dir(&args.out)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if nonempty && !args.force {
        return Err(Error::Exists { path: args.out.clone() });
    }
    let (source, task_config) = match (&args.task, &args.data) {
        (Some(name), None) => {
            let (task, config) = load_task(name, args.task_config.as_deref(), args.batch_size)?;
            (Data::Task(task), config)
        }
        (None, Some(path)) => (Data::Fixed(load_data(path, args.batch_size)?), Value::Null),
        _ => {
            return Err(Error::invalid("--task/--data", "give exactly one of the two"));
        }
    };
    let spec = source.spec().clone();
    let mut config: TrainConfig = match &args.config {
        Some(p) => parse(read_json(p)?, p)?,
        None => TrainConfig::default(),
    };
    config.seed = args.seed;
    if let Some(lr) = args.lr {
        config.learning_rate = lr;
    }
    if let Some(t) = args.training_iters {
        config.training_iters = t;
    }
    if let Some(n) = args.iterations {
        config.training_iters = n * spec.n_batch;
    }
    if let Some(d) = &args.device {
        config.device = TrainDevice::from_name(d)?;
    }
    let network = match &args.resume {
        Some(dir) => {
            let previous = read_json(&dir.join("config.json"))?;
            previous["network"].as_str().unwrap_or("rate").to_string()
        }
        None => args.network.clone(),
    };
    let run = Run {
        args: &args,
        source: &source,
        task_config,
        spec: &spec,
    };
    if network == "rate" {
        let trainer = match &args.resume {
            None => {
                let model = RateRnnConfig {
                    n_rec: args.n_rec,
                    dale_ratio: args.dale_ratio,
                    rec_noise: args.rec_noise,
                    transfer: args.transfer,
                    initializer: match &args.init_weights {
                        Some(path) => Initializer::File { path: path.clone() },
                        None => Initializer::default(),
                    },
                    ..RateRnnConfig::for_task(&spec)
                }
                .init(&mut TrialRng::seeded(args.seed))?;
                Trainer::new(model, config)?
            }
            Some(dir) => {
                let (old_model, train) = resumed_configs::<RateRnnConfig>(dir, config)?;
                let file = WeightsFile::read(dir.join("weights.npz"))?;
                Trainer::<RateRnn>::resume(&file, &LoadOptions::from_config(&old_model), train)?
            }
        };
        return run.train(trainer, "rate", |m| serde_json::json!(m.config));
    }
    let cell = match network.as_str() {
        "lstm" => Cell::Lstm,
        "psychrnn-lstm" => Cell::PsychrnnLstm,
        "gru" => Cell::Gru,
        other => {
            return Err(Error::Unknown {
                kind: "network",
                name: other.into(),
                known: "rate, lstm, psychrnn-lstm, gru".into(),
            });
        }
    };
    if args.dale_ratio.is_some() || args.rec_noise != 0.0 || args.transfer != Transfer::Relu {
        return Err(Error::invalid(
            "--dale-ratio/--rec-noise/--transfer",
            "apply to the rate RNN only (--network rate)",
        ));
    }
    let trainer = match (&args.resume, &args.init_weights) {
        (Some(dir), _) => {
            let (old, train) = resumed_configs::<GatedRnnConfig>(dir, config)?;
            let file = WeightsFile::read(dir.join("weights.npz"))?;
            let options = LoadOptions {
                dt: old.dt,
                ..LoadOptions::default()
            };
            Trainer::<GatedRnn>::resume(&file, &options, train)?
        }
        (None, Some(path)) => Trainer::new(
            GatedRnn::from_weights(&WeightsFile::read(path)?, Some(cell), spec.dt)?,
            config,
        )?,
        (None, None) => {
            let net = GatedRnnConfig {
                n_rec: args.n_rec,
                ..GatedRnnConfig::for_task(cell, &spec)
            }
            .init(&mut TrialRng::seeded(args.seed))?;
            Trainer::new(net, config)?
        }
    };
    run.train(trainer, &network, |m| serde_json::json!(m.config))
}

/// The model config and the training config of a run folder being resumed (its seed kept).
fn resumed_configs<C: serde::de::DeserializeOwned>(dir: &Path, config: TrainConfig) -> Result<(C, TrainConfig)> {
    let path = dir.join("config.json");
    let previous = read_json(&path)?;
    let model: C = parse(previous["model"].clone(), &path)?;
    let old_train: TrainConfig = parse(previous["train"].clone(), &path)?;
    Ok((
        model,
        TrainConfig {
            seed: old_train.seed,
            ..config
        },
    ))
}

/// One `psychrnn train` run, whatever the network.
struct Run<'a> {
    args: &'a TrainArgs,
    source: &'a Data,
    task_config: Value,
    spec: &'a TaskSpec,
}

impl Run<'_> {
    fn train<M: TrainModel>(
        self,
        mut trainer: Trainer<M>,
        network: &str,
        describe: impl Fn(&M) -> Value,
    ) -> Result<()> {
        let args = self.args;
        let what = args
            .task
            .clone()
            .unwrap_or_else(|| format!("{}", args.data.as_ref().expect("checked").display()));
        println!(
            "training a {network} network of {} units on {what} for {} updates of {} trials",
            trainer.model().sizes().1,
            trainer.config().training_iters.div_ceil(self.spec.n_batch),
            self.spec.n_batch
        );
        let report = match self.source {
            Data::Task(task) => trainer.train(task)?,
            Data::Fixed(data) => trainer.train_data(data)?,
        };
        let accuracy = match self.source {
            Data::Task(task) => fresh_accuracy(&trainer, task, args.seed ^ 0xACC)?,
            Data::Fixed(data) => {
                let all = data.all();
                let outputs = trainer.outputs(&all, &mut TrialRng::seeded(args.seed ^ 0xACC))?;
                data.score(all.y.view(), outputs.view(), all.mask.view())
            }
        };
        std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
        trainer.checkpoint().write(args.out.join("weights.npz"), true)?;
        let run = serde_json::json!({
            "task": args.task,
            "data": args.data,
            "task_config": self.task_config,
            "network": network,
            "model": describe(trainer.model()),
            "train": trainer.config(),
            "seed": args.seed,
            "updates": trainer.updates(),
            "final_accuracy": accuracy,
            "psychrnn_version": env!("CARGO_PKG_VERSION"),
        });
        let json = serde_json::to_string_pretty(&run).expect("config serialises");
        std::fs::write(args.out.join("config.json"), json).map_err(|e| Error::io(args.out.join("config.json"), e))?;
        trainer.history().write_csv(args.out.join("history.csv"), true)?;
        trainer
            .history()
            .write_parquet(args.out.join("history.parquet"), true)?;
        let mut written = "weights.npz, config.json, history.csv, history.parquet".to_string();
        if !trainer.history().is_empty() {
            psychrnn::plot::history(trainer.history())?.save_svg(args.out.join("history.svg"), true)?;
            written += ", history.svg";
        }
        let last_loss = trainer.history().losses().last().copied().unwrap_or(f64::NAN);
        println!(
            "done: {} updates in {:.1} s ({:.1} ms/update), {:?}; final loss {last_loss:.5}, accuracy {accuracy:.3} on {}",
            report.updates,
            report.seconds,
            1000.0 * report.seconds / report.updates.max(1) as f64,
            report.stop,
            if args.task.is_some() {
                "fresh trials"
            } else {
                "the training data"
            },
        );
        println!("wrote {}/{{{written}}}", args.out.display());
        Ok(())
    }
}

fn analyze(args: AnalyzeArgs) -> Result<()> {
    let (model, task) = match (&args.run, &args.weights) {
        (Some(dir), _) => {
            let path = dir.join("config.json");
            let run = read_json(&path)?;
            if run["network"].as_str().is_some_and(|n| n != "rate") {
                return Err(Error::invalid(
                    "--run",
                    "analysis needs a rate network (this run trained a gated one)",
                ));
            }
            let Some(name) = run["task"].as_str() else {
                return Err(Error::invalid(
                    "--run",
                    "the run trained on --data: give --weights and --task instead",
                ));
            };
            let config: RateRnnConfig = parse(run["model"].clone(), &path)?;
            let task = BuiltinTask::new(name, &run["task_config"])?;
            let file = WeightsFile::read(dir.join("weights.npz"))?;
            (RateRnn::from_weights(&file, &LoadOptions::from_config(&config))?, task)
        }
        (None, Some(weights)) => {
            let (task, _) = load_task(
                args.task.as_deref().expect("clap requires it"),
                args.task_config.as_deref(),
                None,
            )?;
            let spec = task.spec();
            let options = LoadOptions {
                dt: spec.dt,
                tau: Tau::Scalar(spec.tau),
                ..LoadOptions::default()
            };
            (RateRnn::from_weights(&WeightsFile::read(weights)?, &options)?, task)
        }
        (None, None) => unreachable!("clap requires --run or --weights"),
    };
    let mut options: ReportOptions = match &args.options {
        Some(p) => parse(read_json(p)?, p)?,
        None => ReportOptions::default(),
    };
    if let Some(seed) = args.seed {
        options.seed = seed;
    }
    let report = analysis::report(&model, &task, &options)?;
    let mut written = report.write(&args.out, args.force)?;
    if args.png {
        written.extend(report.write_png(&args.out, args.force)?);
    }
    let found = &report.fixed_points;
    let fixed: Vec<_> = found.fixed().collect();
    let (stable, saddle, unstable) = found.counts();
    if let Some(c) = &report.psychometric {
        let f = &c.logistic;
        println!(
            "psychometric (logistic): bias {:.4} ± {:.4}, slope {:.3} ± {:.3}, lapses {:.3} / {:.3}",
            f.bias, f.std_errors[0], f.slope, f.std_errors[1], f.lapse_low, f.lapse_high
        );
    }
    println!(
        "PCA: explained variance {:.3?}, participation ratio {:.2}",
        report.pca.explained_variance_ratio().to_vec(),
        report.pca.participation_ratio()
    );
    println!(
        "fixed points (zero input, q < {:e}): {stable} stable, {saddle} saddle, {unstable} unstable; {} slow points",
        found.tol_q,
        found.points.len() - fixed.len()
    );
    for p in &fixed {
        let top: Vec<String> = p
            .eigenvalues
            .iter()
            .take(3)
            .map(|e| format!("{:.4}{:+.4}i", e[0], e[1]))
            .collect();
        println!(
            "  q {:.1e}  {:?}  leading eigenvalues {}; slowest τ {:.0} ms",
            p.q,
            p.stability,
            top.join(", "),
            p.slowest_time_constants_ms.first().unwrap_or(&f64::NAN)
        );
    }
    for (what, s) in &report.timings {
        println!("  {what}: {s:.2} s");
    }
    println!("wrote {} files to {}", written.len(), args.out.display());
    Ok(())
}

/// What `psychrnn train` trains on.
enum Data {
    Task(BuiltinTask),
    Fixed(TrialData),
}

impl Data {
    fn spec(&self) -> &TaskSpec {
        match self {
            Data::Task(t) => t.spec(),
            Data::Fixed(d) => d.spec(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Batch(a) => batch(a),
        Command::Simulate(a) => simulate(a),
        Command::Accuracy(a) => accuracy(a),
        Command::Train(a) => train(a),
        Command::Analyze(a) => analyze(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
