//! Every figure renders to well-formed SVG holding its series and labels.

use psychrnn::analysis::{self, FixedPointOptions, RateDynamics};
use psychrnn::plot;
use psychrnn::prelude::*;
use psychrnn::train::HistoryRow;

/// Parses the SVG and returns every text element's content and the number of elements of `tag`.
fn parse(svg: &str, tag: &str) -> (Vec<String>, usize) {
    let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect();
    let count = doc.descendants().filter(|n| n.has_tag_name(tag)).count();
    (texts, count)
}

fn has(texts: &[String], want: &str) -> bool {
    texts.iter().any(|t| t.contains(want))
}

fn pd(n: usize) -> PerceptualDiscrimination {
    PerceptualDiscrimination::new(PerceptualDiscriminationConfig {
        n_batch: n,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn trial_figure_has_inputs_targets_and_mask_shading() {
    let batch = pd(4).batch(&mut TrialRng::seeded(0));
    let fig = plot::trials(&batch, &[0, 2]).unwrap();
    let (texts, lines) = parse(&fig.svg, "polyline");
    for want in [
        "trial 0",
        "trial 2",
        "time (ms)",
        "input 0",
        "input 1",
        "target 0",
        "target 1",
    ] {
        assert!(has(&texts, want), "missing {want:?} in {texts:?}");
    }
    // 2 inputs per panel as polylines (targets are dashed: many short paths).
    assert!(lines >= 4, "{lines} polylines");
    let (_, rects) = parse(&fig.svg, "rect");
    assert!(
        rects >= 2 + 2,
        "background + one mask-off region per panel at least: {rects}"
    );
    assert!(matches!(plot::trials(&batch, &[4]), Err(Error::OutOfRange { .. })));
    assert!(plot::trials(&batch, &[]).is_err());
}

#[test]
fn history_figure_marks_stage_changes() {
    let row = |update, loss, accuracy, stage| HistoryRow {
        update,
        trials: update * 10,
        loss: Some(loss),
        accuracy,
        stage: Some(stage),
        wall_time_s: 0.0,
    };
    let h = History(vec![
        row(1, 0.5, None, 0),
        row(2, 0.2, Some(0.6), 0),
        row(3, 0.1, Some(0.9), 1),
        row(4, 0.05, Some(0.95), 1),
    ]);
    let fig = plot::history(&h).unwrap();
    let (texts, _) = parse(&fig.svg, "polyline");
    for want in ["loss", "accuracy", "update", "loss (log)"] {
        assert!(has(&texts, want), "missing {want:?}");
    }
    let (_, circles) = parse(&fig.svg, "circle");
    assert_eq!(circles, 3, "one marker per accuracy");
    // Dashed stage line: one dashed series per panel, each made of several short segments.
    let no_stage = History(h.0.iter().map(|r| HistoryRow { stage: None, ..*r }).collect());
    let (_, with) = parse(&fig.svg, "polyline");
    let (_, without) = parse(&plot::history(&no_stage).unwrap().svg, "polyline");
    assert!(with > without, "stage boundary lines drawn: {with} vs {without}");
    assert!(matches!(plot::history(&History::default()), Err(Error::Empty { .. })));
}

#[test]
fn network_psychometric_state_space_and_spectra_figures() {
    let task = pd(8);
    let model = RateRnnConfig {
        n_rec: 10,
        dale_ratio: Some(0.8),
        ..RateRnnConfig::for_task(task.spec())
    }
    .init(&mut TrialRng::seeded(1))
    .unwrap();
    let fig = plot::weights(&model).unwrap();
    let (texts, rects) = parse(&fig.svg, "rect");
    assert!(rects > 100, "one cell per weight: {rects}");
    assert!(has(&texts, "E | I boundary") && has(&texts, "from unit") && has(&texts, "to unit"));

    let x: Vec<f64> = [-0.4, -0.2, 0.0, 0.2, 0.4].repeat(40);
    let chose: Vec<bool> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| v > 0.0 || (v == 0.0 && i % 2 == 0))
        .collect();
    let curve = analysis::Psychometric::from_trials(x, chose, &[f64::NAN; 200]).unwrap();
    let (texts, circles) = parse(&plot::psychometric(&curve).unwrap().svg, "line");
    assert!(has(&texts, "Logistic: bias") && has(&texts, "Probit: bias") && has(&texts, "signed evidence"));
    assert!(circles >= 5, "error bars");

    let batch = task.batch(&mut TrialRng::seeded(2));
    let sim = analysis::run(&model, &batch, Some(0.0), 0).unwrap();
    let pca = analysis::Pca::fit_trials(&sim.states, 2).unwrap();
    let proj = pca.transform_trials(&sim.states).unwrap();
    let labels: Vec<String> = batch
        .params
        .iter()
        .map(|p| format!("direction {}", p.direction))
        .collect();
    let avg = analysis::condition_average(&proj, &labels).unwrap();
    let found = RateDynamics::new(&model, &[0.0, 0.0])
        .unwrap()
        .find_fixed_points(
            &sim.states.slice(ndarray::s![.., 199, ..]).to_owned(),
            &FixedPointOptions::default(),
        )
        .unwrap();
    let fp = pca.transform(found.states().view()).unwrap();
    let fig = plot::trajectories(&avg, Some((&fp, &found))).unwrap();
    let (texts, _) = parse(&fig.svg, "polyline");
    assert!(has(&texts, "PC 1") && has(&texts, "fixed point"));
    for (label, _) in &avg {
        assert!(has(&texts, label), "legend {label}");
    }
    let fig = plot::spectra(&found.points).unwrap();
    let (texts, circles) = parse(&fig.svg, "circle");
    assert!(has(&texts, "unit circle") && has(&texts, "Re λ"));
    let n_eig: usize = found.points.iter().map(|p| p.eigenvalues.len()).sum();
    assert!(circles >= n_eig, "{circles} markers for {n_eig} eigenvalues");

    let out = plot::outputs(&batch, &sim.outputs, 1).unwrap();
    let (texts, _) = parse(&out.svg, "polyline");
    assert!(has(&texts, "output 0") && has(&texts, "target 1") && has(&texts, "time (ms)"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.svg");
    out.save_svg(&path, false).unwrap();
    assert!(matches!(out.save_svg(&path, false), Err(Error::Exists { .. })));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), out.svg);
}
