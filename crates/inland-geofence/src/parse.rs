//! Zone files: a GeoJSON FeatureCollection whose features are Polygons or MultiPolygons with
//! the properties `id` (string), `category` (`military`, `government`, `other`), `buffer_m`
//! (metres ≥ 0) and `datum` (`WGS84` or `GCJ02`, WGS84 when absent). Everything is checked
//! before anything is used, and every error names the feature and what to fix.

use std::collections::HashMap;

use geo::{Coord, LineString, MultiPolygon, Polygon};
use serde_json::{Map, Value};

use crate::geometry::{MAX_BUFFER_M, MAX_EXTENT_DEG};
use crate::{Category, Datum, Error, Zone, datum};

pub(crate) fn zones(text: &[u8]) -> Result<Vec<Zone>, Error> {
    let root: Value = serde_json::from_slice(text).map_err(Error::Json)?;
    let root = root
        .as_object()
        .ok_or_else(|| Error::Collection("expected a GeoJSON FeatureCollection object".into()))?;
    match root.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => {}
        Some(other) => {
            return Err(Error::Collection(format!(
                "expected a GeoJSON FeatureCollection, found type {other:?}"
            )));
        }
        None => {
            return Err(Error::Collection(
                "missing \"type\": \"FeatureCollection\"".into(),
            ));
        }
    }
    let features = root
        .get("features")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Collection("missing the \"features\" array".into()))?;
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(features.len());
    let mut zones = Vec::with_capacity(features.len());
    for (index, feature) in features.iter().enumerate() {
        let zone = parse_feature(index, feature)?;
        if let Some(first) = seen.insert(zone.id().to_owned(), index) {
            return Err(Error::feature(
                index,
                Some(zone.id()),
                format!("duplicate id: feature {first} has the same id; ids must be unique"),
            ));
        }
        zones.push(zone);
    }
    Ok(zones)
}

fn parse_feature(index: usize, feature: &Value) -> Result<Zone, Error> {
    let fail = |id: Option<&str>, problem: String| Error::feature(index, id, problem);
    let feature = feature
        .as_object()
        .ok_or_else(|| fail(None, "not a JSON object".into()))?;
    if feature.get("type").and_then(Value::as_str) != Some("Feature") {
        return Err(fail(None, "missing \"type\": \"Feature\"".into()));
    }
    let props = feature
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| fail(None, "missing the \"properties\" object".into()))?;

    let id = match props.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.as_str(),
        Some(Value::String(_)) => return Err(fail(None, "properties.id is empty".into())),
        Some(_) => return Err(fail(None, "properties.id must be a string".into())),
        None => return Err(fail(None, "missing properties.id (a unique string)".into())),
    };
    // `inland zones classify` prints ids as `drop,ID` lines.
    if id.contains(',') || id.chars().any(char::is_control) {
        return Err(fail(
            Some(id),
            "properties.id must not contain commas or control characters".into(),
        ));
    }
    let fail = |problem: String| Error::feature(index, Some(id), problem);

    let category = match props.get("category") {
        Some(Value::String(s)) => Category::parse(s).ok_or_else(|| {
            fail(format!(
                "unknown category {s:?}: expected military, government or other"
            ))
        })?,
        Some(_) => return Err(fail("properties.category must be a string".into())),
        None => {
            return Err(fail(
                "missing properties.category (military, government or other)".into(),
            ));
        }
    };

    let buffer_m = match props.get("buffer_m") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(_) => {
            return Err(fail(
                "properties.buffer_m must be a number of metres".into(),
            ));
        }
        None => {
            return Err(fail(
                "missing properties.buffer_m (metres, 0 or more)".into(),
            ));
        }
    };
    if !(0.0..=MAX_BUFFER_M).contains(&buffer_m) {
        return Err(fail(format!(
            "buffer_m {buffer_m} is out of range: metres from 0 to {MAX_BUFFER_M}"
        )));
    }

    let source_datum = match props.get("datum") {
        None | Some(Value::Null) => Datum::Wgs84,
        Some(Value::String(s)) => Datum::parse(s)
            .ok_or_else(|| fail(format!("unknown datum {s:?}: expected WGS84 or GCJ02")))?,
        Some(_) => return Err(fail("properties.datum must be a string".into())),
    };

    let geometry = feature
        .get("geometry")
        .and_then(Value::as_object)
        .ok_or_else(|| fail("missing geometry (a Polygon or MultiPolygon)".into()))?;
    let polygons = parse_geometry(geometry, source_datum).map_err(fail)?;
    let geometry = MultiPolygon::new(polygons);
    check_extent(&geometry).map_err(fail)?;
    Ok(Zone::new(
        id.to_owned(),
        category,
        buffer_m,
        source_datum,
        geometry,
    ))
}

fn parse_geometry(geometry: &Map<String, Value>, source: Datum) -> Result<Vec<Polygon>, String> {
    let coords = geometry.get("coordinates");
    match geometry.get("type").and_then(Value::as_str) {
        Some("Polygon") => Ok(vec![parse_polygon(coords, source, None)?]),
        Some("MultiPolygon") => {
            let parts = coords
                .and_then(Value::as_array)
                .ok_or("MultiPolygon coordinates must be an array of polygons")?;
            if parts.is_empty() {
                return Err("MultiPolygon has no polygons".into());
            }
            parts
                .iter()
                .enumerate()
                .map(|(i, p)| parse_polygon(Some(p), source, Some(i)))
                .collect()
        }
        Some(other) => Err(format!(
            "geometry type {other} is not a zone: use Polygon or MultiPolygon"
        )),
        None => Err("geometry has no \"type\"".into()),
    }
}

fn parse_polygon(
    coords: Option<&Value>,
    source: Datum,
    part: Option<usize>,
) -> Result<Polygon, String> {
    let at = part.map(|i| format!("polygon {i}: ")).unwrap_or_default();
    let rings = coords
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{at}coordinates must be an array of rings"))?;
    if rings.is_empty() {
        return Err(format!("{at}polygon has no rings"));
    }
    let mut parsed = rings.iter().enumerate().map(|(r, ring)| {
        let what = if r == 0 { "outer ring" } else { "hole" };
        parse_ring(ring, source).map_err(|e| format!("{at}ring {r} ({what}): {e}"))
    });
    let exterior = parsed.next().expect("non-empty")?;
    let interiors = parsed.collect::<Result<Vec<_>, _>>()?;
    Ok(Polygon::new(exterior, interiors))
}

fn parse_ring(ring: &Value, source: Datum) -> Result<LineString, String> {
    let positions = ring.as_array().ok_or("must be an array of positions")?;
    let mut coords = Vec::with_capacity(positions.len());
    for (i, pos) in positions.iter().enumerate() {
        coords.push(parse_position(pos).map_err(|e| format!("position {i}: {e}"))?);
    }
    if coords.len() < 4 {
        return Err(format!(
            "has {} positions; a ring needs at least 4 (3 corners and the closing one)",
            coords.len()
        ));
    }
    let (first, last) = (coords[0], coords[coords.len() - 1]);
    if first != last {
        return Err(format!(
            "is not closed: the last position [{}, {}] must repeat the first [{}, {}]",
            last.x, last.y, first.x, first.y
        ));
    }
    // Twice the signed area in square degrees (shoelace); a ring with (almost) none has
    // collinear or repeated vertices and encloses nothing.
    let area2: f64 = coords
        .windows(2)
        .map(|w| (w[0].x - first.x) * (w[1].y - first.y) - (w[1].x - first.x) * (w[0].y - first.y))
        .sum();
    if area2.abs() < 1e-14 {
        return Err("is degenerate: its vertices enclose no area".into());
    }
    if source == Datum::Gcj02 {
        for c in &mut coords {
            let (lat, lon) = datum::gcj02_to_wgs84(c.y, c.x);
            *c = Coord { x: lon, y: lat };
        }
    }
    Ok(LineString::new(coords))
}

fn parse_position(pos: &Value) -> Result<Coord, String> {
    let pos = pos
        .as_array()
        .ok_or("must be an array [longitude, latitude]")?;
    let (Some(lon), Some(lat)) = (
        pos.first().and_then(Value::as_f64),
        pos.get(1).and_then(Value::as_f64),
    ) else {
        return Err("must start with two numbers [longitude, latitude]".into());
    };
    if !(-180.0..=180.0).contains(&lon) {
        return Err(format!("longitude {lon} is outside -180..180"));
    }
    if !(-90.0..=90.0).contains(&lat) {
        return Err(format!(
            "latitude {lat} is outside -90..90 (GeoJSON order is [longitude, latitude])"
        ));
    }
    Ok(Coord { x: lon, y: lat })
}

fn check_extent(geometry: &MultiPolygon) -> Result<(), String> {
    use geo::BoundingRect;
    let r = geometry.bounding_rect().expect("rings have positions");
    let (w, h) = (r.width(), r.height());
    if w > MAX_EXTENT_DEG || h > MAX_EXTENT_DEG {
        return Err(format!(
            "spans {w:.3} x {h:.3} degrees; a zone may span at most {MAX_EXTENT_DEG} degrees \
             (split it, and do not cross the antimeridian)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collection(features: &[String]) -> String {
        format!(
            r#"{{"type":"FeatureCollection","features":[{}]}}"#,
            features.join(",")
        )
    }

    fn feature(props: &str, geometry: &str) -> String {
        format!(r#"{{"type":"Feature","properties":{{{props}}},"geometry":{geometry}}}"#)
    }

    const SQUARE: &str = r#"{"type":"Polygon","coordinates":[[[116.0,39.0],[116.01,39.0],[116.01,39.01],[116.0,39.01],[116.0,39.0]]]}"#;
    const PROPS: &str = r#""id":"a","category":"military","buffer_m":100"#;

    fn error(props: &str, geometry: &str) -> String {
        let text = collection(&[feature(PROPS, SQUARE), feature(props, geometry)]);
        zones(text.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn a_valid_feature_loads() {
        let z = zones(collection(&[feature(PROPS, SQUARE)]).as_bytes()).unwrap();
        assert_eq!(z.len(), 1);
        assert_eq!(z[0].id(), "a");
        assert_eq!(z[0].category(), Category::Military);
        assert_eq!(z[0].buffer_m(), 100.0);
        assert_eq!(z[0].source_datum(), Datum::Wgs84);
    }

    #[test]
    fn gcj02_zones_are_converted_vertex_by_vertex() {
        let props = r#""id":"g","category":"government","buffer_m":0,"datum":"GCJ02""#;
        let z = zones(collection(&[feature(props, SQUARE)]).as_bytes()).unwrap();
        let first = z[0].geometry().0[0].exterior().0[0];
        let (lat, lon) = datum::gcj02_to_wgs84(39.0, 116.0);
        assert_eq!((first.y, first.x), (lat, lon));
        assert!((first.x - 116.0).abs() > 1e-3, "moved by the GCJ-02 offset");
    }

    #[test]
    fn errors_name_the_feature_and_the_problem() {
        let cases: &[(&str, &str, &str)] = &[
            (
                r#""category":"military","buffer_m":1"#,
                SQUARE,
                "feature 1 (no id): missing properties.id",
            ),
            (
                r#""id":"a","category":"military","buffer_m":1"#,
                SQUARE,
                "feature 1 (id \"a\"): duplicate id: feature 0",
            ),
            (
                r#""id":"b","category":"army","buffer_m":1"#,
                SQUARE,
                "unknown category \"army\"",
            ),
            (
                r#""id":"b","category":"other","buffer_m":-5"#,
                SQUARE,
                "buffer_m -5 is out of range",
            ),
            (
                r#""id":"b","category":"other","buffer_m":"NaN""#,
                SQUARE,
                "buffer_m must be a number",
            ),
            (
                r#""id":"b","category":"other""#,
                SQUARE,
                "missing properties.buffer_m",
            ),
            (
                r#""id":"b","category":"other","buffer_m":1,"datum":"BD09""#,
                SQUARE,
                "unknown datum \"BD09\"",
            ),
            (
                PROPS_B,
                r#"{"type":"Point","coordinates":[116,39]}"#,
                "geometry type Point is not a zone",
            ),
            (
                PROPS_B,
                r#"{"type":"Polygon","coordinates":[[[116,39],[116.1,39],[116.1,39.1],[116,39.1]]]}"#,
                "ring 0 (outer ring): is not closed",
            ),
            (
                PROPS_B,
                r#"{"type":"Polygon","coordinates":[[[116,39],[116.1,39],[116,39]]]}"#,
                "has 3 positions",
            ),
            (
                PROPS_B,
                r#"{"type":"Polygon","coordinates":[[[116,39],[116.1,39],[116.2,39],[116,39]]]}"#,
                "is degenerate",
            ),
            (
                PROPS_B,
                r#"{"type":"Polygon","coordinates":[[[116,39],[116.1,39],[116.1,95],[116,39]]]}"#,
                "position 2: latitude 95 is outside -90..90",
            ),
            (
                PROPS_B,
                r#"{"type":"Polygon","coordinates":[[[200,39],[116.1,39],[116.1,40],[200,39]]]}"#,
                "position 0: longitude 200 is outside",
            ),
            (
                PROPS_B,
                r#"{"type":"MultiPolygon","coordinates":[[[[116,39],[116.1,39],[116.1,39.1],[116,39]]],[[[116,39],[116.1,39],[116.1,39.1],[116,39]],[[116,39]]]]}"#,
                "polygon 1: ring 1 (hole): has 1 positions",
            ),
            (
                PROPS_B,
                r#"{"type":"Polygon","coordinates":[[[100,30],[125,30],[125,31],[100,30]]]}"#,
                "a zone may span at most 20 degrees",
            ),
            (PROPS_B, "null", "missing geometry"),
        ];
        for (props, geometry, expected) in cases {
            let got = error(props, geometry);
            assert!(
                got.contains(expected),
                "{got:?} should contain {expected:?}"
            );
            assert!(got.starts_with("zone file, feature 1"), "{got:?}");
        }
    }

    const PROPS_B: &str = r#""id":"b","category":"other","buffer_m":1"#;

    #[test]
    fn collection_level_errors() {
        for (text, expected) in [
            ("{", "not valid JSON"),
            ("[]", "expected a GeoJSON FeatureCollection object"),
            (r#"{"type":"Feature"}"#, "found type \"Feature\""),
            (
                r#"{"type":"FeatureCollection"}"#,
                "missing the \"features\" array",
            ),
        ] {
            let got = zones(text.as_bytes()).unwrap_err().to_string();
            assert!(
                got.contains(expected),
                "{got:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn ids_that_would_break_classify_output_are_refused() {
        let props = r#""id":"a,b","category":"other","buffer_m":1"#;
        let got = zones(collection(&[feature(props, SQUARE)]).as_bytes()).unwrap_err();
        assert!(got.to_string().contains("must not contain commas"));
    }
}
