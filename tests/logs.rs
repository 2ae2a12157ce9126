//! What `inland run` writes while a simulated fleet drives through the whole embedded
//! pipeline, read as an SRE's log pipeline reads it: every log line is one JSON object,
//! and nothing it prints, at `info` and at `debug` for Inland's own crates, carries a VIN,
//! a position, a pseudonym key or pixel data.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inland_simulator::SimulatorConfig;
use inland_tests::inland_binary;
use serde_json::Value;

/// How long the fleet drives: two of the pipeline's 5 s progress reports.
const DRIVE: Duration = Duration::from_secs(12);

/// Keys a log field must never have.
const POSITION_FIELDS: [&str; 7] = [
    "lat",
    "lon",
    "lng",
    "latitude",
    "longitude",
    "position",
    "location",
];

fn read_all(mut from: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        from.read_to_string(&mut text).expect("UTF-8 output");
        text
    })
}

/// Ctrl-C, as a user stops `inland run`; then waits for it to drain and exit.
fn interrupt(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("inland run did not stop within 60 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Numbers with four or more decimals: how a coordinate would be written.
fn fine_numbers(text: &str) -> Vec<f64> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .filter(|t| t.split_once('.').is_some_and(|(_, f)| f.len() >= 4))
        .filter_map(|t| t.parse().ok())
        .collect()
}

/// Whether text holds a latitude and a longitude near the fleet's city.
fn holds_a_position(text: &str, fleet: &SimulatorConfig) -> bool {
    let numbers = fine_numbers(text);
    let near = |c: f64| move |x: &f64| (x - c).abs() < 0.5;
    numbers.iter().any(near(fleet.center_lat)) && numbers.iter().any(near(fleet.center_lon))
}

/// A log event as text without its timestamp, whose seconds look like anything.
fn without_timestamp(event: &Value) -> String {
    let mut event = event.clone();
    if let Some(fields) = event.as_object_mut() {
        fields.remove("timestamp");
    }
    event.to_string()
}

/// Keys and string values anywhere in a JSON value.
fn walk<'a>(value: &'a Value, keys: &mut Vec<&'a str>, strings: &mut Vec<&'a str>) {
    match value {
        Value::Object(fields) => {
            for (k, v) in fields {
                keys.push(k);
                walk(v, keys, strings);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, keys, strings)),
        Value::String(s) => strings.push(s),
        _ => {}
    }
}

/// Base64 (or hex) text long enough to be image data.
fn looks_like_pixels(s: &str) -> bool {
    s.contains("/9j/")
        || (s.len() >= 256
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)))
}

/// The `secret = "…"` values of the pseudonym key file.
fn key_secrets(path: &std::path::Path) -> Vec<String> {
    let file = std::fs::read_to_string(path).expect("inland run wrote its pseudonym keys");
    let secrets: Vec<String> = file
        .lines()
        .filter_map(|l| l.trim().strip_prefix("secret"))
        .filter_map(|rest| rest.split('"').nth(1))
        .map(str::to_owned)
        .collect();
    assert!(!secrets.is_empty(), "no secret in {}", path.display());
    secrets
}

#[test]
fn inland_run_logs_json_without_vins_positions_keys_or_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(inland_binary())
        .args(["run", "--simulate", "--data-dir"])
        .arg(dir.path())
        .env_remove("INLAND_CONFIG")
        .env("INLAND__OBSERVABILITY__LOG_FORMAT", "json")
        .env("INLAND__OBSERVABILITY__ADMIN_LISTEN", "127.0.0.1:0")
        .env("INLAND__GATEWAY__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info,inland=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting inland run");
    let stdout = read_all(child.stdout.take().unwrap());
    let stderr = read_all(child.stderr.take().unwrap());
    std::thread::sleep(DRIVE);
    interrupt(&mut child);
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let everything = format!("{stdout}\n{stderr}");

    let events: Vec<Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    // The fleet's data went all the way through, so there was something to leak.
    let anonymized = events
        .iter()
        .filter_map(|e| e.get("anonymized").and_then(Value::as_u64))
        .max()
        .unwrap_or(0);
    assert!(
        anonymized > 0,
        "nothing was anonymized in {DRIVE:?}: {stderr}"
    );
    assert!(
        events.iter().any(|e| e["level"] == "DEBUG"),
        "debug logging was not on, so it was not checked"
    );

    let fleet = SimulatorConfig::default();
    for vin in inland_simulator::vins(fleet.seed, fleet.vehicles) {
        assert!(
            !everything.contains(vin.as_str()),
            "a VIN of the fleet is in the output"
        );
    }
    for secret in key_secrets(&dir.path().join("pseudonym-keys.toml")) {
        assert!(
            !everything.contains(&secret),
            "a pseudonym key is in the output"
        );
    }
    for event in &events {
        let (mut keys, mut strings) = (Vec::new(), Vec::new());
        walk(event, &mut keys, &mut strings);
        let named = keys
            .iter()
            .find(|k| POSITION_FIELDS.contains(&k.to_ascii_lowercase().as_str()));
        assert!(named.is_none(), "a log field named {named:?}: {event}");
        assert!(
            !holds_a_position(&without_timestamp(event), &fleet),
            "a position: {event}"
        );
        assert!(
            !strings.iter().any(|s| looks_like_pixels(s)),
            "image data: {event}"
        );
    }
    for line in stdout.lines() {
        assert!(!holds_a_position(line, &fleet), "a position: {line}");
    }
}
