//! Throughput benchmark (a bench script, not a test): training img/s, generator inference img/s
//! and `compare` samples/s for the seed's DCGAN on burn-flex.
//!
//!     cargo bench --bench throughput -- [train|infer|compare] [--width W] [--iters N] [--threads T]
//!
//! Prints one JSON line per measurement; `bench/compare_torch.sh` interleaves it with PyTorch.

use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use unitmatch::checkpoint::save_generator;
use unitmatch::compare::{CompareConfig, compare};
use unitmatch::data::{IdxImages, write_idx_images, write_idx_labels};
use unitmatch::model::{GEN_LAYERS, Generator, LATENT_DIM, ModelConfig};
use unitmatch::similarity::Measure;
use unitmatch::train::{StartMode, TrainConfig, normal_z, train};
use unitmatch::unroll::ZSource;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args
        .get(1)
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .unwrap_or_else(|| "all".into());
    let width: f64 = arg(&args, "--width", "1").parse().unwrap();
    let iters: usize = arg(&args, "--iters", "20").parse().unwrap();
    let threads: usize = arg(&args, "--threads", "2").parse().unwrap();
    let samples: usize = arg(&args, "--samples", "1000").parse().unwrap();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let cfg = ModelConfig { width, bn_eps: 0.8 };
    if what == "train" || what == "all" {
        bench_train(cfg, iters, threads);
    }
    if what == "infer" || what == "all" {
        bench_infer(cfg, iters, threads);
    }
    if what == "compare" || what == "all" {
        bench_compare(cfg, samples, threads);
    }
}

fn bench_train(model: ModelConfig, iters: usize, threads: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let n = 64 * iters;
    // Speed does not depend on pixel values: a constant-grey synthetic set.
    let images = IdxImages {
        n,
        rows: 28,
        cols: 28,
        pixels: vec![128; n * 784],
    };
    write_idx_images(&tmp.path().join("train-images-idx3-ubyte"), &images, false).unwrap();
    write_idx_labels(
        &tmp.path().join("train-labels-idx1-ubyte"),
        &vec![0; n],
        false,
    )
    .unwrap();
    let mut cfg = TrainConfig::reference(0, 1, tmp.path().to_path_buf());
    cfg.model = model;
    let device = Device::flex().autodiff();
    let s = train(
        &cfg,
        &tmp.path().join("run"),
        StartMode::Fresh,
        &device,
        &mut |_| {},
    )
    .unwrap();
    println!(
        "{}",
        serde_json::json!({"framework": "unitmatch burn-flex", "what": "train", "width": model.width,
            "batch": 64, "iters": iters, "threads": threads, "img_per_s": s.epochs[0].img_per_s})
    );
}

fn bench_infer(model: ModelConfig, iters: usize, threads: usize) {
    let device = Device::flex();
    let g = Generator::new(&model, 0, &device);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let z = |rng: &mut ChaCha8Rng| {
        Tensor::<2>::from_data(
            TensorData::new(normal_z(rng, 64), [64, LATENT_DIM]),
            &device,
        )
    };
    for _ in 0..3 {
        let _ = g.forward(z(&mut rng), false).into_data();
    }
    let t0 = Instant::now();
    for _ in 0..iters {
        let _ = g.forward(z(&mut rng), false).into_data();
    }
    let rate = (iters * 64) as f64 / t0.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"framework": "unitmatch burn-flex", "what": "infer", "width": model.width,
            "batch": 64, "iters": iters, "threads": threads, "img_per_s": rate})
    );
}

fn bench_compare(model: ModelConfig, samples: usize, threads: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let (a, b) = (
        tmp.path().join("a.safetensors"),
        tmp.path().join("b.safetensors"),
    );
    save_generator(&Generator::new(&model, 1, &device), &model, &a).unwrap();
    save_generator(&Generator::new(&model, 2, &device), &model, &b).unwrap();
    let cfg = CompareConfig {
        a,
        b,
        z: ZSource::seeded(samples, 100),
        measure: Measure::Pearson,
        layers: GEN_LAYERS.iter().map(|s| s.to_string()).collect(),
        shard: None,
        default_bn_eps: 0.8,
        force: true,
    };
    let s = compare(&cfg, &tmp.path().join("out"), &device, &mut |_| {}).unwrap();
    println!(
        "{}",
        serde_json::json!({"framework": "unitmatch burn-flex", "what": "compare", "width": model.width,
            "samples": samples, "batch": 100, "threads": threads, "seconds": s.seconds,
            "samples_per_s": samples as f64 / s.seconds})
    );
}
