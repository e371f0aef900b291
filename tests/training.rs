//! Training sources (curriculum, mixture, fixed data), checkpoints, early stopping, custom and
//! softmax losses, and the history table.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use psychrnn::burn::tensor::activation::log_softmax;
use psychrnn::polars::prelude::{ParquetReader, SerReader};
use psychrnn::prelude::*;
use psychrnn::train::PerformanceMeasure;

fn pd(n_batch: usize, coherence: Option<f64>) -> PerceptualDiscrimination {
    PerceptualDiscrimination::new(PerceptualDiscriminationConfig {
        n_batch,
        coherence,
        ..Default::default()
    })
    .unwrap()
}

fn net(n_rec: usize, seed: u64) -> RateRnn {
    RateRnnConfig {
        n_rec,
        ..RateRnnConfig::for_task(pd(1, None).spec())
    }
    .init(&mut TrialRng::seeded(seed))
    .unwrap()
}

fn quiet() -> TrainConfig {
    TrainConfig {
        progress: Progress::Quiet,
        ..Default::default()
    }
}

/// PsychRNN's curriculum on PD: coherence 0.7 → 0.5 → 0.3 → 0.1, each stage passed at 0.9
/// accuracy on a fresh batch; training stops when the last passes and the `[metric, stage]`
/// record is saved as `.npy`.
#[test]
fn curriculum_advances_through_four_coherence_stages_and_stops() {
    let stages = [0.7, 0.5, 0.3, 0.1].map(|c| pd(64, Some(c)));
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("metrics.npy");
    let mut curriculum = Curriculum::new(stages)
        .unwrap()
        .thresholds(vec![0.9; 4])
        .unwrap()
        .metric_epoch(5)
        .unwrap()
        .output_file(&record);
    let config = TrainConfig {
        learning_rate: 0.01,
        training_iters: 64 * 2000,
        ..quiet()
    };
    let mut trainer = Trainer::new(net(32, 1), config).unwrap();
    let report = trainer.train_curriculum(&mut curriculum).unwrap();
    assert_eq!(report.stop, StopReason::CurriculumDone);
    assert!(curriculum.is_done() && curriculum.stage() == 4);
    assert!(report.updates < 2000, "stopped early: {} updates", report.updates);
    let values = curriculum.metric_values();
    assert_eq!(values.ncols(), 2);
    assert_eq!(values.nrows(), report.updates / 5);
    // Stages never regress; each advance happened at a value ≥ 0.9; the last row passed stage 3.
    let stage: Vec<f64> = values.column(1).to_vec();
    assert!(
        stage.windows(2).all(|w| w[1] == w[0] || w[1] == w[0] + 1.0),
        "{stage:?}"
    );
    for w in values.rows().into_iter().collect::<Vec<_>>().windows(2) {
        if w[1][1] > w[0][1] {
            assert!(w[0][0] >= 0.9);
        }
    }
    let last = values.row(values.nrows() - 1);
    assert!(last[1] == 3.0 && last[0] >= 0.9, "{last:?}");
    // The .npy on disk is the same record, as PsychRNN's np.save writes it.
    let saved = psychrnn::io::npy::read_npy(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(saved.shape, [values.nrows(), 2]);
    assert_eq!(saved.to_f64_vec().unwrap(), values.iter().copied().collect::<Vec<_>>());
    // The history knows the stage of every check.
    let stages_seen: Vec<usize> = trainer.history().iter().filter_map(|r| r.stage).collect();
    assert_eq!(stages_seen.first(), Some(&0));
    assert_eq!(stages_seen.last(), Some(&3));
    // Training a finished curriculum does nothing.
    assert_eq!(trainer.train_curriculum(&mut curriculum).unwrap().updates, 0);
}

#[test]
fn curriculum_refuses_bad_settings_and_an_existing_record() {
    assert!(matches!(
        Curriculum::new(Vec::<PerceptualDiscrimination>::new()),
        Err(Error::Empty { .. })
    ));
    let c = || Curriculum::new([pd(8, Some(0.7)), pd(8, Some(0.1))]).unwrap();
    assert!(matches!(c().thresholds(vec![0.9]), Err(Error::Shape { .. })));
    assert!(matches!(c().thresholds(vec![0.9, 1.2]), Err(Error::OutOfRange { .. })));
    assert!(matches!(c().metric_epoch(0), Err(Error::OutOfRange { .. })));
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("m.npy");
    std::fs::write(&record, b"keep me").unwrap();
    let mut trainer = Trainer::new(net(4, 0), quiet()).unwrap();
    let err = trainer.train_curriculum(&mut c().output_file(&record)).unwrap_err();
    assert!(matches!(err, Error::Exists { .. }), "{err}");
    assert_eq!(std::fs::read(&record).unwrap(), b"keep me");
    assert_eq!(trainer.updates(), 0);
}

/// A PD whose `generate_trial_params` counts its batches, to see which task a mixture drew.
struct Counted {
    task: PerceptualDiscrimination,
    batches: Arc<AtomicUsize>,
}

impl Task for Counted {
    type Params = PerceptualDiscriminationParams;
    fn spec(&self) -> &TaskSpec {
        self.task.spec()
    }
    fn generate_trial_params(&self, rng: &mut TrialRng, batch: usize, trial: usize) -> Self::Params {
        if trial == 0 {
            self.batches.fetch_add(1, Ordering::Relaxed);
        }
        self.task.generate_trial_params(rng, batch, trial)
    }
    fn trial_function(&self, t: f64, params: &Self::Params, rng: &mut TrialRng, step: Step<'_>) {
        self.task.trial_function(t, params, rng, step)
    }
}

#[test]
fn mixture_draws_tasks_by_weight() {
    let counted = |coherence| {
        let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig {
            n_batch: 2,
            t_total: 100.0,
            coherence: Some(coherence),
            ..Default::default()
        })
        .unwrap();
        let batches = Arc::new(AtomicUsize::new(0));
        (
            Counted {
                task,
                batches: batches.clone(),
            },
            batches,
        )
    };
    let ((a, na), (b, nb)) = (counted(0.7), counted(0.1));
    let mixture = TaskMixture::new().with(a, 3.0).unwrap().with(b, 1.0).unwrap();
    let mut trainer = Trainer::new(
        net(4, 2),
        TrainConfig {
            training_iters: 2 * 400,
            ..quiet()
        },
    )
    .unwrap();
    let report = trainer.train_mixture(&mixture).unwrap();
    assert_eq!(report.updates, 400);
    let (na, nb) = (na.load(Ordering::Relaxed), nb.load(Ordering::Relaxed));
    assert_eq!(na + nb, 400);
    // Binomial(400, 3/4): mean 300, sd 8.7; 5 sd either side.
    assert!((na as f64 - 300.0).abs() < 5.0 * 8.7, "{na} vs {nb}");

    assert!(matches!(
        TaskMixture::new().with(pd(2, None), 0.0),
        Err(Error::OutOfRange { .. })
    ));
    let dd = DelayedDiscrimination::new(DelayedDiscriminationConfig::default()).unwrap();
    let wrong = MatchToCategory::new(MatchToCategoryConfig::default()).unwrap();
    let err = TaskMixture::new().with(dd, 1.0).unwrap().with(wrong, 1.0).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    assert!(matches!(
        trainer.train_mixture(&TaskMixture::new()),
        Err(Error::Empty { .. })
    ));
}

/// Fixed data trains batch after batch in order: the same as stepping through those batches.
#[test]
fn fixed_data_trains_in_order() {
    let b = pd(40, None).batch(&mut TrialRng::seeded(5));
    let data = TrialData::new(b.x.clone(), b.y.clone(), b.mask.clone(), 16, 10.0, 100.0).unwrap();
    assert_eq!(data.n_batches(), 3); // 16, 16, 8
    let config = TrainConfig {
        training_iters: 80,
        ..quiet()
    };
    let mut trainer = Trainer::new(net(6, 3), config.clone()).unwrap();
    let report = trainer.train_data(&data).unwrap();
    // Trials used: 16 + 16 + 8 + 16 + 16 = 72 < 80, one more batch of 16.
    assert_eq!(report.updates, 6);
    let mut by_hand = Trainer::new(net(6, 3), config).unwrap();
    for k in 0..6 {
        by_hand.step(&data.batch(k)).unwrap();
    }
    assert_eq!(trainer.model().params, by_hand.model().params);
    assert_eq!(data.batch(3).x, data.batch(0).x);
    assert_eq!(data.batch(2).n_trials(), 8);

    let bad_mask = ndarray::Array3::zeros((40, 200, 3));
    assert!(matches!(
        TrialData::new(b.x.clone(), b.y.clone(), bad_mask, 16, 10.0, 100.0),
        Err(Error::Shape { .. })
    ));
    let mut nan_x = b.x.clone();
    nan_x[[1, 2, 0]] = f32::NAN;
    assert!(matches!(
        TrialData::new(nan_x, b.y.clone(), b.mask.clone(), 16, 10.0, 100.0),
        Err(Error::OutOfRange { .. })
    ));
    assert!(matches!(
        TrialData::new(b.x.clone(), b.y, b.mask, 0, 10.0, 100.0),
        Err(Error::OutOfRange { .. })
    ));
}

/// PD whose inputs turn NaN from batch `from` on (batch numbers count updates from 1).
struct PoisonedFrom {
    task: PerceptualDiscrimination,
    from: usize,
}

impl Task for PoisonedFrom {
    type Params = (PerceptualDiscriminationParams, bool);
    fn spec(&self) -> &TaskSpec {
        self.task.spec()
    }
    fn generate_trial_params(&self, rng: &mut TrialRng, batch: usize, trial: usize) -> Self::Params {
        (self.task.generate_trial_params(rng, batch, trial), batch >= self.from)
    }
    fn trial_function(&self, t: f64, params: &Self::Params, rng: &mut TrialRng, step: Step<'_>) {
        let inner = Step {
            x: &mut *step.x,
            y: &mut *step.y,
            mask: &mut *step.mask,
        };
        self.task.trial_function(t, &params.0, rng, inner);
        if params.1 {
            step.x[0] = f64::NAN;
        }
    }
}

#[test]
fn checkpoints_every_epoch_and_a_nan_loss_leaves_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("ckpt").join("weights_");
    let task = PoisonedFrom {
        task: pd(8, None),
        from: 4,
    };
    let config = TrainConfig {
        training_iters: 8 * 10,
        training_weights_path: Some(prefix.clone()),
        save_training_weights_epoch: 1,
        save_weights_path: Some(dir.path().join("final")),
        ..quiet()
    };
    let mut trainer = Trainer::new(net(6, 4), config.clone()).unwrap();
    let err = trainer.train(&task).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
    assert!(err.to_string().contains("update 4"), "{err}");
    assert_eq!(trainer.updates(), 3);
    let ckpt = |u: usize| dir.path().join("ckpt").join(format!("weights_{u}.npz"));
    assert!(ckpt(1).exists() && ckpt(2).exists() && ckpt(3).exists());
    assert!(!ckpt(4).exists());
    assert!(!dir.path().join("final.npz").exists(), "no final save after a failure");
    // The last good checkpoint holds the weights after update 3, and resumes there.
    let file = WeightsFile::read(ckpt(3)).unwrap();
    let resumed = Trainer::<RateRnn>::resume(&file, &LoadOptions::default(), config.clone()).unwrap();
    assert_eq!(resumed.updates(), 3);
    assert_eq!(resumed.model().params, trainer.model().params);

    // A clean run writes the final weights (PsychRNN format, `.npz` appended), and a second run
    // with the same paths refuses before training instead of overwriting.
    let clean = pd(8, None);
    let fresh_dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        training_weights_path: Some(fresh_dir.path().join("w_")),
        save_weights_path: Some(fresh_dir.path().join("final")),
        save_training_weights_epoch: 2,
        training_iters: 8 * 5,
        ..quiet()
    };
    let mut trainer = Trainer::new(net(6, 4), config.clone()).unwrap();
    trainer.train(&clean).unwrap();
    let names: std::collections::BTreeSet<String> = std::fs::read_dir(fresh_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["final.npz", "w_2.npz", "w_4.npz"].map(String::from).into());
    let saved = RateRnn::from_weights(
        &WeightsFile::read(fresh_dir.path().join("final.npz")).unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(saved.effective_w_rec(), trainer.model().effective_w_rec());
    let mut again = Trainer::new(net(6, 4), config).unwrap();
    assert!(matches!(again.train(&clean), Err(Error::Exists { .. })));
    assert_eq!(again.updates(), 0);
}

#[test]
fn early_stop_with_a_custom_measure_and_errors_for_missing_closures() {
    let task = pd(8, None);
    let mut trainer = Trainer::new(
        net(6, 5),
        TrainConfig {
            training_iters: 800,
            ..quiet()
        },
    )
    .unwrap()
    .with_performance_measure(0.5, |batch, outputs| {
        assert_eq!(outputs.shape(), batch.y.shape());
        1.0
    })
    .unwrap();
    let report = trainer.train(&task).unwrap();
    assert_eq!(report.updates, 1);
    assert_eq!(report.stop, StopReason::PerformanceReached { accuracy: 1.0 });
    assert_eq!(trainer.config().performance_measure, Some(PerformanceMeasure::Custom));

    for (config, field) in [
        (
            TrainConfig {
                loss: Loss::Custom,
                ..quiet()
            },
            "loss",
        ),
        (
            TrainConfig {
                performance_measure: Some(PerformanceMeasure::Custom),
                performance_cutoff: Some(0.9),
                ..quiet()
            },
            "performance_measure",
        ),
    ] {
        let mut trainer = Trainer::new(net(4, 0), config).unwrap();
        match trainer.train(&task) {
            Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{other:?}"),
        }
    }
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// A custom loss and regulariser written in burn reproduce the built-in MSE and L2 terms:
/// same objective, same gradients (burn's autodiff against the hand-written ones).
#[test]
fn custom_loss_and_regularizer_match_the_builtin_terms() {
    let task = pd(8, None);
    let batch = task.batch(&mut TrialRng::seeded(9));
    let mut m = net(10, 6);
    m.config.dale_ratio = None;
    let builtin = Trainer::new(m.clone(), TrainConfig { l2_rec: 0.3, ..quiet() }).unwrap();
    let custom = Trainer::new(m, quiet())
        .unwrap()
        .with_custom_loss(|i: &LossInputs| {
            (i.mask.clone() * (i.outputs.clone() - i.targets.clone()))
                .powf_scalar(2.0)
                .mean()
        })
        .with_custom_regularizer(|r: &RegularizerInputs| r.w_rec.clone().powf_scalar(2.0).mean() * 0.3);
    let (pa, ga) = builtin.gradients(&batch, &mut TrialRng::seeded(1)).unwrap();
    let (pb, gb) = custom.gradients(&batch, &mut TrialRng::seeded(1)).unwrap();
    assert!((pa.total() - pb.total()).abs() < 1e-6 * pa.total(), "{pa:?} vs {pb:?}");
    for (k, (a, b)) in ga.iter().zip(&gb).enumerate() {
        assert!(max_rel_diff(a, b) < 1e-4, "param {k}: {}", max_rel_diff(a, b));
    }
}

/// Softmax cross-entropy: the hand-written value and gradient equal burn's `log_softmax` through
/// autodiff, and a hand-derived value on a one-step case.
#[test]
fn softmax_cross_entropy_value_and_gradient() {
    let task = pd(6, None);
    let batch = task.batch(&mut TrialRng::seeded(2));
    let m = net(8, 7);
    let builtin = Trainer::new(
        m.clone(),
        TrainConfig {
            loss: Loss::SoftmaxCrossEntropy,
            ..quiet()
        },
    )
    .unwrap();
    let custom = Trainer::new(m, quiet()).unwrap().with_custom_loss(|i: &LossInputs| {
        let [b, t, _] = i.outputs.dims();
        let logp = log_softmax(i.outputs.clone(), 2);
        (i.targets.clone() * i.mask.clone() * logp).sum().neg() / (b * t) as f32
    });
    let (pa, ga) = builtin.gradients(&batch, &mut TrialRng::seeded(1)).unwrap();
    let (pb, gb) = custom.gradients(&batch, &mut TrialRng::seeded(1)).unwrap();
    assert!((pa.loss - pb.loss).abs() < 1e-5 * pa.loss, "{pa:?} vs {pb:?}");
    for (k, (a, b)) in ga.iter().zip(&gb).enumerate() {
        assert!(max_rel_diff(a, b) < 1e-4, "param {k}: {}", max_rel_diff(a, b));
    }
    // One trial, one step, zero weights: outputs = b_out = (0, ln 3), so p = (1/4, 3/4); target
    // (1, 0) fully masked gives −ln(1/4).
    let mut zero = RateRnnConfig {
        n_rec: 2,
        ..RateRnnConfig::for_task(task.spec())
    }
    .init(&mut TrialRng::seeded(0))
    .unwrap();
    zero.params.w_out.fill(0.0);
    zero.params.b_out = ndarray::arr1(&[0.0, 3f32.ln()]);
    let one = TrialBatch {
        x: Array3::zeros((1, 1, 2)),
        y: Array3::from_shape_vec((1, 1, 2), vec![1.0, 0.0]).unwrap(),
        mask: Array3::ones((1, 1, 2)),
        params: vec![()],
        dt: 10.0,
    };
    let t = Trainer::new(
        zero,
        TrainConfig {
            loss: Loss::SoftmaxCrossEntropy,
            ..quiet()
        },
    )
    .unwrap();
    let parts = t.objective(&one, &mut TrialRng::seeded(0)).unwrap();
    assert!((parts.loss - 4f64.ln()).abs() < 1e-6, "{}", parts.loss);
}

#[test]
fn history_is_a_dataframe_and_round_trips_through_parquet_and_csv() {
    let task = pd(8, None);
    let mut trainer = Trainer::new(
        net(6, 8),
        TrainConfig {
            training_iters: 8 * 6,
            loss_epoch: 2,
            performance_measure: Some(PerformanceMeasure::Accuracy),
            performance_cutoff: Some(1.0),
            ..quiet()
        },
    )
    .unwrap();
    trainer.train(&task).unwrap();
    let history = trainer.history();
    // Accuracy every update, the loss every second one.
    assert_eq!(history.len(), 6);
    assert_eq!(history.losses().len(), 3);
    assert!(history.iter().all(|r| r.accuracy.is_some()));
    let df = history.to_frame();
    assert_eq!(df.shape(), (6, 6));
    assert_eq!(
        df.get_column_names().iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        ["update", "trials", "loss", "accuracy", "stage", "wall_time_s"]
    );
    assert_eq!(df.column("loss").unwrap().null_count(), 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.parquet");
    history.write_parquet(&path, false).unwrap();
    let back = ParquetReader::new(std::fs::File::open(&path).unwrap())
        .finish()
        .unwrap();
    assert!(back.equals_missing(&df));
    assert!(matches!(history.write_parquet(&path, false), Err(Error::Exists { .. })));
    let csv = dir.path().join("h.csv");
    history.write_csv(&csv, false).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 7);
    assert!(text.starts_with("update,trials,loss,accuracy,stage,wall_time_s\n1,8,,"));
}
