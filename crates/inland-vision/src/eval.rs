//! Scores the anonymizer on a labelled folder laid out like the anon-dev set: JPEGs plus a
//! `labels.json` with face and plate boxes. An object counts as covered when at least 90 %
//! of its labelled box was destroyed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::geometry::Rect;
use crate::{Anonymizer, Error};

/// Share of a labelled box that must be destroyed for the object to count as covered.
pub const COVERED: f32 = 0.9;

#[derive(Debug, Clone, Deserialize)]
pub struct Dataset {
    #[serde(skip)]
    pub dir: PathBuf,
    pub images: Vec<LabelledImage>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LabelledImage {
    pub file: String,
    pub width: usize,
    pub height: usize,
    #[serde(default)]
    pub faces: Vec<FaceLabel>,
    #[serde(default)]
    pub plates: Vec<PlateLabel>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FaceLabel {
    #[serde(rename = "box")]
    pub bbox: [u32; 4],
    /// "normal" or "small" (under 24 px tall).
    pub difficulty: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlateLabel {
    #[serde(rename = "box")]
    pub bbox: [u32; 4],
    /// "blue" or "green".
    #[serde(default)]
    pub kind: String,
}

impl Dataset {
    pub fn load(dir: &Path) -> Result<Dataset, Error> {
        let path = dir.join("labels.json");
        let io = |reason: String| Error::Io {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| io(e.to_string()))?;
        let mut set: Dataset =
            serde_json::from_str(&text).map_err(|e| io(format!("not a labels file: {e}")))?;
        set.dir = dir.to_path_buf();
        Ok(set)
    }
}

/// Covered and labelled objects of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tally {
    pub covered: usize,
    pub total: usize,
}

impl Tally {
    fn add(&mut self, covered: bool) {
        self.covered += usize::from(covered);
        self.total += 1;
    }
    /// None when nothing of this kind was labelled.
    pub fn recall(&self) -> Option<f64> {
        (self.total > 0).then(|| self.covered as f64 / self.total as f64)
    }
}

/// One labelled object that was not covered.
#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    pub file: String,
    pub class: String,
    pub bbox: [u32; 4],
    pub coverage: f32,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub images: usize,
    pub faces_normal: Tally,
    pub faces_small: Tally,
    pub plates_blue: Tally,
    pub plates_green: Tally,
    pub plates_other: Tally,
    /// Mean over images of the share of the frame destroyed.
    pub mean_area_destroyed: f64,
    /// Time spent in `anonymize_jpeg` (decode to encode), over all images.
    pub elapsed: Duration,
    pub misses: Vec<Miss>,
}

impl Report {
    pub fn faces(&self) -> Tally {
        sum(&[self.faces_normal, self.faces_small])
    }
    pub fn plates(&self) -> Tally {
        sum(&[self.plates_blue, self.plates_green, self.plates_other])
    }
    pub fn frames_per_s(&self) -> f64 {
        self.images as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// The one-line summary, keys in this order: recalls are null when the folder labels
    /// no such object.
    pub fn json(&self) -> String {
        let n = |v: Option<f64>| {
            v.map_or("null".to_string(), |v| {
                serde_json::Value::from(v).to_string()
            })
        };
        format!(
            r#"{{"faces":{{"recall":{},"normal_recall":{},"small_recall":{}}},"plates":{{"recall":{}}},"mean_area_destroyed":{},"frames_per_s":{}}}"#,
            n(self.faces().recall()),
            n(self.faces_normal.recall()),
            n(self.faces_small.recall()),
            n(self.plates().recall()),
            n(Some(self.mean_area_destroyed)),
            n(Some(self.frames_per_s())),
        )
    }
}

fn sum(t: &[Tally]) -> Tally {
    t.iter().fold(Tally::default(), |a, b| Tally {
        covered: a.covered + b.covered,
        total: a.total + b.total,
    })
}

/// Runs every image through `anonymize_jpeg` and scores what it destroyed.
pub fn evaluate(anonymizer: &Anonymizer, set: &Dataset) -> Result<Report, Error> {
    let mut report = Report::default();
    let mut area = 0.0;
    for image in &set.images {
        let path = set.dir.join(&image.file);
        let jpeg = std::fs::read(&path).map_err(|e| Error::Io {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let started = Instant::now();
        let out = anonymizer.anonymize_jpeg(&jpeg)?;
        report.elapsed += started.elapsed();
        let rects: Vec<Rect> = out
            .faces
            .iter()
            .chain(&out.plates)
            .map(|d| d.redacted)
            .collect();
        area += area_destroyed(&rects, image.width, image.height);
        let mut misses = Vec::new();
        let mut check = |class: &str, bbox: [u32; 4]| {
            let c = coverage(&rects, bbox);
            if c < COVERED {
                misses.push(Miss {
                    file: image.file.clone(),
                    class: class.to_string(),
                    bbox,
                    coverage: c,
                });
            }
            c >= COVERED
        };
        for f in &image.faces {
            if f.difficulty == "small" {
                report.faces_small.add(check("small face", f.bbox));
            } else {
                report.faces_normal.add(check("face", f.bbox));
            }
        }
        for p in &image.plates {
            match p.kind.as_str() {
                "blue" => report.plates_blue.add(check("blue plate", p.bbox)),
                "green" => report.plates_green.add(check("green plate", p.bbox)),
                _ => report.plates_other.add(check("plate", p.bbox)),
            }
        }
        report.misses.append(&mut misses);
        report.images += 1;
    }
    report.mean_area_destroyed = if report.images > 0 {
        area / report.images as f64
    } else {
        0.0
    };
    Ok(report)
}

/// Share of the labelled box [x1, y1, x2, y2) inside the union of `rects`.
pub fn coverage(rects: &[Rect], bbox: [u32; 4]) -> f32 {
    let [x1, y1, x2, y2] = bbox;
    let (w, h) = (
        x2.saturating_sub(x1) as usize,
        y2.saturating_sub(y1) as usize,
    );
    if w == 0 || h == 0 {
        return 1.0;
    }
    let mut hit = vec![false; w * h];
    for r in rects {
        for y in r.y1.max(y1)..r.y2.min(y2) {
            for x in r.x1.max(x1)..r.x2.min(x2) {
                hit[(y - y1) as usize * w + (x - x1) as usize] = true;
            }
        }
    }
    hit.iter().filter(|&&v| v).count() as f32 / (w * h) as f32
}

/// Share of a `width` x `height` frame inside the union of `rects`.
pub fn area_destroyed(rects: &[Rect], width: usize, height: usize) -> f64 {
    coverage(rects, [0, 0, width as u32, height as u32]) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_counts_the_union_once() {
        let a = Rect {
            x1: 0,
            y1: 0,
            x2: 6,
            y2: 10,
        };
        let b = Rect {
            x1: 4,
            y1: 0,
            x2: 8,
            y2: 10,
        };
        // Box 0..10 x 0..10: columns 0..8 covered, overlap 4..6 counted once.
        assert_eq!(coverage(&[a, b], [0, 0, 10, 10]), 0.8);
        assert_eq!(coverage(&[], [0, 0, 10, 10]), 0.0);
        assert_eq!(coverage(&[a], [20, 20, 30, 30]), 0.0);
        assert_eq!(coverage(&[a], [1, 1, 5, 5]), 1.0);
        assert!((area_destroyed(&[a, b], 20, 10) - 0.4).abs() < 1e-6);
    }

    #[test]
    fn tallies_and_summary_json() {
        let mut r = Report {
            images: 2,
            elapsed: Duration::from_millis(500),
            ..Report::default()
        };
        r.faces_normal.add(true);
        r.faces_normal.add(false);
        r.plates_green.add(true);
        let line = r.json();
        assert!(
            line.starts_with(
                r#"{"faces":{"recall":0.5,"normal_recall":0.5,"small_recall":null},"plates""#
            ),
            "{line}"
        );
        let j: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(j["faces"]["normal_recall"], 0.5);
        assert_eq!(j["faces"]["recall"], 0.5);
        assert!(j["faces"]["small_recall"].is_null());
        assert_eq!(j["plates"]["recall"], 1.0);
        assert_eq!(j["frames_per_s"], 4.0);
    }

    #[test]
    fn labels_parse_with_extra_fields() {
        let set: Dataset = serde_json::from_str(
            r#"{"images": [{"file": "a.jpg", "width": 4, "height": 3, "source": "x",
                "faces": [{"box": [0, 0, 2, 2], "difficulty": "small"}],
                "plates": [{"box": [1, 1, 3, 2], "corners": [[1, 1]], "text": "A", "kind": "green"}]}]}"#,
        )
        .unwrap();
        assert_eq!(set.images[0].faces[0].bbox, [0, 0, 2, 2]);
        assert_eq!(set.images[0].plates[0].kind, "green");
    }
}
