//! How psychrnn's values show themselves in an evcxr notebook: a `text/plain` summary plus a
//! figure (`image/svg+xml`), so exported notebooks and GitHub's viewer show them too.

use polars::prelude::DataFrame;

use crate::analysis::{FixedPoints, Pca, Psychometric, Report};
use crate::model::{GatedRnn, RateRnn};
use crate::plot::{self, Figure};
use crate::rng::TrialRng;
use crate::simulate::Simulation;
use crate::task::{
    BuiltinTask, DelayedDiscrimination, MatchToCategory, PerceptualDiscrimination, Task, TaskSpec, TrialBatch,
};
use crate::train::{History, StopReason, TrainReport};

/// Prints an evcxr display bundle: `text` and the figures that could be drawn.
fn show(text: &str, figure: crate::Result<Figure>) {
    show_all(text, [figure]);
}

fn show_all(text: &str, figures: impl IntoIterator<Item = crate::Result<Figure>>) {
    let mut text = text.to_string();
    let mut drawn = Vec::new();
    for figure in figures {
        match figure {
            Ok(f) => drawn.push(f),
            Err(e) => text += &format!("\n(no figure: {e})"),
        }
    }
    println!("EVCXR_BEGIN_CONTENT text/plain\n{text}\nEVCXR_END_CONTENT");
    for f in drawn {
        f.evcxr_display();
    }
}

fn spec_text(name: &str, spec: &TaskSpec) -> String {
    format!(
        "{name}: {} inputs, {} outputs; trials of {} ms in steps of {} ms (tau {} ms); {} trials per batch",
        spec.n_in, spec.n_out, spec.t_total, spec.dt, spec.tau, spec.n_batch
    )
}

/// A task shows its sizes and three trials of a batch drawn with seed 0.
fn show_task<T: Task>(task: &T) {
    let batch = task.batch(&mut TrialRng::seeded(0));
    let which: Vec<usize> = (0..batch.x.dim().0.min(3)).collect();
    show(&spec_text(task.name(), task.spec()), plot::trials(&batch, &which));
}

macro_rules! display_task {
    ($($t:ty),*) => {$(
        impl $t {
            /// Its sizes and three example trials (seed 0).
            pub fn evcxr_display(&self) {
                show_task(self);
            }
        }
    )*};
}
display_task!(PerceptualDiscrimination, DelayedDiscrimination, MatchToCategory);

impl BuiltinTask {
    /// Its sizes and three example trials (seed 0).
    pub fn evcxr_display(&self) {
        match self {
            BuiltinTask::PerceptualDiscrimination(t) => show_task(t),
            BuiltinTask::DelayedDiscrimination(t) => show_task(t),
            BuiltinTask::MatchToCategory(t) => show_task(t),
        }
    }
}

impl<P> TrialBatch<P> {
    /// The first (up to) three trials as a figure.
    pub fn evcxr_display(&self) {
        let (b, t, i) = self.x.dim();
        let which: Vec<usize> = (0..b.min(3)).collect();
        let text = format!(
            "TrialBatch: {b} trials × {t} steps of {} ms, {i} inputs, {} outputs",
            self.dt,
            self.y.dim().2
        );
        show(&text, plot::trials(self, &which));
    }
}

impl History {
    /// Loss and accuracy curves.
    pub fn evcxr_display(&self) {
        let last = self.last();
        let text = format!(
            "History: {} rows, last update {}, last loss {}",
            self.len(),
            last.map_or(0, |r| r.update),
            self.losses().last().map_or("-".into(), |l| format!("{l:.5}"))
        );
        show(&text, plot::history(self));
    }
}

impl RateRnn {
    /// A summary and the recurrent weight heatmap.
    pub fn evcxr_display(&self) {
        let c = &self.config;
        let text = format!(
            "RateRnn: {} in, {} recurrent, {} out; {} ; dt {} ms; Dale ratio {:?}; rec_noise {}",
            c.n_in, c.n_rec, c.n_out, c.transfer, c.dt, c.dale_ratio, c.rec_noise
        );
        let masked = [
            &self.constraints.input_connectivity,
            &self.constraints.rec_connectivity,
            &self.constraints.output_connectivity,
        ]
        .iter()
        .any(|m| m.iter().any(|&v| v == 0.0));
        let mut figures = vec![plot::weights(self)];
        if masked {
            figures.push(plot::connectivity(self));
        }
        show_all(&text, figures);
    }
}

impl GatedRnn {
    /// A summary of its sizes.
    pub fn evcxr_display(&self) {
        let c = &self.config;
        let text = format!(
            "GatedRnn ({:?}): {} in, {} recurrent, {} out; dt {} ms",
            c.cell, c.n_in, c.n_rec, c.n_out, c.dt
        );
        println!("EVCXR_BEGIN_CONTENT text/plain\n{text}\nEVCXR_END_CONTENT");
    }
}

impl Simulation {
    /// Its shapes and the states of the first (up to) five units in trial 0.
    pub fn evcxr_display(&self) {
        let (b, t, n) = self.states.dim();
        let text = format!(
            "Simulation: {b} trials × {t} steps of {} ms; outputs [{b}, {t}, {}], states [{b}, {t}, {n}]",
            self.dt,
            self.outputs.dim().2
        );
        let units: Vec<usize> = (0..n.min(5)).collect();
        show(&text, plot::states(self, 0, &units));
    }
}

impl TrainReport {
    /// Updates, time and why training stopped, as a table.
    pub fn evcxr_display(&self) {
        let stop = match &self.stop {
            StopReason::IterationsDone => "all updates done".to_string(),
            StopReason::PerformanceReached { accuracy } => format!("performance {accuracy:.4} reached the cutoff"),
            StopReason::CurriculumDone => "curriculum finished".to_string(),
        };
        let per = if self.updates > 0 {
            format!("{:.1}", 1e3 * self.seconds / self.updates as f64)
        } else {
            "-".into()
        };
        let rows = [
            ("updates", self.updates.to_string()),
            ("seconds", format!("{:.2}", self.seconds)),
            ("ms per update", per),
            ("stopped", stop),
        ];
        let text: Vec<String> = rows.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let html: String = rows
            .iter()
            .map(|(k, v)| format!("<tr><th>{k}</th><td>{}</td></tr>", escape(v)))
            .collect();
        println!(
            "EVCXR_BEGIN_CONTENT text/plain\nTrainReport: {}\nEVCXR_END_CONTENT",
            text.join("; ")
        );
        println!("EVCXR_BEGIN_CONTENT text/html\n<table>{html}</table>\nEVCXR_END_CONTENT");
    }
}

impl Report {
    /// Timings and every figure of the report.
    pub fn evcxr_display(&self) {
        let timings: Vec<String> = self.timings.iter().map(|(k, s)| format!("{k} {s:.2} s")).collect();
        let text = format!(
            "Report: {} trials, {} lesions; figures {}; took {}",
            self.trials.height(),
            self.lesions.height(),
            self.figures
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            timings.join(", ")
        );
        show_all(&text, self.figures.iter().map(|(_, f)| Ok(f.clone())));
    }
}

impl Psychometric {
    /// The curve with its fits.
    pub fn evcxr_display(&self) {
        let f = &self.logistic;
        let text = format!(
            "Psychometric: {} levels, {} trials; logistic bias {:.4} ± {:.4}, slope {:.3} ± {:.3}, lapses {:.3}/{:.3}",
            self.levels.len(),
            self.evidence.len(),
            f.bias,
            f.std_errors[0],
            f.slope,
            f.std_errors[1],
            f.lapse_low,
            f.lapse_high
        );
        show(&text, plot::psychometric(self));
    }
}

impl FixedPoints {
    /// Counts by stability and the eigenvalue spectra.
    pub fn evcxr_display(&self) {
        let (s, d, u) = self.counts();
        let text = format!(
            "FixedPoints: {} fixed points (q < {:e}: {s} stable, {d} saddle, {u} unstable) and {} slow points, \
             from {} starts; input {:?}",
            s + d + u,
            self.tol_q,
            self.points.len() - (s + d + u),
            self.n_inits,
            self.input
        );
        let fixed: Vec<_> = self.fixed().cloned().collect();
        show(&text, plot::spectra(&fixed));
    }
}

impl Pca {
    /// Explained variance per component.
    pub fn evcxr_display(&self) {
        let ratio = self.explained_variance_ratio();
        let text = format!(
            "Pca: {} components of {} features; explained variance {:?}; participation ratio {:.2}",
            self.n_components(),
            self.mean.len(),
            ratio.iter().map(|r| (r * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
            self.participation_ratio()
        );
        show(&text, plot::explained_variance(self));
    }
}

/// A polars table shown as HTML (at most `max_rows` rows) in a notebook.
pub struct Table<'a> {
    /// The table.
    pub frame: &'a DataFrame,
    /// Rows shown.
    pub max_rows: usize,
}

/// Wraps `frame` for display (20 rows).
pub fn table(frame: &DataFrame) -> Table<'_> {
    Table { frame, max_rows: 20 }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Table<'_> {
    /// The HTML of the first `max_rows` rows.
    pub fn html(&self) -> String {
        let f = self.frame;
        let mut html = String::from("<table><thead><tr>");
        for c in f.columns() {
            html += &format!("<th>{}</th>", escape(c.name()));
        }
        html += "</tr></thead><tbody>";
        for row in 0..f.height().min(self.max_rows) {
            html += "<tr>";
            for c in f.columns() {
                let v = c.get(row).map(|v| v.to_string()).unwrap_or_default();
                html += &format!("<td>{}</td>", escape(&v));
            }
            html += "</tr>";
        }
        html += "</tbody></table>";
        if f.height() > self.max_rows {
            html += &format!("<p>{} of {} rows</p>", self.max_rows, f.height());
        }
        html
    }

    /// Shows the table.
    pub fn evcxr_display(&self) {
        println!("EVCXR_BEGIN_CONTENT text/plain\n{}\nEVCXR_END_CONTENT", self.frame);
        println!("EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT", self.html());
    }
}
