//! The `psychrnn` binary: outputs, and one-line errors with a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use psychrnn::io::WeightsFile;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/psychrnn_saved_weights.npz"
);

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn psychrnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_psychrnn"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = psychrnn(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Fails with exit code 1 and a single `error:` line (the last; warnings may precede it) that
/// mentions `needle`.
fn fails(args: &[&str], needle: &str) {
    let out = psychrnn(args);
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    let errors: Vec<_> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        err.lines()
            .all(|l| l.starts_with("error: ") || l.starts_with("warning: ")),
        "{err}"
    );
    assert!(errors[0].contains(needle), "{err}");
}

#[test]
fn numpy_seed_batch_equals_psychrnn() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b.npz");
    let out_s = out.to_str().unwrap();
    let cfg = dir.path().join("cfg.json");
    std::fs::write(&cfg, r#"{"dt": 10, "tau": 100, "T": 2000, "N_batch": 4}"#).unwrap();
    ok(&[
        "batch",
        "--task",
        "delayed-discrimination",
        "--task-config",
        cfg.to_str().unwrap(),
        "--numpy-seed",
        "2021",
        "--out",
        out_s,
    ]);
    let ours = WeightsFile::read(&out).unwrap();
    let theirs = WeightsFile::read(data("npseed_dd.npz")).unwrap();
    for key in ["x", "y", "mask"] {
        let a = ours.require(key).unwrap();
        assert_eq!(a.data.descr(), "<f4", "{key} is float32");
        let b: Vec<f32> = theirs
            .require(key)
            .unwrap()
            .to_f64_vec()
            .unwrap()
            .iter()
            .map(|&v| v as f32)
            .collect();
        assert_eq!(a.to_f32_vec().unwrap(), b, "{key}");
    }
    let choice = ours.require("p_choice").unwrap().to_f64_vec().unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("npseed_dd.json")).unwrap()).unwrap();
    let expected: Vec<f64> = meta["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["choice"].as_f64().unwrap())
        .collect();
    assert_eq!(choice, expected);
    // An existing file is kept unless --force.
    fails(
        &["batch", "--task", "delayed-discrimination", "--out", out_s],
        "already exists",
    );
    ok(&[
        "batch",
        "--task",
        "delayed-discrimination",
        "--n",
        "3",
        "--out",
        out_s,
        "--force",
    ]);
    assert_eq!(
        WeightsFile::read(&out).unwrap().require("x").unwrap().shape,
        vec![3, 200, 2]
    );
}

#[test]
fn explicit_trials_file_gives_those_trials() {
    let dir = tempfile::tempdir().unwrap();
    let trials = dir.path().join("t.json");
    std::fs::write(
        &trials,
        r#"[{"coherence": 0.2, "direction": 1, "onset_time": 500, "stim_duration": 300, "stim_noise": 0}]"#,
    )
    .unwrap();
    let out = dir.path().join("b.npz");
    ok(&[
        "batch",
        "--task",
        "perceptual-discrimination",
        "--trials",
        trials.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let f = WeightsFile::read(&out).unwrap();
    let x = f.require("x").unwrap().to_f32_vec().unwrap();
    // step 51 (t = 510 ms): channel 1 carries 1 + coherence, channel 0 carries 1.
    assert_eq!((x[51 * 2], x[51 * 2 + 1]), (1.0, 1.2));
    assert_eq!(f.require("p_onset_time").unwrap().to_f64_vec().unwrap(), vec![500.0]);
}

#[test]
fn simulate_and_accuracy_on_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim.npz");
    let inputs = data("fixture_bsim.npz");
    ok(&[
        "simulate",
        "--weights",
        FIXTURE,
        "--inputs",
        inputs.to_str().unwrap(),
        "--out",
        sim.to_str().unwrap(),
    ]);
    let ours = WeightsFile::read(&sim).unwrap();
    let theirs = WeightsFile::read(&inputs).unwrap();
    let a = ours.require("outputs").unwrap().to_f64_vec().unwrap();
    let b = theirs.require("outputs").unwrap().to_f64_vec().unwrap();
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    assert!(diff < 1e-7, "{diff:e}"); // see tests/reference.rs
    // Same alpha, given directly.
    let sim2 = dir.path().join("sim2.npz");
    ok(&[
        "simulate",
        "--weights",
        FIXTURE,
        "--inputs",
        inputs.to_str().unwrap(),
        "--alpha",
        "0.1",
        "--out",
        sim2.to_str().unwrap(),
    ]);
    assert_eq!(WeightsFile::read(&sim2).unwrap().get("states"), ours.get("states"));

    let printed = ok(&[
        "accuracy",
        "--task",
        "perceptual-discrimination",
        "--outputs",
        sim.to_str().unwrap(),
        "--batch",
        inputs.to_str().unwrap(),
    ]);
    let expected = theirs.require("accuracy").unwrap().to_f64_vec().unwrap()[0];
    assert_eq!(printed.trim().parse::<f64>().unwrap(), expected);
}

#[test]
fn bad_input_gives_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.npz");
    let out_s = out.to_str().unwrap();
    fails(&["batch", "--task", "go-no-go", "--out", out_s], "unknown task");
    let cfg = dir.path().join("cfg.json");
    std::fs::write(&cfg, r#"{"dt": 0}"#).unwrap();
    fails(
        &[
            "batch",
            "--task",
            "match-to-category",
            "--task-config",
            cfg.to_str().unwrap(),
            "--out",
            out_s,
        ],
        "dt",
    );
    let inputs = data("npseed_mtc.npz"); // 16 inputs, the fixture takes 2
    fails(
        &[
            "simulate",
            "--weights",
            FIXTURE,
            "--inputs",
            inputs.to_str().unwrap(),
            "--out",
            out_s,
        ],
        "inputs has shape",
    );
    fails(
        &[
            "simulate",
            "--weights",
            "/nonexistent.npz",
            "--inputs",
            inputs.to_str().unwrap(),
            "--out",
            out_s,
        ],
        "/nonexistent.npz",
    );
    let truncated = dir.path().join("trunc.npz");
    let bytes = std::fs::read(FIXTURE).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    fails(
        &[
            "simulate",
            "--weights",
            truncated.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
            "--out",
            out_s,
        ],
        "trunc.npz",
    );
    fails(
        &[
            "simulate",
            "--weights",
            FIXTURE,
            "--inputs",
            data("fixture_bsim.npz").to_str().unwrap(),
            "--rec-noise",
            "0.1",
            "--out",
            out_s,
        ],
        "seed",
    );
    assert!(!out.exists());
}

/// `train` writes a PsychRNN-loadable run folder; `--resume` continues it exactly.
#[test]
fn train_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &str, extra: &[&str]| {
        let out = dir.path().join(out);
        let mut args = vec![
            "train",
            "--task",
            "perceptual-discrimination",
            "--n-rec",
            "12",
            "--dale-ratio",
            "0.75",
            "--batch-size",
            "16",
            "--seed",
            "3",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let printed = ok(&args);
        assert!(printed.contains("on fresh trials"), "{printed}");
        out
    };
    let straight = run("straight", &["--iterations", "4"]);
    let first = run("first", &["--iterations", "2"]);
    let resumed = run("resumed", &["--iterations", "2", "--resume", first.to_str().unwrap()]);
    let a = WeightsFile::read(straight.join("weights.npz")).unwrap();
    let b = WeightsFile::read(resumed.join("weights.npz")).unwrap();
    assert!(a.entries == b.entries, "resumed run differs from the uninterrupted one");
    assert!(a.get("W_rec/Adam").is_some() && a.dale_ratio().unwrap() == Some(0.75));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(straight.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["updates"], 4);
    assert_eq!(config["model"]["n_rec"], 12);
    let history = std::fs::read_to_string(straight.join("history.csv")).unwrap();
    assert!(history.starts_with("update,trials,loss,accuracy,stage,wall_time_s"));
    // Losses are recorded every loss_epoch (10) updates: none in 4, so no figure.
    assert!(!straight.join("history.svg").exists());
    let cfg = dir.path().join("train.json");
    std::fs::write(&cfg, r#"{"loss_epoch": 1}"#).unwrap();
    let curves = run("curves", &["--iterations", "3", "--config", cfg.to_str().unwrap()]);
    let figure = std::fs::read_to_string(curves.join("history.svg")).unwrap();
    assert!(figure.contains("loss (log)"), "the loss curve is drawn");
    // A non-empty output folder is kept unless --force.
    fails(
        &[
            "train",
            "--task",
            "perceptual-discrimination",
            "--iterations",
            "1",
            "--out",
            straight.to_str().unwrap(),
        ],
        "already exists",
    );
}

/// `analyze` on the network PsychRNN trained: every table, result and figure is written, the
/// fitted curve rises, and a second run refuses to replace the files.
#[test]
fn analyze_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("analysis");
    let options = dir.path().join("options.json");
    std::fs::write(&options, r#"{"n_trials": 64, "repeats": 40, "n_inits": 32}"#).unwrap();
    let args = [
        "analyze",
        "--weights",
        FIXTURE,
        "--task",
        "perceptual-discrimination",
        "--options",
        options.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--png",
    ];
    let stdout = ok(&args);
    assert!(
        stdout.contains("psychometric (logistic)") && stdout.contains("fixed points"),
        "{stdout}"
    );
    for f in [
        "trials.parquet",
        "trials.csv",
        "lesions.csv",
        "psychometric.json",
        "pca.json",
        "fixed_points.json",
        "timings.json",
        "trials.svg",
        "outputs.svg",
        "weights.svg",
        "state_space.svg",
        "psychometric.svg",
        "states.svg",
        "connectivity.svg",
        "explained_variance.svg",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    // Every SVG has its PNG, twice the SVG's size.
    for entry in std::fs::read_dir(&out).unwrap() {
        let svg = entry.unwrap().path();
        if svg.extension().is_some_and(|e| e == "svg") {
            let png = std::fs::read(svg.with_extension("png")).unwrap();
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{}", svg.display());
            let text = std::fs::read_to_string(&svg).unwrap();
            let width: u32 = text
                .split("width=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 2 * width);
        }
    }
    let fit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("psychometric.json")).unwrap()).unwrap();
    assert!(fit["logistic"]["slope"].as_f64().unwrap() > 0.0, "{}", fit["logistic"]);
    let lines = std::fs::read_to_string(out.join("lesions.csv"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, 1 + 50, "header + one row per unit");
    fails(&args, "already exists");
    fails(
        &["analyze", "--weights", FIXTURE, "--task", "nope", "--out", "x"],
        "unknown task",
    );
}
