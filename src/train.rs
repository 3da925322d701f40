//! The reference GAN loop (METHOD.md section 1), with checkpoints, sample grids and resume.
//!
//! `train(&cfg, &run_dir, StartMode::Fresh, &mut |event| ...)` trains one GAN into a run folder;
//! the callback receives progress events (the library never prints). Every epoch ends with an
//! atomic commit: generator checkpoint, sample grid, `losses.csv` row, then the resume state.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointError, checkpoint_name, save_generator};
use crate::data::{self, FashionMnist, Split};
use crate::fsutil::atomic_write;
use crate::model::{Discriminator, Generator, IMG_SIZE, LATENT_DIM, ModelConfig, UpConvOps};
use crate::render;

mod files;

pub use files::read_losses;
use files::{finish_run, load_state, save_state, write_losses, write_run_json};

/// Everything that decides a training run; saved as `run.json` in the run folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    /// Run seed: weight init, shuffling, z draws and dropout masks all derive from it.
    pub seed: u64,
    /// Number of passes over the (limited) training set.
    pub epochs: usize,
    /// Architecture options.
    pub model: ModelConfig,
    /// Images per iteration (the last batch of an epoch may be smaller, as in PyTorch).
    pub batch: usize,
    /// Adam learning rate for both networks.
    pub lr: f64,
    /// Adam beta1.
    pub beta1: f64,
    /// Adam beta2.
    pub beta2: f64,
    /// Use only the first N training images.
    pub limit: Option<usize>,
    /// Folder with the Fashion-MNIST IDX files.
    pub data_dir: PathBuf,
    /// Seed of the fixed z used for the per-epoch sample grids (shared by all runs, so that
    /// two GANs' grids show the same codes).
    pub sample_seed: u64,
    /// Number of images in each sample grid.
    pub grid_samples: usize,
    /// How the generator computes "upsample x2, conv 3x3": the phase decomposition (default)
    /// or the reference path (`--reference-ops`), for A/B checks. Same numbers up to rounding.
    #[serde(default)]
    pub ops: UpConvOps,
}

impl TrainConfig {
    /// The reference hyper-parameters (METHOD.md) with the given seed and epochs.
    pub fn reference(seed: u64, epochs: usize, data_dir: PathBuf) -> Self {
        Self {
            seed,
            epochs,
            model: ModelConfig::default(),
            batch: 64,
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            limit: None,
            data_dir,
            sample_seed: 5555,
            grid_samples: 50,
            ops: UpConvOps::default(),
        }
    }
}

/// Errors from training; each names the file or folder involved.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The run folder exists and neither resume nor force was asked for.
    #[error(
        "{0} already exists: pass --resume to continue it or --force to start over (this deletes it)"
    )]
    RunExists(PathBuf),
    /// Resume was asked for but the folder holds no finished epoch.
    #[error("{0}: nothing to resume (no finished epoch in state/)")]
    NothingToResume(PathBuf),
    /// The saved config differs from the one given on resume.
    #[error("{path}: the run was started with a different config; saved: {saved}, given: {given}")]
    ConfigMismatch {
        /// run.json
        path: PathBuf,
        /// Saved config (JSON).
        saved: String,
        /// Given config (JSON).
        given: String,
    },
    /// Invalid option.
    #[error("invalid training config: {0}")]
    Config(String),
    /// Data loading failed.
    #[error(transparent)]
    Data(#[from] data::DataError),
    /// Checkpoint writing failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// How to treat an existing run folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// Refuse if the folder exists.
    Fresh,
    /// Delete an existing folder and start over.
    Force,
    /// Continue from the last finished epoch (a fresh start if the folder does not exist).
    Resume,
}

/// Per-epoch numbers, one row of `losses.csv`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean generator loss over the epoch's iterations.
    pub g_loss: f64,
    /// Mean discriminator loss.
    pub d_loss: f64,
    /// Fraction of real images the discriminator called real (D > 0.5) in its steps.
    pub d_real_acc: f64,
    /// Fraction of generated images it called fake (D < 0.5).
    pub d_fake_acc: f64,
    /// Wall-clock seconds of the epoch's iterations.
    pub seconds: f64,
    /// Training throughput (real images per second).
    pub img_per_s: f64,
}

/// Progress reported to the caller.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    /// An epoch begins.
    EpochStart {
        /// 1-based epoch.
        epoch: usize,
        /// Total epochs.
        epochs: usize,
        /// Iterations in this epoch.
        iters: usize,
    },
    /// An iteration finished.
    Iteration {
        /// 1-based iteration within the epoch.
        iter: usize,
        /// Generator loss of this iteration.
        g_loss: f32,
        /// Discriminator loss.
        d_loss: f32,
        /// Images per second so far in this epoch.
        img_per_s: f64,
    },
    /// An epoch finished and was committed to disk.
    EpochEnd(EpochStats),
}

/// What `train` returns.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// All epochs' stats, including those done before a resume.
    pub epochs: Vec<EpochStats>,
    /// Last generator checkpoint.
    pub last_checkpoint: PathBuf,
}

/// SplitMix64 of `seed` and a stream number: independent seeds for each use of the run seed.
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seed of the generator's initial weights.
pub fn generator_seed(seed: u64) -> u64 {
    derive_seed(seed, 1)
}

/// Seed of the discriminator's initial weights.
pub fn discriminator_seed(seed: u64) -> u64 {
    derive_seed(seed, 2)
}

/// `n` standard-normal latent codes from `rng`, as `[n, 100]` f32.
pub fn normal_z(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n * LATENT_DIM)
        .map(|_| StandardNormal.sample(rng))
        .collect()
}

/// PyTorch's `BCELoss` on probabilities against a constant target 0 or 1, logs clamped at
/// -100: `-mean(log p)` for target 1, `-mean(log(1 - p))` for target 0.
pub fn bce(p: Tensor<2>, target_is_one: bool) -> Tensor<1> {
    let q = if target_is_one {
        p
    } else {
        p.neg().add_scalar(1.0)
    };
    q.log().clamp_min(-100.0).mean().neg()
}

struct Paths {
    root: PathBuf,
}

impl Paths {
    fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    fn samples(&self) -> PathBuf {
        self.root.join("samples")
    }
    fn state(&self) -> PathBuf {
        self.root.join("state")
    }
    fn state_epoch(&self, epoch: usize) -> PathBuf {
        self.state().join(format!("epoch-{epoch:04}"))
    }
    fn losses(&self) -> PathBuf {
        self.root.join("losses.csv")
    }
    fn sample_png(&self, epoch: usize) -> PathBuf {
        self.samples().join(format!("epoch-{epoch:04}.png"))
    }
}

/// Latest epoch with a complete resume state in `run/state/`.
pub fn last_finished_epoch(run: &Path) -> Option<usize> {
    let dir = run.join("state");
    let mut best = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name();
        let name = name.to_str().unwrap_or("");
        if let Some(e) = name
            .strip_prefix("epoch-")
            .and_then(|s| s.parse::<usize>().ok())
            && entry.path().join("done").exists()
        {
            best = best.max(Some(e));
        }
    }
    best
}

/// Trains one GAN into `run_dir` and returns its per-epoch stats.
///
/// The device must have autodiff (`Device::flex().autodiff()` on the CPU).
pub fn train(
    cfg: &TrainConfig,
    run_dir: &Path,
    mode: StartMode,
    device: &Device,
    progress: &mut dyn FnMut(TrainEvent),
) -> Result<TrainSummary, TrainError> {
    cfg.model.validate().map_err(TrainError::Config)?;
    if cfg.batch == 0 || cfg.epochs == 0 {
        return Err(TrainError::Config(
            "batch and epochs must be at least 1".into(),
        ));
    }
    let paths = Paths {
        root: run_dir.to_path_buf(),
    };
    // Read the data before touching the run folder, so bad input leaves nothing behind.
    let data = FashionMnist::load(&cfg.data_dir, Split::Train, cfg.limit)?;
    if data.is_empty() {
        return Err(TrainError::Config("the training set is empty".into()));
    }
    let resume_from = prepare_run_dir(cfg, &paths, mode)?;

    let adam = AdamConfig::new()
        .with_beta_1(cfg.beta1 as f32)
        .with_beta_2(cfg.beta2 as f32)
        .with_epsilon(1e-8);
    let mut g = Generator::new(&cfg.model, generator_seed(cfg.seed), device);
    let mut d = Discriminator::new(&cfg.model, discriminator_seed(cfg.seed), device);
    let mut opt_g = adam.init();
    let mut opt_d = adam.init();
    let mut history: Vec<EpochStats> = Vec::new();
    if let Some(epoch) = resume_from {
        let dir = paths.state_epoch(epoch);
        load_state(&dir, &mut g, &mut d, &mut opt_g, &mut opt_d)?;
        history = read_losses(&paths.losses())?;
        history.retain(|s| s.epoch <= epoch);
    }
    // Epoch 0 is the initialisation, so that sweeps can start before any training; the
    // initial weights are a pure function of the seed, so a resumed run can write it too.
    let init = paths.checkpoints().join(checkpoint_name(0));
    if !init.exists() {
        let g0 = Generator::new(&cfg.model, generator_seed(cfg.seed), device);
        save_generator(&g0, &cfg.model, &init)?;
    }
    write_run_json(cfg, &paths, &data, &history, None)?;

    let fixed_z = normal_z(
        &mut ChaCha8Rng::seed_from_u64(cfg.sample_seed),
        cfg.grid_samples,
    );
    let start_epoch = resume_from.map_or(1, |e| e + 1);
    let t_run = Instant::now();
    for epoch in start_epoch..=cfg.epochs {
        let stats = train_epoch(
            cfg, epoch, &data, device, &mut g, &mut d, &mut opt_g, &mut opt_d, progress,
        );
        commit_epoch(
            cfg,
            &paths,
            epoch,
            &g,
            &d,
            &opt_g,
            &opt_d,
            &fixed_z,
            device,
            &stats,
            &mut history,
        )?;
        write_run_json(
            cfg,
            &paths,
            &data,
            &history,
            Some(t_run.elapsed().as_secs_f64()),
        )?;
        progress(TrainEvent::EpochEnd(stats));
    }
    finish_run(&paths, &history)?;
    Ok(TrainSummary {
        last_checkpoint: paths.checkpoints().join(checkpoint_name(cfg.epochs)),
        epochs: history,
    })
}

/// Creates or checks the run folder; returns the epoch to resume from, if any.
fn prepare_run_dir(
    cfg: &TrainConfig,
    paths: &Paths,
    mode: StartMode,
) -> Result<Option<usize>, TrainError> {
    let root = &paths.root;
    let mut resume_from = None;
    if root.exists() {
        match mode {
            StartMode::Fresh => return Err(TrainError::RunExists(root.clone())),
            StartMode::Force => std::fs::remove_dir_all(root).map_err(io_err(root))?,
            StartMode::Resume => {
                let epoch = last_finished_epoch(root)
                    .ok_or_else(|| TrainError::NothingToResume(root.clone()))?;
                let run_json = root.join("run.json");
                let text = std::fs::read_to_string(&run_json).map_err(io_err(&run_json))?;
                let saved: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| TrainError::Io {
                        path: run_json.clone(),
                        message: e.to_string(),
                    })?;
                let saved_cfg: TrainConfig = serde_json::from_value(saved["config"].clone())
                    .map_err(|e| TrainError::Io {
                        path: run_json.clone(),
                        message: format!("bad config: {e}"),
                    })?;
                // The number of epochs may grow on resume; everything else must match.
                let mut comparable = saved_cfg.clone();
                comparable.epochs = cfg.epochs;
                if comparable != *cfg {
                    return Err(TrainError::ConfigMismatch {
                        path: run_json,
                        saved: serde_json::to_string(&saved_cfg).unwrap_or_default(),
                        given: serde_json::to_string(cfg).unwrap_or_default(),
                    });
                }
                resume_from = Some(epoch.min(cfg.epochs));
            }
        }
    }
    for dir in [
        root.clone(),
        paths.checkpoints(),
        paths.samples(),
        paths.state(),
    ] {
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    }
    Ok(resume_from)
}

/// One pass over the data in the reference order: G step (D(G(z)) against 1), then D step
/// (mean of BCE(D(real), 1) and BCE(D(G(z).detach()), 0)).
#[allow(clippy::too_many_arguments)]
fn train_epoch(
    cfg: &TrainConfig,
    epoch: usize,
    data: &FashionMnist,
    device: &Device,
    g: &mut Generator,
    d: &mut Discriminator,
    opt_g: &mut ModuleOptimizer,
    opt_d: &mut ModuleOptimizer,
    progress: &mut dyn FnMut(TrainEvent),
) -> EpochStats {
    let n = data.len();
    let order = data::epoch_permutation(n, cfg.seed, epoch);
    let iters = n.div_ceil(cfg.batch);
    progress(TrainEvent::EpochStart {
        epoch,
        epochs: cfg.epochs,
        iters,
    });
    // z draws and dropout masks for this epoch, stateless in (seed, epoch) so resume is exact.
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, 1000 + epoch as u64));
    let (mut g_sum, mut d_sum, mut real_ok, mut fake_ok) = (0.0, 0.0, 0usize, 0usize);
    let t0 = Instant::now();
    let px = IMG_SIZE * IMG_SIZE;
    for (it, idx) in order.chunks(cfg.batch).enumerate() {
        let b = idx.len();
        let mut real = Vec::with_capacity(b * px);
        for &i in idx {
            real.extend_from_slice(&data.images()[i * px..(i + 1) * px]);
        }
        let real =
            Tensor::<4>::from_data(TensorData::new(real, [b, 1, IMG_SIZE, IMG_SIZE]), device);
        let z = Tensor::<2>::from_data(
            TensorData::new(normal_z(&mut rng, b), [b, LATENT_DIM]),
            device,
        );

        // Generator step.
        let fake = g.forward_ops(z, true, cfg.ops);
        let g_loss = bce(d.forward(fake.clone(), Some(&mut rng)), true);
        let g_loss_value = g_loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(g_loss.backward(), &*g);
        *g = opt_g.step(cfg.lr, g.clone(), grads);

        // Discriminator step.
        let p_real = d.forward(real, Some(&mut rng));
        let p_fake = d.forward(fake.detach(), Some(&mut rng));
        real_ok += count_where(&p_real, true);
        fake_ok += count_where(&p_fake, false);
        let d_loss = (bce(p_real, true) + bce(p_fake, false)).div_scalar(2.0);
        let d_loss_value = d_loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(d_loss.backward(), &*d);
        *d = opt_d.step(cfg.lr, d.clone(), grads);

        g_sum += g_loss_value as f64;
        d_sum += d_loss_value as f64;
        let done = (it * cfg.batch + b) as f64;
        progress(TrainEvent::Iteration {
            iter: it + 1,
            g_loss: g_loss_value,
            d_loss: d_loss_value,
            img_per_s: done / t0.elapsed().as_secs_f64().max(1e-9),
        });
    }
    let seconds = t0.elapsed().as_secs_f64();
    EpochStats {
        epoch,
        g_loss: g_sum / iters as f64,
        d_loss: d_sum / iters as f64,
        d_real_acc: real_ok as f64 / n as f64,
        d_fake_acc: fake_ok as f64 / n as f64,
        seconds,
        img_per_s: n as f64 / seconds.max(1e-9),
    }
}

fn count_where(p: &Tensor<2>, real: bool) -> usize {
    let v = p
        .clone()
        .detach()
        .into_data()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    v.iter()
        .filter(|&&x| if real { x > 0.5 } else { x < 0.5 })
        .count()
}

/// Writes the epoch's outputs, the resume state last (its `done` marker is the commit point).
#[allow(clippy::too_many_arguments)]
fn commit_epoch(
    cfg: &TrainConfig,
    paths: &Paths,
    epoch: usize,
    g: &Generator,
    d: &Discriminator,
    opt_g: &ModuleOptimizer,
    opt_d: &ModuleOptimizer,
    fixed_z: &[f32],
    device: &Device,
    stats: &EpochStats,
    history: &mut Vec<EpochStats>,
) -> Result<(), TrainError> {
    save_generator(
        g,
        &cfg.model,
        &paths.checkpoints().join(checkpoint_name(epoch)),
    )?;
    let images = sample_images(&g.valid(), fixed_z, device);
    let png = render::sample_grid_png(&images, IMG_SIZE, 10, 2);
    let png_path = paths.sample_png(epoch);
    atomic_write(&png_path, &png).map_err(io_err(&png_path))?;
    history.retain(|s| s.epoch < epoch);
    history.push(stats.clone());
    write_losses(&paths.losses(), history)?;

    let dir = paths.state_epoch(epoch);
    let tmp = paths.state().join(format!(".epoch-{epoch:04}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    save_state(&tmp, g, d, opt_g, opt_d)?;
    std::fs::write(tmp.join("done"), epoch.to_string()).map_err(io_err(&tmp))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    std::fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
    // Only the latest resume state is kept; per-epoch generators stay in checkpoints/.
    for entry in std::fs::read_dir(paths.state())
        .map_err(io_err(&paths.state()))?
        .flatten()
    {
        let p = entry.path();
        if p != dir
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("epoch-"))
        {
            std::fs::remove_dir_all(&p).map_err(io_err(&p))?;
        }
    }
    Ok(())
}

/// Runs `g` (eval mode) on `z` (`[n, 100]` flattened) and returns the images, `[n, 32, 32]`
/// flattened, in [-1, 1].
pub fn sample_images(g: &Generator, z: &[f32], device: &Device) -> Vec<f32> {
    let n = z.len() / LATENT_DIM;
    let z = Tensor::<2>::from_data(TensorData::new(z.to_vec(), [n, LATENT_DIM]), device);
    g.forward(z, false)
        .into_data()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}
