//! `inland zones …`: validate a zone file, explain one point, classify many.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

use crate::{Error, Reason, Verdict, ZoneSet, metrics};

#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum ZonesCommand {
    /// Validate a zone file (GeoJSON FeatureCollection) and print its summary.
    Check {
        /// The zone file.
        file: PathBuf,
    },
    /// Tell whether a WGS-84 point is caught, by which zone and why, and list the zones
    /// near it with their distances.
    #[command(allow_negative_numbers = true)]
    Test {
        /// Latitude, WGS-84 degrees.
        lat: f64,
        /// Longitude, WGS-84 degrees.
        lon: f64,
        /// The zone file.
        #[arg(long)]
        zones: PathBuf,
    },
    /// Read `lat,lon` lines (WGS-84 degrees) on standard input and write, for each line in
    /// order, `keep` or `drop,ZONE_ID`.
    Classify {
        /// The zone file.
        #[arg(long)]
        zones: PathBuf,
    },
}

/// Runs a `zones` command, reading `input` (for `classify`) and writing to `output`. The
/// binary passes locked standard input and output.
pub fn run(cmd: ZonesCommand, input: impl BufRead, output: impl Write) -> Result<(), Error> {
    let mut out = BufWriter::with_capacity(1 << 16, output);
    match cmd {
        ZonesCommand::Check { file } => {
            let zones = ZoneSet::from_file(&file)?;
            write!(out, "{}: valid\n{}", file.display(), zones.summary()).map_err(Error::Output)?;
        }
        ZonesCommand::Test { lat, lon, zones } => {
            let zones = ZoneSet::from_file(&zones)?;
            test(&zones, lat, lon, &mut out).map_err(Error::Output)?;
        }
        ZonesCommand::Classify { zones } => {
            let zones = ZoneSet::from_file(&zones)?;
            classify(&zones, input, &mut out)?;
        }
    }
    out.flush().map_err(Error::Output)
}

fn test(zones: &ZoneSet, lat: f64, lon: f64, out: &mut impl Write) -> std::io::Result<()> {
    let verdict = zones.check(lat, lon);
    metrics::verdict(&verdict);
    match verdict {
        Verdict::Keep => writeln!(out, "keep: no zone or buffer holds this point")?,
        Verdict::BadPosition => writeln!(
            out,
            "drop: not a WGS-84 position (latitude must be within ±90, longitude within ±180)"
        )?,
        Verdict::Drop { zone, reason } => {
            let (id, category) = (zone.id(), zone.category().as_str());
            match reason {
                Reason::Inside => writeln!(out, "drop: inside zone {id} ({category})")?,
                Reason::WithinBuffer { distance_m } => writeln!(
                    out,
                    "drop: {distance_m:.2} m from zone {id} ({category}), within its {} m buffer",
                    zone.buffer_m()
                )?,
            }
        }
    }
    for (zone, distance_m) in zones.nearby(lat, lon) {
        let place = if distance_m == 0.0 {
            "inside".to_owned()
        } else {
            format!("{distance_m:.2} m away")
        };
        writeln!(
            out,
            "  zone {} ({}, {} datum, buffer {} m): {place}",
            zone.id(),
            zone.category().as_str(),
            zone.source_datum().as_str(),
            zone.buffer_m()
        )?;
    }
    Ok(())
}

fn classify(zones: &ZoneSet, mut input: impl BufRead, out: &mut impl Write) -> Result<(), Error> {
    let mut line = Vec::with_capacity(64);
    let mut number = 0u64;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).map_err(Error::InputIo)? == 0 {
            return Ok(());
        }
        number += 1;
        let (lat, lon) = parse_point(&line).map_err(|problem| Error::Input {
            line: number,
            problem: problem.into(),
        })?;
        let verdict = zones.check(lat, lon);
        metrics::verdict(&verdict);
        match verdict {
            Verdict::Keep => out.write_all(b"keep\n"),
            Verdict::Drop { zone, .. } => out
                .write_all(b"drop,")
                .and_then(|()| out.write_all(zone.id().as_bytes()))
                .and_then(|()| out.write_all(b"\n")),
            Verdict::BadPosition => unreachable!("parse_point checks the ranges"),
        }
        .map_err(Error::Output)?;
    }
}

/// Parses `lat,lon` (surrounding spaces and a CR allowed). The problem never quotes the
/// line, which may hold a position.
fn parse_point(line: &[u8]) -> Result<(f64, f64), &'static str> {
    const SHAPE: &str = "expected `lat,lon`: two decimal numbers (WGS-84 degrees) and a comma";
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8 text")?;
    let (lat, lon) = text
        .trim_end_matches(['\n', '\r'])
        .split_once(',')
        .ok_or(SHAPE)?;
    let lat: f64 = lat.trim().parse().map_err(|_| SHAPE)?;
    let lon: f64 = lon.trim().parse().map_err(|_| SHAPE)?;
    if !(-90.0..=90.0).contains(&lat) {
        return Err("latitude out of range -90..90 (the order is lat,lon)");
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err("longitude out of range -180..180");
    }
    Ok((lat, lon))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: ZonesCommand,
    }

    fn sample() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/zones/sample.geojson"))
    }

    fn run_to_string(args: &[&str], input: &str) -> Result<String, Error> {
        let cli = Cli::try_parse_from(std::iter::once("zones").chain(args.iter().copied()))
            .expect("arguments parse");
        let mut out = Vec::new();
        run(cli.cmd, input.as_bytes(), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn check_prints_the_summary_of_the_sample() {
        let path = sample();
        let out = run_to_string(&["check", path.to_str().unwrap()], "").unwrap();
        assert!(
            out.contains("valid\nzones: 6 (military 2, government 3, other 1)"),
            "{out}"
        );
        assert!(out.contains("WGS84 3, GCJ02 3"), "{out}");
        assert!(out.contains("holes: 1"), "{out}");
    }

    #[test]
    fn test_explains_inside_buffer_and_keep() {
        let path = sample();
        let zones = path.to_str().unwrap();
        // Inside the Beijing military compound.
        let out = run_to_string(&["test", "39.9435", "116.2570", "--zones", zones], "").unwrap();
        assert!(
            out.starts_with("drop: inside zone bj-mil-west (military)"),
            "{out}"
        );
        // 100 m west of its west edge (lon 116.2500; 1 mdeg of longitude is ~85 m here).
        let out = run_to_string(&["test", "39.9435", "116.24883", "--zones", zones], "").unwrap();
        assert!(
            out.starts_with("drop: 99.") || out.starts_with("drop: 100."),
            "{out}"
        );
        assert!(out.contains("within its 500 m buffer"), "{out}");
        let out = run_to_string(&["test", "-33.86", "151.2", "--zones", zones], "").unwrap();
        assert_eq!(out, "keep: no zone or buffer holds this point\n");
    }

    #[test]
    fn classify_answers_every_line_in_order() {
        let path = sample();
        let input = "39.9435,116.2570\n -33.86 , 151.2\r\n39.9435,116.24883\n0,0";
        let out = run_to_string(&["classify", "--zones", path.to_str().unwrap()], input);
        assert_eq!(
            out.unwrap(),
            "drop,bj-mil-west\nkeep\ndrop,bj-mil-west\nkeep\n"
        );
    }

    #[test]
    fn classify_names_the_malformed_line() {
        let path = sample();
        let zones = path.to_str().unwrap();
        for (input, expected) in [
            ("0,0\n39.9 116.2\n", "input line 2: expected `lat,lon`"),
            (
                "0,0\n0,0\n116.2,39.9\n",
                "input line 3: latitude out of range",
            ),
            ("\n", "input line 1: expected `lat,lon`"),
            ("1,NaN\n", "input line 1: longitude out of range"),
        ] {
            let err = run_to_string(&["classify", "--zones", zones], input).unwrap_err();
            assert_eq!(err.code(), inland_core::ErrorCode::InvalidInput);
            assert!(err.to_string().starts_with(expected), "{err}");
            assert!(
                !err.to_string().contains("116.2"),
                "never echoes positions: {err}"
            );
        }
    }

    #[test]
    fn a_missing_zone_file_is_not_found() {
        let err = run_to_string(&["check", "/nonexistent/zones.geojson"], "").unwrap_err();
        assert_eq!(err.code(), inland_core::ErrorCode::NotFound);
        assert!(err.to_string().contains("/nonexistent/zones.geojson"));
    }
}
