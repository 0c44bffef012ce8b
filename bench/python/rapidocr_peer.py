"""The peer of faceplate-ocr-bench: RapidOCR 1.4.4 (PyPI rapidocr-onnxruntime, the same PP-OCRv4 ONNX files the
engine uses) reading the same images, one after another, with its default settings.

Usage: rapidocr_peer.py LIST [--threads N]
LIST holds one image path per line. Writes one JSON object per image to stdout, in order:
{"file", "ms", "lines": [{"text", "score", "box": [[x, y] x 4]}]}, then {"total_s": seconds for all images}.
The first image is read once before timing starts (model warm-up).
"""

import json
import sys
import time

from rapidocr_onnxruntime import RapidOCR


def main():
    args = sys.argv[1:]
    threads = -1
    if "--threads" in args:
        i = args.index("--threads")
        threads = int(args[i + 1])
        del args[i : i + 2]
    with open(args[0]) as f:
        files = [line.strip() for line in f if line.strip()]
    engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=threads)
    if files:
        engine(files[0])
    out = sys.stdout
    started = time.perf_counter()
    for path in files:
        t = time.perf_counter()
        result, _ = engine(path)
        ms = (time.perf_counter() - t) * 1000
        lines = [
            {"text": text, "score": float(score), "box": [[float(x), float(y)] for x, y in box]}
            for box, text, score in (result or [])
        ]
        out.write(json.dumps({"file": path, "ms": ms, "lines": lines}, ensure_ascii=False) + "\n")
    out.write(json.dumps({"total_s": time.perf_counter() - started}) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
