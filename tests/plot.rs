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

#[test]
fn weights_masks_states_and_variance_figures() {
    let task = pd(4);
    let mut mask = ndarray::Array2::<f32>::ones((6, 6));
    mask.slice_mut(ndarray::s![0..3, 3..6]).fill(0.0);
    let model = RateRnnConfig {
        n_rec: 6,
        dale_ratio: Some(0.5),
        autapses: false,
        rec_connectivity: Some(mask),
        ..RateRnnConfig::for_task(task.spec())
    }
    .init(&mut TrialRng::seeded(1))
    .unwrap();
    let (texts, rects) = parse(&plot::weights(&model).unwrap().svg, "rect");
    // 6·2 + 6·6 + 6·2 cells.
    assert!(rects >= 60, "{rects} cells");
    for want in [
        "W_in",
        "W_rec (effective)",
        "W_outᵀ",
        "E | I boundary",
        "input",
        "output",
    ] {
        assert!(has(&texts, want), "missing {want:?} in {texts:?}");
    }
    let (texts, _) = parse(&plot::connectivity(&model).unwrap().svg, "rect");
    // 36 − 6 autapses − 9 cut by the mask.
    assert!(has(&texts, "recurrent mask, 21/36 on"), "{texts:?}");
    assert!(has(&texts, "input mask, 12/12 on"), "{texts:?}");

    let batch = task.batch(&mut TrialRng::seeded(2));
    let sim = Simulator::from_model(&model)
        .run(&batch.x, &SimOptions::default())
        .unwrap();
    let fig = plot::states(&sim, 1, &[0, 5]).unwrap();
    let (texts, lines) = parse(&fig.svg, "polyline");
    assert!(has(&texts, "unit 0") && has(&texts, "unit 5") && has(&texts, "time (ms)"));
    assert!(lines >= 2, "one line per unit: {lines}");
    assert!(matches!(plot::states(&sim, 4, &[0]), Err(Error::OutOfRange { .. })));
    assert!(matches!(plot::states(&sim, 0, &[6]), Err(Error::OutOfRange { .. })));
    assert!(plot::states(&sim, 0, &[]).is_err());

    let pca = analysis::Pca::fit_trials(&sim.states, 3).unwrap();
    let (texts, bars) = parse(&plot::explained_variance(&pca).unwrap().svg, "rect");
    assert!(has(&texts, "principal component") && has(&texts, "cumulative"));
    assert!(bars > 3, "3 bars and the background: {bars}");
}

#[cfg(feature = "png")]
#[test]
fn png_export_draws_text_at_the_requested_scale() {
    let batch = pd(2).batch(&mut TrialRng::seeded(0));
    let fig = plot::trials(&batch, &[0]).unwrap();
    let png = fig.png(1.5).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let dim = |p: &[u8], at: usize| u32::from_be_bytes(p[at..at + 4].try_into().unwrap());
    assert_eq!((dim(&png, 16), dim(&png, 20)), (480, 450), "320 × 300 at 1.5");
    // Without its text the picture differs: the labels were drawn with a real font.
    let mut bare = fig.clone();
    while let Some(a) = bare.svg.find("<text") {
        let b = a + bare.svg[a..].find("</text>").unwrap() + "</text>".len();
        bare.svg.replace_range(a..b, "");
    }
    assert_ne!(bare.png(1.5).unwrap(), png);
    assert!(matches!(fig.png(0.0), Err(Error::OutOfRange { .. })));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.png");
    fig.save_png(&path, false).unwrap();
    assert!(matches!(fig.save_png(&path, false), Err(Error::Exists { .. })));
    assert_eq!(dim(&std::fs::read(&path).unwrap(), 16), 640, "saved at 2×");
}

#[test]
fn loss_comparison_labels_each_run_and_marks_stages() {
    let rows = |losses: &[f64], stage_at: Option<usize>| {
        History(
            losses
                .iter()
                .enumerate()
                .map(|(i, &l)| HistoryRow {
                    update: i + 1,
                    trials: (i + 1) * 8,
                    loss: Some(l),
                    accuracy: None,
                    stage: stage_at.map(|s| usize::from(i >= s)),
                    wall_time_s: 0.0,
                })
                .collect(),
        )
    };
    let curriculum = rows(&[0.5, 0.3, 0.2, 0.1], Some(2));
    let hardest = rows(&[0.6, 0.5, 0.45, 0.4], None);
    let fig = plot::compare_losses(&[("curriculum", &curriculum), ("hardest only", &hardest)]).unwrap();
    let (texts, lines) = parse(&fig.svg, "polyline");
    for want in ["curriculum", "hardest only", "loss (log)", "update"] {
        assert!(has(&texts, want), "missing {want:?}");
    }
    // One stage tick more than the same runs without stages.
    let flat = rows(&[0.5, 0.3, 0.2, 0.1], None);
    let (_, without) = parse(
        &plot::compare_losses(&[("curriculum", &flat), ("hardest only", &hardest)])
            .unwrap()
            .svg,
        "polyline",
    );
    assert_eq!(lines, without + 1, "{lines} vs {without} polylines");
    assert!(without >= 4, "two curves and two legend swatches: {without}");
    assert!(matches!(plot::compare_losses(&[]), Err(Error::OutOfRange { .. })));
    let empty = History::default();
    assert!(matches!(
        plot::compare_losses(&[("a", &curriculum), ("b", &empty)]),
        Err(Error::Empty { .. })
    ));
}
