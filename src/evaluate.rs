//! `unitmatch evaluate`: GAN quality without Inception, through our Fashion-MNIST classifier.
//!
//! `evaluate(&EvaluateConfig { .. }, out, &device, &mut |event| ..)` generates `samples` images
//! from each generator (z batch `i` from seed `7777 + i`, so quality z never coincide with the
//! comparison's), runs the classifier on them, and compares with the 10,000 real test images:
//!
//! - **FD-FMNIST**: the Frechet distance between Gaussians fitted to the classifier's
//!   penultimate features ([`crate::quality::frechet_distance`]);
//! - **KID** with its standard error (polynomial kernel, unbiased MMD^2 over subsets);
//! - **IS analogue**: `exp(E KL(p(y|x) || p(y)))` with the classifier's probabilities, 10 splits;
//! - **class histogram** of the generated images and its KL divergence from uniform.
//!
//! Calibration on real data, in the same units: train (first 10,000) vs test, and test vs the
//! test images with Gaussian pixel noise (`sigma` = 0.1 and 0.3 on the [-1, 1] scale, clamped),
//! plus the test set's own IS and histogram. Results go to `quality.json` and `quality.csv`;
//! with training runs (`every_epoch`), every checkpoint of each run is evaluated and
//! `quality_fd.png` plots FD against epoch.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::Serialize;

use crate::checkpoint::{load_generator, run_checkpoints};
use crate::classifier::{CLASSES, Classifier, ClassifierError, load_classifier, predict};
use crate::data::{DataError, FashionMnist, Split};
use crate::fsutil::{atomic_write, sha256_file, temp_path_for, versions};
use crate::model::{IMG_SIZE, LATENT_DIM};
use crate::quality::{
    DEFAULT_IS_SPLITS, DEFAULT_KID_SUBSET_SIZE, DEFAULT_KID_SUBSETS, Gaussian, Kid,
    class_histogram, frechet_distance, gaussian, inception_score_splits, kid, kl_from_uniform,
};
use crate::render;
use crate::unroll::ZSource;

/// Seed of z batch 0 for quality samples (batch `i` uses `7777 + i`).
pub const QUALITY_Z_SEED: u64 = 7777;
/// Real training images used for the train-vs-test calibration.
pub const CALIBRATION_TRAIN: usize = 10_000;
/// Pixel noise levels of the test-vs-noised-test calibration.
pub const NOISE_SIGMAS: [f64; 2] = [0.1, 0.3];

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvaluateConfig {
    /// Generator checkpoints, each evaluated once.
    pub generators: Vec<PathBuf>,
    /// Training runs whose every checkpoint is evaluated.
    pub every_epoch: Vec<PathBuf>,
    /// The classifier checkpoint.
    pub classifier: PathBuf,
    /// Generated images per generator.
    pub samples: usize,
    /// Fashion-MNIST folder (test images, and training images for calibration).
    pub data_dir: PathBuf,
    /// BatchNorm eps for PyTorch generator checkpoints.
    pub default_bn_eps: f64,
    /// Replace an existing output folder.
    pub force: bool,
}

/// Errors of an evaluation; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    /// The classifier could not be loaded.
    #[error(transparent)]
    Classifier(#[from] ClassifierError),
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A generator could not be loaded.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// Invalid option.
    #[error("{0}")]
    Config(String),
    /// The output folder exists.
    #[error("{0} already exists: pass --force to replace it")]
    Exists(PathBuf),
    /// File I/O.
    #[error("{path}: {message}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        message: String,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> EvaluateError + '_ {
    move |e| EvaluateError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Progress events.
#[derive(Debug, Clone)]
pub enum EvaluateEvent {
    /// Real-data features are being computed.
    Calibrating,
    /// Generator `index` of `total` is being evaluated.
    Generator {
        /// 0-based position.
        index: usize,
        /// Generators in all.
        total: usize,
        /// Its checkpoint.
        path: PathBuf,
    },
}

/// The metrics of one image set against the real test set.
#[derive(Debug, Clone, Serialize)]
pub struct Quality {
    /// Images evaluated.
    pub images: usize,
    /// FD-FMNIST against the test set.
    pub fd: f64,
    /// KID against the test set.
    pub kid: f64,
    /// Standard error of the KID.
    pub kid_std_error: f64,
    /// IS analogue (mean over splits).
    pub is_mean: f64,
    /// Its standard deviation over splits.
    pub is_sd: f64,
    /// Predicted-class counts.
    pub class_histogram: Vec<usize>,
    /// KL divergence of the class histogram from uniform (nats; 0 = balanced, ln 10 = one class).
    pub kl_from_uniform: f64,
}

/// One evaluated generator.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratorQuality {
    /// Run folder, when the generator came from `every_epoch`.
    pub run: Option<PathBuf>,
    /// Epoch, when known (0 = the initialisation).
    pub epoch: Option<usize>,
    /// The checkpoint and its SHA-256.
    pub checkpoint: (PathBuf, String),
    /// The metrics.
    pub quality: Quality,
}

/// The real-data reference points.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// The first 10,000 training images against the test set.
    pub train_vs_test: Quality,
    /// Test images with pixel noise of each sigma against the clean test set.
    pub noised_test: Vec<(f64, Quality)>,
    /// The test set's own IS analogue, histogram and KL (FD and KID against itself are 0).
    pub test_self: Quality,
}

/// Everything written to `quality.json`.
#[derive(Debug, Clone, Serialize)]
pub struct QualityReport {
    /// The classifier and its SHA-256.
    pub classifier: (PathBuf, String),
    /// Generated images per generator.
    pub samples: usize,
    /// How z was drawn.
    pub z: serde_json::Value,
    /// KID options.
    pub kid_subsets: usize,
    /// KID subset size (capped at the smaller set).
    pub kid_subset_size: usize,
    /// Calibration on real data.
    pub calibration: Calibration,
    /// One entry per evaluated generator.
    pub generators: Vec<GeneratorQuality>,
    /// Seconds spent.
    pub seconds: f64,
}

/// Features and probabilities of a set of images.
struct Embedded {
    features: Array2<f64>,
    probs: Array2<f64>,
}

fn embed(c: &Classifier, images: &[f32], device: &Device) -> Embedded {
    let (probs, feats) = predict(c, images, 250, device);
    let n = images.len() / (IMG_SIZE * IMG_SIZE);
    let to = |v: Vec<f32>, k: usize| {
        Array2::from_shape_vec((n, k), v.into_iter().map(f64::from).collect())
            .expect("classifier output has n rows")
    };
    Embedded {
        features: to(feats, crate::classifier::FEATURES),
        probs: to(probs, CLASSES),
    }
}

/// The metrics of `set` against the real test set (`real`, `real_gauss`).
fn quality_of(set: &Embedded, real: ArrayView2<f64>, real_gauss: &Gaussian, seed: u64) -> Quality {
    let g = gaussian(set.features.view());
    let subset = DEFAULT_KID_SUBSET_SIZE
        .min(set.features.nrows())
        .min(real.nrows());
    let k = kid(set.features.view(), real, DEFAULT_KID_SUBSETS, subset, seed).unwrap_or(Kid {
        value: f64::NAN,
        std_error: f64::NAN,
        subsets: 0,
        subset_size: 0,
    });
    let (is_mean, is_sd) = inception_score_splits(set.probs.view(), DEFAULT_IS_SPLITS);
    let hist = class_histogram(set.probs.view());
    Quality {
        images: set.features.nrows(),
        fd: frechet_distance(&g, real_gauss),
        kid: k.value,
        kid_std_error: k.std_error,
        is_mean,
        is_sd,
        kl_from_uniform: kl_from_uniform(&hist),
        class_histogram: hist,
    }
}

/// `samples` images of the generator at `path` on the quality z.
fn generate(
    path: &Path,
    samples: usize,
    bn_eps: f64,
    device: &Device,
) -> Result<Vec<f32>, EvaluateError> {
    let (g, _) = load_generator(path, bn_eps, device)?;
    let z = ZSource::Seeded {
        base_seed: QUALITY_Z_SEED,
        samples,
        batch: 250,
    };
    let mut out = Vec::with_capacity(samples * IMG_SIZE * IMG_SIZE);
    for b in 0..z.batches() {
        let zb = z.batch(b);
        let n = zb.len() / LATENT_DIM;
        let t = Tensor::<2>::from_data(TensorData::new(zb, [n, LATENT_DIM]), device);
        out.extend(
            g.forward(t, false)
                .into_data()
                .try_into_vec::<f32>()
                .unwrap_or_default(),
        );
    }
    Ok(out)
}

/// Test images with Gaussian pixel noise of `sigma`, clamped to [-1, 1] (seeded).
pub fn noised(images: &[f32], sigma: f64, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, sigma).expect("valid sigma");
    images
        .iter()
        .map(|&v| (v as f64 + normal.sample(&mut rng)).clamp(-1.0, 1.0) as f32)
        .collect()
}

/// Runs the evaluation into `out` (see the module doc).
pub fn evaluate(
    cfg: &EvaluateConfig,
    out: &Path,
    device: &Device,
    progress: &mut dyn FnMut(EvaluateEvent),
) -> Result<QualityReport, EvaluateError> {
    if cfg.samples < 2 {
        return Err(EvaluateError::Config("--samples must be at least 2".into()));
    }
    if out.exists() && !cfg.force {
        return Err(EvaluateError::Exists(out.to_path_buf()));
    }
    let mut targets: Vec<(Option<PathBuf>, Option<usize>, PathBuf)> = cfg
        .generators
        .iter()
        .map(|p| (None, None, p.clone()))
        .collect();
    for run in &cfg.every_epoch {
        let list = run_checkpoints(run).map_err(|e| EvaluateError::Io {
            path: run.clone(),
            message: format!("not a training run folder (no checkpoints/): {e}"),
        })?;
        if list.is_empty() {
            return Err(EvaluateError::Config(format!(
                "{}: no generator checkpoints",
                run.display()
            )));
        }
        targets.extend(
            list.into_iter()
                .map(|(e, p)| (Some(run.clone()), Some(e), p)),
        );
    }
    if targets.is_empty() {
        return Err(EvaluateError::Config(
            "nothing to evaluate: give generator checkpoints or --every-epoch RUN".into(),
        ));
    }
    let t0 = Instant::now();
    let classifier = load_classifier(&cfg.classifier, device)?;
    progress(EvaluateEvent::Calibrating);
    let test = FashionMnist::load(&cfg.data_dir, Split::Test, None)?;
    let train = FashionMnist::load(&cfg.data_dir, Split::Train, Some(CALIBRATION_TRAIN))?;
    let real = embed(&classifier, test.images(), device);
    let real_gauss = gaussian(real.features.view());
    let calibration = Calibration {
        train_vs_test: quality_of(
            &embed(&classifier, train.images(), device),
            real.features.view(),
            &real_gauss,
            1,
        ),
        noised_test: NOISE_SIGMAS
            .iter()
            .map(|&s| {
                let noisy = embed(&classifier, &noised(test.images(), s, 99), device);
                (s, quality_of(&noisy, real.features.view(), &real_gauss, 2))
            })
            .collect(),
        test_self: quality_of(&real, real.features.view(), &real_gauss, 3),
    };
    let mut generators = Vec::new();
    for (index, (run, epoch, path)) in targets.iter().enumerate() {
        progress(EvaluateEvent::Generator {
            index,
            total: targets.len(),
            path: path.clone(),
        });
        let images = generate(path, cfg.samples, cfg.default_bn_eps, device)?;
        let set = embed(&classifier, &images, device);
        generators.push(GeneratorQuality {
            run: run.clone(),
            epoch: *epoch,
            checkpoint: (path.clone(), sha256_file(path).map_err(io(path))?),
            quality: quality_of(&set, real.features.view(), &real_gauss, 4),
        });
    }
    let report = QualityReport {
        classifier: (
            cfg.classifier.clone(),
            sha256_file(&cfg.classifier).map_err(io(&cfg.classifier))?,
        ),
        samples: cfg.samples,
        z: serde_json::json!({"kind": "seeded", "base_seed": QUALITY_Z_SEED, "batch": 250,
            "generator": "ChaCha8Rng::seed_from_u64(base_seed + batch_index), rand_distr::StandardNormal"}),
        kid_subsets: DEFAULT_KID_SUBSETS,
        kid_subset_size: DEFAULT_KID_SUBSET_SIZE,
        calibration,
        generators,
        seconds: t0.elapsed().as_secs_f64(),
    };
    write_outputs(&report, out)?;
    Ok(report)
}

/// `quality.csv`: one line per generator.
pub fn quality_csv(report: &QualityReport) -> String {
    let mut s = String::from(
        "run,epoch,checkpoint,images,fd,kid,kid_std_error,is_mean,is_sd,kl_from_uniform\n",
    );
    for g in &report.generators {
        let q = &g.quality;
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            g.run
                .as_ref()
                .map(|r| r.display().to_string())
                .unwrap_or_default(),
            g.epoch.map(|e| e.to_string()).unwrap_or_default(),
            g.checkpoint.0.display(),
            q.images,
            q.fd,
            q.kid,
            q.kid_std_error,
            q.is_mean,
            q.is_sd,
            q.kl_from_uniform
        ));
    }
    s
}

/// FD against epoch, one line per run (`None` when no run was evaluated per epoch).
pub fn fd_series(report: &QualityReport) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for g in &report.generators {
        let (Some(run), Some(epoch)) = (&g.run, g.epoch) else {
            continue;
        };
        let name = run
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| run.display().to_string());
        let point = (epoch as f64, g.quality.fd);
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, pts)) => pts.push(point),
            None => series.push((name, vec![point])),
        }
    }
    series
}

fn write_outputs(report: &QualityReport, out: &Path) -> Result<(), EvaluateError> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = temp_path_for(out);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let result = (|| {
        let mut json = serde_json::to_value(report).map_err(|e| EvaluateError::Io {
            path: out.join("quality.json"),
            message: e.to_string(),
        })?;
        json["kind"] = "unitmatch.quality".into();
        json["versions"] = versions();
        let p = tmp.join("quality.json");
        atomic_write(
            &p,
            serde_json::to_string_pretty(&json)
                .unwrap_or_default()
                .as_bytes(),
        )
        .map_err(io(&p))?;
        let p = tmp.join("quality.csv");
        atomic_write(&p, quality_csv(report).as_bytes()).map_err(io(&p))?;
        let series = fd_series(report);
        if !series.is_empty() {
            let p = tmp.join("quality_fd.png");
            let png = render::evolution_png(
                &series,
                "FD-FMNIST against epoch (lower is better)",
                "epoch (0 = initialisation)",
                "FD-FMNIST",
            )
            .map_err(|m| EvaluateError::Io {
                path: p.clone(),
                message: m,
            })?;
            atomic_write(&p, &png).map_err(io(&p))?;
        }
        Ok::<_, EvaluateError>(())
    })();
    match result {
        Ok(()) => {
            if out.exists() {
                std::fs::remove_dir_all(out).map_err(io(out))?;
            }
            std::fs::rename(&tmp, out).map_err(io(out))
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_seeded_and_clamped() {
        let img = vec![0.95f32; 1000];
        let a = noised(&img, 0.3, 5);
        assert_eq!(a, noised(&img, 0.3, 5));
        assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert!(a.contains(&1.0), "clamped at the top");
        let mean: f64 = a.iter().map(|&v| v as f64).sum::<f64>() / 1000.0;
        assert!((mean - 0.95).abs() < 0.1);
    }
}
