//! Plate candidates from colour: connected regions of a plate background colour with a
//! plate-like shape. They tell the plate model where to look closer, which is far cheaper
//! than running it upscaled over the whole frame.

use crate::config::{ColourRange, ProposalConfig};
use crate::frame::Frame;
use crate::geometry::BoxF;

/// A plate-coloured region (frame px) and the index of the colour range it matched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub bbox: BoxF,
    pub colour: usize,
    /// Share of the box that has the colour (after closing the character gaps).
    pub fill: f32,
    /// See [`contrast`].
    pub contrast: f32,
}

/// Reusable buffers for [`Proposer::find`].
#[derive(Debug, Default)]
pub struct Proposer {
    /// Colour bits per RGB at 6 bits a channel, built for `lut_for`.
    lut: Vec<u8>,
    lut_for: Vec<ColourRange>,
    bits: Vec<u8>,
    tmp: Vec<u8>,
    runs: Vec<Run>,
    parent: Vec<u32>,
}

/// Hue (degrees), saturation and value (0-1) of an RGB pixel.
pub fn hsv(r: u8, g: u8, b: u8) -> (f32, f32, f32) {
    let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    if max == 0.0 || d == 0.0 {
        return (0.0, 0.0, max / 255.0);
    }
    let h = if max == r {
        60.0 * ((g - b) / d)
    } else if max == g {
        60.0 * ((b - r) / d) + 120.0
    } else {
        60.0 * ((r - g) / d) + 240.0
    };
    (if h < 0.0 { h + 360.0 } else { h }, d / max, max / 255.0)
}

impl Proposer {
    pub fn find(&mut self, frame: &Frame, config: &ProposalConfig) -> Vec<Candidate> {
        let (w, h) = (frame.width, frame.height);
        let colours = &config.colours[..config.colours.len().min(8)];
        if self.lut_for != colours {
            self.lut = build_lut(colours);
            self.lut_for = colours.to_vec();
        }
        let lut = &self.lut;
        self.bits.clear();
        self.bits.extend(
            frame
                .rgb
                .chunks_exact(3)
                .map(|p| lut[lut_index(p[0], p[1], p[2])]),
        );
        // Bridge the characters that split a plate's background into pieces (every colour
        // at once: one bit each).
        close(&mut self.bits, &mut self.tmp, w, h);
        let mut out = Vec::new();
        for c in 0..colours.len() {
            for comp in components(&self.bits, 1 << c, w, h, &mut self.runs, &mut self.parent) {
                let (bw, bh) = (comp.x2 - comp.x1, comp.y2 - comp.y1);
                let aspect = bw as f32 / bh as f32;
                let fill = comp.area as f32 / (bw * bh) as f32;
                if bw < config.min_width
                    || bh < config.min_height
                    || aspect < config.min_aspect
                    || aspect > config.max_aspect
                    || fill < config.min_fill
                {
                    continue;
                }
                let bbox = BoxF::new(
                    comp.x1 as f32,
                    comp.y1 as f32,
                    comp.x2 as f32,
                    comp.y2 as f32,
                );
                let contrast = contrast(frame, &bbox);
                if contrast >= config.min_contrast {
                    out.push(Candidate {
                        bbox,
                        colour: c,
                        fill,
                        contrast,
                    });
                }
            }
        }
        out
    }
}

fn lut_index(r: u8, g: u8, b: u8) -> usize {
    (usize::from(r >> 2) << 12) | (usize::from(g >> 2) << 6) | usize::from(b >> 2)
}

/// Which colour ranges each 6-bit RGB cell falls in, judged at the cell's centre: a table
/// lookup per pixel instead of a hue computation.
fn build_lut(colours: &[ColourRange]) -> Vec<u8> {
    let mut lut = vec![0u8; 1 << 18];
    for (i, bits) in lut.iter_mut().enumerate() {
        let channel = |shift: usize| ((((i >> shift) & 63) as u8) << 2) | 2;
        let (h, s, v) = hsv(channel(12), channel(6), channel(0));
        for (k, c) in colours.iter().enumerate() {
            if h >= c.hue[0] && h <= c.hue[1] && s >= c.min_saturation && v >= c.min_value {
                *bits |= 1 << k;
            }
        }
    }
    lut
}

/// Spread of luma (p90 - p10, 0-255) inside a box: characters on a plate make it large.
pub fn contrast(frame: &Frame, b: &BoxF) -> f32 {
    let r = crate::geometry::Rect::clipped(b.x1, b.y1, b.x2, b.y2, frame.width, frame.height);
    let mut histogram = [0u32; 256];
    for y in r.y1..r.y2 {
        for x in r.x1..r.x2 {
            let i = (y as usize * frame.width + x as usize) * 3;
            let p = &frame.rgb[i..i + 3];
            let luma =
                (299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2])) / 1000;
            histogram[luma as usize] += 1;
        }
    }
    let n: u32 = histogram.iter().sum();
    let percentile = |q: f32| {
        let target = (q * n as f32).ceil().max(1.0) as u32;
        let mut seen = 0;
        histogram.iter().position(|&c| {
            seen += c;
            seen >= target
        })
    };
    match (percentile(0.1), percentile(0.9)) {
        (Some(lo), Some(hi)) => (hi - lo) as f32,
        _ => 0.0,
    }
}

/// Morphological closing of every bit plane at once with a 5 x 3 rectangle (dilate: OR
/// over the neighbourhood, then erode: AND). Outside the frame counts as background for
/// dilation and foreground for erosion, so closing never eats into the edges.
fn close(bits: &mut [u8], tmp: &mut Vec<u8>, w: usize, h: usize) {
    tmp.clear();
    tmp.resize(bits.len(), 0);
    filter::<true>(bits, tmp, w, h);
    filter::<false>(bits, tmp, w, h);
}

/// One separable 5 x 3 OR (`DILATE`) or AND filter, in place on `bits`.
fn filter<const DILATE: bool>(bits: &mut [u8], tmp: &mut [u8], w: usize, h: usize) {
    let op = |a: u8, b: u8| if DILATE { a | b } else { a & b };
    let outside = if DILATE { 0 } else { 0xFF };
    // Rows, 5 wide: bits -> tmp, over shifted slices so that the loop vectorizes. Past
    // the frame's edges is `outside`, the identity of `op`.
    for (src, dst) in bits.chunks_exact(w).zip(tmp.chunks_exact_mut(w)) {
        let at = |x: isize| {
            if x < 0 || x >= w as isize {
                outside
            } else {
                src[x as usize]
            }
        };
        let edges = (0..w.min(2)).chain(w.saturating_sub(2).max(2)..w);
        for x in edges {
            let x = x as isize;
            dst[x as usize] = (x - 2..=x + 2).fold(at(x), |m, i| op(m, at(i)));
        }
        if w > 4 {
            let shifted = src
                .iter()
                .zip(&src[1..])
                .zip(&src[2..])
                .zip(&src[3..])
                .zip(&src[4..]);
            for (d, ((((a, b), c), e), f)) in dst[2..w - 2].iter_mut().zip(shifted) {
                *d = op(op(op(*a, *b), op(*c, *e)), *f);
            }
        }
    }
    // Columns, 3 tall: tmp -> bits.
    for y in 0..h {
        // Past the top or bottom edge the row is `outside`, the identity of `op`, which
        // is the same as repeating the row itself.
        let here = &tmp[y * w..(y + 1) * w];
        let above = if y > 0 {
            &tmp[(y - 1) * w..y * w]
        } else {
            here
        };
        let below = if y + 1 < h {
            &tmp[(y + 1) * w..(y + 2) * w]
        } else {
            here
        };
        let dst = &mut bits[y * w..(y + 1) * w];
        for (((d, &a), &b), &c) in dst.iter_mut().zip(above).zip(here).zip(below) {
            *d = op(op(a, b), c);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Component {
    x1: usize,
    y1: usize,
    x2: usize,
    y2: usize,
    area: usize,
}

/// A horizontal run of set pixels, x0..x1 on row y, and its provisional label.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    y: usize,
    x0: usize,
    x1: usize,
    label: u32,
}

/// 8-connected components of the pixels with `bit` set, found over runs with union-find.
fn components(
    bits: &[u8],
    bit: u8,
    w: usize,
    h: usize,
    runs: &mut Vec<Run>,
    parent: &mut Vec<u32>,
) -> Vec<Component> {
    fn root(parent: &mut [u32], mut i: u32) -> u32 {
        while parent[i as usize] != i {
            parent[i as usize] = parent[parent[i as usize] as usize];
            i = parent[i as usize];
        }
        i
    }
    runs.clear();
    parent.clear();
    let mut prev = 0..0;
    for (y, row) in bits.chunks_exact(w).enumerate().take(h) {
        let start = runs.len();
        let mut x = 0;
        while x < w {
            if row[x] & bit == 0 {
                x += 1;
                continue;
            }
            let x0 = x;
            while x < w && row[x] & bit != 0 {
                x += 1;
            }
            let label = parent.len() as u32;
            parent.push(label);
            // Touching a run of the row above, diagonals included.
            for p in prev.clone() {
                let above: Run = runs[p];
                if above.x0 <= x && x0 <= above.x1 {
                    let (a, b) = (root(parent, above.label), root(parent, label));
                    if a != b {
                        parent[a.max(b) as usize] = a.min(b);
                    }
                }
            }
            runs.push(Run {
                y,
                x0,
                x1: x,
                label,
            });
        }
        prev = start..runs.len();
    }
    let mut stats: Vec<Option<Component>> = vec![None; parent.len()];
    for run in runs.iter() {
        let r = root(parent, run.label) as usize;
        let c = stats[r].get_or_insert(Component {
            x1: run.x0,
            y1: run.y,
            x2: run.x1,
            y2: run.y + 1,
            area: 0,
        });
        c.x1 = c.x1.min(run.x0);
        c.x2 = c.x2.max(run.x1);
        c.y2 = run.y + 1;
        c.area += run.x1 - run.x0;
    }
    stats.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsv_of_primaries_and_grey() {
        assert_eq!(hsv(255, 0, 0), (0.0, 1.0, 1.0));
        assert_eq!(hsv(0, 255, 0).0, 120.0);
        assert_eq!(hsv(0, 0, 255).0, 240.0);
        assert_eq!(hsv(255, 0, 128).0.round(), 330.0);
        assert_eq!(hsv(100, 100, 100), (0.0, 0.0, 100.0 / 255.0));
    }

    #[test]
    fn contrast_is_the_luma_spread_inside_the_box() {
        let (w, h) = (10, 10);
        let mut rgb = vec![50u8; w * h * 3];
        // Right half white: half the pixels 50, half 255.
        for y in 0..h {
            for x in 5..w {
                rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[255, 255, 255]);
            }
        }
        let f = Frame {
            width: w,
            height: h,
            rgb,
        };
        assert_eq!(contrast(&f, &BoxF::new(0.0, 0.0, 10.0, 10.0)), 205.0);
        assert_eq!(contrast(&f, &BoxF::new(0.0, 0.0, 5.0, 10.0)), 0.0);
        assert_eq!(contrast(&f, &BoxF::new(20.0, 20.0, 30.0, 30.0)), 0.0);
    }

    #[test]
    fn components_are_eight_connected_with_boxes_and_areas() {
        #[rustfmt::skip]
        let mask = [
            1, 1, 0, 0, 0,
            0, 0, 1, 0, 1,
            0, 0, 0, 0, 1,
        ];
        let mut found = components(&mask, 1, 5, 3, &mut Vec::new(), &mut Vec::new());
        found.sort_by_key(|c| c.x1);
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0],
            Component {
                x1: 0,
                y1: 0,
                x2: 3,
                y2: 2,
                area: 3
            }
        );
        assert_eq!(
            found[1],
            Component {
                x1: 4,
                y1: 1,
                x2: 5,
                y2: 3,
                area: 2
            }
        );
    }

    #[test]
    fn u_shape_merges_into_one_component() {
        #[rustfmt::skip]
        let mask = [
            1, 0, 1,
            1, 0, 1,
            1, 1, 1,
        ];
        assert_eq!(
            components(&mask, 1, 3, 3, &mut Vec::new(), &mut Vec::new()).len(),
            1
        );
    }

    #[test]
    fn closing_fills_narrow_gaps_only() {
        let (w, h) = (12, 5);
        let mut mask = vec![0u8; w * h];
        for x in (0..5).chain(7..12) {
            mask[2 * w + x] = 1; // middle row, a 2-px gap at 5..7
        }
        close(&mut mask, &mut Vec::new(), w, h);
        assert!(
            mask[2 * w..3 * w].iter().all(|&v| v == 1),
            "gap closed: {mask:?}"
        );
        assert!(
            mask[..2 * w].iter().all(|&v| v == 0),
            "rows above stay empty: {mask:?}"
        );
        assert!(
            mask[3 * w..].iter().all(|&v| v == 0),
            "rows below stay empty: {mask:?}"
        );
    }

    #[test]
    fn finds_a_blue_plate_shaped_patch_and_ignores_a_blue_square() {
        let (w, h) = (120, 60);
        let mut rgb = vec![90u8; w * h * 3];
        let mut paint = |x1: usize, y1: usize, x2: usize, y2: usize, c: [u8; 3]| {
            for y in y1..y2 {
                for x in x1..x2 {
                    rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&c);
                }
            }
        };
        paint(10, 10, 50, 22, [20, 60, 190]); // 40x12 plate blue
        for x in [14, 20, 26, 32, 38] {
            paint(x, 12, x + 2, 20, [240, 240, 240]); // white "characters"
        }
        paint(80, 20, 110, 50, [20, 60, 190]); // 30x30 square
        paint(60, 40, 76, 46, [20, 60, 190]); // plate-shaped but blank
        let frame = Frame {
            width: w,
            height: h,
            rgb,
        };
        let found = Proposer::default().find(&frame, &ProposalConfig::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].bbox, BoxF::new(10.0, 10.0, 50.0, 22.0));
        assert_eq!(found[0].colour, 0);
        assert_eq!(found[0].fill, 1.0);
        assert!(found[0].contrast > 100.0, "{}", found[0].contrast);
    }
}
