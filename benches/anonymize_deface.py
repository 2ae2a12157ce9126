"""deface 1.5.0 on the dev set, one core, for benches/anonymize.rs to compare against.

    python anonymize_deface.py DEV_DIR OUT.json ROUNDS

Speed: deface's own per-image path (deface.deface.image_detect: read, CenterFace, blur,
write) over the dev set's 1280x720 frames with its CLI defaults (threshold 0.2, mask
scale 1.3, blurred ellipses), ONNX Runtime on one intra-op thread (deface would use every
core): ROUNDS rounds, wall and thread CPU seconds each.

Recall: every dev image goes through the same image_detect; the regions deface blurs are
recorded where it draws them (draw_det) and written out, as the inscribed ellipse (what
deface blurs: one 1-px-tall rectangle per row) and as the whole box, for the Rust harness
to score with the same coverage rule as inland-vision.
"""
import json
import os
import sys
import tempfile
import time

import onnxruntime

_Session = onnxruntime.InferenceSession


def _single_threaded(*args, **kwargs):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    kwargs["sess_options"] = options
    return _Session(*args, **kwargs)


onnxruntime.InferenceSession = _single_threaded

import skimage.draw  # noqa: E402
from deface import deface  # noqa: E402
from deface.centerface import CenterFace  # noqa: E402

THRESHOLD, MASK_SCALE = 0.2, 1.3  # deface's CLI defaults


def detect(centerface, src, dst):
    deface.image_detect(
        src, dst, centerface, threshold=THRESHOLD, replacewith="blur", mask_scale=MASK_SCALE,
        ellipse=True, draw_scores=False, enable_preview=False, keep_metadata=False,
    )


def main():
    dev, out, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    labels = json.load(open(os.path.join(dev, "labels.json")))["images"]
    centerface = CenterFace()
    tmp = tempfile.mkdtemp()
    frames = [i["file"] for i in labels if (i["width"], i["height"]) == (1280, 720)]

    def run_frames():
        for f in frames:
            detect(centerface, os.path.join(dev, f), os.path.join(tmp, f))

    run_frames()  # warm-up
    wall, cpu = [], []
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.thread_time()
        run_frames()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.thread_time() - c0)

    drawn = []
    original = deface.draw_det

    def recording(frame, score, det_idx, x1, y1, x2, y2, **kwargs):
        drawn.append((int(x1), int(y1), int(x2), int(y2)))
        return original(frame, score, det_idx, x1, y1, x2, y2, **kwargs)

    deface.draw_det = recording
    regions = {}
    for image in labels:
        drawn.clear()
        detect(centerface, os.path.join(dev, image["file"]), os.path.join(tmp, image["file"]))
        boxes, rows = [], []
        for x1, y1, x2, y2 in drawn:
            boxes.append([x1, y1, x2, y2])
            # The same ellipse draw_det blurs, as one span per row.
            ey, ex = skimage.draw.ellipse((y2 - y1) // 2, (x2 - x1) // 2, (y2 - y1) // 2, (x2 - x1) // 2)
            spans = {}
            for y, x in zip(ey.tolist(), ex.tolist()):
                lo, hi = spans.get(y, (x, x))
                spans[y] = (min(lo, x), max(hi, x))
            rows += [[x1 + lo, y1 + y, x1 + hi + 1, y1 + y + 1] for y, (lo, hi) in spans.items()]
        regions[image["file"]] = {"box": boxes, "ellipse": rows}
    deface.draw_det = original

    json.dump({"frames": len(frames), "wall_s": wall, "cpu_s": cpu, "regions": regions}, open(out, "w"))
    print(f"deface: {len(frames)} frames x {rounds} rounds done", file=sys.stderr)


if __name__ == "__main__":
    main()
