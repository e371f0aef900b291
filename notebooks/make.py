"""Writes the notebooks' cells: `python notebooks/make.py [NAME ...]` (default: all), then
`scripts/run-notebooks.py --write` executes them and stores their outputs.
Cells: ("md", text) or ("code", source)."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HEAD = [("code", ':cache 8000\n:dep psychrnn = { path = ".." }'), ("code", "use psychrnn::prelude::*;")]

TRAIN = [
    ("md", "Train PsychRNN's default rate RNN (50 units, Adam, batches of 128). Progress streams as "
           "plain lines; a few thousand trials are enough for this task."),
    ("code", "let model = RateRnnConfig::for_task(task.spec()).init(&mut TrialRng::seeded(1))?;\n"
             "let config = TrainConfig { training_iters: 128 * 200, loss_epoch: 25, progress: Progress::Lines, "
             "seed: 2, ..Default::default() };\n"
             "let mut trainer = Trainer::new(model, config)?;\n"
             "let report = trainer.train(&task)?;\n"
             "println!(\"{} updates in {:.1} s\", report.updates, report.seconds);"),
]

NOTEBOOKS = {
    "01-quickstart.ipynb": [
        ("md", "# Quick start\n\nPick a task, look at a trial, train a network, test it and plot its "
               "outputs: the whole PsychRNN workflow in a few cells."),
        *HEAD,
        ("md", "## A task\n\nPerceptual discrimination (PsychRNN's `PerceptualDiscrimination`): two noisy "
               "inputs, one slightly stronger; after the stimulus the network must raise the output on "
               "the stronger side. Time step 10 ms, trials of 2000 ms."),
        ("code", "let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig::default())?;\n"
                 "let batch = task.batch(&mut TrialRng::seeded(0));"),
        ("md", "A batch shows its first trials: inputs (solid), targets (dashed), and in grey the time "
               "the loss ignores."),
        ("code", "batch"),
        *TRAIN,
        ("md", "## Training curves"),
        ("code", "let history = trainer.history().clone();"),
        ("code", "history"),
        ("md", "## Testing on fresh trials"),
        ("code", "let fresh = task.batch(&mut TrialRng::seeded(99));\n"
                 "let sim = Simulator::from_model(trainer.model()).run(&fresh.x, &SimOptions::default())?;\n"
                 "let outputs = sim.outputs.mapv(|v| v as f32);\n"
                 "println!(\"accuracy {:.3}\", task.accuracy(fresh.y.view(), outputs.view(), fresh.mask.view()));"),
        ("code", "plot::outputs(&fresh, &sim.outputs, 0)?"),
        ("md", "The trained network, with its recurrent weights:"),
        ("code", "let trained = trainer.model().clone();"),
        ("code", "trained"),
    ],
    "02-biological-constraints.ipynb": [
        ("md", "# Biological constraints\n\nDale's law, no self-connections (autapses), modular connectivity "
               "and fixed weights: the constraints of PsychRNN's BiologicalConstraints notebook, each a field "
               "of `RateRnnConfig` or `TrainConfig`. They hold through training, and the weight heatmaps "
               "before and after show it."),
        *HEAD,
        ("code", "let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig::default())?;"),
        ("md", "## Two modules\n\n50 units in two modules of 25. Under Dale's law below, units 0–39 are "
               "excitatory and 40–49 inhibitory, so each module takes 20 of the first and 5 of the second: "
               "module 0 is units 0–19 and 40–44, module 1 is 20–39 and 45–49 (a module of excitatory units "
               "alone would run away). Within a module every pair may connect; between modules only a random "
               "20 %. Module 0 receives the inputs, module 1 drives the outputs, so the decision has to cross "
               "between them. Masks are 0/1 arrays: `[n_rec, n_in]`, `[n_rec, n_rec]` (row = postsynaptic), "
               "`[n_out, n_rec]`."),
        ("code", "let n = 50;\n"
                 "fn module(i: usize) -> usize { if i < 40 { i / 20 } else { (i - 40) / 5 } }\n"
                 "let mut draw = TrialRng::seeded(4);\n"
                 "let rec_mask = Array2::from_shape_fn((n, n), |(i, j)| {\n"
                 "    if module(i) == module(j) || draw.uniform() < 0.2 { 1.0f32 } else { 0.0 }\n"
                 "});\n"
                 "let in_mask = Array2::from_shape_fn((n, 2), |(i, _)| if module(i) == 0 { 1.0f32 } else { 0.0 });\n"
                 "let out_mask = Array2::from_shape_fn((2, n), |(_, j)| if module(j) == 1 { 1.0f32 } else { 0.0 });"),
        ("md", "## Dale's law\n\n`dale_ratio: Some(0.8)`: the first 40 units are excitatory (their outgoing weights, "
               "columns of `W_rec`, are ≥ 0) and the last 10 inhibitory (≤ 0); only excitatory units project to "
               "the outputs. `autapses: false` zeroes the diagonal."),
        ("code", "let config = RateRnnConfig {\n"
                 "    dale_ratio: Some(0.8),\n"
                 "    autapses: false,\n"
                 "    input_connectivity: Some(in_mask),\n"
                 "    rec_connectivity: Some(rec_mask.clone()),\n"
                 "    output_connectivity: Some(out_mask),\n"
                 "    ..RateRnnConfig::for_task(task.spec())\n"
                 "};\n"
                 "let before = config.init(&mut TrialRng::seeded(1))?;"),
        ("md", "The untrained network: effective weights (blue < 0 < red, green lines at the E | I boundary) "
               "and, below, its connectivity masks."),
        ("code", "before"),
        ("md", "## Fixed weights\n\nFreeze the sparse connections between the modules at their initial values: "
               "`fixed_weights` takes a 0/1 mask per variable (1 = never changes)."),
        ("code", "let between = Array2::from_shape_fn((n, n), |(i, j)| {\n"
                 "    if module(i) != module(j) && rec_mask[[i, j]] == 1.0 { 1.0f32 } else { 0.0 }\n"
                 "});\n"
                 "let config = TrainConfig {\n"
                 "    training_iters: 128 * 250,\n"
                 "    loss_epoch: 25,\n"
                 "    fixed_weights: FixedWeights::new().with(\"W_rec\", between.clone()),\n"
                 "    progress: Progress::Quiet,\n"
                 "    seed: 2,\n"
                 "    ..Default::default()\n"
                 "};\n"
                 "let mut trainer = Trainer::new(before.clone(), config)?;\n"
                 "let report = trainer.train(&task)?;"),
        ("code", "report"),
        ("code", "let after = trainer.model().clone();\n"
                 "let history = trainer.history().clone();"),
        ("code", "history"),
        ("md", "## The constraints held\n\nEvery excitatory column is still ≥ 0 and every inhibitory one ≤ 0, "
               "masked and diagonal entries are still 0, and the frozen weights did not move by a single bit."),
        ("code", "let w0 = before.effective_w_rec();\n"
                 "let w1 = after.effective_w_rec();\n"
                 "let wrong_sign = w1.indexed_iter().filter(|&((_, j), &w)| if j < 40 { w < 0.0 } else { w > 0.0 }).count();\n"
                 "let leaked = w1.indexed_iter().filter(|&((i, j), &w)| (rec_mask[[i, j]] == 0.0 || i == j) && w != 0.0).count();\n"
                 "let frozen_moved = w0.iter().zip(w1.iter()).zip(between.iter()).filter(|&((a, b), &f)| f == 1.0 && a != b).count();\n"
                 "let free_moved = w0.iter().zip(w1.iter()).zip(between.iter()).filter(|&((a, b), &f)| f == 0.0 && a != b).count();\n"
                 "let mut rng = TrialRng::seeded(99);\n"
                 "let frozen = between.sum() as usize;\n"
                 "println!(\"wrong-signed weights: {wrong_sign}; weights outside the mask: {leaked}\");\n"
                 "println!(\"frozen weights changed: {frozen_moved} of {frozen}; free weights changed: {free_moved}\");\n"
                 "println!(\"accuracy {:.3}\", trainer.accuracy(&task, &mut rng)?);"),
        ("md", "The trained weights, same layout as before:"),
        ("code", "after"),
    ],
    "03-curriculum.ipynb": [
        ("md", "# Curriculum learning\n\nTrain on easy trials first and move to harder ones as the network "
               "succeeds (PsychRNN's `Curriculum`), against training on the hardest stage from the start. "
               "Perceptual discrimination gets harder as the coherence (the difference between the two "
               "inputs) shrinks."),
        *HEAD,
        ("code", "fn pd(coherence: f64) -> Result<PerceptualDiscrimination> {\n"
                 "    PerceptualDiscrimination::new(PerceptualDiscriminationConfig { coherence: Some(coherence), ..Default::default() })\n"
                 "}\n"
                 "let hardest = pd(0.02)?;"),
        ("md", "The hardest stage: coherence 0.02, a faint difference in noisy inputs."),
        ("code", "hardest"),
        ("md", "## Two runs from the same initial network\n\nThe curriculum scores the current stage every 5 "
               "updates and advances at 90 % correct: coherence 0.5 → 0.2 → 0.1 → 0.05 → 0.02. Both runs get "
               "the same budget of 300 updates; the curriculum stops early once it passes its last stage."),
        ("code", "let model = RateRnnConfig::for_task(hardest.spec()).init(&mut TrialRng::seeded(1))?;\n"
                 "let config = TrainConfig { training_iters: 128 * 300, loss_epoch: 5, progress: Progress::Quiet, seed: 3, ..Default::default() };\n"
                 "let stages = [0.5, 0.2, 0.1, 0.05, 0.02].map(pd).into_iter().collect::<Result<Vec<_>>>()?;\n"
                 "let mut curriculum = Curriculum::new(stages)?.thresholds(vec![0.9; 5])?.metric_epoch(5)?;\n"
                 "let mut with_curriculum = Trainer::new(model.clone(), config.clone())?;\n"
                 "let report = with_curriculum.train_curriculum(&mut curriculum)?;"),
        ("code", "report"),
        ("code", "let mut hardest_only = Trainer::new(model, config)?;\n"
                 "let report_hardest = hardest_only.train(&hardest)?;"),
        ("code", "report_hardest"),
        ("md", "## Loss curves side by side\n\nShort ticks at the top mark the curriculum's stage changes. The "
               "loss of different stages is not comparable (harder stages have lower achievable loss for "
               "the same accuracy), so look at where each run ends."),
        ("code", "let curriculum_history = with_curriculum.history().clone();\n"
                 "let hardest_history = hardest_only.history().clone();"),
        ("code", "plot::compare_losses(&[(\"curriculum\", &curriculum_history), (\"hardest stage only\", &hardest_history)])?"),
        ("md", "The curriculum run, with its stage boundaries (dashed):"),
        ("code", "curriculum_history"),
        ("md", "## On the hardest stage\n\nAccuracy of both networks on the same 512 fresh trials at coherence 0.02."),
        ("code", "let test = PerceptualDiscrimination::new(PerceptualDiscriminationConfig { coherence: Some(0.02), n_batch: 512, ..Default::default() })?;\n"
                 "let a = with_curriculum.accuracy(&test, &mut TrialRng::seeded(100))?;\n"
                 "let b = hardest_only.accuracy(&test, &mut TrialRng::seeded(100))?;\n"
                 "let reached = if curriculum.is_done() { \"all 5 stages passed\".to_string() } else { format!(\"stopped in stage {} of 5\", curriculum.stage() + 1) };\n"
                 "println!(\"curriculum: {a:.3} after {} updates ({reached})\", with_curriculum.updates());\n"
                 "println!(\"hardest stage only: {b:.3} after {} updates\", hardest_only.updates());"),
    ],
    "04-custom-task.ipynb": [
        ("md", "# A custom task in one cell\n\nA task is two functions, as in PsychRNN: draw each trial's "
               "parameters, and say what input, target and mask hold at time `t` (ms). Batching, seeding, "
               "training, accuracy and pictures come from the library. Here: Go/No-Go."),
        ("code", ':cache 8000\n:dep psychrnn = { path = ".." }\n:dep serde = { version = "1", features = ["derive"] }'),
        ("code", "use psychrnn::prelude::*;"),
        ("md", "## Go/No-Go\n\nA cue appears at a random time between 200 and 600 ms and lasts 300 ms: on input 0 "
               "for *go*, on input 1 for *no-go*, each with noise. After the cue the network must raise its "
               "one output to 1 on go trials and keep it at 0 on no-go trials. The 100 ms after the cue "
               "are not scored (a grace period). A trial is correct when the output at the end of the "
               "trial is on the right side of 0.5."),
        ("code", "use psychrnn::ndarray::ArrayView3;\n\n"
                 "#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]\n"
                 "pub struct GoNoGoParams { pub go: bool, pub onset: f64 }\n"
                 "\n"
                 "pub struct GoNoGo { spec: TaskSpec, noise: f64 }\n"
                 "\n"
                 "impl Task for GoNoGo {\n"
                 "    type Params = GoNoGoParams;\n"
                 "    fn spec(&self) -> &TaskSpec { &self.spec }\n"
                 "    fn name(&self) -> &str { \"go-no-go\" }\n"
                 "    fn generate_trial_params(&self, rng: &mut TrialRng, _batch: usize, _trial: usize) -> GoNoGoParams {\n"
                 "        GoNoGoParams { go: rng.uniform() < 0.5, onset: rng.uniform_range(200.0, 600.0) }\n"
                 "    }\n"
                 "    fn trial_function(&self, t: f64, p: &GoNoGoParams, rng: &mut TrialRng, step: Step<'_>) {\n"
                 "        let cue = (p.onset..p.onset + 300.0).contains(&t);\n"
                 "        step.x[0] = if cue && p.go { 1.0 } else { 0.0 } + self.noise * rng.normal();\n"
                 "        step.x[1] = if cue && !p.go { 1.0 } else { 0.0 } + self.noise * rng.normal();\n"
                 "        let after = t >= p.onset + 300.0;\n"
                 "        step.y[0] = if after && p.go { 1.0 } else { 0.0 };\n"
                 "        step.mask[0] = if after && t < p.onset + 400.0 { 0.0 } else { 1.0 };\n"
                 "    }\n"
                 "    fn accuracy(&self, y: ArrayView3<'_, f32>, out: ArrayView3<'_, f32>, _mask: ArrayView3<'_, f32>) -> f64 {\n"
                 "        let last = y.dim().1 - 1;\n"
                 "        let b = y.dim().0;\n"
                 "        (0..b).filter(|&i| (out[[i, last, 0]] > 0.5) == (y[[i, last, 0]] > 0.5)).count() as f64 / b as f64\n"
                 "    }\n"
                 "}"),
        ("md", "1 input noise σ 0.1, 10 ms steps, τ 100 ms, trials of 1500 ms, batches of 64."),
        ("code", "let task = GoNoGo { spec: TaskSpec::new(2, 1, 10.0, 100.0, 1500.0, 64)?, noise: 0.1 };\n"
                 "let batch = task.batch(&mut TrialRng::seeded(0));\n"
                 "println!(\"{:?}\", &batch.params[..3]);"),
        ("code", "batch"),
        ("md", "## Train\n\nThe library's rate RNN, 50 units, 300 updates of 64 trials."),
        ("code", "let model = RateRnnConfig::for_task(task.spec()).init(&mut TrialRng::seeded(1))?;\n"
                 "let config = TrainConfig { training_iters: 64 * 300, loss_epoch: 10, progress: Progress::Quiet, seed: 2, ..Default::default() };\n"
                 "let mut trainer = Trainer::new(model, config)?;\n"
                 "let report = trainer.train(&task)?;"),
        ("code", "report"),
        ("code", "let history = trainer.history().clone();"),
        ("code", "history"),
        ("md", "## Test\n\nFresh trials, noise off: accuracy, then a go and a no-go trial against their targets."),
        ("code", "let fresh = task.batch(&mut TrialRng::seeded(99));\n"
                 "let sim = Simulator::from_model(trainer.model()).run(&fresh.x, &SimOptions::default())?;\n"
                 "let out = sim.outputs.mapv(|v| v as f32);\n"
                 "println!(\"accuracy {:.3}\", task.accuracy(fresh.y.view(), out.view(), fresh.mask.view()));\n"
                 "let go = fresh.params.iter().position(|p| p.go).unwrap();\n"
                 "let no_go = fresh.params.iter().position(|p| !p.go).unwrap();"),
        ("code", "plot::outputs(&fresh, &sim.outputs, go)?"),
        ("code", "plot::outputs(&fresh, &sim.outputs, no_go)?"),
    ],
    "05-analysis.ipynb": [
        ("md", "# Analysing a trained network\n\nPsychometric curve, trial table, state space (PCA), fixed "
               "points with their Jacobian spectra, and lesions."),
        *HEAD,
        ("code", "let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig::default())?;"),
        *TRAIN,
        ("code", "let net = trainer.model().clone();"),
        ("md", "## Psychometric curve\n\n100 trials at each signed coherence (positive: evidence for "
               "output 1), fitted by maximum likelihood with bias, slope and lapse rates."),
        ("code", "let levels = [-0.2, -0.1, -0.05, -0.02, 0.0, 0.02, 0.05, 0.1, 0.2];\n"
                 "let curve = analysis::psychometric(&net, &task, &levels, 100, None, 7)?;"),
        ("code", "curve"),
        ("md", "## One row per trial\n\nEvery trial parameter, the target and chosen outputs, correctness "
               "and the reaction time from stimulus onset (ms)."),
        ("code", "let batch = task.batch(&mut TrialRng::seeded(3));\n"
                 "let trials = analysis::evidence_table(&net, &task, &batch, &Default::default())?;"),
        ("code", "display::table(&trials)"),
        ("md", "## State space\n\nPrincipal components of the states, and the trajectories averaged by the "
               "correct choice."),
        ("code", "let sim = analysis::run(&net, &batch, Some(0.0), 0)?;\n"
                 "let pca = analysis::Pca::fit_trials(&sim.states, 3)?;"),
        ("code", "pca"),
        ("md", "## Fixed points\n\nWith no input, starting from states on the trajectories: minimise "
               "q(x) = ½‖F(x) − x‖², then linearise. Two attractors (one per choice) with a saddle "
               "between them is the classic picture of a decision; slow points (q above tol_q) trace "
               "the slow manifold that joins them."),
        ("code", "let dynamics = analysis::RateDynamics::new(&net, &[0.0, 0.0])?;\n"
                 "let starts = sim.states.slice(psychrnn::ndarray::s![.., 150, ..]).to_owned();\n"
                 "let found = dynamics.find_fixed_points(&starts, &Default::default())?;"),
        ("code", "found"),
        ("code", "let proj = pca.transform_trials(&sim.states)?;\n"
                 "let labels: Vec<String> = batch.params.iter().map(|p| format!(\"direction {}\", p.direction)).collect();\n"
                 "let averages = analysis::condition_average(&proj, &labels)?;\n"
                 "let fixed = pca.transform(found.states().view())?;"),
        ("code", "plot::trajectories(&averages, Some((&fixed, &found)))?"),
        ("md", "## Lesions\n\nSilence each unit in turn and measure the accuracy change."),
        ("code", "let units: Vec<Vec<usize>> = (0..net.n_rec()).map(|u| vec![u]).collect();\n"
                 "let lesions = analysis::lesion_table(&net, &task, &batch, &units)?;"),
        ("code", "display::table(&lesions)"),
        ("md", "## Single units\n\nThe states of a few units through one trial:"),
        ("code", "plot::states(&sim, 0, &[0, 1, 2, 3, 4])?"),
        ("md", "## A GRU\n\nThe same search works for LSTM and GRU networks (`GatedDynamics`): the step is the "
               "cell's, and the Jacobian comes from autodiff. A GRU trained on the same task (60 updates of 32 "
               "trials; gated cells train through burn's autodiff graph, slower than the rate RNN's fused kernel):"),
        ("code", "let gru = GatedRnnConfig::for_task(Cell::Gru, task.spec()).init(&mut TrialRng::seeded(1))?;\n"
                 "let small = PerceptualDiscrimination::new(PerceptualDiscriminationConfig { n_batch: 32, ..Default::default() })?;\n"
                 "let config = TrainConfig { training_iters: 32 * 60, learning_rate: 1e-2, loss_epoch: 10, progress: Progress::Quiet, seed: 2, ..Default::default() };\n"
                 "let mut gru_trainer = Trainer::new(gru, config)?;\n"
                 "gru_trainer.train(&small)?;\n"
                 "println!(\"GRU accuracy {:.3}\", gru_trainer.accuracy(&task, &mut TrialRng::seeded(99))?);\n"
                 "let gru = gru_trainer.model().clone();\n"
                 "let gru_sim = gru.simulate(&batch.x)?;\n"
                 "let gru_starts = gru_sim.states.slice(psychrnn::ndarray::s![.., 150, ..]).to_owned();\n"
                 "let gru_found = analysis::GatedDynamics::new(&gru, &[0.0, 0.0])?.find_fixed_points(&gru_starts, &Default::default())?;"),
        ("code", "gru_found"),
        ("md", "## Everything at once\n\n`analysis::report` runs all of the above for a built-in task (it is "
               "what `psychrnn analyze` writes to disk), with its timings:"),
        ("code", "let full = analysis::report(&net, &psychrnn::task::BuiltinTask::PerceptualDiscrimination(task.clone()), &Default::default())?;"),
        ("code", "full"),
    ],
    "06-psychrnn-interop.ipynb": [
        ("md", "# PsychRNN interop\n\nLoad a weights file that PsychRNN wrote, check that psychrnn runs "
               "the same network, continue training it (with PsychRNN's own Adam state), and save it back "
               "in PsychRNN's format, where `RNN(params)` with `load_weights_path` picks it up."),
        *HEAD,
        ("md", "## Load\n\n`data/psychrnn_saved_weights.npz` comes from PsychRNN's documentation notebooks: "
               "a 50-unit network trained on perceptual discrimination, with its Adam slots."),
        ("code", "let file = WeightsFile::read(\"data/psychrnn_saved_weights.npz\")?;\n"
                 "println!(\"{:?}\", file.keys().collect::<Vec<_>>());\n"
                 "let net = RateRnn::from_weights(&file, &LoadOptions::default())?;"),
        ("code", "net"),
        ("md", "## Same outputs as PsychRNN\n\n`../tests/data/fixture_bsim.npz` holds inputs and the outputs "
               "PsychRNN's `BasicSimulator` computed for this file."),
        ("code", "let x = psychrnn::io::read_array3(\"../tests/data/fixture_bsim.npz\", \"x\")?;\n"
                 "let theirs = psychrnn::io::read_array3(\"../tests/data/fixture_bsim.npz\", \"outputs\")?;\n"
                 "let sim = Simulator::from_model(&net).run(&x, &SimOptions::default())?;\n"
                 "let diff = (&sim.outputs - &theirs).mapv(f64::abs).fold(0.0f64, |m, &v| m.max(v));\n"
                 "println!(\"{} trials × {} steps: largest |ours − PsychRNN| = {diff:.1e}\", x.dim().0, x.dim().1);"),
        ("code", "sim"),
        ("md", "## Continue training\n\n`Trainer::resume` takes the weights and PsychRNN's Adam slots, so "
               "training continues rather than restarts."),
        ("code", "let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig::default())?;\n"
                 "let config = TrainConfig { training_iters: 128 * 100, loss_epoch: 5, progress: Progress::Quiet, seed: 5, ..Default::default() };\n"
                 "let mut trainer = Trainer::<RateRnn>::resume(&file, &LoadOptions::default(), config)?;\n"
                 "let before = trainer.accuracy(&task, &mut TrialRng::seeded(7))?;\n"
                 "let report = trainer.train(&task)?;\n"
                 "let after = trainer.accuracy(&task, &mut TrialRng::seeded(7))?;\n"
                 "println!(\"accuracy {before:.3} → {after:.3}\");"),
        ("code", "let history = trainer.history().clone();"),
        ("code", "history"),
        ("md", "## Save back\n\nThe file has PsychRNN's members (weights, masks, Dale vectors, Adam slots, "
               "`dale_ratio`, `transfer_function`) plus psychrnn's counters for an exact resume. Writing "
               "never replaces a file unless asked: here we ask (`true`), in a temporary folder."),
        ("code", "let out = std::env::temp_dir().join(\"psychrnn_continued_weights.npz\");\n"
                 "trainer.to_weights().write(&out, true)?;\n"
                 "let back = RateRnn::from_weights(&WeightsFile::read(&out)?, &LoadOptions::default())?;\n"
                 "println!(\"wrote {}; reloaded W_rec equal: {}\", out.display(), back.effective_w_rec() == trainer.model().effective_w_rec());\n"
                 "println!(\"{:?}\", WeightsFile::read(&out)?.keys().collect::<Vec<_>>());"),
    ],
    "07-libtorch.ipynb": [
        ("md", "# Training on libtorch\n\nWith `features = [\"tch\"]` psychrnn trains through libtorch "
               "(burn-tch), on the CPU or a CUDA GPU, with the same API: only `TrainConfig::device` changes. "
               "Before starting Jupyter: `bash scripts/setup-libtorch.sh` (torch 2.9.0 from PyPI) and "
               "`source ~/.cache/psychrnn/libtorch/env.sh`, so the kernel finds libtorch."),
        ("code", ':cache 8000\n:dep psychrnn = { path = "..", features = ["tch"] }'),
        ("code", "use psychrnn::prelude::*;"),
        ("code", "let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig { n_batch: 64, ..Default::default() })?;\n"
                 "let model = RateRnnConfig { dale_ratio: Some(0.8), rec_noise: 0.05, ..RateRnnConfig::for_task(task.spec()) }\n"
                 "    .init(&mut TrialRng::seeded(1))?;"),
        ("md", "## The same training on both backends\n\nSame network, seed, trials and noise; 60 updates each."),
        ("code", "fn run(model: &RateRnn, task: &PerceptualDiscrimination, device: TrainDevice) -> Result<(Trainer, TrainReport)> {\n"
                 "    let config = TrainConfig { training_iters: 64 * 60, loss_epoch: 2, progress: Progress::Quiet, device, seed: 3, ..Default::default() };\n"
                 "    let mut trainer = Trainer::new(model.clone(), config)?;\n"
                 "    let report = trainer.train(task)?;\n"
                 "    Ok((trainer, report))\n"
                 "}\n"
                 "let (flex, flex_report) = run(&model, &task, TrainDevice::Flex)?;\n"
                 "let (torch, torch_report) = run(&model, &task, TrainDevice::Libtorch)?;"),
        ("code", "torch_report"),
        ("code", "let flex_history = flex.history().clone();\n"
                 "let torch_history = torch.history().clone();"),
        ("code", "plot::compare_losses(&[(\"flex (default)\", &flex_history), (\"libtorch\", &torch_history)])?"),
        ("md", "## Agreement\n\nThe backends differ only in float32 rounding: after 60 Adam updates the "
               "weights agree to about 1e-4 of their scale."),
        ("code", "let a = flex.model().effective_w_rec();\n"
                 "let b = torch.model().effective_w_rec();\n"
                 "let scale = a.fold(0.0f32, |m, v| m.max(v.abs()));\n"
                 "let diff = a.iter().zip(b.iter()).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));\n"
                 "println!(\"max |ΔW_rec| / max |W_rec| = {:.1e}\", diff / scale);\n"
                 "println!(\"final loss: flex {:.6}, libtorch {:.6}\", flex_history.losses().last().unwrap(), torch_history.losses().last().unwrap());\n"
                 "println!(\"ms per update: flex {:.1}, libtorch {:.1}\", 1e3 * flex_report.seconds / 60.0, 1e3 * torch_report.seconds / 60.0);"),
        ("md", "On a GPU, `TrainDevice::LibtorchCuda(0)` (libtorch with CUDA) runs the same graph there."),
        ("code", "let trained = torch.model().clone();"),
        ("code", "trained"),
    ],
    "08-api-types.ipynb": [
        ("md", "# Every value psychrnn returns, bound with a bare `let`\n\nA check more than a story: evcxr "
               "must name the type of each variable it keeps between cells, so every type the public API "
               "returns has to be nameable through `psychrnn`. One cell binds one value of each, the next "
               "uses them all."),
        *HEAD,
        ("code", "let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig { n_batch: 16, ..Default::default() })?;\n"
                 "let dd = DelayedDiscrimination::new(DelayedDiscriminationConfig { n_batch: 16, ..Default::default() })?;\n"
                 "let mtc = MatchToCategory::new(MatchToCategoryConfig { n_batch: 16, ..Default::default() })?;\n"
                 "let builtin = psychrnn::task::BuiltinTask::PerceptualDiscrimination(task.clone());\n"
                 "let spec = task.spec().clone();\n"
                 "let batch = task.batch(&mut TrialRng::seeded(0));\n"
                 "let dd_batch = dd.batch(&mut TrialRng::seeded(0));\n"
                 "let mtc_batch = mtc.batch(&mut TrialRng::seeded(0));\n"
                 "let config = RateRnnConfig::for_task(task.spec());\n"
                 "let model = config.init(&mut TrialRng::seeded(1))?;\n"
                 "let lstm = GatedRnnConfig::for_task(Cell::Lstm, task.spec()).init(&mut TrialRng::seeded(1))?;\n"
                 "let alpha = model.alpha();\n"
                 "let w_rec = model.effective_w_rec();\n"
                 "let weights = model.to_weights();\n"
                 "let simulator = Simulator::from_model(&model);\n"
                 "let sim = simulator.run(&batch.x, &SimOptions::default())?;\n"
                 "let rates = sim.rates(model.config.transfer);\n"
                 "let lstm_sim = lstm.simulate(&batch.x)?;\n"
                 "let mut trainer = Trainer::new(model.clone(), TrainConfig { training_iters: 32, progress: Progress::Quiet, ..Default::default() })?;\n"
                 "let report = trainer.train(&task)?;\n"
                 "let history = trainer.history().clone();\n"
                 "let frame = history.to_frame();\n"
                 "let checkpoint = trainer.checkpoint();\n"
                 "let objective = trainer.objective(&batch, &mut TrialRng::seeded(2))?;\n"
                 "let outputs = trainer.outputs(&batch, &mut TrialRng::seeded(2))?;\n"
                 "let curriculum = Curriculum::new([task.clone()])?;\n"
                 "let mixture = TaskMixture::new().with(task.clone(), 1.0)?;\n"
                 "let trials = analysis::evidence_table(&model, &task, &batch, &Default::default())?;\n"
                 "let table = analysis::trial_table(&model, &dd, &dd_batch, &Default::default())?;\n"
                 "let curve = analysis::psychometric(&model, &task, &[-0.1, 0.0, 0.1], 8, None, 3)?;\n"
                 "let fit = analysis::fit_psychometric(&curve.evidence, &curve.chose, analysis::Link::Logistic, true)?;\n"
                 "let levels = analysis::choice_table(&curve.evidence, &curve.chose)?;\n"
                 "let pca = analysis::Pca::fit_trials(&sim.states, 3)?;\n"
                 "let projected = pca.transform_trials(&sim.states)?;\n"
                 "let labels: Vec<String> = batch.params.iter().map(|p| p.direction.to_string()).collect();\n"
                 "let averages = analysis::condition_average(&projected, &labels)?;\n"
                 "let angles = analysis::principal_angles(&pca.components, &pca.components)?;\n"
                 "let dynamics = analysis::RateDynamics::new(&model, &[0.0, 0.0])?;\n"
                 "let jacobian = dynamics.jacobian(&vec![0.0; 50]);\n"
                 "let eigenvalues = analysis::eigenvalues(&jacobian)?;\n"
                 "let found = dynamics.find_fixed_points(&sim.states.slice(psychrnn::ndarray::s![.., 199, ..]).to_owned(), &Default::default())?;\n"
                 "let point = found.points[0].clone();\n"
                 "let gated_dynamics = analysis::GatedDynamics::new(&lstm, &[0.0, 0.0])?;\n"
                 "let gated_points = gated_dynamics.find_fixed_points(&Array2::zeros((4, gated_dynamics.dim())), &Default::default())?;\n"
                 "let lesioned = analysis::silence_units(&model, &[0, 1])?;\n"
                 "let lesions = analysis::lesion_table(&model, &task, &batch, &[vec![0], vec![1]])?;\n"
                 "let variance = analysis::task_variance(&rates)?;\n"
                 "let accuracy = analysis::accuracy(&model, &task, &batch)?;\n"
                 "let full = analysis::report(&model, &builtin, &analysis::ReportOptions { n_trials: 16, repeats: 8, n_inits: 8, ..Default::default() })?;\n"
                 "let figure = plot::trials(&batch, &[0])?;\n"
                 "let png = figure.png(1.0)?;"),
        ("code", "println!(\"{:?} {:?} {:?} {:?}\", spec.n_steps(), batch.x.dim(), dd_batch.x.dim(), mtc_batch.x.dim());\n"
                 "println!(\"{} {} {:?}\", model.n_rec(), lstm.n_rec(), alpha.len());\n"
                 "println!(\"{:?} {} {}\", w_rec.dim(), weights.keys().count(), simulator.n_rec());\n"
                 "println!(\"{:?} {:?} {:?}\", sim.outputs.dim(), rates.dim(), lstm_sim.states.dim());\n"
                 "println!(\"{} {} {:?} {}\", report.updates, history.len(), frame.shape(), checkpoint.keys().count());\n"
                 "println!(\"{:.4} {:?}\", objective.total(), outputs.dim());\n"
                 "println!(\"{} {}\", curriculum.n_stages(), mixture.len());\n"
                 "println!(\"{:?} {:?} {:.3}\", trials.shape(), table.shape(), curve.logistic.slope);\n"
                 "println!(\"{:.3} {} {:?}\", fit.slope, levels.len(), pca.explained_variance_ratio());\n"
                 "println!(\"{:?} {} {:?}\", projected.dim(), averages.len(), angles.len());\n"
                 "println!(\"{:?} {} {} {:?} {}\", jacobian.dim(), eigenvalues.len(), found.points.len(), point.stability, gated_points.points.len());\n"
                 "println!(\"{} {:?} {} {:.3}\", lesioned.n_rec(), lesions.shape(), variance.len(), accuracy);\n"
                 "println!(\"{} {}\", full.figures.len(), png.len());"),
        ("md", "And the values that show themselves:"),
        ("code", "full"),
    ],
}

# Notebooks that need libtorch in the kernel's environment (scripts/run-notebooks.py skips them
# without it, unless --require-all).
NEEDS_LIBTORCH = {"07-libtorch.ipynb"}

KERNEL = {"display_name": "Rust", "language": "rust", "name": "rust"}
LANG = {"codemirror_mode": "rust", "file_extension": ".rs", "mimetype": "text/rust", "name": "Rust",
        "pygment_lexer": "rust", "version": ""}

if __name__ == "__main__":
    import os
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    for name, cells in NOTEBOOKS.items():
        if sys.argv[1:] and name not in sys.argv[1:]:
            continue
        metadata = {"kernelspec": KERNEL, "language_info": LANG}
        if name in NEEDS_LIBTORCH:
            metadata["psychrnn"] = {"requires": "libtorch"}
        nb = new_notebook(metadata=metadata)
        nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells]
        nbformat.write(nb, os.path.join(here, name))
        print("wrote", name)
