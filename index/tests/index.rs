//! Behaviour of `FaceIndex` in both modes: exactness, visibility of adds and removes, idempotency, the switch to
//! HNSW, snapshots, bad input and concurrency. No timing assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use faceplate_index::{FaceIndex, IndexConfig, IndexError, Quantization};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIMS: usize = 128;

fn unit_vectors(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let v: Vec<f32> = (0..DIMS).map(|_| rng.random::<f32>() - 0.5).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        })
        .collect()
}

fn items(keys: impl IntoIterator<Item = u64>, vectors: &[Vec<f32>]) -> Vec<(u64, &[f32])> {
    keys.into_iter().zip(vectors).map(|(k, v)| (k, v.as_slice())).collect()
}

fn config(exact_below: usize) -> IndexConfig {
    IndexConfig { exact_below, ..IndexConfig::default() }
}

/// Best `k` by a plain f64 loop: (key, similarity), highest first.
fn brute_force(keys: &[u64], vectors: &[Vec<f32>], query: &[f32], k: usize) -> Vec<(u64, f32)> {
    let mut all: Vec<(u64, f32)> = keys
        .iter()
        .zip(vectors)
        .map(|(k, v)| (*k, v.iter().zip(query).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>() as f32))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

fn assert_same_results(got: &[(u64, f32)], want: &[(u64, f32)]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.0, w.0, "{got:?} vs {want:?}");
        assert!((g.1 - w.1).abs() < 1e-4, "{got:?} vs {want:?}");
    }
}

#[test]
fn exact_mode_equals_brute_force() {
    let vectors = unit_vectors(1_000, 1);
    let keys: Vec<u64> = (0..1_000).map(|i| i * 7 + 3).collect();
    let index = FaceIndex::new(config(20_000)).unwrap();
    index.add(&items(keys.iter().copied(), &vectors)).unwrap();
    assert!(!index.is_hnsw());
    assert_eq!(index.len(), 1_000);
    for (i, query) in unit_vectors(20, 2).iter().enumerate() {
        for k in [1, 10, 1_000, 5_000] {
            let want = brute_force(&keys, &vectors, query, k);
            assert_same_results(&index.search(query, k).unwrap(), &want);
            assert_same_results(&index.exact_search(query, k).unwrap(), &want);
        }
        // A stored vector finds itself with similarity 1.
        let own = index.search(&vectors[i], 1).unwrap();
        assert_eq!(own[0].0, keys[i]);
        assert!((own[0].1 - 1.0).abs() < 1e-5);
    }
}

#[test]
fn adds_and_removes_are_visible_in_both_modes() {
    for exact_below in [20_000, 0] {
        let index = FaceIndex::new(config(exact_below)).unwrap();
        assert_eq!(index.is_hnsw(), exact_below == 0);
        let vectors = unit_vectors(300, 3);
        let query = &vectors[42];
        assert!(index.search(query, 5).unwrap().is_empty(), "empty index");
        assert!(index.is_empty());

        index.add(&items(0..300, &vectors)).unwrap();
        assert_eq!(index.len(), 300);
        assert!(index.contains(42));
        assert_eq!(index.search(query, 1).unwrap()[0].0, 42);

        assert_eq!(index.remove(&[42, 42, 1_000_000]).unwrap(), 1);
        assert!(!index.contains(42));
        assert_eq!(index.len(), 299);
        assert!(index.search(query, 300).unwrap().iter().all(|(k, _)| *k != 42));
        assert!(index.exact_search(query, 300).unwrap().iter().all(|(k, _)| *k != 42));

        // Re-adding a removed key works (USearch reuses the tombstone's slot).
        index.add(&[(42, query.as_slice())]).unwrap();
        assert_eq!(index.search(query, 1).unwrap()[0].0, 42);
        assert_eq!(index.len(), 300);

        let mut keys = index.keys();
        keys.sort_unstable();
        assert_eq!(keys, (0..300).collect::<Vec<u64>>());
        assert!(index.memory_bytes() >= 300 * DIMS * 4);
    }
}

#[test]
fn add_is_idempotent() {
    for exact_below in [20_000, 0] {
        let index = FaceIndex::new(config(exact_below)).unwrap();
        let vectors = unit_vectors(3, 4);
        index.add(&[(1, vectors[0].as_slice())]).unwrap();
        // Key 1 again with another vector, and key 2 twice in one batch: the first one wins, nothing changes.
        index.add(&[(1, vectors[1].as_slice()), (2, vectors[1].as_slice()), (2, vectors[2].as_slice())]).unwrap();
        assert_eq!(index.len(), 2);
        let top = index.exact_search(&vectors[0], 1).unwrap();
        assert_eq!(top[0].0, 1);
        assert!((top[0].1 - 1.0).abs() < 1e-5, "key 1 keeps its first vector");
        let top = index.exact_search(&vectors[1], 1).unwrap();
        assert_eq!(top[0].0, 2);
        assert!((top[0].1 - 1.0).abs() < 1e-5, "key 2 has the first of its two vectors");
    }
}

#[test]
fn bad_input_is_an_error_and_adds_nothing() {
    let index = FaceIndex::new(config(20_000)).unwrap();
    let good = unit_vectors(2, 5);
    let short = vec![0.1f32; DIMS - 1];
    let err = index.add(&[(1, good[0].as_slice()), (2, short.as_slice())]).unwrap_err();
    assert!(matches!(err, IndexError::Dimensions { expected: DIMS, got } if got == DIMS - 1), "{err}");
    assert!(index.is_empty(), "nothing added");

    let mut nan = good[1].clone();
    nan[7] = f32::NAN;
    assert!(matches!(index.add(&[(3, nan.as_slice())]), Err(IndexError::NonFinite { key: Some(3) })));
    assert!(matches!(index.add(&[(u64::MAX, good[0].as_slice())]), Err(IndexError::ReservedKey(_))));
    assert!(index.is_empty());

    index.add(&[(1, good[0].as_slice())]).unwrap();
    assert!(matches!(index.search(&short, 1), Err(IndexError::Dimensions { .. })));
    assert!(matches!(index.exact_search(&nan, 1), Err(IndexError::NonFinite { key: None })));
    let mut infinite = good[0].clone();
    infinite[0] = f32::INFINITY;
    assert!(index.search(&infinite, 1).is_err());
    assert!(index.search(&good[0], 0).unwrap().is_empty(), "k = 0");
    assert!(index.search(&[], 1).is_err());

    assert!(matches!(
        FaceIndex::new(IndexConfig { dimensions: 0, ..IndexConfig::default() }),
        Err(IndexError::Config(_))
    ));
}

#[test]
fn switching_to_hnsw_at_the_threshold_keeps_results() {
    let threshold = 2_000;
    let vectors = unit_vectors(3_000, 6);
    let keys: Vec<u64> = (0..3_000).collect();
    // Uniformly random 128-d vectors are the hardest case for HNSW (faces are far easier): a wide search list.
    // One build thread: parallel insertion builds a slightly different graph each run, so an approximate miss
    // would come and go; with one thread the graph, and this test's outcome, is the same every run.
    let index = FaceIndex::new(IndexConfig { expansion_search: 256, build_threads: 1, ..config(threshold) }).unwrap();
    index.add(&items(0..1_500, &vectors[..1_500])).unwrap();
    assert!(!index.is_hnsw());
    index.add(&items(1_500..1_999, &vectors[1_500..1_999])).unwrap();
    assert!(!index.is_hnsw(), "1,999 < 2,000");
    index.add(&items(1_999..2_000, &vectors[1_999..2_000])).unwrap();
    assert!(index.is_hnsw(), "reaching the threshold switches");
    index.add(&items(2_000..3_000, &vectors[2_000..])).unwrap();
    assert_eq!(index.len(), 3_000);
    assert!((0..3_000).all(|k| index.contains(k)));

    let queries = unit_vectors(50, 7);
    let mut hits = 0;
    for query in &queries {
        let want = brute_force(&keys, &vectors, query, 10);
        assert_same_results(&index.exact_search(query, 10).unwrap(), &want);
        let got = index.search(query, 10).unwrap();
        assert_eq!(got.len(), 10);
        assert!(got.windows(2).all(|w| w[0].1 >= w[1].1), "sorted by similarity");
        hits += got.iter().filter(|(k, _)| want.iter().any(|(w, _)| w == k)).count();
    }
    assert!(hits as f64 / 500.0 > 0.95, "recall@10 {}", hits as f64 / 500.0);
    for (key, vector) in vectors.iter().enumerate().step_by(97) {
        assert_eq!(index.search(vector, 1).unwrap()[0].0, key as u64, "a stored vector finds itself");
    }

    // Hysteresis: shrinking below the threshold keeps the graph.
    let removed = index.remove(&(0..2_500).collect::<Vec<u64>>()).unwrap();
    assert_eq!(removed, 2_500);
    assert!(index.is_hnsw());
    assert_eq!(index.len(), 500);
    let want = brute_force(&keys[2_500..], &vectors[2_500..], &queries[0], 5);
    assert_same_results(&index.exact_search(&queries[0], 5).unwrap(), &want);
}

#[test]
fn save_and_load_round_trip_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let vectors = unit_vectors(1_200, 8);
    let queries = unit_vectors(10, 9);
    for (exact_below, quantization) in [(20_000, Quantization::F32), (1_000, Quantization::F32), (0, Quantization::F16)]
    {
        let config = IndexConfig { exact_below, quantization, ..IndexConfig::default() };
        let index = FaceIndex::new(config.clone()).unwrap();
        index.add(&items((0..1_200).map(|i| i * 3), &vectors)).unwrap();
        index.remove(&[0, 3, 6]).unwrap();
        let path = dir.path().join(format!("set-{exact_below}.idx"));
        let meta = br#"{"watermark":12345}"#;
        index.save(&path, meta).unwrap();
        // Saving again over an existing snapshot replaces it; no temporary files are left behind.
        index.save(&path, meta).unwrap();
        let (loaded, got_meta) = FaceIndex::load(&path, config.clone()).unwrap();
        assert_eq!(got_meta, meta);
        assert_eq!(loaded.is_hnsw(), index.is_hnsw());
        assert_eq!(loaded.len(), 1_197);
        let (mut a, mut b) = (index.keys(), loaded.keys());
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        for query in &queries {
            assert_eq!(loaded.search(query, 10).unwrap(), index.search(query, 10).unwrap());
            assert_eq!(loaded.exact_search(query, 10).unwrap(), index.exact_search(query, 10).unwrap());
        }
        // The loaded index takes new vectors.
        loaded.add(&[(0, vectors[0].as_slice())]).unwrap();
        assert_eq!(loaded.search(&vectors[0], 1).unwrap()[0].0, 0);
    }
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert!(names.iter().all(|n| n.ends_with(".idx")), "{names:?}");
}

#[test]
fn an_exact_snapshot_above_the_threshold_loads_as_hnsw() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set.idx");
    let vectors = unit_vectors(600, 10);
    let index = FaceIndex::new(config(20_000)).unwrap();
    index.add(&items(0..600, &vectors)).unwrap();
    index.save(&path, b"").unwrap();
    let (loaded, meta) = FaceIndex::load(&path, config(500)).unwrap();
    assert!(meta.is_empty());
    assert!(loaded.is_hnsw());
    assert_eq!(loaded.len(), 600);
    assert_eq!(loaded.search(&vectors[5], 1).unwrap()[0].0, 5);
}

#[test]
fn corrupt_truncated_or_foreign_snapshots_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let vectors = unit_vectors(1_100, 11);
    for exact_below in [20_000, 1_000] {
        let index = FaceIndex::new(config(exact_below)).unwrap();
        index.add(&items(0..1_100, &vectors)).unwrap();
        let path = dir.path().join("good.idx");
        index.save(&path, b"meta").unwrap();
        let good = std::fs::read(&path).unwrap();
        let bad = dir.path().join("bad.idx");
        let load = |bytes: &[u8]| {
            std::fs::write(&bad, bytes).unwrap();
            FaceIndex::load(&bad, config(exact_below))
        };
        for cut in [0, 10, 47, 48, 60, good.len() / 2, good.len() - 5, good.len() - 1] {
            assert!(matches!(load(&good[..cut]), Err(IndexError::Corrupt { .. })), "truncated at {cut}");
        }
        for at in [0, 9, 13, 20, 50, 100, good.len() / 2, good.len() - 100, good.len() - 2] {
            let mut flipped = good.clone();
            flipped[at] ^= 0x40;
            assert!(load(&flipped).is_err(), "byte {at} flipped");
        }
        let mut longer = good.clone();
        longer.extend_from_slice(b"trailing");
        assert!(load(&longer).is_err(), "trailing bytes");
        assert!(load(b"{\"not\": \"an index\"}").is_err(), "foreign file");
        let garbage: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        assert!(load(&garbage).is_err(), "garbage");
        // Right file, wrong configuration.
        let other = IndexConfig { dimensions: 64, ..config(exact_below) };
        assert!(matches!(FaceIndex::load(&path, other), Err(IndexError::Incompatible { .. })));
        assert!(matches!(FaceIndex::load(&dir.path().join("missing.idx"), config(1)), Err(IndexError::Io { .. })));
        // The good file still loads.
        assert_eq!(FaceIndex::load(&path, config(exact_below)).unwrap().0.len(), 1_100);
    }
}

#[test]
fn concurrent_adds_and_searches() {
    // Starts exact, crosses the threshold while searchers run, then keeps growing in HNSW mode.
    let index = Arc::new(FaceIndex::new(IndexConfig { exact_below: 3_000, max_concurrency: 3, ..config(0) }).unwrap());
    let vectors = Arc::new(unit_vectors(8_000, 12));
    let done = Arc::new(AtomicBool::new(false));
    let searchers: Vec<_> = (0..4)
        .map(|t| {
            let (index, vectors, done) = (Arc::clone(&index), Arc::clone(&vectors), Arc::clone(&done));
            std::thread::spawn(move || {
                let (mut searches, mut visible, mut found) = (0usize, 0usize, 0usize);
                let mut i = t;
                while !done.load(Ordering::Relaxed) || searches < 100 {
                    let key = (i * 31) % vectors.len();
                    if index.contains(key as u64) {
                        // Added before these searches started: the exact search must find it (it is its own best
                        // match), the approximate one nearly always.
                        visible += 1;
                        assert_eq!(index.exact_search(&vectors[key], 1).unwrap()[0].0, key as u64);
                        found +=
                            usize::from(index.search(&vectors[key], 3).unwrap().iter().any(|(k, _)| *k == key as u64));
                    } else {
                        index.search(&vectors[key], 3).unwrap();
                    }
                    searches += 1;
                    i += 1;
                }
                assert!(found as f64 >= 0.95 * visible as f64, "{found} of {visible} found");
                searches
            })
        })
        .collect();
    let adders: Vec<_> = (0..2)
        .map(|t| {
            let (index, vectors) = (Arc::clone(&index), Arc::clone(&vectors));
            std::thread::spawn(move || {
                for start in (t * 500..8_000).step_by(1_000) {
                    let batch: Vec<(u64, &[f32])> =
                        (start..start + 500).map(|k| (k as u64, vectors[k].as_slice())).collect();
                    index.add(&batch).unwrap();
                }
            })
        })
        .collect();
    for adder in adders {
        adder.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for searcher in searchers {
        assert!(searcher.join().unwrap() >= 100);
    }
    assert!(index.is_hnsw());
    assert_eq!(index.len(), 8_000);
    // Every face is there: the exact search finds each as its own best match; the graph, built by two threads
    // at once (so not the same graph each run), nearly always (it missed 1 of 32 in one CI run).
    let probes: Vec<usize> = (0..8_000).step_by(250).collect();
    let mut found = 0;
    for &key in &probes {
        assert_eq!(index.exact_search(&vectors[key], 1).unwrap()[0].0, key as u64);
        found += usize::from(index.search(&vectors[key], 1).unwrap()[0].0 == key as u64);
    }
    assert!(found as f64 >= 0.9 * probes.len() as f64, "{found} of {} found", probes.len());
}

#[test]
fn many_threads_share_few_engine_slots() {
    // More concurrent searchers than USearch thread contexts: they wait for a permit instead of failing.
    let index = Arc::new(FaceIndex::new(IndexConfig { max_concurrency: 2, ..config(0) }).unwrap());
    let vectors = unit_vectors(2_000, 13);
    index.add(&items(0..2_000, &vectors)).unwrap();
    let queries = Arc::new(unit_vectors(64, 14));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (index, queries) = (Arc::clone(&index), Arc::clone(&queries));
            std::thread::spawn(move || {
                for query in queries.iter() {
                    assert_eq!(index.search(query, 5).unwrap().len(), 5);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn f16_graph_stays_close_to_exact() {
    let vectors = unit_vectors(2_000, 15);
    let index = FaceIndex::new(IndexConfig { quantization: Quantization::F16, ..config(0) }).unwrap();
    index.add(&items(0..2_000, &vectors)).unwrap();
    let keys: Vec<u64> = (0..2_000).collect();
    for query in unit_vectors(10, 16) {
        let want = brute_force(&keys, &vectors, &query, 1);
        let got = index.exact_search(&query, 1).unwrap();
        assert!((got[0].1 - want[0].1).abs() < 2e-3, "{got:?} vs {want:?}");
    }
}
