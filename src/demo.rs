//! The demo: the seed's study end to end at a size that finishes in minutes on a laptop.
//!
//! `run_demo(&DemoConfig::preset(data_dir), out, StartMode::Fresh, &device, &mut |e| ..)` trains
//! GAN A (seed 0) and GAN B (seed 1) side by side, each on half the CPU threads, then compares
//! their last generators against two null models ([`DEMO_NULL_DRAWS`] draws each), matches their
//! units, tests the top matches causally (`compare/causal/`), and sweeps every epoch
//! (0 = initialisation) with [`DEMO_SWEEP_NULL_DRAWS`] null draws.
//! Rerunning with `StartMode::Resume` reuses finished epochs and finished sweep folders. Last, it
//! takes the committed classifier (or trains a small one; `classifier/`, reused when present),
//! compares GAN A's last generator against it (`compare-classifier/`), scores every
//! checkpoint's quality through it (`quality/`), prunes GAN A's duplicate units against two
//! baselines (`prune/`), and writes the HTML report (`report/index.html`).

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::causal::{CausalConfig, CausalError, causal};
use crate::checkpoint::checkpoint_name;
use crate::classifier::{
    ClassifierConfig, ClassifierError, ClassifierTrainConfig, train_classifier,
};
use crate::compare::{
    CompareConfig, CompareError, CompareEvent, CompareSummary, compare_with_nulls,
};
use crate::evaluate::{EvaluateConfig, EvaluateError, evaluate};
use crate::matching::{MatchError, MatchOptions, MatchReport, match_table, write_match_outputs};
use crate::model::{GEN_LAYERS, UpConvOps};
use crate::null::{NullKind, NullOptions};
use crate::prune::{CurveConfig, PruneError, prune_curve};
use crate::report::{ReportData, ReportError, ReportInputs, ReportOptions, write_report};
use crate::similarity::Measure;
use crate::sweep::{EpochSelection, SweepConfig, SweepError, SweepEvent, SweepSummary, sweep};
use crate::train::{StartMode, TrainConfig, TrainError, TrainEvent, TrainSummary, train};
use crate::unroll::ZSource;

/// Width of the demo's GANs.
pub const DEMO_WIDTH: f64 = 0.25;
/// Epochs of the demo's GANs.
pub const DEMO_EPOCHS: usize = 4;
/// Latent codes for the demo's comparison.
pub const DEMO_SAMPLES: usize = 2000;
/// Width of the demo's classifier (16, 32, 64 channels).
pub const DEMO_CLASSIFIER_WIDTH: f64 = 0.5;
/// Epochs of the demo's classifier.
pub const DEMO_CLASSIFIER_EPOCHS: usize = 3;
/// Generated images per checkpoint for the demo's quality metrics.
pub const DEMO_QUALITY_SAMPLES: usize = 5000;
/// Null draws per model for the final comparison: 19 makes p = 0.05 attainable.
pub const DEMO_NULL_DRAWS: usize = 19;
/// Null draws per model and epoch in the sweep (z-scores; the smallest p is 1/6).
pub const DEMO_SWEEP_NULL_DRAWS: usize = 5;
/// Top pairs in the demo's causal test.
pub const DEMO_CAUSAL_PAIRS: usize = 20;
/// Control draws per pair in the causal test (19: p = 0.05 attainable).
pub const DEMO_CAUSAL_CONTROLS: usize = 19;

/// The committed classifier: `assets/classifier-w1.safetensors`, made with
/// `unitmatch classifier train --epochs 5 --width 1 --batch 64 --out runs/classifier-w1` (seed 0,
/// 2 threads; test accuracy 91.52%, see `assets/classifier-w1.metrics.json`).
pub fn committed_classifier() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join("classifier-w1.safetensors")
}

/// Puts the classifier the demo uses into `dir`: a copy of the committed checkpoint (and its
/// metrics and confusion figure), or, without one, a freshly trained classifier.
fn provide_classifier(cfg: &DemoConfig, dir: &Path, device: &Device) -> Result<(), DemoError> {
    let Some(src) = &cfg.classifier_checkpoint else {
        train_classifier(&cfg.classifier, dir, true, device, &mut |_| {})?;
        return Ok(());
    };
    let io = |e: std::io::Error| DemoError::Io {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    let tmp = crate::fsutil::temp_path_for(dir);
    std::fs::create_dir_all(&tmp).map_err(io)?;
    std::fs::copy(src, tmp.join("classifier.safetensors")).map_err(io)?;
    for (suffix, name) in [
        ("metrics.json", "metrics.json"),
        ("confusion.png", "confusion.png"),
    ] {
        let side = src.with_extension(suffix);
        if side.exists() {
            std::fs::copy(&side, tmp.join(name)).map_err(io)?;
        }
    }
    std::fs::rename(&tmp, dir).map_err(io)
}

/// Both null models with `draws` draws, alpha 0.05.
fn both_nulls(draws: usize) -> NullOptions {
    NullOptions {
        kinds: vec![NullKind::RandomInit, NullKind::PermutedZ],
        draws,
        alpha: 0.05,
    }
}

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// GAN A's training config (seed 0).
    pub a: TrainConfig,
    /// GAN B's training config (seed 1).
    pub b: TrainConfig,
    /// Latent codes for the comparison and every epoch of the sweep.
    pub samples: usize,
    /// Null models of the final comparison.
    pub nulls: NullOptions,
    /// Null models of each epoch of the sweep.
    pub sweep_nulls: NullOptions,
    /// The classifier trained for the quality metrics (reused when `classifier/` exists).
    pub classifier: ClassifierTrainConfig,
    /// Generated images per checkpoint for the quality metrics.
    pub quality_samples: usize,
    /// Latent codes for the causal test of the top matches.
    pub causal_samples: usize,
    /// Thresholds of the pruning curve of GAN A.
    pub prune_taus: Vec<f64>,
    /// Generated images per pruned generator for FD-FMNIST.
    pub prune_quality_samples: usize,
    /// A trained classifier to use instead of training one: the committed
    /// `assets/classifier-w1.safetensors` (with its `.metrics.json` and `.confusion.png`
    /// beside it), when present.
    pub classifier_checkpoint: Option<PathBuf>,
}

impl DemoConfig {
    /// The preset: width 0.25, 4 epochs over all 60,000 images, 2,000 z for the comparison.
    pub fn preset(data_dir: PathBuf) -> Self {
        let make = |seed| {
            let mut cfg = TrainConfig::reference(seed, DEMO_EPOCHS, data_dir.clone());
            cfg.model.width = DEMO_WIDTH;
            cfg
        };
        Self {
            a: make(0),
            b: make(1),
            samples: DEMO_SAMPLES,
            nulls: both_nulls(DEMO_NULL_DRAWS),
            sweep_nulls: both_nulls(DEMO_SWEEP_NULL_DRAWS),
            classifier: ClassifierTrainConfig {
                model: ClassifierConfig {
                    width: DEMO_CLASSIFIER_WIDTH,
                },
                epochs: DEMO_CLASSIFIER_EPOCHS,
                batch: 64,
                ..ClassifierTrainConfig::new(0, data_dir.clone())
            },
            quality_samples: DEMO_QUALITY_SAMPLES,
            causal_samples: 256,
            prune_taus: vec![0.95, 0.9, 0.8, 0.7, 0.6, 0.5],
            prune_quality_samples: 2000,
            classifier_checkpoint: Some(committed_classifier()).filter(|p| p.exists()),
        }
    }
}

/// Errors from the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Training one of the GANs failed.
    #[error("training {name}: {source}")]
    Train {
        /// "gan-a" or "gan-b".
        name: &'static str,
        /// The cause.
        source: TrainError,
    },
    /// The comparison failed.
    #[error(transparent)]
    Compare(#[from] CompareError),
    /// Writing the matching failed.
    #[error(transparent)]
    Match(#[from] MatchError),
    /// The epoch sweep failed.
    #[error(transparent)]
    Sweep(#[from] SweepError),
    /// The report failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Training the classifier failed.
    #[error(transparent)]
    Classifier(#[from] ClassifierError),
    /// The quality evaluation failed.
    #[error(transparent)]
    Evaluate(#[from] EvaluateError),
    /// The causal test failed.
    #[error(transparent)]
    Causal(#[from] CausalError),
    /// Pruning failed.
    #[error(transparent)]
    Prune(#[from] PruneError),
    /// The output folder exists (Fresh mode).
    #[error("{0} already exists: pass --resume to continue it or --force to start over")]
    Exists(PathBuf),
    /// File system error.
    #[error("{path}: {message}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The cause.
        message: String,
    },
}

/// Progress of the demo, tagged with the GAN it concerns.
#[derive(Debug, Clone)]
pub enum DemoEvent {
    /// A training event of "gan-a" or "gan-b".
    Train(&'static str, TrainEvent),
    /// A comparison event.
    Compare(CompareEvent),
    /// An epoch-sweep event.
    Sweep(SweepEvent),
    /// A later stage starts: "causal", "classifier", "classifier-compare", "quality", "prune"
    /// or "report".
    Stage(&'static str),
}

/// What the demo produced.
#[derive(Debug)]
pub struct DemoSummary {
    /// GAN A's and GAN B's training summaries.
    pub gans: Vec<(&'static str, TrainSummary)>,
    /// The comparison of their last generators.
    pub comparison: CompareSummary,
    /// Matching of the two last generators (default options).
    pub matches: MatchReport,
    /// The comparison folder.
    pub compare_dir: PathBuf,
    /// The epoch sweep.
    pub sweep: SweepSummary,
    /// The sweep folder.
    pub sweep_dir: PathBuf,
    /// What the report shows.
    pub report: ReportData,
    /// The report folder (`index.html` inside).
    pub report_dir: PathBuf,
}

/// Runs the demo into `out` (`gan-a/`, `gan-b/`, `compare/`, `sweep/`, `report/`).
///
/// The two GANs train concurrently, each on its own rayon pool of half the threads: on 2
/// cores this gives about 1.4x the throughput of training them one after the other.
pub fn run_demo(
    cfg: &DemoConfig,
    out: &Path,
    mode: StartMode,
    device: &Device,
    progress: &(dyn Fn(DemoEvent) + Sync),
) -> Result<DemoSummary, DemoError> {
    let io = |e: std::io::Error| DemoError::Io {
        path: out.to_path_buf(),
        message: e.to_string(),
    };
    match mode {
        StartMode::Fresh if out.exists() => return Err(DemoError::Exists(out.to_path_buf())),
        StartMode::Force if out.exists() => std::fs::remove_dir_all(out).map_err(io)?,
        _ => {}
    }
    std::fs::create_dir_all(out).map_err(io)?;
    let threads = (rayon::current_num_threads() / 2).max(1);
    let runs = [("gan-a", &cfg.a), ("gan-b", &cfg.b)];
    let results: Vec<Result<(&'static str, TrainSummary), DemoError>> = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .iter()
            .map(|&(name, tcfg)| {
                let run = out.join(name);
                s.spawn(move || {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .map_err(|e| DemoError::Io {
                            path: run.clone(),
                            message: format!("thread pool: {e}"),
                        })?;
                    // A finished or interrupted run is continued; anything else starts afresh.
                    let mode = if crate::train::last_finished_epoch(&run).is_some() {
                        StartMode::Resume
                    } else {
                        StartMode::Force
                    };
                    pool.install(|| {
                        train(tcfg, &run, mode, device, &mut |e| {
                            progress(DemoEvent::Train(name, e))
                        })
                    })
                    .map(|s| (name, s))
                    .map_err(|source| DemoError::Train { name, source })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("training thread does not panic"))
            .collect()
    });
    let gans = results.into_iter().collect::<Result<Vec<_>, _>>()?;

    let last = |c: &TrainConfig, name: &str| {
        out.join(name)
            .join("checkpoints")
            .join(checkpoint_name(c.epochs))
    };
    let compare_dir = out.join("compare");
    let ccfg = CompareConfig {
        a: last(&cfg.a, "gan-a"),
        b: last(&cfg.b, "gan-b"),
        z: ZSource::seeded(cfg.samples, 100),
        measure: Measure::Pearson,
        layers: GEN_LAYERS.iter().map(|s| s.to_string()).collect(),
        shard: None,
        default_bn_eps: cfg.a.model.bn_eps,
        force: true,
    };
    let eval_device = device.clone().without_autodiff();
    let comparison = compare_with_nulls(&ccfg, &cfg.nulls, &compare_dir, &eval_device, &mut |e| {
        progress(DemoEvent::Compare(e))
    })?;
    let table = comparison
        .table
        .as_ref()
        .expect("a full comparison writes its table");
    let matches = match_table(table, &MatchOptions::default());
    write_match_outputs(&matches, table, &compare_dir)?;
    // Are the top matches causally alike? (compare/causal/)
    progress(DemoEvent::Stage("causal"));
    let causal_cfg = CausalConfig {
        dir: compare_dir.clone(),
        top: DEMO_CAUSAL_PAIRS,
        samples: cfg.causal_samples,
        batch: 64,
        controls: DEMO_CAUSAL_CONTROLS,
        seed: 0,
        ops: UpConvOps::default(),
        force: true,
    };
    causal(
        &causal_cfg,
        &compare_dir.join("causal"),
        &eval_device,
        &mut |_, _| {},
    )?;
    let sweep_dir = out.join("sweep");
    let scfg = SweepConfig {
        run_a: out.join("gan-a"),
        run_b: out.join("gan-b"),
        epochs: EpochSelection::All,
        z: ccfg.z.clone(),
        measure: ccfg.measure,
        layers: ccfg.layers.clone(),
        nulls: cfg.sweep_nulls.clone(),
        matching: MatchOptions::default(),
        default_bn_eps: cfg.a.model.bn_eps,
        force: false,
    };
    let sweep = sweep(&scfg, &sweep_dir, &eval_device, &mut |e| {
        progress(DemoEvent::Sweep(e))
    })?;
    let classifier_dir = out.join("classifier");
    if !classifier_dir.join("classifier.safetensors").exists() {
        progress(DemoEvent::Stage("classifier"));
        provide_classifier(cfg, &classifier_dir, device)?;
    }
    // GAN A against the classifier (B sees A's images of the same z).
    progress(DemoEvent::Stage("classifier-compare"));
    let classifier_compare_dir = out.join("compare-classifier");
    let cls_cfg = CompareConfig {
        b: classifier_dir.join("classifier.safetensors"),
        ..ccfg.clone()
    };
    let cls_comparison = compare_with_nulls(
        &cls_cfg,
        &cfg.nulls,
        &classifier_compare_dir,
        &eval_device,
        &mut |e| progress(DemoEvent::Compare(e)),
    )?;
    let cls_table = cls_comparison
        .table
        .as_ref()
        .expect("a full comparison writes its table");
    write_match_outputs(
        &match_table(cls_table, &MatchOptions::default()),
        cls_table,
        &classifier_compare_dir,
    )?;
    progress(DemoEvent::Stage("quality"));
    let quality_dir = out.join("quality");
    let ecfg = EvaluateConfig {
        generators: Vec::new(),
        every_epoch: vec![out.join("gan-a"), out.join("gan-b")],
        classifier: classifier_dir.join("classifier.safetensors"),
        samples: cfg.quality_samples,
        data_dir: cfg.classifier.data_dir.clone(),
        default_bn_eps: cfg.a.model.bn_eps,
        force: true,
    };
    evaluate(&ecfg, &quality_dir, &eval_device, &mut |_| {})?;
    // Removing GAN A's duplicate units, against baselines, through the same classifier.
    progress(DemoEvent::Stage("prune"));
    let prune_dir = out.join("prune");
    let pcfg = CurveConfig {
        checkpoint: ccfg.a.clone(),
        taus: cfg.prune_taus.clone(),
        samples: 500.min(cfg.samples),
        classifier: Some(classifier_dir.join("classifier.safetensors")),
        quality_samples: cfg.prune_quality_samples,
        data_dir: cfg.classifier.data_dir.clone(),
        default_bn_eps: cfg.a.model.bn_eps,
        seed: 0,
        force: true,
    };
    prune_curve(&pcfg, &prune_dir, &eval_device)?;
    progress(DemoEvent::Stage("report"));
    let inputs = ReportInputs {
        runs: ["gan-a", "gan-b"]
            .map(|n| (n.to_string(), out.join(n)))
            .to_vec(),
        compare: Some(compare_dir.clone()),
        sweep: Some(sweep_dir.clone()),
        classifier: Some(classifier_dir),
        quality: Some(quality_dir),
        classifier_compare: Some(classifier_compare_dir),
        causal: Some(compare_dir.join("causal")),
        prune: Some(prune_dir),
    };
    let report_dir = out.join("report");
    let report = write_report(
        &inputs,
        &report_dir,
        &ReportOptions::default(),
        &eval_device,
    )?;
    Ok(DemoSummary {
        gans,
        comparison,
        matches,
        compare_dir,
        sweep,
        sweep_dir,
        report,
        report_dir,
    })
}
