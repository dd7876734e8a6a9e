//! The look shared by every chart: colours, fonts, the file and frame each is drawn in,
//! and legends.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;

use super::ChartError;
use super::axes::num;
use crate::exec::{Outcome, PhaseSummary, Summary};

pub(in crate::report) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// The standard look of a mesh: light grid, readable labels (every chart of the reports).
macro_rules! style_mesh {
    ($mesh:expr) => {
        $mesh
            .bold_line_style($crate::report::charts::GRID)
            .light_line_style($crate::report::charts::GRID_LIGHT)
            .axis_style($crate::report::charts::MUTED)
            .label_style($crate::report::charts::text(15))
            .axis_desc_style($crate::report::charts::text(17))
    };
}
pub(crate) use style_mesh;

const FONT: &str = "sans-serif";
pub(in crate::report) const WIDTH: u32 = 1200;
pub(in crate::report) const HEIGHT: u32 = 700;
/// Height taken by the title and subtitle of every chart.
pub(super) const HEADER: u32 = 74;

pub(super) const INK: RGBColor = RGBColor(33, 33, 33);
pub(in crate::report) const MUTED: RGBColor = RGBColor(100, 100, 100);
pub(in crate::report) const GRID: RGBColor = RGBColor(215, 215, 215);
pub(in crate::report) const GRID_LIGHT: RGBColor = RGBColor(240, 240, 240);
/// Colour of a total over several workers.
pub(super) const TOTAL: RGBColor = RGBColor(20, 20, 20);

/// Tableau 10: distinct, and readable for the common colour-vision deficiencies.
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

pub(in crate::report) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A darker shade of `c`: a worker's class curves stay visible where they run along its
/// own curve.
pub(super) fn darker(c: RGBColor) -> RGBColor {
    let d = |v: u8| (v as f64 * 0.55).round() as u8;
    RGBColor(d(c.0), d(c.1), d(c.2))
}

/// Event markers use colours outside the palette so they never read as a worker.
pub(super) fn event_color(kind: &str) -> RGBColor {
    match kind {
        "power_cycle" => RGBColor(165, 0, 38),
        "reset" => RGBColor(191, 91, 0),
        _ => RGBColor(84, 39, 143),
    }
}

/// Registers the DejaVu fonts once: plotters has no system fonts here.
fn fonts() -> Result<(), ChartError> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok() && register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok { Ok(()) } else { Err("the DejaVu fonts could not be loaded".into()) }
}

pub(in crate::report) fn text(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&INK)
}

pub(super) fn bold(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size, FontStyle::Bold).into_font()).color(&INK)
}

// ---------------------------------------------------------------------------------------
// Files and frames

/// Draws into `dir/.{stem}.tmp.png`, then renames it to `dir/name`, so a reader never
/// sees half a picture.
pub(in crate::report) fn save(dir: &Path, name: &str, size: (u32, u32), draw: impl FnOnce(&Area) -> Result<(), ChartError>) -> Result<PathBuf, ChartError> {
    fonts()?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{}.tmp.png", name.trim_end_matches(".png")));
    let drawn = (|| -> Result<(), ChartError> {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
        Ok(())
    })();
    match drawn.and_then(|()| std::fs::rename(&tmp, &path).map_err(Into::into)) {
        Ok(()) => Ok(path),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Title and subtitle on top; returns the area left for the chart.
pub(in crate::report) fn frame<'a>(root: &Area<'a>, title: &str, sub: &str) -> Result<Area<'a>, ChartError> {
    let w = root.dim_in_pixel().0.saturating_sub(48);
    root.draw_text(&fit(root, title, &bold(24), w)?, &bold(24), (24, 12))?;
    root.draw_text(&fit(root, sub, &text(15), w)?, &text(15).color(&MUTED), (24, 46))?;
    Ok(root.margin(HEADER, 6, 6, 10))
}

/// `s` shortened with an ellipsis to at most `max_w` pixels.
pub(super) fn fit(area: &Area, s: &str, style: &TextStyle, max_w: u32) -> Result<String, ChartError> {
    if area.estimate_text_size(s, style)?.0 <= max_w {
        return Ok(s.into());
    }
    let chars: Vec<char> = s.chars().collect();
    let mut n = chars.len();
    while n > 1 {
        n = n * 9 / 10;
        let t: String = chars[..n].iter().chain(std::iter::once(&'…')).collect();
        if area.estimate_text_size(&t, style)?.0 <= max_w {
            return Ok(t);
        }
    }
    Ok("…".into())
}

pub(in crate::report) fn device_line(s: &Summary) -> String {
    match &s.device {
        Some(d) => format!("{} (SN {}, FW {})", d.model.trim(), d.serial.trim(), d.firmware.trim()),
        None => s.target.clone(),
    }
}

pub(super) fn subtitle(s: &Summary, p: &PhaseSummary) -> String {
    let outcome = match p.outcome {
        Outcome::Pass => "pass",
        Outcome::Fail => "FAIL",
        Outcome::Interrupted => "interrupted",
        Outcome::Skipped => "skipped",
        Outcome::Incomplete => "incomplete",
    };
    format!("{} · {} · {} s · {outcome}", s.plan, device_line(s), num(p.seconds, 3))
}

// ---------------------------------------------------------------------------------------
// Legends

#[derive(Clone, Copy, Debug, PartialEq)]
pub(in crate::report) enum Mark {
    Line,
    Thick,
    Dashed,
    Dotted,
    Box,
}

/// Line style and stroke width of a mark, as the series draw it.
pub(super) fn dashes(mark: Mark) -> Option<(u32, u32)> {
    match mark {
        Mark::Dashed => Some((9, 5)),
        Mark::Dotted => Some((3, 4)),
        _ => None,
    }
}

pub(in crate::report) struct Entry {
    label: String,
    color: RGBColor,
    mark: Mark,
}

impl Entry {
    pub(in crate::report) fn new(label: impl Into<String>, color: RGBColor, mark: Mark) -> Entry {
        Entry { label: label.into(), color, mark }
    }
}

const LEGEND_FONT: u32 = 15;

/// Splits a legend column off the right of `area` (outside the plot, so it never covers
/// data) and draws `entries` in it; returns the area left.
pub(in crate::report) fn with_legend<'a>(area: &Area<'a>, entries: &[Entry]) -> Result<Area<'a>, ChartError> {
    if entries.is_empty() {
        return Ok(area.clone());
    }
    let (w, h) = area.dim_in_pixel();
    let style = text(LEGEND_FONT);
    let max_w = w / 4;
    let mut widest = 0;
    for e in entries {
        widest = widest.max(area.estimate_text_size(&e.label, &style)?.0);
    }
    let col = (widest + 62).clamp(130, max_w + 62);
    let (left, right) = area.split_horizontally(w.saturating_sub(col));
    let mut y = 24;
    for (k, e) in entries.iter().enumerate() {
        if y + 24 > h as i32 && k + 1 < entries.len() {
            right.draw_text(&format!("… {} more", entries.len() - k), &style.color(&MUTED), (12, y))?;
            break;
        }
        swatch(&right, e, (12, y + 9))?;
        right.draw_text(&fit(&right, &e.label, &style, col - 62)?, &style, (50, y))?;
        y += 24;
    }
    Ok(left)
}

fn swatch(area: &Area, e: &Entry, (x, y): (i32, i32)) -> Result<(), ChartError> {
    match e.mark {
        Mark::Box => {
            area.draw(&Rectangle::new([(x, y - 7), (x + 30, y + 7)], e.color.mix(0.35).filled()))?;
            area.draw(&Rectangle::new([(x, y - 7), (x + 30, y + 7)], e.color.stroke_width(2)))?;
        }
        Mark::Line | Mark::Thick => {
            let w = if e.mark == Mark::Thick { 3 } else { 2 };
            area.draw(&PathElement::new(vec![(x, y), (x + 30, y)], e.color.stroke_width(w)))?;
        }
        Mark::Dashed | Mark::Dotted => {
            let (on, off) = dashes(e.mark).unwrap_or((6, 4));
            let mut a = x;
            while a < x + 30 {
                let b = (a + on as i32).min(x + 30);
                area.draw(&PathElement::new(vec![(a, y), (b, y)], e.color.stroke_width(2)))?;
                a = b + off as i32;
            }
        }
    }
    Ok(())
}
