//! A coarse occupancy bitmap in front of the R-tree: one bit per grid cell, set when some
//! zone's buffered envelope touches the cell. Most traffic is far from protected sites, and
//! for a point in an empty cell one bit settles it (Keep) without walking the tree.
//!
//! Conservative by construction: a point's cell index and an envelope's first and last
//! cell come from the same monotone float expression (`floor((x - origin) * scale)`), so a
//! point inside an envelope always lands in a marked cell. No margin is needed.

/// About this many cells: a 512 KiB bitmap, which stays in cache. Finer cells hug the
/// envelopes more tightly, so fewer points reach the R-tree.
const MAX_CELLS: usize = 1 << 22;

#[derive(Debug)]
pub(crate) struct Occupancy {
    min_lon: f64,
    min_lat: f64,
    /// Cells per degree (the same on both axes).
    scale: f64,
    nx: usize,
    ny: usize,
    bits: Box<[u64]>,
}

impl Occupancy {
    /// Marks the cells of every envelope `[min_lon, min_lat, max_lon, max_lat]`.
    pub(crate) fn new(envelopes: &[[f64; 4]]) -> Self {
        let mut domain = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        for e in envelopes {
            domain = [
                domain[0].min(e[0]),
                domain[1].min(e[1]),
                domain[2].max(e[2]),
                domain[3].max(e[3]),
            ];
        }
        if envelopes.is_empty() {
            domain = [0.0; 4];
        }
        // Square cells, about MAX_CELLS of them over the domain (at most 3x that for a
        // domain that is a thin strip).
        let (width, height) = (domain[2] - domain[0], domain[3] - domain[1]);
        let area = (width * height).max(f64::MIN_POSITIVE);
        let longest = width.max(height).max(1e-9);
        let scale = (MAX_CELLS as f64 / area)
            .sqrt()
            .min(MAX_CELLS as f64 / longest);
        let (nx, ny) = ((width * scale) as usize + 1, (height * scale) as usize + 1);
        let mut grid = Self {
            min_lon: domain[0],
            min_lat: domain[1],
            scale,
            nx,
            ny,
            bits: vec![0; (nx * ny).div_ceil(64)].into(),
        };
        for e in envelopes {
            let (x0, y0) = grid.cell(e[1], e[0]);
            let (x1, y1) = grid.cell(e[3], e[2]);
            for y in y0..=y1 {
                for x in x0..=x1 {
                    let i = y * nx + x;
                    grid.bits[i / 64] |= 1 << (i % 64);
                }
            }
        }
        grid
    }

    /// Whether some envelope may hold the point. `lat` and `lon` must not be NaN.
    #[inline]
    pub(crate) fn maybe(&self, lat: f64, lon: f64) -> bool {
        let (x, y) = (
            (lon - self.min_lon) * self.scale,
            (lat - self.min_lat) * self.scale,
        );
        // Outside the domain no envelope reaches; `as usize` saturates negatives to 0.
        if x < 0.0 || y < 0.0 || x as usize >= self.nx || y as usize >= self.ny {
            return false;
        }
        let i = y as usize * self.nx + x as usize;
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    /// The cell of a point of the domain, clamped to the grid.
    fn cell(&self, lat: f64, lon: f64) -> (usize, usize) {
        let x = ((lon - self.min_lon) * self.scale) as usize;
        let y = ((lat - self.min_lat) * self.scale) as usize;
        (x.min(self.nx - 1), y.min(self.ny - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::Rng;

    #[test]
    fn every_point_of_every_envelope_is_marked() {
        let mut rng = Rng::new(3);
        let envelopes: Vec<[f64; 4]> = (0..2_000)
            .map(|_| {
                let (lon, lat) = (rng.range(100.0, 120.0), rng.range(20.0, 40.0));
                [
                    lon,
                    lat,
                    lon + rng.range(0.0, 0.1),
                    lat + rng.range(0.0, 0.1),
                ]
            })
            .collect();
        let grid = Occupancy::new(&envelopes);
        for e in &envelopes {
            for (lat, lon) in [(e[1], e[0]), (e[3], e[2]), (e[1], e[2]), (e[3], e[0])] {
                assert!(grid.maybe(lat, lon));
            }
            for _ in 0..20 {
                assert!(grid.maybe(rng.range(e[1], e[3]), rng.range(e[0], e[2])));
            }
        }
        let empty = (0..10_000)
            .filter(|_| !grid.maybe(rng.range(20.0, 40.0), rng.range(100.0, 120.0)))
            .count();
        assert!(empty > 5_000, "most of the domain is empty: {empty}");
        assert!(!grid.maybe(0.0, 0.0) && !grid.maybe(50.0, 110.0));
    }

    #[test]
    fn degenerate_domains() {
        assert!(!Occupancy::new(&[]).maybe(0.0, 0.0));
        let one = Occupancy::new(&[[116.0, 39.0, 116.0, 39.0]]);
        assert!(one.maybe(39.0, 116.0));
        assert!(!one.maybe(39.0, 116.000001));
        let wide = Occupancy::new(&[[-180.0, -90.0, 180.0, 90.0]]);
        assert!(wide.maybe(-90.0, -180.0) && wide.maybe(90.0, 180.0) && wide.maybe(0.0, 0.0));
    }
}
