//! Shared helpers for the integration tests: tiny synthetic Fashion-MNIST folders and paths.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unitmatch::data::{IdxImages, write_idx_images, write_idx_labels};

/// The Debian package's folder, used by the tests on real data.
pub const REAL_DATA: &str = "/usr/share/datasets/fashion-mnist";

/// Writes `n` synthetic 28x28 training images (a bright square at a label-dependent place on
/// noise) and labels into `dir`, as gzip IDX files with the official names, as both the
/// training and the test split.
pub fn synthetic_data(dir: &Path, n: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pixels = vec![0u8; n * 28 * 28];
    let mut labels = vec![0u8; n];
    for i in 0..n {
        let label = (i % 10) as u8;
        labels[i] = label;
        let (y0, x0) = (2 + (label as usize % 5) * 4, 2 + (label as usize / 5) * 12);
        for y in 0..28 {
            for x in 0..28 {
                let inside = (y0..y0 + 10).contains(&y) && (x0..x0 + 12).contains(&x);
                let v: u8 = if inside {
                    200 + rng.random_range(0..50)
                } else {
                    rng.random_range(0..30)
                };
                pixels[i * 784 + y * 28 + x] = v;
            }
        }
    }
    let images = IdxImages {
        n,
        rows: 28,
        cols: 28,
        pixels,
    };
    write_idx_images(&dir.join("train-images-idx3-ubyte.gz"), &images, true).unwrap();
    write_idx_labels(&dir.join("train-labels-idx1-ubyte.gz"), &labels, true).unwrap();
    // The same images serve as the test split (for the classifier and the quality metrics).
    write_idx_images(&dir.join("t10k-images-idx3-ubyte.gz"), &images, true).unwrap();
    write_idx_labels(&dir.join("t10k-labels-idx1-ubyte.gz"), &labels, true).unwrap();
}

/// The fixtures folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// Runs `f` on a one-thread rayon pool, so tensor maths is bit-reproducible.
pub fn one_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(f)
}
