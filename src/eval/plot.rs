//! The report's plots, as PNG and SVG (paper Fig. 2/4 and Fig. 3/5):
//!
//! * `roc.png` / `roc.svg`: one ROC curve per P, AUC in the legend, the chance diagonal.
//! * `score.png` / `score.svg`: the anomaly score of each window over time (UTC), on a log
//!   axis, as a step line (each window's score spans the window); the threshold as a dashed
//!   line; alerts (score > threshold) as red dots; the labelled attack spans shaded, one
//!   colour per attack name.
//!
//! Text is drawn with DejaVu Sans, embedded from `src/eval/fonts/` (see the licence there),
//! so no system font or fontconfig is needed.
//!
//! On the log axis, scores ≤ 0 are drawn on the axis floor (one decade under the smallest
//! positive score), `+inf` on the ceiling; windows with no score or a NaN score are gaps.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::labels::AttackSpan;
use super::metrics::{Evaluation, WindowEval};
use super::report::fmt_g;
use super::EvalError;

static FONT_BYTES: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
const FONT: &str = "sans-serif";

const ROC_SIZE: (u32, u32) = (900, 820);
const SCORE_SIZE: (u32, u32) = (1500, 700);

/// Line colours for the P values (colour-blind friendly, Okabe–Ito).
const P_COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];
/// Shading colours for attack names.
const ATTACK_COLOURS: [RGBColor; 6] = [
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(240, 228, 66),
    RGBColor(150, 150, 150),
];
const SCORE_COLOUR: RGBColor = RGBColor(0, 90, 160);
const ALERT_COLOUR: RGBColor = RGBColor(200, 0, 0);

/// Registers the embedded font with plotters once.
fn ensure_font() -> Result<(), String> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("the embedded font DejaVuSans.ttf could not be loaded".to_string())
    }
}

/// Draws `roc.png` and `roc.svg` into `dir`; returns their paths.
pub fn write_roc_plots(dir: &Path, eval: &Evaluation) -> Result<[PathBuf; 2], EvalError> {
    let png = dir.join("roc.png");
    let svg = dir.join("roc.svg");
    render(&png, |p| {
        draw_roc(BitMapBackend::new(p, ROC_SIZE).into_drawing_area(), eval)
    })?;
    render(&svg, |p| {
        draw_roc(SVGBackend::new(p, ROC_SIZE).into_drawing_area(), eval)
    })?;
    Ok([png, svg])
}

/// Draws `score.png` and `score.svg` into `dir`; returns their paths. `spans` are the
/// labelled attack spans (their `label` indexes `eval.label_names`).
pub fn write_score_plots(
    dir: &Path,
    windows: &[WindowEval],
    eval: &Evaluation,
    spans: &[AttackSpan],
    incidents: &[(f64, f64)],
) -> Result<[PathBuf; 2], EvalError> {
    let png = dir.join("score.png");
    let svg = dir.join("score.svg");
    let data = ScoreData::new(windows, eval.threshold);
    render(&png, |p| {
        draw_score(
            BitMapBackend::new(p, SCORE_SIZE).into_drawing_area(),
            &data,
            eval,
            spans,
            incidents,
        )
    })?;
    render(&svg, |p| {
        draw_score(
            SVGBackend::new(p, SCORE_SIZE).into_drawing_area(),
            &data,
            eval,
            spans,
            incidents,
        )
    })?;
    Ok([png, svg])
}

fn render(path: &Path, draw: impl FnOnce(&Path) -> Result<(), String>) -> Result<(), EvalError> {
    let err = |message: String| EvalError::Plot {
        path: path.to_path_buf(),
        message,
    };
    ensure_font().map_err(err)?;
    // Drawing code of a plotting library is not ours to trust with odd data: a panic in it
    // becomes an error, not a crash of the caller.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| draw(path))) {
        Ok(r) => r.map_err(err),
        Err(_) => Err(err("the plotting library panicked".to_string())),
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw_roc<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    eval: &Evaluation,
) -> Result<(), String> {
    draw_roc_inner(&root, eval).map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn draw_roc_inner<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    eval: &Evaluation,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let root = root.titled(
        "ROC curves: a window is anomalous when it holds ≥ P attack packets",
        (FONT, 22).into_font(),
    )?;
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("false positive rate")
        .y_desc("true positive rate")
        .x_labels(11)
        .y_labels(11)
        .x_label_formatter(&|v| format!("{v:.1}"))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;
    let grey = RGBColor(120, 120, 120);
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            8,
            6,
            grey.stroke_width(1),
        ))?
        .label("chance (AUC 0.5)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], grey.stroke_width(1)));
    for (k, pe) in eval.by_p.iter().enumerate() {
        let colour = P_COLOURS[k % P_COLOURS.len()];
        let width = 3;
        let label = match pe.auc {
            Some(a) => format!(
                "P = {}: AUC {:.4}  ({} anomalous / {} normal windows)",
                pe.p, a, pe.positive_windows, pe.negative_windows
            ),
            None => format!(
                "P = {}: AUC undefined, {}",
                pe.p,
                pe.auc_undefined_reason.as_deref().unwrap_or("")
            ),
        };
        chart
            .draw_series(LineSeries::new(
                pe.roc.iter().map(|r| (r.fpr, r.tpr)),
                colour.stroke_width(width),
            ))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(width))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.5))
        .margin(12)
        .draw()?;
    Ok(())
}

/// What the score plot needs, computed once for both backends.
struct ScoreData {
    /// The x axis is in units of `unit` seconds since `origin` (Unix seconds), both whole
    /// so that the ticks fall on round times: seconds, minutes, hours or days.
    origin: f64,
    unit: f64,
    /// Time range, in axis units.
    x: Range<f64>,
    /// Log y range.
    y: Range<f64>,
    /// Runs of consecutive scored windows: (start s, end s, y).
    runs: Vec<Vec<(f64, f64, f64)>>,
    /// Alert markers (window midpoint, y).
    alerts: Vec<(f64, f64)>,
    /// Where the threshold line is drawn.
    threshold_y: f64,
    /// Any score ≤ 0 (drawn on the floor)?
    clamped_low: bool,
    scored: usize,
}

impl ScoreData {
    fn new(windows: &[WindowEval], threshold: f64) -> Self {
        const NS: f64 = 1e9;
        let t0 = windows.iter().map(|w| w.start_ns).min();
        let t1 = windows.iter().map(|w| w.end_ns.max(w.start_ns)).max();
        let (t0, t1) = match (t0, t1) {
            (Some(a), Some(b)) => (a as f64 / NS, b as f64 / NS),
            _ => (0.0, 1.0),
        };
        let (t0, t1) = if t1 > t0 {
            (t0, t1)
        } else {
            (t0 - 0.5, t0 + 0.5)
        };
        let unit = match t1 - t0 {
            s if s <= 300.0 => 1.0,
            s if s <= 5.0 * 3600.0 => 60.0,
            s if s <= 5.0 * 86_400.0 => 3600.0,
            _ => 86_400.0,
        };
        let origin = (t0 / unit).floor() * unit;
        let ax = move |t: f64| (t - origin) / unit;
        let x = ax(t0)..ax(t1);

        let finite_pos = || {
            windows
                .iter()
                .filter_map(|w| w.score)
                .chain(std::iter::once(threshold))
                .filter(|s| s.is_finite() && *s > 0.0)
        };
        let min = finite_pos().fold(f64::INFINITY, f64::min);
        let max = finite_pos().fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if min.is_finite() {
            // Whole decades, with the floor one decade under the smallest positive value
            // so that the zero scores drawn on it stand apart.
            let lo = 10f64.powf(min.log10().floor() - 1.0);
            let mut hi = 10f64.powf(max.log10().ceil());
            if hi <= max {
                hi *= 10.0;
            }
            (lo.max(f64::MIN_POSITIVE), hi.min(f64::MAX))
        } else {
            (1e-3, 1.0)
        };
        let place = |s: f64| {
            if s.is_nan() || s <= lo {
                lo
            } else if s >= hi {
                hi
            } else {
                s
            }
        };

        let mut runs: Vec<Vec<(f64, f64, f64)>> = Vec::new();
        let mut alerts = Vec::new();
        let mut clamped_low = false;
        let mut scored = 0;
        let mut prev_end: Option<i64> = None;
        for w in windows {
            let s = match w.score {
                Some(s) if !s.is_nan() => s,
                _ => {
                    prev_end = None;
                    continue;
                }
            };
            scored += 1;
            clamped_low |= s <= 0.0;
            let (a, b) = (
                ax(w.start_ns as f64 / NS),
                ax(w.end_ns.max(w.start_ns) as f64 / NS),
            );
            let y = place(s);
            if prev_end != Some(w.start_ns) || runs.is_empty() {
                runs.push(Vec::new());
            }
            if let Some(run) = runs.last_mut() {
                run.push((a, b, y));
            }
            prev_end = Some(w.end_ns);
            if s > threshold {
                alerts.push(((a + b) / 2.0, y));
            }
        }
        ScoreData {
            origin,
            unit,
            x,
            y: lo..hi,
            runs,
            alerts,
            threshold_y: place(threshold),
            clamped_low,
            scored,
        }
    }
}

fn draw_score<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    data: &ScoreData,
    eval: &Evaluation,
    spans: &[AttackSpan],
    incidents: &[(f64, f64)],
) -> Result<(), String> {
    draw_score_inner(&root, data, eval, spans, incidents).map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn draw_score_inner<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &ScoreData,
    eval: &Evaluation,
    spans: &[AttackSpan],
    incidents: &[(f64, f64)],
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let title = if data.scored == 0 {
        "Anomaly score per window (no window has a score)".to_string()
    } else {
        format!(
            "Anomaly score per window: {} window{} scored, {} alert{} (score > threshold)",
            data.scored,
            if data.scored == 1 { "" } else { "s" },
            data.alerts.len(),
            if data.alerts.len() == 1 { "" } else { "s" }
        )
    };
    let root = root.titled(&title, (FONT, 22).into_font())?;
    let (x0, x1) = (data.x.start, data.x.end);
    let (origin, unit) = (data.origin, data.unit);
    let to_t = move |x: f64| origin + x * unit;
    let to_x = move |t: f64| (t - origin) / unit;
    let span_s = (x1 - x0) * unit;
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .margin_right(40)
        .x_label_area_size(60)
        .y_label_area_size(90)
        .build_cartesian_2d(data.x.clone(), data.y.clone().log_scale())?;
    let x_desc = format!("time (UTC), {} to {}", utc(to_t(x0), 0), utc(to_t(x1), 0));
    let y_desc = if data.clamped_low {
        "anomaly score (log scale; scores ≤ 0 drawn at the bottom)"
    } else {
        "anomaly score (log scale)"
    };
    let x_fmt = move |v: &f64| time_label(to_t(*v), span_s);
    let y_fmt = |v: &f64| fmt_g(*v);
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(10)
        .y_labels(12)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.1))
        .draw()?;

    // Attack spans first, so that everything else is drawn over them. A span narrower than
    // 1/400 of the plot is widened to that, so that it stays visible.
    let min_w = (x1 - x0) / 400.0;
    let (ylo, yhi) = (data.y.start, data.y.end);
    for (l, name) in eval.label_names.iter().enumerate() {
        let colour = ATTACK_COLOURS[l % ATTACK_COLOURS.len()];
        let rects: Vec<_> = spans
            .iter()
            .filter(|s| s.label == l)
            .filter_map(|s| {
                let a = to_x(s.start_ns as f64 / 1e9).max(x0);
                let b = to_x(s.end_ns as f64 / 1e9).min(x1);
                if a > b {
                    return None;
                }
                let (a, b) = if b - a < min_w {
                    let m = (a + b) / 2.0;
                    ((m - min_w / 2.0).max(x0), (m + min_w / 2.0).min(x1))
                } else {
                    (a, b)
                };
                Some(Rectangle::new(
                    [(a, ylo), (b, yhi)],
                    colour.mix(0.3).filled(),
                ))
            })
            .collect();
        if rects.is_empty() {
            continue;
        }
        chart
            .draw_series(rects)?
            .label(format!("attack: {name}"))
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 6), (x + 24, y + 6)], colour.mix(0.3).filled())
            });
    }

    // Incidents: a bar along the top of the plot from each one's start to its end.
    if !incidents.is_empty() {
        let band_lo = (ylo.ln() + 0.94 * (yhi.ln() - ylo.ln())).exp();
        let purple = RGBColor(110, 40, 160);
        let bars: Vec<_> = incidents
            .iter()
            .filter_map(|&(a, b)| {
                let (a, b) = (to_x(a).max(x0), to_x(b).min(x1));
                if a > b {
                    return None;
                }
                let b = b.max(a + min_w);
                Some(Rectangle::new([(a, band_lo), (b, yhi)], purple.filled()))
            })
            .collect();
        chart
            .draw_series(bars)?
            .label(format!("incident ({})", incidents.len()))
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 24, y + 6)], purple.filled()));
    }

    let line = SCORE_COLOUR.stroke_width(1);
    let mut first = true;
    for run in &data.runs {
        let pts: Vec<(f64, f64)> = run.iter().flat_map(|&(a, b, y)| [(a, y), (b, y)]).collect();
        let series = chart.draw_series(std::iter::once(PathElement::new(pts, line)))?;
        if first {
            series.label("anomaly score").legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], SCORE_COLOUR.stroke_width(2))
            });
            first = false;
        }
    }

    let orange = RGBColor(230, 120, 0);
    chart
        .draw_series(DashedLineSeries::new(
            [(x0, data.threshold_y), (x1, data.threshold_y)],
            10,
            6,
            orange.stroke_width(2),
        ))?
        .label(format!("threshold = {}", fmt_g(eval.threshold)))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], orange.stroke_width(2)));

    if !data.alerts.is_empty() {
        chart
            .draw_series(
                data.alerts
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, ALERT_COLOUR.filled())),
            )?
            .label("alert (score > threshold)")
            .legend(|(x, y)| Circle::new((x + 12, y), 4, ALERT_COLOUR.filled()));
    }

    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .margin(10)
        .draw()?;
    Ok(())
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC), with `decimals` decimals of seconds.
fn utc(t: f64, decimals: usize) -> String {
    if !t.is_finite() {
        return format!("{t}");
    }
    let scale = 10f64.powi(decimals as i32);
    let total = (t * scale).round();
    let secs = (total / scale).floor();
    let frac = total - secs * scale;
    let secs = secs as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if decimals > 0 {
        s.push_str(&format!(".{:0w$}", frac as u64, w = decimals));
    }
    s
}

/// An x tick label, as precise as the plotted span needs.
fn time_label(t: f64, span_s: f64) -> String {
    let full = utc(t, if span_s < 20.0 { 2 } else { 0 });
    let (date, time) = full.split_once(' ').unwrap_or(("", &full));
    if span_s > 2.0 * 86_400.0 {
        // MM-DD HH:MM
        format!(
            "{} {}",
            date.get(5..).unwrap_or(date),
            time.get(..5).unwrap_or(time)
        )
    } else if span_s > 2.0 * 3600.0 {
        time.get(..5).unwrap_or(time).to_string()
    } else {
        time.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::super::metrics::{evaluate, EvalConfig};
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(utc(0.0, 0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_577_836_800.0, 0), "2020-01-01 00:00:00");
        assert_eq!(utc(951_782_400.0 + 86_399.0, 0), "2000-02-29 23:59:59");
        assert_eq!(utc(1_577_836_800.25, 2), "2020-01-01 00:00:00.25");
        assert_eq!(utc(-1.0, 0), "1969-12-31 23:59:59");
        assert_eq!(time_label(1_577_836_800.0 + 3723.0, 600.0), "01:02:03");
        assert_eq!(time_label(1_577_836_800.0 + 3723.0, 86_400.0), "01:02");
        assert_eq!(
            time_label(1_577_836_800.0 + 3723.0, 864_000.0),
            "01-01 01:02"
        );
        assert_eq!(time_label(1_577_836_800.5, 5.0), "00:00:00.50");
    }

    #[test]
    fn score_data_log_range_and_clamping() {
        let w = |k: i64, score: Option<f64>| WindowEval {
            alerted: None,
            start_ns: k * 1_000_000_000,
            end_ns: (k + 1) * 1_000_000_000,
            score,
            attack_packets: 0,
            per_label: vec![],
        };
        let ws = vec![
            w(0, None),
            w(1, Some(0.0)),
            w(2, Some(0.05)),
            w(3, Some(30.0)),
            w(5, Some(f64::INFINITY)),
        ];
        let d = ScoreData::new(&ws, 2.0);
        assert_eq!(d.y, 0.001..100.0);
        assert!(d.clamped_low);
        assert_eq!(d.scored, 4);
        assert_eq!(d.runs.len(), 2, "window 4 is missing: two runs");
        assert_eq!(d.runs[0][0].2, 0.001, "zero on the floor");
        assert_eq!(d.runs[1][0].2, 100.0, "inf on the ceiling");
        assert_eq!(d.alerts.len(), 2);
        assert_eq!(d.threshold_y, 2.0);
        assert_eq!((d.origin, d.unit, d.x), (0.0, 1.0, 0.0..6.0));
        // Ten minutes starting at 12:00:30 on 2020-01-01: a minute axis from 12:00.
        let t0 = 1_577_880_030i64;
        let ws: Vec<_> = (0..600).map(|k| w(t0 + k, Some(1.0))).collect();
        let d = ScoreData::new(&ws, 2.0);
        assert_eq!((d.origin, d.unit), (1_577_880_000.0, 60.0));
        assert_eq!(d.x, 0.5..10.5);
        // No positive score at all, and no windows at all.
        let d = ScoreData::new(&[w(0, Some(0.0))], 0.0);
        assert_eq!(d.y, 0.001..1.0);
        let d = ScoreData::new(&[], 1.0);
        assert_eq!(d.runs.len(), 0);
        assert!(d.x.end > d.x.start);
    }

    #[test]
    fn degenerate_inputs_still_plot() {
        let dir = tempfile::tempdir().unwrap();
        let e = evaluate(&[], &[], &EvalConfig::new(0.5)).unwrap();
        write_roc_plots(dir.path(), &e).unwrap();
        write_score_plots(dir.path(), &[], &e, &[], &[]).unwrap();
        let one = [WindowEval {
            alerted: None,
            start_ns: 5,
            end_ns: 5,
            score: Some(-3.0),
            attack_packets: 1,
            per_label: vec![1],
        }];
        let names = vec!["a".to_string()];
        let e = evaluate(&one, &names, &EvalConfig::new(0.0)).unwrap();
        let span = AttackSpan {
            label: 0,
            start_ns: 0,
            end_ns: 0,
            src: "*".into(),
            dst: "*".into(),
            line: 2,
        };
        write_roc_plots(dir.path(), &e).unwrap();
        write_score_plots(dir.path(), &one, &e, &[span], &[(0.0, 1.0)]).unwrap();
        for f in ["roc.png", "roc.svg", "score.png", "score.svg"] {
            assert!(
                std::fs::metadata(dir.path().join(f)).unwrap().len() > 500,
                "{f}"
            );
        }
    }
}
