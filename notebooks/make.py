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
    ],
}

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
        nb = new_notebook(metadata={"kernelspec": KERNEL, "language_info": LANG})
        nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells]
        nbformat.write(nb, os.path.join(here, name))
        print("wrote", name)
