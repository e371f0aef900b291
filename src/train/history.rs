//! The training record: one row per recorded update, as a polars DataFrame and on disk, and the
//! live progress shown while training.

use std::io::IsTerminal;
use std::path::Path;

use polars::prelude::{Column, CsvWriter, DataFrame, ParquetWriter, SerWriter};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::refuse_overwrite;

/// One recorded point of training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    /// Update number (1-based, counted over all calls).
    pub update: usize,
    /// Trials seen so far.
    pub trials: usize,
    /// Loss + regularisation on the update's batch after the update; `None` on rows that only
    /// record an accuracy or a curriculum check.
    pub loss: Option<f64>,
    /// Accuracy (or the custom performance measure) on a fresh batch, when measured.
    pub accuracy: Option<f64>,
    /// Curriculum stage trained on (0-based), when training with a curriculum.
    pub stage: Option<usize>,
    /// Seconds since the trainer was created.
    pub wall_time_s: f64,
}

/// Rows of training, in update order. Derefs to `[HistoryRow]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History(pub Vec<HistoryRow>);

impl std::ops::Deref for History {
    type Target = [HistoryRow];
    fn deref(&self) -> &[HistoryRow] {
        &self.0
    }
}

impl History {
    /// The row of `update`, added if missing (rows stay in update order).
    pub(crate) fn row(
        &mut self,
        update: usize,
        trials: usize,
        stage: Option<usize>,
        wall_time_s: f64,
    ) -> &mut HistoryRow {
        if self.0.last().is_none_or(|r| r.update != update) {
            self.0.push(HistoryRow {
                update,
                trials,
                loss: None,
                accuracy: None,
                stage,
                wall_time_s,
            });
        }
        self.0.last_mut().expect("just pushed")
    }

    /// Recorded losses, in order (PsychRNN's `losses` list).
    pub fn losses(&self) -> Vec<f64> {
        self.0.iter().filter_map(|r| r.loss).collect()
    }

    /// Columns `update`, `trials` (u64), `loss`, `accuracy` (f64, null when not measured), `stage`
    /// (u32, null without a curriculum), `wall_time_s` (f64).
    pub fn to_frame(&self) -> DataFrame {
        let rows = &self.0;
        let columns = vec![
            Column::new(
                "update".into(),
                rows.iter().map(|r| r.update as u64).collect::<Vec<_>>(),
            ),
            Column::new(
                "trials".into(),
                rows.iter().map(|r| r.trials as u64).collect::<Vec<_>>(),
            ),
            Column::new("loss".into(), rows.iter().map(|r| r.loss).collect::<Vec<_>>()),
            Column::new("accuracy".into(), rows.iter().map(|r| r.accuracy).collect::<Vec<_>>()),
            Column::new(
                "stage".into(),
                rows.iter().map(|r| r.stage.map(|s| s as u32)).collect::<Vec<_>>(),
            ),
            Column::new(
                "wall_time_s".into(),
                rows.iter().map(|r| r.wall_time_s).collect::<Vec<_>>(),
            ),
        ];
        DataFrame::new(rows.len(), columns).expect("columns of equal length")
    }

    /// Writes the table as CSV (empty fields for nulls).
    pub fn write_csv(&self, path: impl AsRef<Path>, overwrite: bool) -> Result<()> {
        write_csv(&mut self.to_frame(), path.as_ref(), overwrite)
    }

    /// Writes the table as parquet.
    pub fn write_parquet(&self, path: impl AsRef<Path>, overwrite: bool) -> Result<()> {
        write_parquet(&mut self.to_frame(), path.as_ref(), overwrite)
    }
}

fn create(path: &Path, overwrite: bool) -> Result<std::fs::File> {
    refuse_overwrite(path, overwrite)?;
    std::fs::File::create(path).map_err(|e| Error::io(path, e))
}

fn table_error(path: &Path, e: polars::error::PolarsError) -> Error {
    Error::Table {
        what: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes `df` as CSV with a header; refuses to replace `path` unless `overwrite`.
pub fn write_csv(df: &mut DataFrame, path: &Path, overwrite: bool) -> Result<()> {
    let mut file = create(path, overwrite)?;
    CsvWriter::new(&mut file).finish(df).map_err(|e| table_error(path, e))
}

/// Writes `df` as parquet; refuses to replace `path` unless `overwrite`.
pub fn write_parquet(df: &mut DataFrame, path: &Path, overwrite: bool) -> Result<()> {
    let file = create(path, overwrite)?;
    ParquetWriter::new(file)
        .finish(df)
        .map(|_| ())
        .map_err(|e| table_error(path, e))
}

/// How training reports progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Progress {
    /// A progress bar on a terminal; elsewhere (notebooks, logs) a plain line every `loss_epoch`.
    #[default]
    Auto,
    /// Plain lines every `loss_epoch` updates, also on a terminal.
    Lines,
    /// Nothing.
    Quiet,
}

/// The live display of one training call.
pub(crate) enum Reporter {
    Bar(indicatif::ProgressBar),
    Lines { total: usize },
    Quiet,
}

impl Reporter {
    pub(crate) fn new(progress: Progress, total: usize) -> Self {
        match progress {
            Progress::Quiet => Reporter::Quiet,
            Progress::Auto if std::io::stderr().is_terminal() => {
                let bar = indicatif::ProgressBar::new(total as u64);
                let style = indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} updates  {msg}  [{elapsed_precise} < {eta_precise}]",
                )
                .expect("valid template");
                bar.set_style(style);
                Reporter::Bar(bar)
            }
            _ => Reporter::Lines { total },
        }
    }

    /// After update `done` of this call (1-based); `row` when something was recorded.
    pub(crate) fn update(&self, done: usize, row: Option<&HistoryRow>) {
        let describe = |r: &HistoryRow| {
            let mut s = String::new();
            if let Some(l) = r.loss {
                s += &format!("loss {l:.6}");
            }
            if let Some(a) = r.accuracy {
                s += &format!("  accuracy {a:.3}");
            }
            if let Some(st) = r.stage {
                s += &format!("  stage {st}");
            }
            s
        };
        match self {
            Reporter::Bar(bar) => {
                bar.set_position(done as u64);
                if let Some(r) = row {
                    bar.set_message(describe(r));
                }
            }
            Reporter::Lines { total } => {
                if let Some(r) = row.filter(|r| r.loss.is_some()) {
                    println!(
                        "update {done}/{total}  trials {}  {}  ({:.1} s)",
                        r.trials,
                        describe(r),
                        r.wall_time_s
                    );
                }
            }
            Reporter::Quiet => {}
        }
    }

    pub(crate) fn finish(&self) {
        if let Reporter::Bar(bar) = self {
            bar.finish();
        }
    }
}
