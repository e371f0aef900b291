//! Figures as SVG strings (plotters), in the Okabe–Ito colour-blind-safe palette, with labelled
//! axes and units. [`Figure`] shows itself in evcxr notebooks and saves to a file.
//!
//! ```
//! use psychrnn::plot;
//! use psychrnn::prelude::*;
//! let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig { n_batch: 4, ..Default::default() })?;
//! let batch = task.batch(&mut TrialRng::seeded(0));
//! let figure = plot::trials(&batch, &[0, 1])?;
//! assert!(figure.svg.contains("time (ms)"));
//! # Ok::<(), psychrnn::Error>(())
//! ```

use std::path::Path;

use ndarray::{Array2, Axis};
use plotters::coord::Shift;
use plotters::coord::combinators::LogCoord;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::analysis::{FixedPoint, FixedPoints, Pca, Psychometric, Stability};
use crate::error::{Error, Result};
use crate::io::refuse_overwrite;
use crate::model::RateRnn;
use crate::simulate::Simulation;
use crate::task::TrialBatch;
use crate::train::History;

/// Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(230, 159, 0),   // orange
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(240, 228, 66),  // yellow
    RGBColor(0, 0, 0),       // black
];

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// An SVG figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// The SVG document.
    pub svg: String,
    /// Width and height (px).
    pub size: (u32, u32),
}

impl Figure {
    /// Writes the SVG to `path`; refuses to replace an existing file unless `overwrite`.
    pub fn save_svg(&self, path: impl AsRef<Path>, overwrite: bool) -> Result<()> {
        let path = path.as_ref();
        refuse_overwrite(path, overwrite)?;
        std::fs::write(path, &self.svg).map_err(|e| Error::io(path, e))
    }

    /// The figure as PNG bytes, `scale` pixels per SVG pixel (2 for print). Text is drawn with a
    /// sans-serif system font; errors when the build lacks the `png` feature or the system has no
    /// fonts.
    pub fn png(&self, scale: f32) -> Result<Vec<u8>> {
        if !(scale.is_finite() && scale > 0.0 && scale <= 16.0) {
            return Err(Error::range("scale", scale, "in (0, 16]"));
        }
        png::render(&self.svg, scale)
    }

    /// Writes the figure as PNG at twice its size; refuses to replace an existing file unless
    /// `overwrite`.
    pub fn save_png(&self, path: impl AsRef<Path>, overwrite: bool) -> Result<()> {
        let path = path.as_ref();
        refuse_overwrite(path, overwrite)?;
        let bytes = self.png(2.0)?;
        std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
    }

    /// Shows the figure in an evcxr notebook.
    pub fn evcxr_display(&self) {
        println!("EVCXR_BEGIN_CONTENT image/svg+xml\n{}\nEVCXR_END_CONTENT", self.svg);
    }
}

#[cfg(feature = "png")]
mod png {
    use std::sync::{Arc, OnceLock};

    use resvg::{tiny_skia, usvg};

    use crate::error::{Error, Result};

    /// System fonts, loaded once; `sans-serif` maps to a sans face that is present.
    fn fonts() -> Result<Arc<usvg::fontdb::Database>> {
        static FONTS: OnceLock<Option<Arc<usvg::fontdb::Database>>> = OnceLock::new();
        FONTS
            .get_or_init(|| {
                let mut db = usvg::fontdb::Database::new();
                db.load_system_fonts();
                let families: Vec<String> = db
                    .faces()
                    .flat_map(|f| f.families.iter().map(|(name, _)| name.clone()))
                    .collect();
                let pick = ["Arial", "DejaVu Sans", "Liberation Sans", "Noto Sans"]
                    .iter()
                    .map(|s| s.to_string())
                    .find(|want| families.contains(want))
                    .or_else(|| families.iter().find(|f| f.contains("Sans")).cloned())
                    .or_else(|| families.first().cloned())?;
                db.set_sans_serif_family(pick);
                Some(Arc::new(db))
            })
            .clone()
            .ok_or_else(|| Error::invalid("png", "no system fonts found to draw the figure's text"))
    }

    pub(super) fn render(svg: &str, scale: f32) -> Result<Vec<u8>> {
        let options = usvg::Options {
            fontdb: fonts()?,
            ..Default::default()
        };
        let tree = usvg::Tree::from_str(svg, &options).map_err(|e| Error::invalid("png", e.to_string()))?;
        let size = tree.size();
        let (w, h) = (
            (size.width() * scale).ceil() as u32,
            (size.height() * scale).ceil() as u32,
        );
        let mut pixmap =
            tiny_skia::Pixmap::new(w.max(1), h.max(1)).ok_or_else(|| Error::invalid("png", "image too large"))?;
        pixmap.fill(tiny_skia::Color::WHITE);
        resvg::render(
            &tree,
            tiny_skia::Transform::from_scale(scale, scale),
            &mut pixmap.as_mut(),
        );
        pixmap.encode_png().map_err(|e| Error::invalid("png", e.to_string()))
    }
}

#[cfg(not(feature = "png"))]
mod png {
    use crate::error::{Error, Result};

    pub(super) fn render(_svg: &str, _scale: f32) -> Result<Vec<u8>> {
        Err(Error::invalid(
            "png",
            "psychrnn was built without the `png` feature; save the SVG instead",
        ))
    }
}

fn draw_error(e: impl std::fmt::Display) -> Error {
    Error::invalid("figure", e.to_string())
}

/// Draws the series labels of `chart` in a framed box.
fn legend<'a, 'b: 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_error)
}

/// Renders `draw` onto a `w × h` SVG.
fn render(w: u32, h: u32, draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>) -> Result<Figure> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        draw(&root)?;
        root.present().map_err(draw_error)?;
    }
    Ok(Figure { svg, size: (w, h) })
}

/// `(min, max)` of finite values, padded; `(0, 1)` when there are none.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
    (lo - pad, hi + pad)
}

/// A chart against time (ms, `0..t_end`) on `area`, with `caption` and `y_desc`.
fn time_chart<'a, 'b: 'a>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: String,
    t_end: f64,
    range: (f64, f64),
    y_desc: &str,
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..t_end, range.0..range.1)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_labels(5)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("time (ms)")
        .y_desc(y_desc)
        .disable_mesh()
        .draw()
        .map_err(draw_error)?;
    Ok(chart)
}

/// Trials side by side: inputs (solid), targets (dashed) and the loss mask (grey where the loss
/// ignores the output), against time (ms). At most 6 trials.
pub fn trials<P>(batch: &TrialBatch<P>, which: &[usize]) -> Result<Figure> {
    let (b, t, n_in) = batch.x.dim();
    let n_out = batch.y.dim().2;
    if which.is_empty() || which.len() > 6 {
        return Err(Error::range("trials to plot", which.len(), "1 to 6"));
    }
    if let Some(&i) = which.iter().find(|&&i| i >= b) {
        return Err(Error::range("trial", i, format!("< {b} (trials in the batch)")));
    }
    let dt = batch.dt;
    let y_range = bounds(which.iter().flat_map(|&i| {
        batch
            .x
            .index_axis(Axis(0), i)
            .iter()
            .chain(batch.y.index_axis(Axis(0), i))
            .map(|&v| v as f64)
            .collect::<Vec<_>>()
    }));
    render(320 * which.len() as u32, 300, |root| {
        for (panel, &i) in root.split_evenly((1, which.len())).iter().zip(which) {
            let mut chart = time_chart(panel, format!("trial {i}"), t as f64 * dt, y_range, "input / target")?;
            // Shade the steps whose mask is zero on every output.
            let unmasked = |k: usize| (0..n_out).all(|c| batch.mask[[i, k, c]] == 0.0);
            let mut k = 0;
            while k < t {
                if unmasked(k) {
                    let start = k;
                    while k < t && unmasked(k) {
                        k += 1;
                    }
                    chart
                        .draw_series([Rectangle::new(
                            [(start as f64 * dt, y_range.0), (k as f64 * dt, y_range.1)],
                            RGBColor(0, 0, 0).mix(0.08).filled(),
                        )])
                        .map_err(draw_error)?;
                } else {
                    k += 1;
                }
            }
            for c in 0..n_in {
                let pts = (0..t).map(|k| (k as f64 * dt, batch.x[[i, k, c]] as f64));
                chart
                    .draw_series(LineSeries::new(pts, colour(c).stroke_width(1)))
                    .map_err(draw_error)?
                    .label(format!("input {c}"))
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colour(c)));
            }
            for c in 0..n_out {
                let pts: Vec<(f64, f64)> = (0..t).map(|k| (k as f64 * dt, batch.y[[i, k, c]] as f64)).collect();
                chart
                    .draw_series(DashedLineSeries::new(pts, 6, 4, colour(n_in + c).stroke_width(2)))
                    .map_err(draw_error)?
                    .label(format!("target {c}"))
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colour(n_in + c).stroke_width(2)));
            }
            legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }
        Ok(())
    })
}

/// `(update, loss)` of the rows with a positive finite loss.
fn loss_curve(history: &History) -> Vec<(f64, f64)> {
    history
        .iter()
        .filter_map(|r| {
            r.loss
                .filter(|l| *l > 0.0 && l.is_finite())
                .map(|l| (r.update as f64, l))
        })
        .collect()
}

/// Updates at which the curriculum stage changes.
fn stage_changes(history: &History) -> Vec<f64> {
    history
        .windows(2)
        .filter(|w| w[0].stage.is_some() && w[1].stage != w[0].stage)
        .map(|w| w[1].update as f64)
        .collect()
}

/// Log-scale loss axes against update (`0..last`, `lo..hi`) on `area`.
fn loss_chart<'a, 'b: 'a>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
    last: f64,
    (lo, hi): (f64, f64),
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, LogCoord<f64>>>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..last, (lo..hi).log_scale())
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("update")
        .y_desc("loss (log)")
        .draw()
        .map_err(draw_error)?;
    Ok(chart)
}

/// Loss (log scale) and accuracy against update, curriculum stage changes marked by vertical lines.
pub fn history(history: &History) -> Result<Figure> {
    let losses = loss_curve(history);
    let accs: Vec<(f64, f64)> = history
        .iter()
        .filter_map(|r| r.accuracy.map(|a| (r.update as f64, a)))
        .collect();
    if losses.is_empty() && accs.is_empty() {
        return Err(Error::Empty {
            what: "training history".into(),
        });
    }
    let last = history.iter().map(|r| r.update).max().unwrap_or(1).max(1) as f64;
    let stages = stage_changes(history);
    render(760, 320, |root| {
        let panels = root.split_evenly((1, 2));
        let (lo, hi) = losses
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(a, b), &(_, l)| (a.min(l), b.max(l)));
        let (lo, hi) = if lo.is_finite() {
            (lo * 0.8, hi * 1.25)
        } else {
            (1e-3, 1.0)
        };
        let mut chart = loss_chart(&panels[0], "loss", last, (lo, hi))?;
        chart
            .draw_series(LineSeries::new(losses.iter().copied(), colour(0).stroke_width(2)))
            .map_err(draw_error)?;
        for &s in &stages {
            chart
                .draw_series(DashedLineSeries::new([(s, lo), (s, hi)], 4, 4, colour(3).into()))
                .map_err(draw_error)?;
        }
        let mut chart = ChartBuilder::on(&panels[1])
            .caption("accuracy", ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..last, 0.0..1.05)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc("update")
            .y_desc("accuracy (fraction correct)")
            .draw()
            .map_err(draw_error)?;
        chart
            .draw_series(accs.iter().map(|&p| Circle::new(p, 3, colour(1).filled())))
            .map_err(draw_error)?;
        for &s in &stages {
            chart
                .draw_series(DashedLineSeries::new([(s, 0.0), (s, 1.05)], 4, 4, colour(3).into()))
                .map_err(draw_error)?;
        }
        Ok(())
    })
}

/// Loss curves of several runs on one log-scale axes, one colour per run, each labelled; a run's
/// curriculum stage changes are marked with short ticks of its colour.
pub fn compare_losses(runs: &[(&str, &History)]) -> Result<Figure> {
    if runs.is_empty() || runs.len() > PALETTE.len() {
        return Err(Error::range(
            "runs to compare",
            runs.len(),
            format!("1 to {}", PALETTE.len()),
        ));
    }
    let curves: Vec<Vec<(f64, f64)>> = runs.iter().map(|(_, h)| loss_curve(h)).collect();
    if let Some(((name, _), _)) = runs.iter().zip(&curves).find(|(_, c)| c.is_empty()) {
        return Err(Error::Empty {
            what: format!("loss history of run {name:?}"),
        });
    }
    let all: Vec<(f64, f64)> = curves.iter().flatten().copied().collect();
    let last = all.iter().map(|p| p.0).fold(1.0, f64::max);
    let lo = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min) * 0.8;
    let hi = all.iter().map(|p| p.1).fold(0.0, f64::max) * 1.25;
    render(560, 340, |root| {
        let mut chart = loss_chart(root, "loss by run", last, (lo, hi))?;
        for (k, ((name, h), curve)) in runs.iter().zip(&curves).enumerate() {
            chart
                .draw_series(LineSeries::new(curve.iter().copied(), colour(k).stroke_width(2)))
                .map_err(draw_error)?
                .label(name.to_string())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colour(k).stroke_width(2)));
            let ticks = stage_changes(h)
                .into_iter()
                .map(|x| PathElement::new([(x, hi / 1.6), (x, hi)], colour(k).stroke_width(2)));
            chart.draw_series(ticks).map_err(draw_error)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

/// Outputs (solid) against targets (dashed) of one trial, `outputs` `[batch, time, n_out]`.
pub fn outputs<P>(batch: &TrialBatch<P>, outputs: &ndarray::Array3<f64>, trial: usize) -> Result<Figure> {
    let (b, t, o) = batch.y.dim();
    if outputs.dim() != (b, t, o) {
        return Err(Error::shape("outputs", &[b, t, o], outputs.shape()));
    }
    if trial >= b {
        return Err(Error::range("trial", trial, format!("< {b}")));
    }
    let dt = batch.dt;
    let range = bounds(
        outputs
            .index_axis(Axis(0), trial)
            .iter()
            .copied()
            .chain(batch.y.index_axis(Axis(0), trial).iter().map(|&v| v as f64)),
    );
    render(480, 320, |root| {
        let mut chart = time_chart(
            root,
            format!("outputs vs targets, trial {trial}"),
            t as f64 * dt,
            range,
            "output",
        )?;
        for c in 0..o {
            chart
                .draw_series(LineSeries::new(
                    (0..t).map(|k| (k as f64 * dt, outputs[[trial, k, c]])),
                    colour(c).stroke_width(2),
                ))
                .map_err(draw_error)?
                .label(format!("output {c}"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colour(c).stroke_width(2)));
            let target: Vec<(f64, f64)> = (0..t).map(|k| (k as f64 * dt, batch.y[[trial, k, c]] as f64)).collect();
            chart
                .draw_series(DashedLineSeries::new(target, 6, 4, colour(c).into()))
                .map_err(draw_error)?
                .label(format!("target {c}"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colour(c)));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

/// Diverging blue–white–vermillion colour of `v / scale` in [−1, 1].
fn diverging(v: f64, scale: f64) -> RGBColor {
    let s = if scale > 0.0 { (v / scale).clamp(-1.0, 1.0) } else { 0.0 };
    let (end, t) = if s < 0.0 { (PALETTE[0], -s) } else { (PALETTE[3], s) };
    let mix = |a: u8| (255.0 + t * (a as f64 - 255.0)).round() as u8;
    RGBColor(mix(end.0), mix(end.1), mix(end.2))
}

/// The effective weights as heatmaps on diverging scales centred at 0 (each matrix its own scale):
/// `W_in` `[n_rec, n_in]`, `W_rec` `[n_rec, n_rec]` (row = to, column = from) and `W_outᵀ`
/// `[n_rec, n_out]`, rows aligned by unit. Under Dale's law lines separate the excitatory units
/// from the inhibitory ones.
pub fn weights(model: &RateRnn) -> Result<Figure> {
    let f = |a: Array2<f32>| a.mapv(f64::from);
    let mats = [
        f(model.effective_w_in()),
        f(model.effective_w_rec()),
        f(model.effective_w_out().reversed_axes()),
    ];
    let titles = ["W_in", "W_rec (effective)", "W_outᵀ"];
    matrices(model, &mats, &titles, |m| {
        let scale = m.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        (
            format!(", |w| ≤ {scale:.3}"),
            Box::new(move |v: f64| diverging(v, scale)) as Shade,
        )
    })
}

/// The connectivity masks (black = connection allowed): input `[n_rec, n_in]`, recurrent
/// `[n_rec, n_rec]` (autapses on the diagonal) and output (transposed, `[n_rec, n_out]`), laid out
/// like [`weights`].
pub fn connectivity(model: &RateRnn) -> Result<Figure> {
    let c = &model.constraints;
    let f = |a: &Array2<f32>| a.mapv(f64::from);
    let mats = [
        f(&c.input_connectivity),
        f(&c.rec_connectivity),
        f(&c.output_connectivity).reversed_axes(),
    ];
    let titles = ["input mask", "recurrent mask", "output maskᵀ"];
    matrices(model, &mats, &titles, |m| {
        let on = m.iter().filter(|&&v| v != 0.0).count();
        (
            format!(", {on}/{} on", m.len()),
            Box::new(|v: f64| if v != 0.0 { RGBColor(40, 40, 40) } else { WHITE }) as Shade,
        )
    })
}

type Shade = Box<dyn Fn(f64) -> RGBColor>;

/// Three unit-aligned heatmaps `[n_rec, n_in]`, `[n_rec, n_rec]`, `[n_rec, n_out]`; `style` gives
/// each matrix a caption suffix and a colour map.
fn matrices(
    model: &RateRnn,
    mats: &[Array2<f64>; 3],
    titles: &[&str; 3],
    style: impl Fn(&Array2<f64>) -> (String, Shade),
) -> Result<Figure> {
    let n = model.n_rec();
    let c = &model.constraints;
    let n_exc = c.dale.then(|| c.dale_rec.iter().filter(|&&d| d > 0.0).count());
    let n_exc = n_exc.filter(|&e| e > 0 && e < n).map(|e| e as f64);
    let side = |m: &Array2<f64>| 110 + 24 * m.ncols().min(8) as u32;
    let (w_in, w_out) = (side(&mats[0]), side(&mats[2]));
    render(w_in + 470 + w_out, 440, |root| {
        let (left, rest) = root.split_horizontally(w_in);
        let (middle, right) = rest.split_horizontally(470);
        let descs = [("input", "to unit"), ("from unit", "to unit"), ("output", "from unit")];
        for (k, area) in [left, middle, right].iter().enumerate() {
            let m = &mats[k];
            let (suffix, shade) = style(m);
            let cols = m.ncols() as f64;
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("{}{suffix}", titles[k]),
                    ("sans-serif", if k == 1 { 15 } else { 12 }),
                )
                .margin(8)
                .x_label_area_size(32)
                .y_label_area_size(40)
                .build_cartesian_2d(0.0..cols, n as f64..0.0)
                .map_err(draw_error)?;
            chart
                .configure_mesh()
                .x_labels(m.ncols().clamp(2, 6))
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| format!("{v:.0}"))
                .x_desc(descs[k].0)
                .y_desc(descs[k].1)
                .disable_mesh()
                .draw()
                .map_err(draw_error)?;
            chart
                .draw_series(m.indexed_iter().map(|((i, j), &v)| {
                    Rectangle::new(
                        [(j as f64, i as f64), (j as f64 + 1.0, i as f64 + 1.0)],
                        shade(v).filled(),
                    )
                }))
                .map_err(draw_error)?;
            if let Some(e) = n_exc {
                let mut lines = vec![PathElement::new([(0.0, e), (cols, e)], PALETTE[2].stroke_width(2))];
                if k == 1 {
                    lines.push(PathElement::new([(e, 0.0), (e, n as f64)], PALETTE[2].stroke_width(2)));
                }
                let series = chart.draw_series(lines).map_err(draw_error)?;
                if k == 1 {
                    series
                        .label("E | I boundary")
                        .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], PALETTE[2].stroke_width(2)));
                    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
                }
            }
        }
        Ok(())
    })
}

/// States (pre-activation `x`) of chosen `units` over one trial of a simulation, against time (ms).
/// At most 8 units.
pub fn states(sim: &Simulation, trial: usize, units: &[usize]) -> Result<Figure> {
    let (b, t, n) = sim.states.dim();
    if trial >= b {
        return Err(Error::range("trial", trial, format!("< {b}")));
    }
    if units.is_empty() || units.len() > PALETTE.len() {
        return Err(Error::range(
            "units to plot",
            units.len(),
            format!("1 to {}", PALETTE.len()),
        ));
    }
    if let Some(&u) = units.iter().find(|&&u| u >= n) {
        return Err(Error::range("unit", u, format!("< {n} (recurrent units)")));
    }
    let dt = sim.dt;
    let trace = |u: usize| (0..t).map(move |k| (k as f64 * dt, sim.states[[trial, k, u]]));
    let range = bounds(units.iter().flat_map(|&u| trace(u).map(|p| p.1)));
    render(520, 320, |root| {
        let mut chart = time_chart(
            root,
            format!("unit states, trial {trial}"),
            t as f64 * dt,
            range,
            "state (rate RNN: x; LSTM/GRU: h)",
        )?;
        for (k, &u) in units.iter().enumerate() {
            chart
                .draw_series(LineSeries::new(trace(u), colour(k).stroke_width(2)))
                .map_err(draw_error)?
                .label(format!("unit {u}"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colour(k).stroke_width(2)));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

/// Explained variance ratio per principal component (bars) and its running sum (line).
pub fn explained_variance(pca: &Pca) -> Result<Figure> {
    let ratio = pca.explained_variance_ratio();
    let k = ratio.len();
    render(420, 300, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "explained variance, participation ratio {:.2}",
                    pca.participation_ratio()
                ),
                ("sans-serif", 15),
            )
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(0.5..k as f64 + 0.5, 0.0..1.05)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_labels(k.min(10))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .x_desc("principal component")
            .y_desc("fraction of variance")
            .disable_x_mesh()
            .draw()
            .map_err(draw_error)?;
        chart
            .draw_series(ratio.iter().enumerate().map(|(i, &r)| {
                let x = i as f64 + 1.0;
                Rectangle::new([(x - 0.35, 0.0), (x + 0.35, r)], colour(0).filled())
            }))
            .map_err(draw_error)?
            .label("per component")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour(0).filled()));
        let cumulative: Vec<(f64, f64)> = ratio
            .iter()
            .scan(0.0, |acc, &r| {
                *acc += r;
                Some(*acc)
            })
            .enumerate()
            .map(|(i, c)| (i as f64 + 1.0, c))
            .collect();
        chart
            .draw_series(LineSeries::new(cumulative, colour(3).stroke_width(2)))
            .map_err(draw_error)?
            .label("cumulative")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], colour(3).stroke_width(2)));
        legend(&mut chart, SeriesLabelPosition::MiddleRight)?;
        Ok(())
    })
}

/// Choice proportions with Wilson 95 % intervals and the fitted logistic and probit curves.
pub fn psychometric(p: &Psychometric) -> Result<Figure> {
    let (x0, x1) = bounds(p.levels.iter().map(|l| l.level));
    render(480, 340, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("psychometric curve", ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(x0..x1, 0.0..1.0)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc("signed evidence")
            .y_desc("P(choice of the evidence channel)")
            .draw()
            .map_err(draw_error)?;
        chart
            .draw_series(
                p.levels
                    .iter()
                    .map(|l| ErrorBar::new_vertical(l.level, l.ci_low, l.p, l.ci_high, BLACK.filled(), 6)),
            )
            .map_err(draw_error)?
            .label("data (95% CI)")
            .legend(|(x, y)| Circle::new((x + 7, y), 3, BLACK.filled()));
        for (k, fit) in [&p.logistic, &p.probit].into_iter().enumerate() {
            let pts = (0..=200).map(|i| {
                let x = x0 + (x1 - x0) * i as f64 / 200.0;
                (x, fit.predict(x))
            });
            chart
                .draw_series(LineSeries::new(pts, colour(k).stroke_width(2)))
                .map_err(draw_error)?
                .label(format!(
                    "{:?}: bias {:.3}, slope {:.2}, lapses {:.3}/{:.3}",
                    fit.link, fit.bias, fit.slope, fit.lapse_low, fit.lapse_high
                ))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colour(k).stroke_width(2)));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    })
}

fn stability_colour(s: Stability) -> RGBColor {
    match s {
        Stability::Stable => PALETTE[0],
        Stability::Saddle => PALETTE[1],
        Stability::Unstable => PALETTE[3],
    }
}

/// Trajectories `(label, [time, ≥2])` in the plane of their first two columns (e.g. PCA
/// projections of condition averages), with fixed points `[k, ≥2]` (projected the same way)
/// coloured by stability, and slow points as small grey dots.
pub fn trajectories(curves: &[(String, Array2<f64>)], fixed: Option<(&Array2<f64>, &FixedPoints)>) -> Result<Figure> {
    if curves.is_empty() {
        return Err(Error::Empty {
            what: "trajectories".into(),
        });
    }
    if let Some((_, c)) = curves.iter().find(|(_, c)| c.ncols() < 2) {
        return Err(Error::range("trajectory columns", c.ncols(), ">= 2"));
    }
    let fx = fixed.map(|(p, _)| p);
    let all = || {
        curves
            .iter()
            .flat_map(|(_, c)| c.rows().into_iter().map(|r| (r[0], r[1])).collect::<Vec<_>>())
            .chain(
                fx.into_iter()
                    .flat_map(|p| p.rows().into_iter().map(|r| (r[0], r[1])).collect::<Vec<_>>()),
            )
    };
    let xr = bounds(all().map(|p| p.0));
    let yr = bounds(all().map(|p| p.1));
    render(520, 440, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("state space", ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc("PC 1")
            .y_desc("PC 2")
            .draw()
            .map_err(draw_error)?;
        for (k, (label, c)) in curves.iter().enumerate() {
            let pts: Vec<(f64, f64)> = c.rows().into_iter().map(|r| (r[0], r[1])).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), colour(k).stroke_width(2)))
                .map_err(draw_error)?
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colour(k).stroke_width(2)));
            if let Some(&end) = pts.last() {
                chart
                    .draw_series([Circle::new(end, 3, colour(k).filled())])
                    .map_err(draw_error)?;
            }
        }
        if let Some((proj, found)) = fixed {
            let at = |keep: &dyn Fn(&FixedPoint) -> bool| -> Vec<(f64, f64)> {
                proj.rows()
                    .into_iter()
                    .zip(&found.points)
                    .filter(|(_, p)| keep(p))
                    .map(|(r, _)| (r[0], r[1]))
                    .collect()
            };
            let slow = at(&|p| p.q >= found.tol_q);
            if !slow.is_empty() {
                let grey = RGBColor(120, 120, 120);
                chart
                    .draw_series(slow.into_iter().map(|p| Circle::new(p, 2, grey.filled())))
                    .map_err(draw_error)?
                    .label(format!("slow point (q ≥ {:e})", found.tol_q))
                    .legend(move |(x, y)| Circle::new((x + 7, y), 2, grey.filled()));
            }
            for s in [Stability::Stable, Stability::Saddle, Stability::Unstable] {
                let pts = at(&|p| p.q < found.tol_q && p.stability == s);
                if pts.is_empty() {
                    continue;
                }
                let c = stability_colour(s);
                chart
                    .draw_series(pts.into_iter().map(|p| Cross::new(p, 7, c.stroke_width(3))))
                    .map_err(draw_error)?
                    .label(format!("{s:?} fixed point").to_lowercase())
                    .legend(move |(x, y)| Cross::new((x + 7, y), 5, c.stroke_width(3)));
            }
        }
        legend(&mut chart, SeriesLabelPosition::LowerLeft)?;
        Ok(())
    })
}

/// Eigenvalues of fixed points' Jacobians in the complex plane against the unit circle (the
/// discrete-time map's stability boundary), one colour per point's stability.
pub fn spectra(points: &[FixedPoint]) -> Result<Figure> {
    if points.is_empty() {
        return Err(Error::Empty {
            what: "fixed points".into(),
        });
    }
    let r = points
        .iter()
        .flat_map(|p| p.eigenvalues.iter().map(|e| e[0].abs().max(e[1].abs())))
        .fold(1.0f64, f64::max)
        * 1.1;
    render(440, 440, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Jacobian eigenvalues", ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(-r..r, -r..r)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc("Re λ")
            .y_desc("Im λ")
            .draw()
            .map_err(draw_error)?;
        let circle = (0..=360).map(|d| {
            let a = (d as f64).to_radians();
            (a.cos(), a.sin())
        });
        chart
            .draw_series(LineSeries::new(circle, BLACK.stroke_width(1)))
            .map_err(draw_error)?
            .label("unit circle")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], BLACK));
        for s in [Stability::Stable, Stability::Saddle, Stability::Unstable] {
            let c = stability_colour(s);
            let eig: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.stability == s)
                .flat_map(|p| p.eigenvalues.iter().map(|e| (e[0], e[1])))
                .collect();
            if eig.is_empty() {
                continue;
            }
            chart
                .draw_series(eig.into_iter().map(|e| Circle::new(e, 3, c.filled())))
                .map_err(draw_error)?
                .label(format!("{s:?} point").to_lowercase())
                .legend(move |(x, y)| Circle::new((x + 7, y), 3, c.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}
