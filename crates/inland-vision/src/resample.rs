//! Crops, scales and converts a region of a frame into a planar f32 network input in one
//! pass. Downscaling filters with a triangle as wide as the scale step (an area-like
//! filter) so that small faces and plates are not lost to aliasing.

use crate::frame::Frame;

/// A region of the frame (frame px, may extend past the edges, which repeat) to be fed to
/// a network as `out_w` x `out_h` pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub x0: f32,
    pub y0: f32,
    pub src_w: f32,
    pub src_h: f32,
    pub out_w: usize,
    pub out_h: usize,
}

impl View {
    /// The whole frame at `out_w` x `out_h`.
    pub fn whole(frame: &Frame, out_w: usize, out_h: usize) -> View {
        View {
            x0: 0.0,
            y0: 0.0,
            src_w: frame.width as f32,
            src_h: frame.height as f32,
            out_w,
            out_h,
        }
    }
    pub fn scale_x(&self) -> f32 {
        self.out_w as f32 / self.src_w
    }
    pub fn scale_y(&self) -> f32 {
        self.out_h as f32 / self.src_h
    }
    /// Network input coordinates back to frame coordinates.
    pub fn to_frame(&self, x: f32, y: f32) -> (f32, f32) {
        (self.x0 + x / self.scale_x(), self.y0 + y / self.scale_y())
    }
}

/// What the network wants per channel: which frame channel (0 = R, 1 = G, 2 = B) feeds
/// each input plane, and what is subtracted from its 0-255 value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalize {
    pub channels: [usize; 3],
    pub mean: [f32; 3],
}

/// Filter taps for one axis, as a window of `width` consecutive source pixels per output:
/// output `o` reads `first[o]..first[o] + width` with weights
/// `weight[o * width..(o + 1) * width]`. Taps past the edges are folded onto the edge
/// pixel (the edge repeats), so every window lies inside the source.
#[derive(Debug, Default)]
struct Taps {
    width: usize,
    first: Vec<usize>,
    weight: Vec<f32>,
    raw: Vec<(i64, f32)>,
}

impl Taps {
    fn build(&mut self, origin: f32, src_len: f32, out_len: usize, limit: usize) {
        let scale = out_len as f32 / src_len;
        let radius = (1.0 / scale).max(1.0);
        // Enough taps for any output (at most 2 * radius + 1), but never wider than the source.
        self.width = ((2.0 * radius).ceil() as usize + 1).min(limit);
        self.first.clear();
        self.weight.clear();
        self.weight.resize(out_len * self.width, 0.0);
        for o in 0..out_len {
            let center = origin + (o as f32 + 0.5) / scale - 0.5;
            let lo = (center - radius).floor() as i64 + 1;
            let hi = (center + radius).ceil() as i64 - 1;
            self.raw.clear();
            self.raw.extend((lo..=hi).filter_map(|s| {
                let w = 1.0 - ((s as f32 - center).abs() / radius);
                (w > 0.0).then_some((s, w))
            }));
            if self.raw.is_empty() {
                // Upscaling exactly onto a pixel centre: the nearest pixel alone.
                self.raw.push((center.round() as i64, 1.0));
            }
            let total: f32 = self.raw.iter().map(|(_, w)| w).sum();
            let clamp = |s: i64| s.clamp(0, limit as i64 - 1) as usize;
            let first = clamp(self.raw[0].0).min(limit - self.width);
            let weights = &mut self.weight[o * self.width..(o + 1) * self.width];
            for &(s, w) in &self.raw {
                weights[clamp(s) - first] += w / total;
            }
            self.first.push(first);
        }
    }

    fn of(&self, o: usize) -> (usize, &[f32]) {
        (
            self.first[o],
            &self.weight[o * self.width..(o + 1) * self.width],
        )
    }
}

/// Reusable buffers for [`Resampler::run`].
#[derive(Debug, Default)]
pub struct Resampler {
    horizontal: Taps,
    vertical: Taps,
    line: Vec<f32>,
}

impl Resampler {
    /// Writes the view into `out` as 3 planes of `out_w * out_h` values.
    pub fn run(&mut self, frame: &Frame, view: &View, norm: &Normalize, out: &mut [f32]) {
        let (ow, oh) = (view.out_w, view.out_h);
        debug_assert_eq!(out.len(), 3 * ow * oh);
        self.horizontal.build(view.x0, view.src_w, ow, frame.width);
        self.vertical.build(view.y0, view.src_h, oh, frame.height);
        // Only the source columns the horizontal windows read.
        let tw = self.horizontal.width;
        let xmin = self.horizontal.first.iter().copied().min().unwrap_or(0);
        let xmax = self.horizontal.first.iter().copied().max().unwrap_or(0) + tw;
        let span = (xmax - xmin) * 3;
        let plane = ow * oh;
        // Per output row: the vertical filter over the few source rows it needs into one
        // line (which stays in cache), then the horizontal filter out of that line.
        for y in 0..oh {
            let line = &mut self.line;
            line.clear();
            line.resize(span, 0.0);
            let (first_row, weights) = self.vertical.of(y);
            for (r, &w) in weights.iter().enumerate() {
                let start = ((first_row + r) * frame.width + xmin) * 3;
                let src = &frame.rgb[start..start + span];
                line.iter_mut()
                    .zip(src)
                    .for_each(|(l, &p)| *l += w * f32::from(p));
            }
            for x in 0..ow {
                let (first, weights) = self.horizontal.of(x);
                let window = &line[(first - xmin) * 3..(first - xmin + tw) * 3];
                let mut acc = [0.0f32; 3];
                for (&w, p) in weights.iter().zip(window.chunks_exact(3)) {
                    acc[0] += w * p[0];
                    acc[1] += w * p[1];
                    acc[2] += w * p[2];
                }
                for (c, (&src_c, mean)) in norm.channels.iter().zip(norm.mean).enumerate() {
                    out[c * plane + y * ow + x] = acc[src_c] - mean;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RGB: Normalize = Normalize {
        channels: [0, 1, 2],
        mean: [0.0; 3],
    };

    fn frame(width: usize, height: usize, f: impl Fn(usize, usize) -> [u8; 3]) -> Frame {
        let mut rgb = Vec::new();
        for y in 0..height {
            for x in 0..width {
                rgb.extend_from_slice(&f(x, y));
            }
        }
        Frame { width, height, rgb }
    }

    #[test]
    fn identity_view_copies_pixels_into_planes() {
        let f = frame(4, 3, |x, y| [x as u8 * 10, y as u8 * 20, 7]);
        let mut out = vec![0.0; 3 * 12];
        Resampler::default().run(&f, &View::whole(&f, 4, 3), &RGB, &mut out);
        assert_eq!(out[2], 20.0); // R of (2, 0)
        assert_eq!(out[12 + 4 + 1], 20.0); // G of (1, 1)
        assert_eq!(out[24 + 11], 7.0); // B of (3, 2)
    }

    #[test]
    fn downscaling_by_two_averages_and_bgr_mean_is_applied() {
        // A 1-px checkerboard averages to grey when halved, rather than aliasing.
        let f = frame(8, 8, |x, y| {
            if (x + y) % 2 == 0 {
                [200, 0, 0]
            } else {
                [0, 0, 100]
            }
        });
        let bgr = Normalize {
            channels: [2, 1, 0],
            mean: [10.0, 0.0, 0.0],
        };
        let mut out = vec![0.0; 3 * 16];
        Resampler::default().run(&f, &View::whole(&f, 4, 4), &bgr, &mut out);
        // Away from the edges (which repeat, and so lean to one colour).
        for i in [5, 6, 9, 10] {
            assert!((out[i] - 40.0).abs() < 1e-3, "blue plane {}", out[i]); // 50 - 10
            assert!(
                (out[32 + i] - 100.0).abs() < 1e-3,
                "red plane {}",
                out[32 + i]
            );
        }
    }

    #[test]
    fn edge_taps_fold_onto_the_edge_pixel_and_weights_sum_to_one() {
        let mut t = Taps::default();
        // Downscale 10 -> 3: radius 3.33, so the first output reaches left of pixel 0.
        t.build(0.0, 10.0, 3, 10);
        for o in 0..3 {
            let (first, w) = t.of(o);
            assert!(first + t.width <= 10);
            assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{w:?}");
        }
        assert_eq!(t.of(0).0, 0);
        // A source narrower than the filter: the window is the whole source.
        t.build(0.0, 2.0, 1, 2);
        assert_eq!((t.width, t.of(0).0), (2, 0));
    }

    #[test]
    fn a_crop_maps_back_to_frame_coordinates() {
        let f = frame(100, 50, |x, _| [x as u8, 0, 0]);
        let v = View {
            x0: 40.0,
            y0: 10.0,
            src_w: 20.0,
            src_h: 10.0,
            out_w: 80,
            out_h: 40,
        };
        let mut out = vec![0.0; 3 * 80 * 40];
        Resampler::default().run(&f, &v, &RGB, &mut out);
        // Output column 40 is frame x = 50 (left edge), centre 50.125.
        assert!((out[40] - 50.0).abs() < 0.6, "{}", out[40]);
        assert_eq!(v.to_frame(40.0, 20.0), (50.0, 15.0));
    }
}
