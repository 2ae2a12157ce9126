//! Synthetic dash-camera frames: sky, skyline, a road to the horizon with lane markings and
//! a car ahead, different in each frame. A handful are encoded once at start-up and reused,
//! so JPEG encoding does not dominate the simulator's CPU.

use bytes::Bytes;
use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::Error;

/// Small files, like a telematics unit's uploads, without visible blocking.
const QUALITY: u8 = 75;

/// Distinct frames a simulation cycles through.
pub const DISTINCT: usize = 8;

/// JPEG frames ready to send; cheap to clone.
#[derive(Clone)]
pub struct Frames {
    jpegs: Vec<Bytes>,
}

impl Frames {
    pub fn generate(
        width: u32,
        height: u32,
        count: usize,
        mut rng: ChaCha8Rng,
    ) -> Result<Self, Error> {
        let jpegs = (0..count.max(1))
            .map(|_| {
                let mut jpeg = Vec::new();
                JpegEncoder::new_with_quality(&mut jpeg, QUALITY)
                    .encode_image(&draw(width, height, &mut rng))?;
                Ok(Bytes::from(jpeg))
            })
            .collect::<Result<_, Error>>()?;
        Ok(Self { jpegs })
    }

    /// The `n`-th frame of the cycle.
    pub fn get(&self, n: u64) -> Bytes {
        self.jpegs[(n % self.jpegs.len() as u64) as usize].clone()
    }
}

fn draw(w: u32, h: u32, rng: &mut ChaCha8Rng) -> RgbImage {
    let (wf, hf) = (f64::from(w), f64::from(h));
    let horizon = hf * rng.random_range(0.38..0.5);
    let sky_top = [
        rng.random_range(40.0..110.0),
        rng.random_range(90.0..150.0),
        rng.random_range(170.0..230.0),
    ];
    let sky_low = [215.0, 225.0, 235.0];
    let ground = [
        rng.random_range(80.0..110.0),
        rng.random_range(90.0..115.0),
        70.0,
    ];
    let vanish_x = wf * rng.random_range(0.4..0.6);
    let mut img = RgbImage::from_fn(w, h, |x, y| {
        let (x, y) = (f64::from(x), f64::from(y));
        if y < horizon {
            return shade(mix(sky_top, sky_low, y / horizon));
        }
        // Perspective: t runs from 0 at the horizon to 1 at the bottom edge.
        let t = (y - horizon) / (hf - horizon);
        let left = vanish_x + (0.02 * wf - vanish_x) * t;
        let right = vanish_x + (0.98 * wf - vanish_x) * t;
        if x < left || x > right {
            return shade(mix(ground, [60.0, 70.0, 50.0], t));
        }
        let centre = vanish_x + (0.5 * wf - vanish_x) * t;
        // Dashes equally long on the ground, so their spacing shrinks towards the horizon.
        let dash = (12.0 / (t + 0.02)).fract() < 0.5;
        if dash && (x - centre).abs() < 0.006 * wf * t + 0.5 {
            return Rgb([235, 235, 220]);
        }
        shade(mix([95.0, 95.0, 100.0], [60.0, 60.0, 65.0], t))
    });

    for _ in 0..rng.random_range(6..14) {
        let bw = wf * rng.random_range(0.05..0.14);
        let bh = hf * rng.random_range(0.05..0.3);
        let x0 = rng.random_range(-0.05..0.95) * wf;
        let grey = rng.random_range(90.0..170.0);
        let tint = rng.random_range(-15.0..15.0);
        fill(
            &mut img,
            (x0, horizon - bh),
            (x0 + bw, horizon),
            [grey + tint, grey, grey - tint],
        );
    }

    // The car ahead, scaled by how far down the road it is.
    let t = rng.random_range(0.3..0.65);
    let y_bottom = horizon + (hf - horizon) * t;
    let centre = vanish_x + (0.5 * wf - vanish_x) * t + rng.random_range(-0.1..0.1) * wf * t;
    let cw = 0.3 * wf * t;
    let ch = 0.6 * cw;
    let body = [
        rng.random_range(20.0..230.0),
        rng.random_range(20.0..230.0),
        rng.random_range(20.0..230.0),
    ];
    let (x0, x1, y0) = (centre - cw / 2.0, centre + cw / 2.0, y_bottom - ch);
    fill(&mut img, (x0, y0), (x1, y_bottom), body);
    fill(
        &mut img,
        (x0 + 0.12 * cw, y0 + 0.08 * ch),
        (x1 - 0.12 * cw, y0 + 0.4 * ch),
        [35.0, 40.0, 50.0],
    );
    for lamp_x in [x0 + 0.04 * cw, x1 - 0.16 * cw] {
        fill(
            &mut img,
            (lamp_x, y0 + 0.5 * ch),
            (lamp_x + 0.12 * cw, y0 + 0.62 * ch),
            [200.0, 20.0, 20.0],
        );
    }
    img
}

fn mix(a: [f64; 3], b: [f64; 3], t: f64) -> [f64; 3] {
    [0, 1, 2].map(|i| a[i] + (b[i] - a[i]) * t)
}

fn shade(c: [f64; 3]) -> Rgb<u8> {
    Rgb(c.map(|v| v.clamp(0.0, 255.0) as u8))
}

/// Fills the rectangle between two corners, clipped to the image.
fn fill(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), colour: [f64; 3]) {
    let clip = |v: f64, max: u32| v.clamp(0.0, f64::from(max)) as u32;
    let colour = shade(colour);
    for y in clip(y0, img.height())..clip(y1, img.height()) {
        for x in clip(x0, img.width())..clip(x1, img.width()) {
            img.put_pixel(x, y, colour);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn frames_are_small_distinct_jpegs_of_the_asked_size() {
        let frames = Frames::generate(320, 180, 3, ChaCha8Rng::seed_from_u64(1)).unwrap();
        let all: Vec<Bytes> = (0..3).map(|n| frames.get(n)).collect();
        for jpeg in &all {
            assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]), "SOI marker");
            assert!(jpeg.len() < 40_000, "{} bytes", jpeg.len());
            let img = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg).unwrap();
            assert_eq!((img.width(), img.height()), (320, 180));
        }
        assert_ne!(all[0], all[1]);
        assert_ne!(all[1], all[2]);
        assert_eq!(frames.get(3), all[0], "the cycle repeats");
    }
}
