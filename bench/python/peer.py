"""Python reference peer for the Faceplate face-detection benchmark (bench/src/main.rs runs it).

The same work as faceplate_engine's `Engine::analyze`, written the way a careful Python service would write it
with OpenCV and onnxruntime, on the same ONNX files:

    cv2.imdecode (BGR, EXIF orientation applied) -> letterbox to 640x640 (top-left, cv2.resize INTER_LINEAR)
    -> YuNet 2023mar (BGR float 0..255 NCHW) -> decode strides 8/16/32, score sqrt(cls*obj) > 0.75, NMS 0.3
    -> clamp to the image, sort by area -> for the 5 largest faces: 5-point similarity to the ArcFace template,
    cv2.warpAffine to 112x112 (bilinear, black border), RGB -> SFace in one batch per image -> L2-normalise,
    plus the same quality signals as the engine (Laplacian-variance sharpness, yaw/pitch/roll from landmarks).

Every client is its own process (or thread with --threads) with its own sessions, each with one intra-op and
one inter-op thread, and OpenCV limited to one thread: one client = one core, like one engine worker.

Output: one JSON object on stdout (see `main`). Diagnostics go to stderr.
"""

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import threading
import time

import cv2
import numpy as np
import onnxruntime as ort

INPUT_SIZE = 640
STRIDES = (8, 16, 32)
CROP = 112
# ArcFace / InsightFace 112x112 template: eye (image-left), eye (image-right), nose tip, mouth corners.
ARCFACE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


class Analyzer:
    """One client's models and scratch buffers."""

    def __init__(self, models_dir, score_threshold=0.75, nms_threshold=0.3, max_embedded=5):
        cv2.setNumThreads(1)
        self.detector = session(os.path.join(models_dir, "yunet_2023mar.onnx"))
        self.embedder = session(os.path.join(models_dir, "sface_2021dec.onnx"))
        self.detector_outputs = [o.name for o in self.detector.get_outputs()]
        batch = self.embedder.get_inputs()[0].shape[0]
        self.embed_batched = not isinstance(batch, int) or batch != 1
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_embedded = max_embedded
        self.blob = np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32)
        # Anchor grid per stride (column, row), computed once.
        self.grid = {}
        for stride in STRIDES:
            cols = INPUT_SIZE // stride
            idx = np.arange(cols * cols)
            self.grid[stride] = ((idx % cols).astype(np.float32), (idx // cols).astype(np.float32))

    def analyze(self, data):
        image = decode(data)
        boxes, scores, landmarks = self.faces(image)
        embedded = min(len(boxes), self.max_embedded)
        crops = [align(image, landmarks[i]) for i in range(embedded)]
        embeddings = self.embed(crops)
        faces = []
        for i in range(len(boxes)):
            face = {"box": boxes[i], "score": float(scores[i])}
            if i < embedded:
                face["embedding"] = embeddings[i]
                face["quality"] = quality(boxes[i], landmarks[i], crops[i])
            faces.append(face)
        return faces

    def faces(self, image):
        """Detections clamped to the image, largest first."""
        height, width = image.shape[:2]
        boxes, scores, landmarks = self.detect(image)
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
        areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
        order = np.argsort(-areas, kind="stable")
        return boxes[order], scores[order], landmarks[order]

    def letterbox(self, image):
        """Into the top-left of the 640x640 input, keeping the aspect ratio. Returns the scale applied."""
        height, width = image.shape[:2]
        scale = min(INPUT_SIZE / width, INPUT_SIZE / height)
        new_w = min(max(int(width * scale + 0.5), 1), INPUT_SIZE)
        new_h = min(max(int(height * scale + 0.5), 1), INPUT_SIZE)
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        self.blob.fill(0.0)
        self.blob[0, :, :new_h, :new_w] = resized.transpose(2, 0, 1)  # BGR, 0..255, no normalisation
        return scale

    def detect(self, image):
        scale = self.letterbox(image)
        outputs = dict(zip(self.detector_outputs, self.detector.run(None, {"input": self.blob})))
        all_boxes, all_scores, all_landmarks = [], [], []
        for stride in STRIDES:
            cls = np.clip(outputs[f"cls_{stride}"][0, :, 0], 0, 1)
            obj = np.clip(outputs[f"obj_{stride}"][0, :, 0], 0, 1)
            score = np.sqrt(cls * obj)
            keep = np.nonzero(score > self.score_threshold)[0]
            if keep.size == 0:
                continue
            col, row = self.grid[stride][0][keep], self.grid[stride][1][keep]
            bbox = outputs[f"bbox_{stride}"][0][keep]
            kps = outputs[f"kps_{stride}"][0][keep]
            cx, cy = (col + bbox[:, 0]) * stride, (row + bbox[:, 1]) * stride
            bw, bh = np.exp(bbox[:, 2]) * stride, np.exp(bbox[:, 3]) * stride
            all_boxes.append(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1) / scale)
            points = np.empty((keep.size, 5, 2), np.float32)
            points[:, :, 0] = (kps[:, 0::2] + col[:, None]) * stride / scale
            points[:, :, 1] = (kps[:, 1::2] + row[:, None]) * stride / scale
            all_landmarks.append(points)
            all_scores.append(score[keep])
        if not all_boxes:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        boxes, scores, landmarks = np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_landmarks)
        keep = nms(boxes, scores, self.nms_threshold)
        return boxes[keep], scores[keep], landmarks[keep]

    def embed(self, crops):
        if not crops:
            return []
        # BGR crops -> RGB NCHW float 0..255 (SFace normalises inside the model).
        batch = np.stack([c[:, :, ::-1].transpose(2, 0, 1) for c in crops]).astype(np.float32)
        if self.embed_batched:
            vectors = self.embedder.run(None, {"data": batch})[0]
        else:
            runs = [self.embedder.run(None, {"data": batch[i : i + 1]})[0] for i in range(len(crops))]
            vectors = np.concatenate(runs)
        norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return list(vectors / norms)


def decode(data):
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # BGR, EXIF orientation applied
    if image is None:
        raise ValueError("cannot decode image")
    return image


def nms(boxes, scores, threshold):
    """Greedy NMS, best score first; keeps a box whose IoU with every kept box is <= threshold."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[iou <= threshold]
    return np.array(keep, dtype=np.int64)


def similarity(src, dst):
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping src onto dst, as a
    2x3 matrix. The 2-D closed form of Umeyama's method."""
    src = np.asarray(src, np.float64)
    mean_s, mean_d = src.mean(0), dst.mean(0)
    s, d = src - mean_s, dst - mean_d
    norm = max((s * s).sum(), 1e-12)
    a = (s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum() / norm
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / norm
    tx = mean_d[0] - (a * mean_s[0] - b * mean_s[1])
    ty = mean_d[1] - (b * mean_s[0] + a * mean_s[1])
    return np.array([[a, -b, tx], [b, a, ty]], np.float64)


def align(image, landmarks):
    matrix = similarity(landmarks, ARCFACE)
    return cv2.warpAffine(
        image, matrix, (CROP, CROP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def quality(box, landmarks, crop):
    """The engine's per-face quality signals (quality.rs): size, sharpness, yaw/pitch/roll."""
    eye_a, eye_b, nose, mouth_a, mouth_b = (landmarks[i].astype(np.float64) for i in range(5))
    eye_mid, mouth_mid = (eye_a + eye_b) / 2, (mouth_a + mouth_b) / 2
    dx, dy = eye_b - eye_a
    eye_distance = max(math.hypot(dx, dy), 1e-3)
    roll = math.atan2(dy, dx)
    cos, sin = math.cos(roll), math.sin(roll)

    def rotate(p):
        x, y = p - eye_mid
        return x * cos + y * sin, -x * sin + y * cos

    nose_x, nose_y = rotate(nose)
    _, mouth_y = rotate(mouth_mid)
    yaw = math.degrees(math.asin(min(max(nose_x / (eye_distance / 2), -1), 1)))
    pitch = math.degrees(math.asin(min(max((nose_y / max(mouth_y, 1e-3) - 0.45) / 0.45, -1), 1)))
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_32F, ksize=1)[1:-1, 1:-1].var())
    size = float(min(box[2] - box[0], box[3] - box[1]))
    return {"face_size": size, "sharpness": sharpness, "yaw": yaw, "pitch": pitch, "roll": math.degrees(roll)}


def load_images(paths):
    images = []
    for path in paths:
        with open(path, "rb") as f:
            images.append((os.path.basename(path), f.read()))
    return images


def client(index, clients, args, start_barrier, results):
    """One closed-loop client: warm up, wait for the others, then analyse images round-robin until the deadline.
    Requests that start before the deadline count; the run ends when the last one finishes."""
    analyzer = Analyzer(args.models)
    images = load_images(args.images)
    position = index * len(images) // clients
    warm_until = time.monotonic() + args.warmup
    for name, data in images:  # every image at least once
        analyzer.analyze(data)
    while time.monotonic() < warm_until:
        analyzer.analyze(images[position % len(images)][1])
        position += 1
    position = index * len(images) // clients
    start_barrier.wait()
    start = time.monotonic()
    deadline = start + args.seconds
    latencies = []
    while True:
        begin = time.monotonic()
        if begin >= deadline:
            break
        analyzer.analyze(images[position % len(images)][1])
        latencies.append((time.monotonic() - begin) * 1000.0)
        position += 1
    results.put({"client": index, "start": start, "end": time.monotonic(), "latencies_ms": latencies})


def check(args):
    """One pass over the images in one client: what was found, for the bench to compare with the engine."""
    analyzer = Analyzer(args.models)
    report = []
    for name, data in load_images(args.images):
        faces = analyzer.analyze(data)
        report.append(
            {
                "image": name,
                "faces": len(faces),
                "embedded": sum(1 for f in faces if "embedding" in f),
                "boxes": [[round(float(v), 2) for v in f["box"]] for f in faces],
                "embeddings": [[float(v) for v in f["embedding"]] for f in faces if "embedding" in f],
            }
        )
    return report


STAGES = ("decode", "letterbox", "detector run + decode/NMS", "align", "embed (batch/photo)", "quality")


def breakdown(args):
    """Mean ms per photo of each stage, one thread, each stage timed alone (the first round is warm-up)."""
    analyzer = Analyzer(args.models)
    totals = dict.fromkeys(STAGES, 0.0)
    images = load_images(args.images)
    for round in range(args.breakdown + 1):
        for _, data in images:
            t0 = time.perf_counter()
            image = decode(data)
            t1 = time.perf_counter()
            analyzer.letterbox(image)
            t2 = time.perf_counter()
            boxes, _, landmarks = analyzer.faces(image)
            t3 = time.perf_counter()
            embedded = min(len(boxes), analyzer.max_embedded)
            crops = [align(image, landmarks[i]) for i in range(embedded)]
            t4 = time.perf_counter()
            analyzer.embed(crops)
            t5 = time.perf_counter()
            for i in range(embedded):
                quality(boxes[i], landmarks[i], crops[i])
            t6 = time.perf_counter()
            if round == 0:
                continue
            # faces() letterboxes again: the detector stage is the rest.
            for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, (t3 - t2) - (t2 - t1), t4 - t3, t5 - t4, t6 - t5)):
                totals[stage] += seconds
    n = args.breakdown * len(images)
    return {stage: total * 1000.0 / n for stage, total in totals.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True, help="directory with yunet_2023mar.onnx and sface_2021dec.onnx")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per client after one pass")
    parser.add_argument("--threads", action="store_true", help="clients as threads instead of processes")
    parser.add_argument("--check", action="store_true", help="one pass, print what was found, no timing")
    parser.add_argument("--breakdown", type=int, metavar="ROUNDS", help="time each stage over ROUNDS passes")
    parser.add_argument("images", nargs="+")
    args = parser.parse_args()

    versions = {
        "python": sys.version.split()[0],
        "onnxruntime": ort.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
    }
    if args.check:
        print(json.dumps({"versions": versions, "check": check(args)}))
        return
    if args.breakdown:
        print(json.dumps({"versions": versions, "stages_ms": breakdown(args)}))
        return

    clients = args.clients
    if args.threads:
        import queue

        barrier, results = threading.Barrier(clients), queue.Queue()
        workers = [threading.Thread(target=client, args=(i, clients, args, barrier, results)) for i in range(clients)]
    else:
        context = mp.get_context("spawn")
        barrier, results = context.Barrier(clients), context.Queue()
        workers = [context.Process(target=client, args=(i, clients, args, barrier, results)) for i in range(clients)]
    for worker in workers:
        worker.start()
    # A client that dies never reports: give up rather than wait forever.
    patience = args.warmup + args.seconds + 600
    reports = [results.get(timeout=patience) for _ in workers]
    for worker in workers:
        worker.join()
        if getattr(worker, "exitcode", 0):
            sys.exit(f"a client exited with {worker.exitcode}")
    start = min(r["start"] for r in reports)
    end = max(r["end"] for r in reports)
    latencies = [ms for r in reports for ms in r["latencies_ms"]]
    print(
        json.dumps(
            {
                "versions": versions,
                "clients": clients,
                "mode": "threads" if args.threads else "processes",
                "elapsed_s": end - start,
                "requests": len(latencies),
                "latencies_ms": latencies,
            }
        )
    )


if __name__ == "__main__":
    main()
