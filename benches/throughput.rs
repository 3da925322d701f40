//! Throughput benchmark (a bench script, not a test): training img/s, generator inference img/s
//! and `compare` samples/s for the seed's DCGAN on burn-flex.
//!
//!     cargo bench --bench throughput -- [train|infer|compare] [--width W] [--iters N] [--threads T]
//!         [--ops phase|reference]
//!
//! Prints one JSON line per measurement; `bench/compare_torch.sh` interleaves it with PyTorch.
//! `profile` times the stages of one training iteration (forward, backward and optimiser of
//! each network) on random data and prints the mean milliseconds per stage.

use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use unitmatch::checkpoint::save_generator;
use unitmatch::compare::{CompareConfig, compare};
use unitmatch::data::{IdxImages, write_idx_images, write_idx_labels};
use unitmatch::model::{GEN_LAYERS, Generator, LATENT_DIM, ModelConfig, UpConvOps};
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
    let ops = match arg(&args, "--ops", "phase").as_str() {
        "phase" => UpConvOps::Phase,
        "reference" => UpConvOps::Reference,
        other => panic!("--ops phase|reference, not {other}"),
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let cfg = ModelConfig { width, bn_eps: 0.8 };
    if what == "train" || what == "all" {
        bench_train(cfg, iters, threads, ops);
    }
    if what == "infer" || what == "all" {
        bench_infer(cfg, iters, threads, ops);
    }
    if what == "profile" {
        bench_profile(cfg, iters, threads, ops);
    }
    if what == "compare" || what == "all" {
        bench_compare(cfg, samples, threads);
    }
}

fn bench_train(model: ModelConfig, iters: usize, threads: usize, ops: UpConvOps) {
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
    cfg.ops = ops;
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
            "batch": 64, "iters": iters, "threads": threads, "ops": format!("{ops:?}"),
            "img_per_s": s.epochs[0].img_per_s})
    );
}

fn bench_infer(model: ModelConfig, iters: usize, threads: usize, ops: UpConvOps) {
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
        let _ = g.forward_ops(z(&mut rng), false, ops).into_data();
    }
    let t0 = Instant::now();
    for _ in 0..iters {
        let _ = g.forward_ops(z(&mut rng), false, ops).into_data();
    }
    let rate = (iters * 64) as f64 / t0.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"framework": "unitmatch burn-flex", "what": "infer", "width": model.width,
            "batch": 64, "iters": iters, "threads": threads, "ops": format!("{ops:?}"),
            "img_per_s": rate})
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

/// Mean wall time of each stage of a training iteration (the reference loop of `train`),
/// batch 64, on random images.
fn bench_profile(model: ModelConfig, iters: usize, threads: usize, ops: UpConvOps) {
    use burn::optim::{AdamConfig, GradientsParams};
    use unitmatch::model::Discriminator;
    use unitmatch::train::bce;
    let device = Device::flex().autodiff();
    let mut g = Generator::new(&model, 1, &device);
    let mut d = Discriminator::new(&model, 2, &device);
    let adam = AdamConfig::new().with_beta_1(0.5).with_epsilon(1e-8);
    let (mut opt_g, mut opt_d) = (adam.init(), adam.init());
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let stages = [
        "G forward",
        "D forward (G step)",
        "G backward",
        "G Adam",
        "D forward (real, fake)",
        "D backward",
        "D Adam",
    ];
    let mut ms = vec![0.0f64; stages.len()];
    let lr = 2e-4;
    for it in 0..iters + 2 {
        let z = Tensor::<2>::from_data(
            TensorData::new(normal_z(&mut rng, 64), [64, LATENT_DIM]),
            &device,
        );
        let real = Tensor::<4>::from_data(
            TensorData::new(
                normal_z(&mut rng, 64 * 1024 / LATENT_DIM + 1)[..64 * 1024].to_vec(),
                [64, 1, 32, 32],
            ),
            &device,
        );
        let mut times = Vec::with_capacity(stages.len());
        let mut t = Instant::now();
        let mut lap = |times: &mut Vec<f64>| {
            times.push(t.elapsed().as_secs_f64() * 1e3);
            t = Instant::now();
        };
        let fake = g.forward_ops(z, true, ops);
        lap(&mut times);
        let g_loss = bce(d.forward(fake.clone(), Some(&mut rng)), true);
        let _ = g_loss.clone().into_scalar::<f32>();
        lap(&mut times);
        let grads = GradientsParams::from_grads(g_loss.backward(), &g);
        lap(&mut times);
        g = opt_g.step(lr, g.clone(), grads);
        lap(&mut times);
        let p_real = d.forward(real, Some(&mut rng));
        let p_fake = d.forward(fake.detach(), Some(&mut rng));
        let d_loss = (bce(p_real, true) + bce(p_fake, false)).div_scalar(2.0);
        let _ = d_loss.clone().into_scalar::<f32>();
        lap(&mut times);
        let grads = GradientsParams::from_grads(d_loss.backward(), &d);
        lap(&mut times);
        d = opt_d.step(lr, d.clone(), grads);
        lap(&mut times);
        if it >= 2 {
            for (m, x) in ms.iter_mut().zip(&times) {
                *m += x / iters as f64;
            }
        }
    }
    let total: f64 = ms.iter().sum();
    let per_stage: serde_json::Map<String, serde_json::Value> = stages
        .iter()
        .zip(&ms)
        .map(|(s, m)| (s.to_string(), serde_json::json!(m)))
        .collect();
    println!(
        "{}",
        serde_json::json!({"framework": "unitmatch burn-flex", "what": "profile", "width": model.width,
            "batch": 64, "iters": iters, "threads": threads, "ops": format!("{ops:?}"),
            "ms_per_stage": per_stage, "ms_total": total, "img_per_s": 64.0 * 1e3 / total})
    );
}
