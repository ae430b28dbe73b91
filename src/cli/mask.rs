//! `attnjoule mask`: what a mask shows, before any kernel runs: visible pairs and keys, a tiled
//! kernel's tile visits for it (flash, or the Hopper prefill with `--variant`), a map of the (query, key) plane (text or SVG), and with
//! `--json --rows` every row's visible key runs, which the peer script's `--check` compares
//! against PyTorch's masks.

use crate::cli::out::{out, outln};

use anyhow::bail;
use attnjoule::mask::{MaskRecipe, TileClass};
use attnjoule::ops::InputFormat;
use attnjoule::problem::{Problem, Shape};
use attnjoule::work::Variant;
use attnjoule::Mask;
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// none, causal, window:<keys>, longformer:<block>:<local>:<global>,
    /// bigbird:<block>:<local>:<global>:<random>:<seed>, strided:<block>:<local>:<stride>, csr:<path>
    #[arg(long, default_value = "causal", value_parser = MaskRecipe::from_arg)]
    mask: MaskRecipe,
    /// Query sequence length.
    #[arg(long, default_value_t = 4096)]
    seq: usize,
    /// Key sequence length (default: --seq; a decode step has --seq 1 --seq-k <context>).
    #[arg(long)]
    seq_k: Option<usize>,
    /// Head dimension: picks the kernel's tile shape (flash: 64 or 128; Hopper: 64, 128, 256).
    #[arg(long, default_value_t = 128)]
    head_dim: usize,
    /// The tiled prefill whose tile visits to count: flash, flash-hopper or flash-hopper-fp8.
    #[arg(long, value_enum, default_value = "flash")]
    variant: Variant,
    /// Map cells per side (at most; fewer when the plane is smaller).
    #[arg(long, default_value_t = 48)]
    cells: usize,
    /// Write the map as an SVG picture here.
    #[arg(long)]
    svg: Option<std::path::PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// With --json: every query row's visible keys as [lo, hi) runs (at most 65536 rows).
    #[arg(long)]
    rows: bool,
}

#[derive(Serialize)]
struct Summary {
    mask: String,
    seq_q: usize,
    seq_k: usize,
    visible_pairs: u64,
    density: f64,
    /// Keys visible to at least one query.
    visible_keys: usize,
    /// The variant whose tiles are counted.
    variant: String,
    /// That kernel's tiles for this mask, or why it cannot run it.
    #[serde(skip_serializing_if = "Option::is_none")]
    flash: Option<FlashTiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flash_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<Vec<Vec<(usize, usize)>>>,
}

#[derive(Serialize)]
struct FlashTiles {
    tile_q: usize,
    tile_k: usize,
    total: u64,
    partial: u64,
    full: u64,
}

const MAX_ROWS: usize = 1 << 16;
/// Most map cells per side: 4096 x 4096 is already more than a screen or a picture shows, and
/// each cell is classified like a kernel tile (16M of them take seconds and 16 MB).
const MAX_CELLS: usize = 4096;
/// Longest sequence mapped: the counts are linear in the rows, about 20 s at 2^27 tokens.
const MAX_SEQ: usize = 1 << 27;

pub fn run(a: Args) -> anyhow::Result<()> {
    let choice = &a.mask;
    let (seq_q, seq_k) = (a.seq, a.seq_k.unwrap_or(a.seq));
    if seq_q == 0 || seq_k == 0 {
        bail!("--seq and --seq-k must be at least 1");
    }
    if a.rows && seq_q > MAX_ROWS {
        bail!("--rows prints every query row: at most {MAX_ROWS} rows, not {seq_q}");
    }
    let shape = Shape { batch: 1, seq_q, seq_k, heads: 1, kv_heads: 1, head_dim: a.head_dim };
    shape.validate()?;
    if seq_q.max(seq_k) > MAX_SEQ {
        bail!(
            "the mask command walks every query row and key: at most {MAX_SEQ} tokens per side, not {}",
            seq_q.max(seq_k)
        );
    }
    choice.validate(seq_q, seq_k)?;
    let mask = choice.mask(seq_q, seq_k)?;
    let problem = Problem::new(shape, mask.clone());
    let tiles = match a.variant {
        Variant::Flash => attnjoule::ops::flash::config(&problem).map(|c| (c.tile_q, c.tile_k)),
        Variant::FlashHopper | Variant::FlashHopperFp8 => {
            let input = if a.variant == Variant::FlashHopper { InputFormat::Bf16 } else { InputFormat::E4m3 };
            attnjoule::ops::flash_hopper::config(&problem, input).map(|c| (c.tile_q, c.tile_k))
        }
        v => bail!("--variant {} has no tiles to count (flash, flash-hopper, flash-hopper-fp8)", v.name()),
    };
    let flash = tiles
        .map(|(tile_q, tile_k)| {
            let (partial, full) = mask.tile_counts(seq_q, seq_k, tile_q, tile_k);
            let total = (seq_q.div_ceil(tile_q) * seq_k.div_ceil(tile_k)) as u64;
            FlashTiles { tile_q, tile_k, total, partial, full }
        })
        .map_err(|e| e.to_string());
    let (flash, flash_error) = match flash {
        Ok(f) => (Some(f), None),
        Err(e) => (None, Some(e)),
    };
    let visible_pairs = mask.visible_pairs(seq_q, seq_k);
    let s = Summary {
        mask: a.mask.to_string(),
        seq_q,
        seq_k,
        visible_pairs,
        density: visible_pairs as f64 / (seq_q as f64 * seq_k as f64),
        variant: a.variant.name().into(),
        visible_keys: mask.visible_key_ranges(seq_q, seq_k).iter().map(|(lo, hi)| hi - lo).sum(),
        flash,
        flash_error,
        rows: a.rows.then(|| (0..seq_q).map(|i| mask.row_runs(i, seq_q, seq_k)).collect()),
    };
    let map = Map::new(&mask, seq_q, seq_k, a.cells)?;
    if let Some(path) = &a.svg {
        // The picture may not replace the layout file it shows.
        if let MaskRecipe::Csr { path: layout, .. } = &a.mask {
            attnjoule::files::refuse_overwrite("--svg", path, &[std::path::Path::new(layout)])?;
        }
        let svg = map.svg(&format!("{} mask, {seq_q} queries x {seq_k} keys", a.mask));
        attnjoule::files::write_atomic(path, svg.as_bytes())?;
    }
    if a.json {
        outln!("{}", serde_json::to_string(&s)?);
        return Ok(());
    }
    outln!("{} mask, {seq_q} queries x {seq_k} keys (bottom-right aligned)", a.mask);
    outln!(
        "visible pairs {visible_pairs} ({:.2}% of the plane), keys seen by some query {}",
        s.density * 100.0,
        s.visible_keys
    );
    match (&s.flash, &s.flash_error) {
        (Some(f), _) => outln!(
            "{} d{} tiles {}x{}: visits {} of {} ({} full, {} masked)",
            a.variant.name(),
            a.head_dim,
            f.tile_q,
            f.tile_k,
            f.partial + f.full,
            f.total,
            f.full,
            f.partial
        ),
        (None, e) => outln!("{}: {}", a.variant.name(), e.as_deref().unwrap_or("no kernel")),
    }
    outln!(
        "map: {} x {} cells of {} queries x {} keys ('#' all visible, '+' some, ' ' none)",
        map.rows,
        map.cols,
        map.cell_q,
        map.cell_k
    );
    out!("{}", map.text());
    if let Some(path) = &a.svg {
        outln!("wrote {}", path.display());
    }
    Ok(())
}

/// The (query, key) plane in cells, each classified like a kernel tile.
struct Map {
    rows: usize,
    cols: usize,
    cell_q: usize,
    cell_k: usize,
    class: Vec<TileClass>,
}

impl Map {
    /// The map of `cells` (1..=[`MAX_CELLS`]) per side at most.
    fn new(mask: &Mask, seq_q: usize, seq_k: usize, cells: usize) -> anyhow::Result<Map> {
        if !(1..=MAX_CELLS).contains(&cells) {
            bail!("--cells {cells}: a map has 1 to {MAX_CELLS} cells per side");
        }
        let (cell_q, cell_k) = (seq_q.div_ceil(cells), seq_k.div_ceil(cells));
        let (rows, cols) = (seq_q.div_ceil(cell_q), seq_k.div_ceil(cell_k));
        let mut class = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for c in 0..cols {
                let (q0, k0) = (r * cell_q, c * cell_k);
                class.push(mask.classify_tile(
                    q0,
                    (q0 + cell_q).min(seq_q),
                    k0,
                    (k0 + cell_k).min(seq_k),
                    seq_q,
                    seq_k,
                ));
            }
        }
        Ok(Map { rows, cols, cell_q, cell_k, class })
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let edge = format!("+{}+\n", "-".repeat(self.cols));
        out.push_str(&edge);
        for row in self.class.chunks(self.cols) {
            out.push('|');
            out.extend(row.iter().map(|c| match c {
                TileClass::Full => '#',
                TileClass::Partial => '+',
                TileClass::Empty => ' ',
            }));
            out.push_str("|\n");
        }
        out.push_str(&edge);
        out
    }

    fn svg(&self, title: &str) -> String {
        use attnjoule::plot::{Font, Svg};
        let px = (480.0 / self.rows.max(self.cols) as f64).clamp(2.0, 24.0);
        let (w, h) = (self.cols as f64 * px, self.rows as f64 * px);
        let (x0, y0) = (40.0, 50.0);
        let mut s = Svg::new(w + 2.0 * x0, h + y0 + 20.0);
        s.text((x0, 20.0), title, Font { size: 14.0, ..Default::default() });
        let legend = format!(
            "keys \u{2192} ({} per cell); queries \u{2193} ({} per cell); dark: all visible, light: partly",
            self.cell_k, self.cell_q
        );
        s.text((x0, 38.0), &legend, Font { color: "#555", ..Default::default() });
        for (i, c) in self.class.iter().enumerate() {
            let fill = match c {
                TileClass::Full => "#0072B2",
                TileClass::Partial => "#9ecae1",
                TileClass::Empty => continue,
            };
            let (r, col) = (i / self.cols, i % self.cols);
            s.rect((x0 + col as f64 * px, y0 + r as f64 * px), (px, px), Some(fill), None);
        }
        s.rect((x0, y0), (w, h), None, Some("#333"));
        s.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_of_causal_is_lower_triangle() {
        let m = Map::new(&Mask::Causal, 64, 64, 4).unwrap();
        assert_eq!((m.rows, m.cols, m.cell_q, m.cell_k), (4, 4, 16, 16));
        assert_eq!(m.text(), "+----+\n|+   |\n|#+  |\n|##+ |\n|###+|\n+----+\n");
        let svg = m.svg("a <causal> mask");
        assert!(svg.contains("a &lt;causal&gt; mask") && svg.matches("<rect").count() == 2 + 10);
    }

    #[test]
    fn map_covers_uneven_planes() {
        // 1 query x 1000 keys, window 100: only the last cells are lit.
        let m = Map::new(&Mask::causal_window(100), 1, 1000, 10).unwrap();
        assert_eq!((m.rows, m.cols), (1, 10));
        assert_eq!(m.text().lines().nth(1), Some("|         #|"));
    }
}
