"""faiss peer of the FaceSet search benchmark (bench/src/bin/search.rs runs it, once per set size).

Reads the very vectors the Rust side indexed (raw little-endian files written by the bench), builds
faiss IndexFlatIP (exact) and IndexHNSWFlat (inner product; M, efConstruction as given), and measures them with the
same protocol as the Rust side:

* build: one `add` of all vectors with `--build-threads` OpenMP threads (the Rust side inserts on as many threads);
* search: one query per call (`index.search(q[i:i+1], k)`), OpenMP limited to 1 thread, by `clients` Python
  threads in a closed loop (faiss releases the GIL inside `search`, so two threads use two cores). Client c takes
  queries c, c+clients, c+2*clients, ...; latency is the wall time of the `search` call; a warm-up pass over the
  first queries comes first. Exact runs with one client stop after `--exact-budget` seconds (at least 50 queries);
* snapshot: `faiss.write_index` / `faiss.read_index` of the HNSW index (and of the flat index), timed.

Files in --data: base.f32 (n x dims), keys.u64 (n), queries.f32 (q x dims).
Output: one JSON object on stdout (see `main`); progress on stderr.
"""

import argparse
import json
import os
import sys
import threading
import time

import faiss
import numpy as np


def log(message):
    print(f"[faiss-peer] {message}", file=sys.stderr, flush=True)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentile(sorted_values, p):
    """Nearest rank, like the Rust side."""
    if not sorted_values:
        return float("nan")
    rank = int(np.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def closed_loop(index, queries, k, clients, budget=None, warmup=50):
    """Returns latencies (ms), results (list of id lists or None per query), wall seconds."""
    faiss.omp_set_num_threads(1)
    for i in range(min(warmup, len(queries))):
        index.search(queries[i : i + 1], k)
    results = [None] * len(queries)
    latencies = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients)
    stamps = [None] * clients

    def client(c):
        barrier.wait()
        start = time.perf_counter()
        done = 0
        for i in range(c, len(queries), clients):
            if budget is not None and done >= 50 and time.perf_counter() - start > budget:
                break
            q = queries[i : i + 1]
            t0 = time.perf_counter_ns()
            _, ids = index.search(q, k)
            latencies[c].append((time.perf_counter_ns() - t0) / 1e6)
            results[i] = [int(x) for x in ids[0] if x >= 0]
            done += 1
        stamps[c] = (start, time.perf_counter())

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = max(s[1] for s in stamps) - min(s[0] for s in stamps)
    flat = sorted(x for per_client in latencies for x in per_client)
    return flat, results, wall


def run_record(latencies, results, wall, clients, keep_results):
    record = {
        "clients": clients,
        "queries": len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "qps": len(latencies) / wall if wall > 0 else float("nan"),
    }
    if keep_results:
        record["results"] = results
    return record


def snapshot(index, path):
    t0 = time.perf_counter()
    faiss.write_index(index, path)
    save_s = time.perf_counter() - t0
    size = os.path.getsize(path)
    t0 = time.perf_counter()
    loaded = faiss.read_index(path)
    load_s = time.perf_counter() - t0
    del loaded
    os.remove(path)
    return {"save_s": save_s, "load_s": load_s, "file_bytes": size}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--dims", type=int, required=True)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=128)
    parser.add_argument("--ef-search", default="16,32,64,128")
    parser.add_argument("--clients", default="1,2")
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--exact-budget", type=float, default=15.0)
    args = parser.parse_args()

    base = np.fromfile(os.path.join(args.data, "base.f32"), dtype="<f4").reshape(-1, args.dims)
    keys = np.fromfile(os.path.join(args.data, "keys.u64"), dtype="<u8")
    queries = np.fromfile(os.path.join(args.data, "queries.f32"), dtype="<f4").reshape(-1, args.dims)
    base = np.ascontiguousarray(base)
    queries = np.ascontiguousarray(queries)
    # The bench's keys are the row numbers; anything else would need an IndexIDMap.
    if not np.array_equal(keys, np.arange(len(base), dtype=np.uint64)):
        raise SystemExit("keys must be 0..n-1")
    clients_list = [int(c) for c in args.clients.split(",")]
    efs = [int(e) for e in args.ef_search.split(",")]
    n = len(base)
    out = {
        "versions": {"faiss": faiss.__version__, "numpy": np.__version__, "python": sys.version.split()[0]},
        "n": n,
        "flat": {},
        "hnsw": {},
    }

    # Exact.
    log(f"IndexFlatIP, {n} vectors")
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    flat = faiss.IndexFlatIP(args.dims)
    faiss.omp_set_num_threads(args.build_threads)
    flat.add(base)
    build_s = time.perf_counter() - t0
    out["flat"]["build_s"] = build_s
    out["flat"]["rss_delta_bytes"] = rss_bytes() - rss0
    out["flat"]["runs"] = []
    for clients in sorted(clients_list, reverse=True):
        budget = args.exact_budget if clients == 1 else None
        lat, res, wall = closed_loop(flat, queries, args.k, clients, budget=budget, warmup=20)
        out["flat"]["runs"].append(run_record(lat, res, wall, clients, keep_results=clients == max(clients_list)))
    out["flat"]["snapshot"] = snapshot(flat, os.path.join(args.data, "flat.faiss"))
    del flat

    # HNSW.
    log(f"IndexHNSWFlat M={args.m} efConstruction={args.ef_construction}, {n} vectors")
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(args.dims, args.m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = args.ef_construction
    faiss.omp_set_num_threads(args.build_threads)
    hnsw.add(base)
    build_s = time.perf_counter() - t0
    out["hnsw"]["build_s"] = build_s
    out["hnsw"]["rss_delta_bytes"] = rss_bytes() - rss0
    out["hnsw"]["m"] = args.m
    out["hnsw"]["ef_construction"] = args.ef_construction
    out["hnsw"]["runs"] = []
    for ef in efs:
        hnsw.hnsw.efSearch = ef
        for clients in clients_list:
            lat, res, wall = closed_loop(hnsw, queries, args.k, clients)
            record = run_record(lat, res, wall, clients, keep_results=clients == min(clients_list))
            record["ef"] = ef
            out["hnsw"]["runs"].append(record)
    out["hnsw"]["snapshot"] = snapshot(hnsw, os.path.join(args.data, "hnsw.faiss"))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
