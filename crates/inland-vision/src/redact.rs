//! Irreversible destruction of a region: a coarse mosaic whose cells are shifted by random
//! noise.
//!
//! A blur keeps every detail at reduced contrast and can largely be undone by
//! deconvolution. A mosaic keeps only one mean colour per cell: with at most `cells` cells
//! along the region's longer side (4 by default: a face becomes about 3x4 colours, a plate
//! 4x1) no feature or character survives to be recovered. The random per-cell offset hides
//! even those means, so that frames of a video with the grid at slightly different places
//! cannot be combined into a finer picture.

use crate::frame::Frame;
use crate::geometry::Rect;

/// A small fast generator (xorshift64*); its output only needs to be unpredictable enough
/// to perturb colours, not to be cryptographic.
#[derive(Debug, Clone)]
pub struct Noise(u64);

impl Noise {
    /// Seeded from the process's random hash keys, so it differs per run.
    pub fn new() -> Self {
        use std::hash::{BuildHasher, RandomState};
        Self(RandomState::new().hash_one(0x1a2b_3c4d_u64) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in -amplitude..=amplitude.
    fn offset(&mut self, amplitude: u8) -> i32 {
        let span = 2 * u64::from(amplitude) + 1;
        (self.next() % span) as i32 - i32::from(amplitude)
    }
}

impl Default for Noise {
    fn default() -> Self {
        Self::new()
    }
}

/// Replaces the region by a mosaic of at most `cells` cells along its longer side.
pub fn pixelate(frame: &mut Frame, r: Rect, cells: u32, noise_amplitude: u8, noise: &mut Noise) {
    if r.is_empty() {
        return;
    }
    let cell = r.width().max(r.height()).div_ceil(cells.max(1)).max(1);
    let stride = frame.width * 3;
    for cy in (r.y1..r.y2).step_by(cell as usize) {
        for cx in (r.x1..r.x2).step_by(cell as usize) {
            let (x2, y2) = ((cx + cell).min(r.x2), (cy + cell).min(r.y2));
            let mut sum = [0u64; 3];
            for y in cy..y2 {
                let row = &frame.rgb
                    [y as usize * stride + cx as usize * 3..y as usize * stride + x2 as usize * 3];
                for p in row.chunks_exact(3) {
                    sum.iter_mut().zip(p).for_each(|(s, &v)| *s += u64::from(v));
                }
            }
            let n = u64::from((x2 - cx) * (y2 - cy));
            let shift = noise.offset(noise_amplitude);
            let value = sum.map(|s| ((s / n) as i32 + shift).clamp(0, 255) as u8);
            for y in cy..y2 {
                let row = &mut frame.rgb
                    [y as usize * stride + cx as usize * 3..y as usize * stride + x2 as usize * 3];
                row.chunks_exact_mut(3)
                    .for_each(|p| p.copy_from_slice(&value));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy_frame(width: usize, height: usize) -> Frame {
        let mut n = Noise(7);
        Frame {
            width,
            height,
            rgb: (0..width * height * 3).map(|_| n.next() as u8).collect(),
        }
    }

    fn pixel(f: &Frame, x: usize, y: usize) -> [u8; 3] {
        let i = (y * f.width + x) * 3;
        [f.rgb[i], f.rgb[i + 1], f.rgb[i + 2]]
    }

    #[test]
    fn region_becomes_flat_cells_and_outside_is_untouched() {
        let original = noisy_frame(40, 30);
        let mut f = original.clone();
        let r = Rect {
            x1: 5,
            y1: 4,
            x2: 25,
            y2: 14,
        };
        pixelate(&mut f, r, 4, 0, &mut Noise(1));
        // Longer side 20 px / 4 cells = 5 px cells: each 5x5 block is one colour.
        for (x0, y0) in [(5, 4), (10, 4), (20, 9)] {
            let c = pixel(&f, x0, y0);
            for y in y0..y0 + 5 {
                for x in x0..x0 + 5 {
                    assert_eq!(pixel(&f, x, y), c);
                }
            }
        }
        // With no noise a cell holds its mean.
        let mut sum = [0u32; 3];
        for y in 4..9 {
            for x in 5..10 {
                let p = pixel(&original, x, y);
                (0..3).for_each(|c| sum[c] += u32::from(p[c]));
            }
        }
        assert_eq!(pixel(&f, 5, 4), sum.map(|s| (s / 25) as u8));
        for (x, y) in [(4, 4), (25, 10), (10, 3), (10, 14), (0, 0), (39, 29)] {
            assert_eq!(
                pixel(&f, x, y),
                pixel(&original, x, y),
                "({x}, {y}) changed"
            );
        }
    }

    #[test]
    fn no_detail_survives_whatever_the_input() {
        // Two different images with the same cell means come out identical (no noise).
        let (w, h) = (16, 16);
        let a = Frame {
            width: w,
            height: h,
            rgb: (0..w * h * 3)
                .map(|i| if i % 2 == 0 { 0 } else { 200 })
                .collect(),
        };
        let b = Frame {
            width: w,
            height: h,
            rgb: (0..w * h * 3)
                .map(|i| if i % 2 == 0 { 200 } else { 0 })
                .collect(),
        };
        let all = Rect {
            x1: 0,
            y1: 0,
            x2: 16,
            y2: 16,
        };
        let (mut a2, mut b2) = (a.clone(), b.clone());
        pixelate(&mut a2, all, 4, 0, &mut Noise(1));
        pixelate(&mut b2, all, 4, 0, &mut Noise(1));
        assert_ne!(a.rgb, b.rgb);
        assert_eq!(a2.rgb, b2.rgb);
    }

    #[test]
    fn noise_shifts_cells_within_the_amplitude() {
        let mut f = Frame {
            width: 8,
            height: 8,
            rgb: vec![100; 8 * 8 * 3],
        };
        pixelate(
            &mut f,
            Rect {
                x1: 0,
                y1: 0,
                x2: 8,
                y2: 8,
            },
            4,
            10,
            &mut Noise::new(),
        );
        assert!(f.rgb.iter().all(|&v| (90..=110).contains(&v)));
        let distinct: std::collections::HashSet<u8> = f.rgb.iter().copied().collect();
        assert!(
            distinct.len() > 1,
            "16 cells, all with the same offset is unlikely"
        );
    }
}
