//! The crate's SVG writer ([`Svg`]: a document of a few primitives) and the line plot drawn with
//! it: linear or log axes, several series with a legend, horizontal reference lines, title and
//! axis labels. Used by `estimate` (Wh per phrase vs minute), the sweep and `compare` (time and
//! joules vs context), and `attnjoule mask` (its map of the query-key plane).

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// (x, y) points; non-finite points and, on log axes, non-positive ones are skipped, breaking
    /// the line there.
    pub points: Vec<(f64, f64)>,
}

/// A horizontal reference line at `y`, labeled.
#[derive(Debug, Clone, PartialEq)]
pub struct HLine {
    pub y: f64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
    pub hlines: Vec<HLine>,
    /// Optional small print under the title (e.g. which profile the numbers come from).
    pub subtitle: Option<String>,
    /// Fixed axis ranges (log axes round them out to whole decades); `None` fits the data.
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
    pub width: f64,
    pub height: f64,
}

impl Default for LinePlot {
    fn default() -> Self {
        LinePlot {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            log_x: false,
            log_y: false,
            series: vec![],
            hlines: vec![],
            subtitle: None,
            x_range: None,
            y_range: None,
            width: 900.0,
            height: 560.0,
        }
    }
}

/// Colour-blind-safe palette (Okabe–Ito), then greys.
const COLORS: [&str; 10] =
    ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442", "#777777", "#AA4499"];
/// Dash patterns, cycled with the colours so that series lying on top of each other (equal costs
/// are common) stay distinguishable; earlier series are drawn wider underneath later ones.
const DASHES: [&str; 4] = ["", "9,4", "3,3", "12,4,3,4"];

fn style(i: usize) -> Stroke<'static> {
    Stroke { color: COLORS[i % COLORS.len()], width: (4.5 - 0.5 * i as f64).max(1.5), dash: DASHES[i % DASHES.len()] }
}

/// Escapes text for SVG/XML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A coordinate or size: at most two decimals, no trailing zeros ("80", "12.5", "3.14").
fn num(v: f64) -> String {
    let s = format!("{:.2}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// Horizontal alignment of text at its x.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

/// How text is drawn.
#[derive(Debug, Clone, Copy)]
pub struct Font<'a> {
    pub size: f64,
    pub anchor: Anchor,
    pub bold: bool,
    pub color: &'a str,
    /// Drawn turned 90° counter-clockwise about its anchor (a y-axis label).
    pub vertical: bool,
}

impl Default for Font<'_> {
    fn default() -> Self {
        Font { size: 12.0, anchor: Anchor::Start, bold: false, color: "#000", vertical: false }
    }
}

/// How a line is drawn; an empty `dash` is solid.
#[derive(Debug, Clone, Copy)]
pub struct Stroke<'a> {
    pub color: &'a str,
    pub width: f64,
    pub dash: &'a str,
}

impl<'a> Stroke<'a> {
    pub fn solid(color: &'a str, width: f64) -> Self {
        Stroke { color, width, dash: "" }
    }
    fn attrs(&self) -> String {
        let dash =
            if self.dash.is_empty() { String::new() } else { format!(r#" stroke-dasharray="{}""#, esc(self.dash)) };
        format!(r#"stroke="{}" stroke-width="{}"{dash}"#, esc(self.color), num(self.width))
    }
}

/// The one SVG writer of the crate: a standalone document on a white background, built from a
/// few primitives (text, line, polyline, rectangle, circle, a nested document). Every plot and
/// the mask map are drawn with it; text and attribute values are escaped here.
#[derive(Debug, Clone)]
pub struct Svg {
    width: f64,
    height: f64,
    body: String,
}

impl Svg {
    pub fn new(width: f64, height: f64) -> Self {
        let mut s = Svg { width, height, body: String::new() };
        s.rect((0.0, 0.0), (width, height), Some("white"), None);
        s
    }
    pub fn width(&self) -> f64 {
        self.width
    }
    pub fn height(&self) -> f64 {
        self.height
    }
    pub fn text(&mut self, (x, y): (f64, f64), text: &str, f: Font) {
        let anchor = match f.anchor {
            Anchor::Start => "",
            Anchor::Middle => r#" text-anchor="middle""#,
            Anchor::End => r#" text-anchor="end""#,
        };
        let bold = if f.bold { r#" font-weight="bold""# } else { "" };
        let turn =
            if f.vertical { format!(r#" transform="rotate(-90 {} {})""#, num(x), num(y)) } else { String::new() };
        let _ = writeln!(
            self.body,
            r#"<text x="{}" y="{}" font-size="{}" fill="{}"{anchor}{bold}{turn}>{}</text>"#,
            num(x),
            num(y),
            num(f.size),
            esc(f.color),
            esc(text)
        );
    }
    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), s: Stroke) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" {}/>"#,
            num(x1),
            num(y1),
            num(x2),
            num(y2),
            s.attrs()
        );
    }
    pub fn polyline(&mut self, points: &[(f64, f64)], s: Stroke) {
        let pts: Vec<String> = points.iter().map(|&(x, y)| format!("{},{}", num(x), num(y))).collect();
        let _ = writeln!(self.body, r#"<polyline points="{}" fill="none" {}/>"#, pts.join(" "), s.attrs());
    }
    /// A rectangle with its top-left corner at `(x, y)`; `None` leaves it unfilled or unstroked.
    pub fn rect(&mut self, (x, y): (f64, f64), (w, h): (f64, f64), fill: Option<&str>, stroke: Option<&str>) {
        let stroke = stroke.map(|c| format!(r#" stroke="{}""#, esc(c))).unwrap_or_default();
        let _ = writeln!(
            self.body,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"{stroke}/>"#,
            num(x),
            num(y),
            num(w),
            num(h),
            esc(fill.unwrap_or("none"))
        );
    }
    pub fn circle(&mut self, (x, y): (f64, f64), r: f64, fill: &str) {
        let _ = writeln!(self.body, r#"<circle cx="{}" cy="{}" r="{}" fill="{}"/>"#, num(x), num(y), num(r), esc(fill));
    }
    /// Draws `doc` with its top-left corner at `(x, y)`.
    pub fn embed(&mut self, (x, y): (f64, f64), doc: &Svg) {
        let _ = writeln!(self.body, r#"<svg x="{}" y="{}" {}>"#, num(x), num(y), doc.size_attrs());
        self.body.push_str(&doc.body);
        self.body.push_str("</svg>\n");
    }
    fn size_attrs(&self) -> String {
        let (w, h) = (num(self.width), num(self.height));
        format!(r#"width="{w}" height="{h}" viewBox="0 0 {w} {h}""#)
    }
    /// The document's text.
    pub fn finish(&self) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" {} font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n{}</svg>\n",
            self.size_attrs(),
            self.body
        )
    }
}

/// Compact tick label: 0.01, 5, 1024, 65.54K, 2.5M, 1e-5.
pub fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if !(1e-3..1e9).contains(&a) {
        return format!("{v:.0e}");
    }
    if a >= 1e6 {
        return trim(format!("{:.2}", v / 1e6)) + "M";
    }
    if a >= 1e4 {
        return trim(format!("{:.2}", v / 1e3)) + "K";
    }
    trim(format!("{:.3}", v))
}

struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
}

impl Axis {
    fn new(log: bool, vals: impl Iterator<Item = f64>) -> Axis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in vals.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            (lo, hi) = if log { (1.0, 10.0) } else { (0.0, 1.0) };
        }
        if log {
            let (a, b) = (lo.log10().floor(), hi.log10().ceil());
            let b = if b <= a { a + 1.0 } else { b };
            Axis { log, lo: 10f64.powf(a), hi: 10f64.powf(b) }
        } else {
            let span = if hi > lo { hi - lo } else { hi.abs().max(1.0) };
            let step = nice_step(span / 6.0);
            let lo2 = (lo / step).floor() * step;
            let mut hi2 = (hi / step).ceil() * step;
            if hi2 <= lo2 {
                hi2 = lo2 + step;
            }
            Axis { log, lo: lo2, hi: hi2 }
        }
    }
    /// Position in [0, 1].
    fn frac(&self, v: f64) -> f64 {
        if self.log {
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }
    /// Drawable: finite, positive on a log axis, and inside the axis range.
    fn ok(&self, v: f64) -> bool {
        let tol = 1e-9 * (self.hi - self.lo);
        v.is_finite() && (!self.log || v > 0.0) && v >= self.lo - tol && v <= self.hi + tol
    }
    /// (value, major?) ticks.
    fn ticks(&self) -> Vec<(f64, bool)> {
        if self.log {
            let (a, b) = (self.lo.log10().round() as i32, self.hi.log10().round() as i32);
            let decades = (b - a).max(1);
            let every = (decades as f64 / 10.0).ceil().max(1.0) as i32;
            let mut t = Vec::new();
            for e in a..=b {
                let base = 10f64.powi(e);
                if (e - a) % every == 0 {
                    t.push((base, true));
                }
                if decades <= 4 && e < b {
                    for m in [2.0, 5.0] {
                        t.push((base * m, false));
                    }
                }
            }
            t
        } else {
            let step = nice_step((self.hi - self.lo) / 6.0);
            let mut t = Vec::new();
            let mut v = self.lo;
            while v <= self.hi + step * 1e-9 {
                t.push((v, true));
                v += step;
            }
            t
        }
    }
}

fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    p * if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    }
}

impl LinePlot {
    /// The plot as a standalone SVG document.
    pub fn to_svg(&self) -> String {
        self.draw().finish()
    }

    /// The plot drawn on a new document of its size.
    pub fn draw(&self) -> Svg {
        let (w, h) = (self.width, self.height);
        let (ml, mr, mt, mb) = (80.0, 210.0, if self.subtitle.is_some() { 62.0 } else { 46.0 }, 56.0);
        let (pw, ph) = (w - ml - mr, h - mt - mb);
        let xs: Vec<f64> = match self.x_range {
            Some((a, b)) => vec![a, b],
            None => self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect(),
        };
        let ys: Vec<f64> = match self.y_range {
            Some((a, b)) => vec![a, b],
            None => self
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .chain(self.hlines.iter().map(|l| l.y))
                .collect(),
        };
        let (ax, ay) = (Axis::new(self.log_x, xs.into_iter()), Axis::new(self.log_y, ys.into_iter()));
        let px = |v: f64| ml + ax.frac(v) * pw;
        let py = |v: f64| mt + (1.0 - ay.frac(v)) * ph;
        let mut s = Svg::new(w, h);
        let middle = Font { anchor: Anchor::Middle, ..Default::default() };
        s.text((ml + pw / 2.0, 24.0), &self.title, Font { size: 16.0, bold: true, ..middle });
        if let Some(sub) = &self.subtitle {
            s.text((w / 2.0, 42.0), sub, Font { size: 10.5, color: "#444", ..middle });
        }
        // Grid and ticks.
        for (v, major) in ax.ticks() {
            let x = px(v);
            s.line((x, mt), (x, mt + ph), Stroke::solid(if major { "#ccc" } else { "#eee" }, 1.0));
            if major || ax.log {
                s.text((x, mt + ph + 16.0), &tick_label(v), Font { size: if major { 12.0 } else { 9.0 }, ..middle });
            }
        }
        for (v, major) in ay.ticks() {
            let y = py(v);
            s.line((ml, y), (ml + pw, y), Stroke::solid(if major { "#ccc" } else { "#eee" }, 1.0));
            if major {
                s.text((ml - 6.0, y + 4.0), &tick_label(v), Font { anchor: Anchor::End, ..Default::default() });
            }
        }
        s.rect((ml, mt), (pw, ph), None, Some("#333"));
        s.text((ml + pw / 2.0, h - 14.0), &self.x_label, middle);
        s.text((18.0, mt + ph / 2.0), &self.y_label, Font { vertical: true, ..middle });
        // Reference lines.
        for l in self.hlines.iter().filter(|l| ay.ok(l.y)) {
            let y = py(l.y);
            s.line((ml, y), (ml + pw, y), Stroke { color: "#555", width: 1.5, dash: "8,4" });
            let label = Font { size: 11.0, anchor: Anchor::End, color: "#333", ..Default::default() };
            s.text((ml + pw - 4.0, y - 4.0), &l.label, label);
        }
        // Series: polylines broken at skipped points, with point markers.
        for (i, ser) in self.series.iter().enumerate() {
            let stroke = style(i);
            let mut runs: Vec<Vec<(f64, f64)>> = vec![vec![]];
            for &(x, y) in &ser.points {
                if ax.ok(x) && ay.ok(y) {
                    runs.last_mut().expect("one run at least").push((px(x), py(y)));
                } else if !runs.last().expect("one run at least").is_empty() {
                    runs.push(vec![]);
                }
            }
            for run in runs.iter().filter(|r| !r.is_empty()) {
                s.polyline(run, stroke);
                if ser.points.len() <= 12 {
                    for &p in run {
                        s.circle(p, 2.5, stroke.color);
                    }
                }
            }
        }
        // Legend.
        let lx = ml + pw + 14.0;
        for (i, ser) in self.series.iter().enumerate() {
            let y = mt + 10.0 + i as f64 * 20.0;
            s.line((lx, y), (lx + 32.0, y), style(i));
            s.text((lx + 38.0, y + 4.0), &ser.name, Font::default());
        }
        s
    }
}

/// Several plots side by side in one SVG document.
pub fn side_by_side(plots: &[LinePlot]) -> String {
    let w: f64 = plots.iter().map(|p| p.width).sum();
    let h = plots.iter().map(|p| p.height).fold(0.0, f64::max);
    let mut s = Svg::new(w, h);
    let mut x = 0.0;
    for p in plots {
        s.embed((x, 0.0), &p.draw());
        x += p.width;
    }
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_series_legend_and_reference_line() {
        let p = LinePlot {
            title: "t <&>".into(),
            x_label: "minute".into(),
            y_label: "Wh".into(),
            log_x: true,
            log_y: true,
            series: vec![
                Series { name: "a".into(), points: vec![(1.0, 0.1), (10.0, 1.0), (100.0, 10.0)] },
                Series { name: "b".into(), points: vec![(1.0, 0.2), (10.0, f64::NAN), (100.0, 0.0), (1000.0, 3.0)] },
            ],
            hlines: vec![HLine { y: 0.5, label: "human".into() }],
            ..Default::default()
        };
        let svg = p.to_svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("t &lt;&amp;&gt;"));
        // Series b is broken by its NaN and zero (log axis): three runs of one point, so its
        // polylines hold one point each; a has one polyline.
        assert_eq!(svg.matches("<polyline").count(), 1 + 2);
        assert!(svg.contains(">human<") && svg.contains(">a<") && svg.contains(">b<"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        let both = side_by_side(&[p.clone(), p.clone()]);
        assert_eq!(both.matches("<svg").count(), 3);
        // A fixed range (rounded out to the decades 1..10) drops what lies outside it.
        let svg = LinePlot { y_range: Some((1.5, 5.0)), ..p }.to_svg();
        assert!(!svg.contains(">human<"), "the line at 0.5 lies below the range");
        assert_eq!(svg.matches("<circle").count(), 3, "a: 1 and 10 (0.1 is below); b: 3");
    }

    #[test]
    fn tick_labels() {
        assert_eq!(tick_label(1024.0), "1024");
        assert_eq!(tick_label(65536.0), "65.54K");
        assert_eq!(tick_label(1e6), "1M");
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(100.0), "100");
        assert_eq!(tick_label(1e-5), "1e-5");
    }
}
