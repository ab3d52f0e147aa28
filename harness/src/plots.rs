//! SVG plots with generic inputs: x–y charts of named series (points with optional error bars,
//! optionally a logarithmic x axis) and accuracy-matrix heatmaps. Nothing here knows about run
//! records; `crate::figures` turns records into these inputs.
//!
//! Drawn with plotters' SVG backend without its `ttf` feature: text is written as `<text>`
//! elements that the viewer sets in its own sans-serif font, and plotters lays labels out from a
//! size estimate, so no font file is read at run time. Axis ticks are chosen here
//! ([`log_ticks`], [`linear_ticks`]); a log axis is drawn as a linear axis over log10(x).

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why a plot could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// No point of any series can be drawn (none finite; none with x > 0 on a log axis).
    #[error("plot '{title}': no point to draw")]
    Empty {
        /// The chart's title.
        title: String,
    },
    /// A matrix whose shape does not match its task list.
    #[error("plot '{title}': {rows} rows for {tasks} tasks; each row needs {tasks} cells")]
    MatrixShape {
        /// The chart's title.
        title: String,
        /// Rows given.
        rows: usize,
        /// Tasks given.
        tasks: usize,
    },
    /// plotters failed to draw.
    #[error("plot '{title}': {message}")]
    Draw {
        /// The chart's title.
        title: String,
        /// plotters' error.
        message: String,
    },
    /// The SVG file could not be written.
    #[error("cannot write plot {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// One point of a series: `y ± err` at `x`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Horizontal position (data units, not logs, also on a log axis).
    pub x: f64,
    /// Vertical position.
    pub y: f64,
    /// Half the error bar's length (e.g. a standard deviation); `None` draws no bar.
    pub err: Option<f64>,
}

/// A named series: one colour and marker, shown in the legend.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// Points in drawing order (a joined series is joined in this order).
    pub points: Vec<Point>,
    /// Join the points with a line (a curve) or leave them apart (a scatter).
    pub joined: bool,
    /// Colour and marker: colour `style % 10` of the palette, marker `style % 4` (circle,
    /// triangle, square, cross). A caller gives a method the same style in every plot.
    pub style: usize,
}

/// The frame of an x–y chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// Title above the chart.
    pub title: String,
    /// x axis label.
    pub x_label: String,
    /// y axis label.
    pub y_label: String,
    /// Logarithmic x axis (ticks at decades, see [`log_ticks`]); points with x ≤ 0 are left out.
    pub log_x: bool,
}

/// A plot to embed in markdown: its title, its path relative to the markdown file and a note
/// on what it leaves out.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// Alt text.
    pub title: String,
    /// Path relative to the markdown file, with `/` separators.
    pub path: String,
    /// A line under the image (e.g. which rows a log axis could not show).
    pub note: Option<String>,
}

impl Figure {
    /// `![title](path)`, and the note in italics on the next line.
    pub fn markdown(&self) -> String {
        let image = format!("![{}]({})", self.title.replace(['[', ']'], ""), self.path.replace(' ', "%20"));
        match &self.note {
            Some(note) => format!("{image}\n_{note}_"),
            None => image,
        }
    }
}

/// The series colours (a ten-colour qualitative palette).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Chart size in pixels, without the legend column.
const WIDTH: u32 = 720;
const HEIGHT: u32 = 440;
/// Legend rows' height and the estimated width of one character of legend text, in pixels.
const LEGEND_ROW: u32 = 20;
const CHAR_WIDTH: u32 = 7;
const FONT: &str = "sans-serif";

/// A linear axis over `range` whose ticks (grid lines and labels) are exactly `ticks`.
struct TickedAxis {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = (value - self.range.start) / (self.range.end - self.range.start);
        limit.0 + ((limit.1 - limit.0) as f64 * t).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// Ticks of a log axis over [lo, hi] (lo > 0): the powers of ten inside it; where fewer than
/// three fall inside, 1, 2 and 5 × each power; where fewer than two still, 1…9 × each power.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    for mantissas in [&[1.0][..], &[1.0, 2.0, 5.0], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]] {
        let ticks: Vec<f64> = (lo.log10().floor() as i32..=hi.log10().ceil() as i32)
            .flat_map(|k| mantissas.iter().map(move |m| power_times(*m, k)))
            .filter(|v| *v >= lo * (1.0 - 1e-12) && *v <= hi * (1.0 + 1e-12))
            .collect();
        let enough = if mantissas.len() == 1 { 3 } else { 2 };
        if ticks.len() >= enough || mantissas.len() == 9 {
            return ticks;
        }
    }
    unreachable!("the last mantissa set always returns")
}

/// `m × 10^k`, exact in decimal where a division is (so 10⁻² prints as 0.01).
fn power_times(m: f64, k: i32) -> f64 {
    if k >= 0 {
        m * 10f64.powi(k)
    } else {
        m / 10f64.powi(-k)
    }
}

/// Ticks of a linear axis over [lo, hi]: the multiples inside it of the smallest step of 1, 2 or
/// 5 × 10^k that gives at most eight.
pub fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (m, k) = linear_step_parts(lo, hi);
    let step = power_times(m, k);
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    // i·m × 10^k rather than i × step, so 3 × 0.1 is 0.3.
    (first..=last).map(|i| power_times(i as f64 * m, k)).collect()
}

/// The smallest step of 1, 2 or 5 × 10^k that puts at most eight ticks in [lo, hi].
fn linear_step(lo: f64, hi: f64) -> f64 {
    let (m, k) = linear_step_parts(lo, hi);
    power_times(m, k)
}

/// [`linear_step`] as (mantissa, exponent).
fn linear_step_parts(lo: f64, hi: f64) -> (f64, i32) {
    let raw = ((hi - lo) / 8.0).max(f64::MIN_POSITIVE);
    let k = raw.log10().floor() as i32;
    let m = [1.0, 2.0, 5.0].into_iter().find(|m| power_times(*m, k) >= raw * 0.999);
    m.map_or((1.0, k + 1), |m| (m, k))
}

/// A log-axis tick as text: `1k`, `20k`, `1M`, `5G`; values below 1000 as plain decimals.
pub fn tick_label(v: f64) -> String {
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    // 12 significant digits, then trailing zeros dropped: 2.0000000001 → 2.
    let text = format!("{:.*}", decimals_for(scaled), scaled);
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text };
    format!("{text}{suffix}")
}

fn decimals_for(v: f64) -> usize {
    if v == 0.0 {
        return 0;
    }
    (11 - v.abs().log10().floor() as i32).clamp(0, 15) as usize
}

/// A linear-axis tick as text, with as many decimals as the step needs.
fn linear_label(v: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{:.*}", decimals, v)
}

/// Padded [lo, hi] around `values` (6 % of the span each side; a single value gets ±`lone`).
fn padded(values: impl Iterator<Item = f64>, lone: f64) -> Option<(f64, f64)> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return None;
    }
    if hi - lo < 1e-12 {
        let pad = if lone > 0.0 { lone } else { lo.abs().max(1.0) * 0.1 };
        return Some((lo - pad, hi + pad));
    }
    let pad = (hi - lo) * 0.06;
    Some((lo - pad, hi + pad))
}

fn draw_err(title: &str) -> impl Fn(String) -> PlotError + '_ {
    move |message| PlotError::Draw { title: title.to_string(), message }
}

/// Runs `$body` with `$m` bound to a function from a position to series `$i`'s marker there: a
/// circle, triangle, square or cross in turn. (A macro, as each marker is its own element type.)
macro_rules! with_marker {
    ($i:expr, $colour:expr, $m:ident => $body:expr) => {{
        let colour: RGBColor = $colour;
        let style = ShapeStyle::from(&colour).filled();
        match $i % 4 {
            0 => {
                let $m = |at| EmptyElement::at(at) + Circle::new((0, 0), 4, style);
                $body
            }
            1 => {
                let $m = |at| EmptyElement::at(at) + TriangleMarker::new((0, 0), 5, style);
                $body
            }
            2 => {
                let $m = |at| EmptyElement::at(at) + Rectangle::new([(-4, -4), (4, 4)], style);
                $body
            }
            _ => {
                let $m = |at| EmptyElement::at(at) + Cross::new((0, 0), 4, colour.stroke_width(2));
                $body
            }
        }
    }};
}

/// An x–y chart as SVG text: one colour and marker per series, error bars where a point has
/// one (a vertical line with caps), a legend to the right. Non-finite points, and points with
/// x ≤ 0 on a log axis, are left out. A linear x axis over whole numbers gets whole-number ticks.
pub fn xy_svg_string(chart: &Chart, series: &[Series]) -> Result<String, PlotError> {
    let fx = |x: f64| if chart.log_x { x.log10() } else { x };
    let keep = |p: &Point| p.x.is_finite() && p.y.is_finite() && (!chart.log_x || p.x > 0.0);
    let drawn: Vec<(usize, &Series, Vec<Point>)> = series
        .iter()
        .map(|s| (s.style, s, s.points.iter().copied().filter(keep).collect::<Vec<_>>()))
        .filter(|(_, _, pts)| !pts.is_empty())
        .collect();
    let all = || drawn.iter().flat_map(|(_, _, pts)| pts.iter());
    let empty = || PlotError::Empty { title: chart.title.clone() };
    let (u0, u1) = padded(all().map(|p| fx(p.x)), if chart.log_x { 0.5 } else { 0.0 }).ok_or_else(empty)?;
    let err = |p: &Point| p.err.filter(|e| e.is_finite()).unwrap_or(0.0).abs();
    let (y0, y1) = padded(all().flat_map(|p| [p.y - err(p), p.y + err(p)]), 0.0).ok_or_else(empty)?;

    let (x_ticks, x_labels): (Vec<f64>, Vec<String>) = if chart.log_x {
        let ticks = log_ticks(10f64.powf(u0), 10f64.powf(u1));
        (ticks.iter().map(|t| t.log10()).collect(), ticks.iter().map(|t| tick_label(*t)).collect())
    } else if all().all(|p| p.x.fract() == 0.0) && linear_step(u0, u1) < 1.0 {
        // Counts (tasks served, steps): whole-number ticks only.
        let ticks: Vec<f64> = (u0.ceil() as i64..=u1.floor() as i64).map(|i| i as f64).collect();
        let labels = ticks.iter().map(|t| format!("{t:.0}")).collect();
        (ticks, labels)
    } else {
        let step = linear_step(u0, u1);
        let ticks = linear_ticks(u0, u1);
        let labels = ticks.iter().map(|t| linear_label(*t, step)).collect();
        (ticks, labels)
    };
    let y_step = linear_step(y0, y1);
    let y_ticks = linear_ticks(y0, y1);

    let longest = drawn.iter().map(|(_, s, _)| s.name.chars().count()).max().unwrap_or(0) as u32;
    let legend_w = 40 + CHAR_WIDTH * longest;
    let height = HEIGHT.max(90 + LEGEND_ROW * drawn.len() as u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH + legend_w, height)).into_drawing_area();
        let e = draw_err(&chart.title);
        root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
        let (plot_area, legend_area) = root.split_horizontally(WIDTH);
        let mut ctx = ChartBuilder::on(&plot_area)
            .caption(&chart.title, (FONT, 20))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(TickedAxis { range: u0..u1, ticks: x_ticks.clone() }, TickedAxis { range: y0..y1, ticks: y_ticks })
            .map_err(|x| e(x.to_string()))?;
        let x_text = |u: &f64| {
            x_ticks.iter().position(|t| (t - u).abs() < 1e-9).map(|i| x_labels[i].clone()).unwrap_or_default()
        };
        ctx.configure_mesh()
            .x_desc(chart.x_label.as_str())
            .y_desc(chart.y_label.as_str())
            .axis_desc_style((FONT, 16))
            .label_style((FONT, 14))
            .x_label_formatter(&x_text)
            .y_label_formatter(&|v| linear_label(*v, y_step))
            .bold_line_style(RGBColor(220, 220, 220))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(|x| e(x.to_string()))?;
        for (i, s, pts) in &drawn {
            let colour = PALETTE[i % PALETTE.len()];
            let at = |p: &Point| (fx(p.x), p.y);
            for p in pts.iter().filter(|p| err(p) > 0.0) {
                let (lo, hi) = ((fx(p.x), p.y - err(p)), (fx(p.x), p.y + err(p)));
                let bar = ShapeStyle::from(&colour).stroke_width(1);
                ctx.draw_series([PathElement::new(vec![lo, hi], bar)]).map_err(|x| e(x.to_string()))?;
                for end in [lo, hi] {
                    ctx.draw_series([EmptyElement::at(end) + PathElement::new(vec![(-4, 0), (4, 0)], bar)])
                        .map_err(|x| e(x.to_string()))?;
                }
            }
            if s.joined && pts.len() > 1 {
                ctx.draw_series([PathElement::new(pts.iter().map(at).collect::<Vec<_>>(), colour.stroke_width(2))])
                    .map_err(|x| e(x.to_string()))?;
            }
            with_marker!(*i, colour, m => ctx.draw_series(pts.iter().map(|p| m(at(p)))).map(|_| ()))
                .map_err(|x| e(x.to_string()))?;
        }
        draw_legend(&legend_area, &drawn.iter().map(|(i, s, _)| (*i, *s)).collect::<Vec<_>>()).map_err(&e)?;
        root.present().map_err(|x| e(x.to_string()))?;
    }
    Ok(svg)
}

/// The legend column: one row per series (marker, a line sample for a joined series, name).
fn draw_legend(area: &DrawingArea<SVGBackend, Shift>, rows: &[(usize, &Series)]) -> Result<(), String> {
    let style = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (row, (i, s)) in rows.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let y = 60 + (row as i32) * LEGEND_ROW as i32;
        if s.joined {
            area.draw(&PathElement::new(vec![(6, y), (26, y)], colour.stroke_width(2))).map_err(|x| x.to_string())?;
        }
        with_marker!(*i, colour, m => area.draw(&m((16, y)))).map_err(|x| x.to_string())?;
        area.draw(&Text::new(s.name.clone(), (34, y), style.clone())).map_err(|x| x.to_string())?;
    }
    Ok(())
}

/// Writes `svg` to `path`, creating its folder.
fn write(path: &Path, svg: &str) -> Result<(), PlotError> {
    let io = |source| PlotError::Write { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, svg).map_err(io)
}

/// [`xy_svg_string`] written to `path`.
pub fn xy_svg(path: &Path, chart: &Chart, series: &[Series]) -> Result<(), PlotError> {
    write(path, &xy_svg_string(chart, series)?)
}

/// Cell size of the accuracy matrix and the room for its row labels, in pixels.
const CELL: i32 = 64;
const MATRIX_LEFT: i32 = 28;
const MATRIX_TOP: i32 = 56;

/// An accuracy matrix of a continual sequence as SVG text: row j is "after learning task j",
/// column i is task i; a cell holds the accuracy in % (printed with one decimal, coloured from
/// white at 0 to dark blue at 100) or "–" where it was not measured. Tasks are listed by index
/// under the matrix with their names.
pub fn accuracy_matrix_svg_string(title: &str, tasks: &[String], matrix: &[Vec<Option<f64>>]) -> Result<String, PlotError> {
    let n = tasks.len();
    if n == 0 || matrix.len() != n || matrix.iter().any(|r| r.len() != n) {
        return Err(PlotError::MatrixShape { title: title.to_string(), rows: matrix.len(), tasks: n });
    }
    let longest = tasks.iter().map(|t| t.chars().count()).max().unwrap_or(0) as i32;
    let grid = CELL * n as i32;
    let label_w = 110;
    let width = (MATRIX_LEFT + label_w + grid + 24).max(40 + CHAR_WIDTH as i32 * (longest + 8)).max(360);
    let height = MATRIX_TOP + 28 + grid + 30 + 20 * n as i32 + 12;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width as u32, height as u32)).into_drawing_area();
        let e = draw_err(title);
        let d = |x: Result<(), DrawingAreaErrorKind<std::io::Error>>| x.map_err(|x| e(x.to_string()));
        d(root.fill(&WHITE))?;
        let text = |s: &str, at: (i32, i32), size: i32, h: HPos, colour: RGBColor| {
            let style = TextStyle::from((FONT, size).into_font()).color(&colour).pos(Pos::new(h, VPos::Center));
            root.draw(&Text::new(s.to_string(), at, style))
        };
        d(text(title, (width / 2, 20), 20, HPos::Center, BLACK))?;
        let x0 = MATRIX_LEFT + label_w;
        let y0 = MATRIX_TOP + 28;
        d(text("evaluated on task →", (x0 + grid / 2, MATRIX_TOP), 14, HPos::Center, BLACK))?;
        for i in 0..n {
            let cx = x0 + CELL * i as i32 + CELL / 2;
            d(text(&format!("{}", i + 1), (cx, MATRIX_TOP + 16), 14, HPos::Center, BLACK))?;
            let cy = y0 + CELL * i as i32 + CELL / 2;
            d(text(&format!("after {}", i + 1), (x0 - 8, cy), 14, HPos::Right, BLACK))?;
        }
        for (j, row) in matrix.iter().enumerate() {
            for (i, cell) in row.iter().enumerate() {
                let (cx, cy) = (x0 + CELL * i as i32, y0 + CELL * j as i32);
                let (fill, ink, label) = match cell.filter(|v| v.is_finite()) {
                    Some(v) => {
                        let t = (v / 100.0).clamp(0.0, 1.0);
                        let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * t).round() as u8;
                        let fill = RGBColor(mix(255, 8), mix(255, 48), mix(255, 107));
                        (fill, if t > 0.55 { WHITE } else { BLACK }, format!("{v:.1}"))
                    }
                    None => (RGBColor(245, 245, 245), RGBColor(120, 120, 120), "–".to_string()),
                };
                d(root.draw(&Rectangle::new([(cx, cy), (cx + CELL, cy + CELL)], fill.filled())))?;
                d(root.draw(&Rectangle::new([(cx, cy), (cx + CELL, cy + CELL)], RGBColor(200, 200, 200))))?;
                d(text(&label, (cx + CELL / 2, cy + CELL / 2), 15, HPos::Center, ink))?;
            }
        }
        for (i, t) in tasks.iter().enumerate() {
            d(text(&format!("{}: {t}", i + 1), (MATRIX_LEFT, y0 + grid + 24 + 20 * i as i32), 14, HPos::Left, BLACK))?;
        }
        root.present().map_err(|x| e(x.to_string()))?;
    }
    Ok(svg)
}

/// [`accuracy_matrix_svg_string`] written to `path`.
pub fn accuracy_matrix_svg(path: &Path, title: &str, tasks: &[String], matrix: &[Vec<Option<f64>>]) -> Result<(), PlotError> {
    write(path, &accuracy_matrix_svg_string(title, tasks, matrix)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of attribute `name` in the element text `el`.
    fn attr<'a>(el: &'a str, name: &str) -> &'a str {
        el.split(&format!(" {name}=\"")).nth(1).and_then(|s| s.split('"').next()).unwrap_or("")
    }

    /// The (x, y, text) of every `<text>` element of an SVG.
    fn texts(svg: &str) -> Vec<(f64, f64, String)> {
        svg.split("<text").skip(1).map(|t| {
            let body = t.split('>').nth(1).and_then(|s| s.split("</text").next()).unwrap_or("").trim().to_string();
            (attr(t, "x").parse().unwrap(), attr(t, "y").parse().unwrap(), body)
        }).collect()
    }

    fn bodies(svg: &str) -> Vec<String> {
        texts(svg).into_iter().map(|(_, _, t)| t).collect()
    }

    /// The position of the one text `label`.
    fn at_text(svg: &str, label: &str) -> (f64, f64) {
        let hits: Vec<(f64, f64)> = texts(svg).into_iter().filter(|(_, _, t)| t == label).map(|(x, y, _)| (x, y)).collect();
        assert_eq!(hits.len(), 1, "one text '{label}' in the SVG, got {hits:?}");
        hits[0]
    }

    /// The stroke colour and points of every `<polyline>`.
    fn polylines(svg: &str) -> Vec<(String, Vec<(i32, i32)>)> {
        svg.split("<polyline").skip(1).map(|el| {
            let points = attr(el, "points").split_whitespace().map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            }).collect();
            (attr(el, "stroke").to_string(), points)
        }).collect()
    }

    #[test]
    fn log_ticks_are_the_decades_inside_and_fall_back_to_1_2_5() {
        assert_eq!(log_ticks(300.0, 2.0e6), [1e3, 1e4, 1e5, 1e6]);
        // One decade inside: 1, 2, 5 × 10^k within [60, 900].
        assert_eq!(log_ticks(60.0, 900.0), [100.0, 200.0, 500.0]);
        // Not even two of those: every integer multiple.
        assert_eq!(log_ticks(120.0, 260.0), [200.0]);
        assert_eq!(log_ticks(0.004, 0.2), [0.005, 0.01, 0.02, 0.05, 0.1, 0.2]);
        assert_eq!(tick_label(1e3), "1k");
        assert_eq!(tick_label(2e4), "20k");
        assert_eq!(tick_label(1e6), "1M");
        assert_eq!(tick_label(0.01), "0.01");
        assert_eq!(tick_label(500.0), "500");
        assert_eq!(linear_ticks(0.0, 0.42), [0.0, 0.1, 0.2, 0.3, 0.4]);
        assert_eq!(linear_ticks(87.3, 99.1), [88.0, 90.0, 92.0, 94.0, 96.0, 98.0]);
        // 14.1 / 8 = 1.76: a step of 2, not 5 (which would leave two ticks).
        assert_eq!(linear_ticks(85.7, 99.8), [86.0, 88.0, 90.0, 92.0, 94.0, 96.0, 98.0]);
    }

    fn pt(x: f64, y: f64, err: Option<f64>) -> Point {
        Point { x, y, err }
    }

    fn params_chart() -> (Chart, Vec<Series>) {
        let chart = Chart {
            title: "s → t: accuracy against trainable parameters".into(),
            x_label: "trainable parameters (log)".into(),
            y_label: "test accuracy %".into(),
            log_x: true,
        };
        let series = vec![
            Series { name: "linear-probe".into(), points: vec![pt(650.0, 76.7, Some(0.4))], joined: false, style: 0 },
            Series { name: "feature-extractor".into(), points: vec![pt(58_400.0, 96.1, Some(0.4))], joined: false, style: 1 },
            Series { name: "fine-tune".into(), points: vec![pt(1_200_000.0, 96.1, None)], joined: false, style: 2 },
        ];
        (chart, series)
    }

    #[test]
    fn a_log_scatter_has_its_labels_decade_ticks_spaced_evenly_and_one_bar_per_spread() {
        let (chart, series) = params_chart();
        let svg = xy_svg_string(&chart, &series).unwrap();
        let all = bodies(&svg);
        for want in ["trainable parameters (log)", "test accuracy %", "linear-probe", "feature-extractor", "fine-tune"] {
            assert!(all.iter().any(|t| t == want), "'{want}' missing from {all:?}");
        }
        assert!(all.iter().any(|t| t.starts_with("s → t: accuracy")), "{all:?}");
        // x spans 650 … 1.2M, padded by 6 % of its log span: ticks at 1k, 10k, 100k, 1M only.
        assert!(!all.iter().any(|t| t == "100" || t == "10M" || t == "2k"), "{all:?}");
        // Equal steps on the page for equal factors: a log axis.
        let xs: Vec<f64> = ["1k", "10k", "100k", "1M"].iter().map(|t| at_text(&svg, t).0).collect();
        for w in xs.windows(3) {
            assert!(((w[1] - w[0]) - (w[2] - w[1])).abs() <= 1.0, "{xs:?}");
        }
        // 76.3 … 96.5 padded: y ticks every 5 from 80 to 95.
        let px_per_5 = at_text(&svg, "85").1 - at_text(&svg, "90").1;
        assert!(bodies(&svg).iter().any(|t| t == "80") && at_text(&svg, "95").1 < at_text(&svg, "90").1);
        // Markers: a circle, a triangle and a square for the three series, each in the legend too.
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        assert_eq!(svg.matches("<polygon").count(), 2, "{svg}");
        // Error bars: a vertical line 2 × 0.4 points long and two 8-pixel caps in the series'
        // colour for each of the first two series; none for the third.
        let lines = polylines(&svg);
        for colour in ["#1F77B4", "#FF7F0E"] {
            let own: Vec<&Vec<(i32, i32)>> = lines.iter().filter(|(c, _)| c == colour).map(|(_, p)| p).collect();
            assert_eq!(own.len(), 3, "{colour}: {own:?}");
            let caps = own.iter().filter(|p| p.len() == 2 && p[0].1 == p[1].1 && (p[1].0 - p[0].0).abs() == 8).count();
            assert_eq!(caps, 2, "{colour}: {own:?}");
            let bar = own.iter().find(|p| p[0].0 == p[1].0).expect("a vertical bar");
            let len = (bar[0].1 - bar[1].1).abs() as f64;
            assert!((len - 0.8 / 5.0 * px_per_5).abs() <= 1.5, "bar {len} px, 5 points = {px_per_5} px");
        }
        assert!(!lines.iter().any(|(c, _)| c == "#2CA02C"));
    }

    #[test]
    fn a_curve_is_one_line_per_series_and_non_positive_x_is_left_out_on_a_log_axis() {
        let chart = Chart { title: "curve".into(), x_label: "training images (log)".into(), y_label: "test accuracy %".into(), log_x: true };
        let joined = |name: &str, pts: Vec<Point>, style| Series { name: name.into(), points: pts, joined: true, style };
        let series = vec![
            joined("a", vec![pt(0.0, 10.0, None), pt(12.0, 50.0, None), pt(120.0, 80.0, None), pt(1200.0, 90.0, None)], 0),
            joined("b", vec![pt(12.0, 40.0, None), pt(1200.0, 85.0, None)], 1),
        ];
        let svg = xy_svg_string(&chart, &series).unwrap();
        // Per series its line and the legend's sample; a's line has its 3 drawable points (x = 0
        // is left out), b's its 2.
        let lines = polylines(&svg);
        let of = |c: &str| lines.iter().filter(|(s, _)| s == c).map(|(_, p)| p.len()).collect::<Vec<_>>();
        assert_eq!(of("#1F77B4"), [3, 2]);
        assert_eq!(of("#FF7F0E"), [2, 2]);
        // a's 3 circles and its legend's; b's 2 triangles and its legend's.
        assert_eq!(svg.matches("<circle").count(), 4);
        assert_eq!(svg.matches("<polygon").count(), 3);
        for tick in ["10", "100", "1k"] {
            at_text(&svg, tick);
        }
        // Whole numbers on a short linear axis (tasks served 1, 2, 4): ticks 1 … 4, no 1.5.
        let counts = Chart { log_x: false, ..chart.clone() };
        let svg = xy_svg_string(&counts, &[joined("a", vec![pt(1.0, 10.0, None), pt(2.0, 9.0, None), pt(4.0, 6.0, None)], 0)]).unwrap();
        for tick in ["1", "2", "3", "4"] {
            at_text(&svg, tick);
        }
        assert!(!bodies(&svg).iter().any(|t| t == "1.5"));
        let nothing = vec![joined("a", vec![pt(0.0, 10.0, None), pt(-1.0, 5.0, None)], 0)];
        assert!(matches!(xy_svg_string(&chart, &nothing), Err(PlotError::Empty { .. })));
    }

    #[test]
    fn an_accuracy_matrix_prints_every_cell_and_a_dash_where_none_was_measured() {
        let tasks: Vec<String> = ["mnist", "digits", "fashion-rot"].iter().map(|s| s.to_string()).collect();
        let m = vec![
            vec![Some(97.5), None, None],
            vec![Some(97.24), Some(88.0), None],
            vec![Some(96.0), Some(87.5), Some(81.04)],
        ];
        let svg = accuracy_matrix_svg_string("seq on src", &tasks, &m).unwrap();
        let all = bodies(&svg);
        for want in ["97.5", "97.2", "96.0", "88.0", "87.5", "81.0", "1: mnist", "3: fashion-rot", "after 2", "seq on src"] {
            assert!(all.iter().any(|t| t == want), "'{want}' missing from {all:?}");
        }
        assert_eq!(all.iter().filter(|t| *t == "–").count(), 3);
        // Two rectangles (fill and border) per cell, plus the background.
        assert_eq!(svg.matches("<rect").count(), 2 * 9 + 1, "{svg}");
        let bad = vec![vec![Some(1.0)]];
        assert!(matches!(accuracy_matrix_svg_string("x", &tasks, &bad), Err(PlotError::MatrixShape { rows: 1, tasks: 3, .. })));
    }

    #[test]
    fn figures_embed_as_markdown_images() {
        let mut f = Figure { title: "s → t [log]".into(), path: "quick plots/a.svg".into(), note: None };
        assert_eq!(f.markdown(), "![s → t log](quick%20plots/a.svg)");
        f.note = Some("scratch not drawn".into());
        assert_eq!(f.markdown(), "![s → t log](quick%20plots/a.svg)\n_scratch not drawn_");
    }
}
