//! Boxes in frame pixels: overlap, non-maximum suppression and margins.

use serde::Serialize;

use crate::config::Margin;

/// An axis-aligned box in frame pixels (x2/y2 exclusive), possibly fractional.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BoxF {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BoxF {
    pub fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self { x1, y1, x2, y2 }
    }
    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }
    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }
    pub fn intersection(&self, o: &BoxF) -> f32 {
        let w = (self.x2.min(o.x2) - self.x1.max(o.x1)).max(0.0);
        let h = (self.y2.min(o.y2) - self.y1.max(o.y1)).max(0.0);
        w * h
    }
    pub fn iou(&self, o: &BoxF) -> f32 {
        let i = self.intersection(o);
        let u = self.area() + o.area() - i;
        if u > 0.0 { i / u } else { 0.0 }
    }
    /// Grows the box by the margin on every side and clips it to the frame, rounding
    /// outwards so that no pixel the box touches is left out.
    pub fn enlarge(&self, m: &Margin, width: usize, height: usize) -> Rect {
        let dx = (self.width() * m.x).max(m.min_px);
        let dy = (self.height() * m.y).max(m.min_px);
        Rect::clipped(
            self.x1 - dx,
            self.y1 - dy,
            self.x2 + dx,
            self.y2 + dy,
            width,
            height,
        )
    }
}

/// A box with a detector's confidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub bbox: BoxF,
    pub score: f32,
}

/// Greedy non-maximum suppression: keeps the best item of every group whose boxes
/// overlap by more than `iou`. Sorted by descending score on return.
pub fn nms<T>(mut items: Vec<T>, iou: f32, scored: impl Fn(&T) -> Scored) -> Vec<T> {
    items.sort_by(|a, b| scored(b).score.total_cmp(&scored(a).score));
    let mut keep: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        let b = scored(&item).bbox;
        if keep.iter().all(|k| scored(k).bbox.iou(&b) <= iou) {
            keep.push(item);
        }
    }
    keep
}

/// Whole pixels of a frame: columns x1..x2, rows y1..y2 (exclusive ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rect {
    pub x1: u32,
    pub y1: u32,
    pub x2: u32,
    pub y2: u32,
}

impl Rect {
    pub fn clipped(x1: f32, y1: f32, x2: f32, y2: f32, width: usize, height: usize) -> Rect {
        let cx = |v: f32| v.clamp(0.0, width as f32) as u32;
        let cy = |v: f32| v.clamp(0.0, height as f32) as u32;
        Rect {
            x1: cx(x1.floor()),
            y1: cy(y1.floor()),
            x2: cx(x2.ceil()),
            y2: cy(y2.ceil()),
        }
    }
    pub fn width(&self) -> u32 {
        self.x2.saturating_sub(self.x1)
    }
    pub fn height(&self) -> u32 {
        self.y2.saturating_sub(self.y1)
    }
    pub fn is_empty(&self) -> bool {
        self.width() == 0 || self.height() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x1: f32, y1: f32, x2: f32, y2: f32, score: f32) -> Scored {
        Scored {
            bbox: BoxF::new(x1, y1, x2, y2),
            score,
        }
    }

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = BoxF::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&BoxF::new(20.0, 20.0, 30.0, 30.0)), 0.0);
        let half = a.iou(&BoxF::new(5.0, 0.0, 15.0, 10.0));
        assert!((half - 50.0 / 150.0).abs() < 1e-6);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_and_all_separate_ones() {
        let kept = nms(
            vec![
                s(0.0, 0.0, 10.0, 10.0, 0.5),
                s(1.0, 1.0, 11.0, 11.0, 0.9),
                s(50.0, 50.0, 60.0, 60.0, 0.3),
            ],
            0.3,
            |s| *s,
        );
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.9);
        assert_eq!(kept[1].score, 0.3);
    }

    #[test]
    fn enlarge_grows_by_fraction_or_minimum_and_clips_to_the_frame() {
        let m = Margin {
            x: 0.5,
            y: 0.1,
            min_px: 2.0,
        };
        let r = BoxF::new(10.0, 10.0, 20.0, 30.0).enlarge(&m, 100, 100);
        // 50 % of the width (5 px) each side; 10 % of the height is 2 px, the minimum.
        assert_eq!(
            r,
            Rect {
                x1: 5,
                y1: 8,
                x2: 25,
                y2: 32
            }
        );
        let edge = BoxF::new(-3.0, 95.5, 4.2, 99.0).enlarge(&m, 100, 100);
        assert_eq!(
            edge,
            Rect {
                x1: 0,
                y1: 93,
                x2: 8,
                y2: 100
            }
        );
    }
}
