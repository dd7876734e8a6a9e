//! Checks shared by the integration tests that read reports.
#![allow(dead_code)]

use std::path::Path;

/// Decodes the PNG at `path` and checks that it is a chart: at least `min` pixels each
/// way, more than 1 % of its pixels not white, and several colours. Returns its size.
pub fn check_png(path: &Path, min: (u32, u32)) -> (u32, u32) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().unwrap_or_else(|e| panic!("{}: not a PNG: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (w, h) = (info.width, info.height);
    assert!(w >= min.0 && h >= min.1, "{}: {w}×{h}, want at least {min:?}", path.display());
    let channels = info.color_type.samples();
    let px = &buf[..info.buffer_size()];
    let mut colours = std::collections::HashSet::new();
    let mut non_white = 0usize;
    for p in px.chunks(channels) {
        let rgb = (p[0], p.get(1).copied().unwrap_or(p[0]), p.get(2).copied().unwrap_or(p[0]));
        if rgb != (255, 255, 255) {
            non_white += 1;
        }
        if colours.len() < 64 {
            colours.insert(rgb);
        }
    }
    let total = (w * h) as usize;
    assert!(non_white * 100 > total, "{}: blank ({non_white} of {total} pixels not white)", path.display());
    assert!(colours.len() >= 4, "{}: only {} colours", path.display(), colours.len());
    (w, h)
}
