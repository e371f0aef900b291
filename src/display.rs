//! How psychrnn's values show themselves in an evcxr notebook: a `text/plain` summary plus a
//! figure (`image/svg+xml`), so exported notebooks and GitHub's viewer show them too.

use polars::prelude::DataFrame;

use crate::analysis::{FixedPoints, Pca, Psychometric};
use crate::model::RateRnn;
use crate::plot::{self, Figure};
use crate::task::TrialBatch;
use crate::train::History;

/// Prints an evcxr display bundle: `text` and, when it could be drawn, `figure`.
fn show(text: &str, figure: crate::Result<Figure>) {
    match figure {
        Ok(f) => {
            println!("EVCXR_BEGIN_CONTENT text/plain\n{text}\nEVCXR_END_CONTENT");
            f.evcxr_display();
        }
        Err(e) => println!("EVCXR_BEGIN_CONTENT text/plain\n{text}\n(no figure: {e})\nEVCXR_END_CONTENT"),
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
        show(&text, plot::weights(self));
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
    /// Explained variance per component as text.
    pub fn evcxr_display(&self) {
        let ratio = self.explained_variance_ratio();
        let text = format!(
            "Pca: {} components of {} features; explained variance {:?}; participation ratio {:.2}",
            self.n_components(),
            self.mean.len(),
            ratio.iter().map(|r| (r * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
            self.participation_ratio()
        );
        println!("EVCXR_BEGIN_CONTENT text/plain\n{text}\nEVCXR_END_CONTENT");
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
