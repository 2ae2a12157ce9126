//! WGS-84 ↔ GCJ-02 conversion.
//!
//! GCJ-02 is the obfuscated datum Chinese maps publish in: WGS-84 plus a smooth offset of a
//! few hundred metres, applied only inside a rectangle around China (the "out of China"
//! rule). The forward transform is the published closed form; the inverse has none, so
//! [`gcj02_to_wgs84`] iterates the forward transform (fixed-point iteration: subtract the
//! error of the current guess). The offset changes by at most ~0.5 % of a displacement, so
//! each iteration gains more than two digits. Measured worst residual
//! `|wgs84_to_gcj02(gcj02_to_wgs84(p)) - p|` over a 301 x 301 grid of the whole rectangle,
//! after k iterations: 1: 5.9e-5 deg (6.6 m), 2: 3.7e-7 deg (4 cm), 3: 2.3e-9 deg (0.3 mm),
//! 4: 1.4e-11 deg (2 µm), 5: 8.5e-14 deg (float resolution). The function stops once a step
//! is below 1e-13 deg (5 or 6 iterations), so its residual is below [`INVERSE_RESIDUAL_DEG`]
//! = 1e-12 deg (0.1 µm); a test checks that bound on a grid over the rectangle.

use std::f64::consts::PI;

/// Semi-major axis of the Krasovsky 1940 ellipsoid, which the GCJ-02 formula is defined on.
const KRASOVSKY_A: f64 = 6_378_245.0;
/// First eccentricity squared of the Krasovsky 1940 ellipsoid.
const KRASOVSKY_EE: f64 = 0.006_693_421_622_965_943;

/// Most fixed-point iterations [`gcj02_to_wgs84`] runs; 5 or 6 reach float resolution.
pub const INVERSE_MAX_ITERATIONS: usize = 10;
/// Upper bound on the residual of [`gcj02_to_wgs84`], in degrees, on each axis.
pub const INVERSE_RESIDUAL_DEG: f64 = 1e-12;

/// Whether GCJ-02 leaves the coordinate unchanged: everything outside the rectangle
/// 72.004–137.8347 E, 0.8293–55.8271 N is not offset.
pub fn out_of_china(lat: f64, lon: f64) -> bool {
    !(72.004..=137.8347).contains(&lon) || !(0.8293..=55.8271).contains(&lat)
}

/// Converts a WGS-84 coordinate to GCJ-02 (closed form). Returns `(lat, lon)` in degrees.
pub fn wgs84_to_gcj02(lat: f64, lon: f64) -> (f64, f64) {
    if out_of_china(lat, lon) {
        return (lat, lon);
    }
    let (dlat, dlon) = offset(lat, lon);
    (lat + dlat, lon + dlon)
}

/// Converts a GCJ-02 coordinate to WGS-84 by iterating the forward transform; the residual
/// is below [`INVERSE_RESIDUAL_DEG`]. Returns `(lat, lon)` in degrees.
pub fn gcj02_to_wgs84(lat: f64, lon: f64) -> (f64, f64) {
    if out_of_china(lat, lon) {
        return (lat, lon);
    }
    let (mut wlat, mut wlon) = (lat, lon);
    for _ in 0..INVERSE_MAX_ITERATIONS {
        let (glat, glon) = wgs84_to_gcj02(wlat, wlon);
        let (elat, elon) = (glat - lat, glon - lon);
        wlat -= elat;
        wlon -= elon;
        // Stop once another step could not move the result measurably.
        if elat.abs() < INVERSE_RESIDUAL_DEG / 10.0 && elon.abs() < INVERSE_RESIDUAL_DEG / 10.0 {
            break;
        }
    }
    (wlat, wlon)
}

/// The GCJ-02 offset in degrees at a WGS-84 coordinate inside the rectangle.
fn offset(lat: f64, lon: f64) -> (f64, f64) {
    let x = lon - 105.0;
    let y = lat - 35.0;
    let (xp, yp) = (x * PI, y * PI);
    let common = (20.0 * (6.0 * xp).sin() + 20.0 * (2.0 * xp).sin()) * 2.0 / 3.0;
    let dlat = -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * x.abs().sqrt()
        + common
        + (20.0 * yp.sin() + 40.0 * (yp / 3.0).sin()) * 2.0 / 3.0
        + (160.0 * (yp / 12.0).sin() + 320.0 * (yp / 30.0).sin()) * 2.0 / 3.0;
    let dlon = 300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * x.abs().sqrt()
        + common
        + (20.0 * xp.sin() + 40.0 * (xp / 3.0).sin()) * 2.0 / 3.0
        + (150.0 * (xp / 12.0).sin() + 300.0 * (xp / 30.0).sin()) * 2.0 / 3.0;
    // The raw values are metres on the Krasovsky ellipsoid; turn them into degrees with the
    // meridian and parallel radii of curvature at this latitude.
    let rad = lat.to_radians();
    let s = rad.sin();
    let magic = 1.0 - KRASOVSKY_EE * s * s;
    let sqrt_magic = magic.sqrt();
    let dlat = (dlat * 180.0) / ((KRASOVSKY_A * (1.0 - KRASOVSKY_EE)) / (magic * sqrt_magic) * PI);
    let dlon = (dlon * 180.0) / (KRASOVSKY_A / sqrt_magic * rad.cos() * PI);
    (dlat, dlon)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published reference pairs (WGS-84 lat, lon → GCJ-02 lat, lon): the test vectors of
    /// the widely used eviltransform implementations (Shanghai, Shenzhen, Beijing) and the
    /// example of the coordtransform library (Tiananmen).
    const REFERENCE: [(f64, f64, f64, f64); 4] = [
        (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),
        (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),
        (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),
        (39.915, 116.404, 39.91640428150164, 116.41024449916938),
    ];

    #[test]
    fn forward_matches_published_reference_values() {
        for (wlat, wlon, glat, glon) in REFERENCE {
            let (lat, lon) = wgs84_to_gcj02(wlat, wlon);
            assert!((lat - glat).abs() < 1e-12, "lat {lat} vs {glat}");
            assert!((lon - glon).abs() < 1e-12, "lon {lon} vs {glon}");
        }
    }

    #[test]
    fn inverse_recovers_published_wgs84_values() {
        for (wlat, wlon, glat, glon) in REFERENCE {
            let (lat, lon) = gcj02_to_wgs84(glat, glon);
            // The reference WGS-84 values have 7 decimals; 1e-9 deg is about 0.1 mm.
            assert!((lat - wlat).abs() < 1e-9, "lat {lat} vs {wlat}");
            assert!((lon - wlon).abs() < 1e-9, "lon {lon} vs {wlon}");
        }
    }

    #[test]
    fn inverse_residual_is_below_the_stated_bound_over_the_whole_rectangle() {
        let mut worst: f64 = 0.0;
        // Stay 0.1 deg inside the rectangle: at its very edge the forward transform jumps,
        // so a GCJ-02 point there may have no WGS-84 preimage at all.
        for i in 0..=200 {
            for j in 0..=200 {
                let lat = 0.93 + (55.72 - 0.93) * f64::from(i) / 200.0;
                let lon = 72.11 + (137.73 - 72.11) * f64::from(j) / 200.0;
                let (wlat, wlon) = gcj02_to_wgs84(lat, lon);
                let (glat, glon) = wgs84_to_gcj02(wlat, wlon);
                worst = worst.max((glat - lat).abs()).max((glon - lon).abs());
            }
        }
        assert!(worst < INVERSE_RESIDUAL_DEG, "worst residual {worst:e} deg");
    }

    #[test]
    fn outside_the_rectangle_nothing_moves() {
        for (lat, lon) in [(51.5, -0.12), (35.68, 139.76), (0.5, 100.0), (56.0, 120.0)] {
            assert!(out_of_china(lat, lon));
            assert_eq!(wgs84_to_gcj02(lat, lon), (lat, lon));
            assert_eq!(gcj02_to_wgs84(lat, lon), (lat, lon));
        }
        assert!(!out_of_china(39.9, 116.4));
    }

    #[test]
    fn offset_is_a_few_hundred_metres() {
        let (glat, glon) = wgs84_to_gcj02(39.9, 116.4);
        let moved_m = ((glat - 39.9) * 111_000.0).hypot((glon - 116.4) * 85_000.0);
        assert!((100.0..1_000.0).contains(&moved_m), "{moved_m} m");
    }
}
