//! The pipeline: decode, find faces and plates, destroy them, re-encode.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Instant;

use serde::Serialize;

use crate::config::{
    FaceConfig, PassScale, PlateConfig, PlateModelKind, ProposalConfig, VisionConfig,
};
use crate::detect::{CenterFace, Detector, Retina};
use crate::frame::Frame;
use crate::geometry::{BoxF, Rect, Scored, nms};
use crate::proposals::{Candidate, Proposer};
use crate::redact::{Noise, pixelate};
use crate::{Error, metrics, runtime};

/// What found an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The whole-frame pass of the model.
    Model,
    /// The model, on an upscaled crop around a plate-coloured candidate.
    Crop,
    /// A plate-coloured candidate destroyed unverified: too small for the model, or one
    /// too many to examine (`max_crops`).
    Colour,
}

/// One destroyed object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// The object as detected (frame px).
    pub bbox: BoxF,
    pub score: f32,
    pub source: Source,
    /// The pixels destroyed: the box grown by the configured margin.
    pub redacted: Rect,
}

/// An anonymized frame: a fresh JPEG without any metadata, and what was destroyed.
#[derive(Debug, Clone)]
pub struct Anonymized {
    pub jpeg: Vec<u8>,
    pub faces: Vec<Detection>,
    pub plates: Vec<Detection>,
}

/// Loaded models and buffers. Share it (`Arc<Anonymizer>`) between threads: each call
/// takes a free worker, so up to `config.workers` frames are processed at once.
pub struct Anonymizer {
    config: VisionConfig,
    workers: Vec<Mutex<Worker>>,
    next: AtomicUsize,
}

struct Worker {
    faces: Option<Box<dyn Detector>>,
    plates: Option<Box<dyn Detector>>,
    proposer: Proposer,
    noise: Noise,
}

impl Anonymizer {
    pub fn load(config: &VisionConfig) -> Result<Anonymizer, Error> {
        config.validate()?;
        let started = Instant::now();
        let env = runtime::environment(&config.resolve_dylib()?)?;
        let face_model = config
            .faces
            .enabled
            .then(|| config.resolve_model(&config.faces.model))
            .transpose()?;
        let plate_model = config
            .plates
            .enabled
            .then(|| config.resolve_model(&config.plates.model))
            .transpose()?;
        let mut workers = Vec::with_capacity(config.workers);
        for _ in 0..config.workers {
            let faces = match &face_model {
                Some(path) => Some(
                    Box::new(CenterFace::load(&env, path, config.intra_threads)?)
                        as Box<dyn Detector>,
                ),
                None => None,
            };
            let plates =
                match (&plate_model, &config.plates.kind) {
                    (Some(path), kind @ PlateModelKind::Retina { .. }) => Some(Box::new(
                        Retina::load(&env, path, kind, config.intra_threads)?,
                    )
                        as Box<dyn Detector>),
                    (None, _) => None,
                };
            workers.push(Mutex::new(Worker {
                faces,
                plates,
                proposer: Proposer::default(),
                noise: Noise::new(),
            }));
        }
        metrics::loaded(
            config.workers,
            config.faces.enabled,
            config.plates.enabled,
            started.elapsed(),
        );
        Ok(Anonymizer {
            config: config.clone(),
            workers,
            next: AtomicUsize::new(0),
        })
    }

    /// Anonymizes one JPEG frame. Any failure (not a JPEG, corrupt, too large, a model
    /// error) is an error: the frame must then not be published.
    pub fn anonymize_jpeg(&self, jpeg: &[u8]) -> Result<Anonymized, Error> {
        let started = Instant::now();
        let result = self.worker().run(&self.config, jpeg);
        match &result {
            Ok(a) => metrics::anonymized(a.faces.len(), a.plates.len(), started.elapsed()),
            Err(e) => metrics::rejected(e),
        }
        result
    }

    fn worker(&self) -> MutexGuard<'_, Worker> {
        let n = self.workers.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            match self.workers[(first + i) % n].try_lock() {
                Ok(guard) => return guard,
                // A worker whose holder panicked has consistent buffers: they are rewritten
                // from scratch for every frame.
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.workers[first]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl Worker {
    fn run(&mut self, config: &VisionConfig, jpeg: &[u8]) -> Result<Anonymized, Error> {
        let mut frame = Frame::decode(jpeg, &config.limits)?;
        let faces = match self.faces.as_deref_mut() {
            Some(model) => find_faces(model, &frame, &config.faces)?,
            None => Vec::new(),
        };
        let plates = match self.plates.as_deref_mut() {
            Some(model) => find_plates(model, &mut self.proposer, &frame, &config.plates)?,
            None => Vec::new(),
        };
        for d in faces.iter().chain(&plates) {
            pixelate(
                &mut frame,
                d.redacted,
                config.redaction.cells,
                config.redaction.noise,
                &mut self.noise,
            );
        }
        let jpeg = frame.encode(config.jpeg_quality)?;
        Ok(Anonymized {
            jpeg,
            faces,
            plates,
        })
    }
}

/// The whole frame scaled per `scale`, each side a multiple of the model's stride.
fn whole_frame_view(frame: &Frame, scale: &PassScale, multiple: usize) -> crate::resample::View {
    let s = scale.scale_for(frame.width, frame.height);
    let side = |v: usize| (((v as f32 * s) / multiple as f32).round() as usize).max(1) * multiple;
    crate::resample::View::whole(frame, side(frame.width), side(frame.height))
}

fn find_faces(
    model: &mut dyn Detector,
    frame: &Frame,
    c: &FaceConfig,
) -> Result<Vec<Detection>, Error> {
    let view = whole_frame_view(frame, &c.scale, model.size_multiple());
    let found = model
        .detect(frame, &[view], c.threshold)?
        .into_iter()
        .flatten()
        .collect();
    Ok(nms(found, c.nms_iou, |s| *s)
        .into_iter()
        .map(|s| Detection {
            bbox: s.bbox,
            score: s.score,
            source: Source::Model,
            redacted: s.bbox.enlarge(&c.margin, frame.width, frame.height),
        })
        .collect())
}

/// Crops fed to the plate model in one batch at most (bounds the input tensor's memory).
const CROP_BATCH: usize = 32;

fn find_plates(
    model: &mut dyn Detector,
    proposer: &mut Proposer,
    frame: &Frame,
    c: &PlateConfig,
) -> Result<Vec<Detection>, Error> {
    let view = whole_frame_view(frame, &c.scale, model.size_multiple());
    let mut found: Vec<(Scored, Source)> = model
        .detect(frame, &[view], c.threshold)?
        .into_iter()
        .flatten()
        .map(|s| (s, Source::Model))
        .collect();

    if c.proposals.enabled {
        // Look closer only where the whole-frame pass could not see well and found nothing.
        let reliable = c.reliable_px / view.scale_x();
        let todo: Vec<Candidate> = proposer
            .find(frame, &c.proposals)
            .into_iter()
            .filter(|k| k.bbox.width() < reliable)
            .filter(|k| {
                !found
                    .iter()
                    .any(|(f, _)| f.bbox.intersection(&k.bbox) >= 0.5 * k.bbox.area())
            })
            .collect();
        let (checked, overflow) = todo.split_at(todo.len().min(c.proposals.max_crops));
        let (mut verified, mut tiny) = (0, 0);
        for chunk in checked.chunks(CROP_BATCH) {
            let views: Vec<_> = chunk.iter().map(|k| crop_view(k, &c.proposals)).collect();
            let results = model.detect(frame, &views, c.verify_threshold)?;
            for (k, in_crop) in chunk.iter().zip(results) {
                let hits: Vec<Scored> = in_crop
                    .into_iter()
                    .filter(|s| s.bbox.intersection(&k.bbox) > 0.0)
                    .collect();
                if !hits.is_empty() {
                    verified += 1;
                    found.extend(hits.into_iter().map(|s| (s, Source::Crop)));
                } else if is_tiny_plate(k, &c.proposals) {
                    tiny += 1;
                    found.push((
                        Scored {
                            bbox: k.bbox,
                            score: 0.0,
                        },
                        Source::Colour,
                    ));
                }
            }
        }
        found.extend(overflow.iter().map(|k| {
            (
                Scored {
                    bbox: k.bbox,
                    score: 0.0,
                },
                Source::Colour,
            )
        }));
        metrics::plate_candidates(checked.len(), verified, tiny, overflow.len());
    }

    // By score; the colour boxes (score 0) survive only where nothing else overlaps.
    Ok(nms(found, c.nms_iou, |(s, _)| *s)
        .into_iter()
        .map(|(s, source)| Detection {
            bbox: s.bbox,
            score: s.score,
            source,
            redacted: s.bbox.enlarge(&c.margin, frame.width, frame.height),
        })
        .collect())
}

/// A crop centred on the candidate, scaled so that it is `target_width` wide.
fn crop_view(k: &Candidate, p: &ProposalConfig) -> crate::resample::View {
    let s = (p.target_width / k.bbox.width().max(1.0)).min(p.max_upscale);
    let (src_w, src_h) = (p.crop[0] as f32 / s, p.crop[1] as f32 / s);
    let (cx, cy) = ((k.bbox.x1 + k.bbox.x2) / 2.0, (k.bbox.y1 + k.bbox.y2) / 2.0);
    crate::resample::View {
        x0: cx - src_w / 2.0,
        y0: cy - src_h / 2.0,
        src_w,
        src_h,
        out_w: p.crop[0],
        out_h: p.crop[1],
    }
}

fn is_tiny_plate(k: &Candidate, p: &ProposalConfig) -> bool {
    k.bbox.width() < p.tiny_width as f32
        && k.fill >= p.tiny_min_fill
        && k.contrast >= p.tiny_min_contrast
}
