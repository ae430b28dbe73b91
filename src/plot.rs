//! A small dependency-free SVG line-plot writer: linear or log axes, several series with a legend,
//! horizontal reference lines, title and axis labels. Used by `estimate` (Wh per phrase vs minute)
//! and by the sweep (time and joules vs context).

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

fn style(i: usize) -> (&'static str, &'static str, f64) {
    let width = (4.5 - 0.5 * i as f64).max(1.5);
    (COLORS[i % COLORS.len()], DASHES[i % DASHES.len()], width)
}

/// Escapes text for SVG/XML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
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
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="24" font-size="16" font-weight="bold" text-anchor="middle">{}</text>"#,
            ml + pw / 2.0,
            esc(&self.title)
        );
        if let Some(sub) = &self.subtitle {
            let _ = writeln!(
                s,
                r##"<text x="{}" y="42" font-size="10.5" fill="#444" text-anchor="middle">{}</text>"##,
                w / 2.0,
                esc(sub)
            );
        }
        // Grid and ticks.
        for (v, major) in ax.ticks() {
            let x = px(v);
            let c = if major { "#ccc" } else { "#eee" };
            let _ = writeln!(s, r#"<line x1="{x:.1}" y1="{mt}" x2="{x:.1}" y2="{}" stroke="{c}"/>"#, mt + ph);
            if major || ax.log {
                let _ = writeln!(
                    s,
                    r#"<text x="{x:.1}" y="{}" text-anchor="middle" font-size="{}">{}</text>"#,
                    mt + ph + 16.0,
                    if major { 12 } else { 9 },
                    tick_label(v)
                );
            }
        }
        for (v, major) in ay.ticks() {
            let y = py(v);
            let c = if major { "#ccc" } else { "#eee" };
            let _ = writeln!(s, r#"<line x1="{ml}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="{c}"/>"#, ml + pw);
            if major {
                let _ = writeln!(
                    s,
                    r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                    ml - 6.0,
                    y + 4.0,
                    tick_label(v)
                );
            }
        }
        let _ = writeln!(s, r##"<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            ml + pw / 2.0,
            h - 14.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
            mt + ph / 2.0,
            mt + ph / 2.0,
            esc(&self.y_label)
        );
        // Reference lines.
        for l in self.hlines.iter().filter(|l| ay.ok(l.y)) {
            let y = py(l.y);
            let _ = writeln!(
                s,
                r##"<line x1="{ml}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#555" stroke-width="1.5" stroke-dasharray="8,4"/>"##,
                ml + pw
            );
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{:.1}" text-anchor="end" font-size="11" fill="#333">{}</text>"##,
                ml + pw - 4.0,
                y - 4.0,
                esc(&l.label)
            );
        }
        // Series: polylines broken at skipped points, with point markers.
        let _ = writeln!(s, r#"<g clip-path="none">"#);
        for (i, ser) in self.series.iter().enumerate() {
            let (color, dash, width) = style(i);
            let mut runs: Vec<Vec<(f64, f64)>> = vec![vec![]];
            for &(x, y) in &ser.points {
                if ax.ok(x) && ay.ok(y) {
                    runs.last_mut().unwrap().push((px(x), py(y)));
                } else if !runs.last().unwrap().is_empty() {
                    runs.push(vec![]);
                }
            }
            for run in runs.iter().filter(|r| !r.is_empty()) {
                let pts: Vec<String> = run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="{width}" stroke-dasharray="{dash}"/>"#,
                    pts.join(" ")
                );
                if ser.points.len() <= 12 {
                    for (x, y) in run {
                        let _ = writeln!(s, r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{color}"/>"#);
                    }
                }
            }
        }
        let _ = writeln!(s, "</g>");
        // Legend.
        let lx = ml + pw + 14.0;
        for (i, ser) in self.series.iter().enumerate() {
            let y = mt + 10.0 + i as f64 * 20.0;
            let (color, dash, width) = style(i);
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="{width}" stroke-dasharray="{dash}"/>"#,
                lx + 32.0
            );
            let _ = writeln!(s, r#"<text x="{}" y="{}">{}</text>"#, lx + 38.0, y + 4.0, esc(&ser.name));
        }
        let _ = writeln!(s, "</svg>");
        s
    }
}

/// Several plots side by side in one SVG document.
pub fn side_by_side(plots: &[LinePlot]) -> String {
    let w: f64 = plots.iter().map(|p| p.width).sum();
    let h = plots.iter().map(|p| p.height).fold(0.0, f64::max);
    let mut s = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#);
    s.push('\n');
    let mut x = 0.0;
    for p in plots {
        let inner = p.to_svg();
        // Nest each plot as an <svg> positioned at its offset.
        let inner = inner.replacen("<svg ", &format!(r#"<svg x="{x}" y="0" "#), 1);
        s.push_str(&inner);
        x += p.width;
    }
    s.push_str("</svg>\n");
    s
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
