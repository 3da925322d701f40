//! `unitmatch report DIR...`: one self-contained folder with the seed's figures made from our
//! outputs, and the numbers behind them.
//!
//! `write_report(&discover(&dirs)?, out, &ReportOptions::default(), &device)` reads training run
//! folders, one compare folder (with `significance.json` and the matching when present) and
//! one sweep folder, and writes `out/index.html`, the figures beside it, and `report.json`
//! ([`ReportData`]). The page is rendered from `ReportData` alone (see [`html`]), so every
//! number on it is in `report.json`. A missing input hides its section with a note saying how
//! to produce it; it never fails the report. The folder is written under a temporary name and
//! renamed, so a failed report leaves nothing behind.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ndarray::Array2;
use serde::Serialize;

use crate::cka::LayerCka;
use crate::fsutil::versions;
use crate::matching::{MatchOptions, MatchReport, load_table, match_table};
use crate::null::NullKind;
use crate::render::{
    self, BlockStat, DepthCurve, Heatmap, LayerSpan, block_spans, block_values,
    reorder_by_assignment,
};
use crate::similarity::{LayerPairSummary, SimilarityTable};
use crate::sweep::{EVOLUTION_HEADER, EvolutionRow, NULL_COLUMNS};
use crate::train::{EpochStats, read_losses};

pub mod gallery;
pub mod html;

pub use gallery::GalleryPair;

/// Errors of the report; each names the folder or file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No input folder was recognised, or the inputs are ambiguous.
    #[error("{path}: {message}")]
    Inputs {
        /// The folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An input file is malformed.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Writing failed.
    #[error("{path}: {message}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        message: String,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ReportError + '_ {
    move |e| ReportError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn invalid(path: &Path, message: impl Into<String>) -> ReportError {
    ReportError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The folders a report is made from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReportInputs {
    /// Training run folders (`losses.csv` and `checkpoints/`), with a display name each.
    pub runs: Vec<(String, PathBuf)>,
    /// A compare folder (`table.npy`, `run.json`).
    pub compare: Option<PathBuf>,
    /// A sweep folder (`sweep.json`, `evolution.csv`).
    pub sweep: Option<PathBuf>,
    /// A classifier folder (`classifier train`: `metrics.json`, `classifier.safetensors`).
    pub classifier: Option<PathBuf>,
    /// A quality folder (`evaluate`: `quality.json`).
    pub quality: Option<PathBuf>,
    /// A compare folder whose B is a classifier (`compare GEN CLS.safetensors`): GAN A
    /// against a discriminative network.
    pub classifier_compare: Option<PathBuf>,
    /// A causal-test folder (`unitmatch causal`: `causal.json`); also found as `causal/`
    /// inside the compare folder.
    pub causal: Option<PathBuf>,
    /// A pruning folder (`unitmatch prune`: `prune_curve.csv`).
    pub prune: Option<PathBuf>,
}

/// What kind of output folder `dir` is, from its files.
fn classify(dir: &Path) -> Option<&'static str> {
    if dir.join("table.npy").exists() && dir.join("run.json").exists() {
        let b_is_classifier = std::fs::read_to_string(dir.join("run.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v["inputs"]["network_b"] == "classifier");
        Some(if b_is_classifier {
            "classifier-compare"
        } else {
            "compare"
        })
    } else if dir.join("causal.json").exists() {
        Some("causal")
    } else if dir.join("prune_curve.json").exists() {
        Some("prune")
    } else if dir.join("sweep.json").exists() {
        Some("sweep")
    } else if dir.join("losses.csv").exists() && dir.join("checkpoints").is_dir() {
        Some("run")
    } else if dir.join("quality.json").exists() {
        Some("quality")
    } else if dir.join("metrics.json").exists() && dir.join("classifier.safetensors").exists() {
        Some("classifier")
    } else {
        None
    }
}

/// Sorts the given folders into runs, one compare, sweep, classifier and quality folder each. A folder that is
/// none of these (a demo folder, say) is searched one level down, in name order.
pub fn discover(dirs: &[PathBuf]) -> Result<ReportInputs, ReportError> {
    let mut found = ReportInputs::default();
    let mut add = |dir: &Path, kind: &str| -> Result<(), ReportError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| dir.display().to_string());
        let slot = match kind {
            "compare" => &mut found.compare,
            "sweep" => &mut found.sweep,
            "quality" => &mut found.quality,
            "classifier" => &mut found.classifier,
            "classifier-compare" => &mut found.classifier_compare,
            "causal" => &mut found.causal,
            "prune" => &mut found.prune,
            _ => {
                found.runs.push((name, dir.to_path_buf()));
                return Ok(());
            }
        };
        if let Some(prev) = slot {
            return Err(ReportError::Inputs {
                path: dir.to_path_buf(),
                message: format!(
                    "a second {kind} folder (the first is {}); a report shows one",
                    prev.display()
                ),
            });
        }
        *slot = Some(dir.to_path_buf());
        Ok(())
    };
    for dir in dirs {
        if !dir.is_dir() {
            return Err(ReportError::Inputs {
                path: dir.clone(),
                message: "not a folder".into(),
            });
        }
        if let Some(kind) = classify(dir) {
            add(dir, kind)?;
            continue;
        }
        let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        children.sort();
        let mut any = false;
        for c in children {
            if let Some(kind) = classify(&c) {
                add(&c, kind)?;
                any = true;
            }
        }
        if !any {
            return Err(ReportError::Inputs {
                path: dir.clone(),
                message: "neither a training run, a compare folder, a sweep folder, nor a folder \
                          holding any of them"
                    .into(),
            });
        }
    }
    if found.causal.is_none()
        && let Some(c) = &found.compare
        && c.join("causal").join("causal.json").exists()
    {
        found.causal = Some(c.join("causal"));
    }
    Ok(found)
}

/// Options of a report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportOptions {
    /// Top pairs drawn as galleries (and listed).
    pub top: usize,
    /// Strict buddies drawn as galleries.
    pub buddies: usize,
    /// Codes searched for each gallery pair's best z.
    pub gallery_samples: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            top: 6,
            buddies: 6,
            gallery_samples: 500,
        }
    }
}

/// One training run as shown in the report.
#[derive(Debug, Clone, Serialize)]
pub struct TrainingRun {
    /// Display name (the folder name).
    pub name: String,
    /// The run folder.
    pub dir: PathBuf,
    /// Seed and width from its `run.json` (when readable).
    pub seed: Option<u64>,
    /// Channel width multiplier.
    pub width: Option<f64>,
    /// Every epoch's numbers (`losses.csv`).
    pub epochs: Vec<EpochStats>,
    /// Figure files in the report folder: the animated sample grids, the loss curves and the
    /// last sample grid (when the run has them).
    pub gif: Option<String>,
    /// Loss curves.
    pub losses_png: Option<String>,
    /// The last epoch's sample grid.
    pub last_grid: Option<String>,
}

/// A unit pair as listed in the report's tables.
#[derive(Debug, Clone, Serialize)]
pub struct PairRow {
    /// `layer:channel` of the unit of A.
    pub unit_a: String,
    /// `layer:channel` of the unit of B.
    pub unit_b: String,
    /// Signed table score.
    pub score: f64,
    /// Rank of A's unit within B's unit's column (1 = mutual best).
    pub rank: usize,
    /// Strict mutual best buddies.
    pub strict_buddy: bool,
    /// Rosetta (top-k) buddies.
    pub rosetta_buddy: bool,
    /// Family-wise p-value of the pair under each null model run ([`NULL_COLUMNS`] order).
    pub p: [Option<f64>; 2],
}

/// The table section: the compare folder's A x B table.
#[derive(Debug, Clone, Serialize)]
pub struct TableSection {
    /// The compare folder.
    pub dir: PathBuf,
    /// Checkpoints of A and B as recorded.
    pub checkpoints: [String; 2],
    /// Widths of A and B.
    pub widths: [Option<f64>; 2],
    /// The measure.
    pub measure: String,
    /// Latent codes accumulated.
    pub samples: u64,
    /// Units of A and of B.
    pub units: [usize; 2],
    /// Dead units of A and of B.
    pub dead: [usize; 2],
    /// Per layer pair: mean, max, mean of row max, mean of column max (`summary.json`).
    pub layer_pairs: Vec<LayerPairSummary>,
    /// Figures: full table, table reordered by the assignment, block table (mean of row max),
    /// scores vs depth for A and for B, and the full table as SVG.
    pub figures: TableFigures,
}

/// Figure files of the table section.
#[derive(Debug, Clone, Serialize)]
pub struct TableFigures {
    /// The full table.
    pub table: String,
    /// The full table as SVG.
    pub table_svg: String,
    /// The table with the one-to-one assignment on the diagonal.
    pub reordered: String,
    /// One cell per layer pair (mean of row max).
    pub block: String,
    /// A's row max in unit order.
    pub depth_a: String,
    /// B's column max in unit order.
    pub depth_b: String,
    /// What the band behind `depth_a` is (`None`: no band, no null model run).
    pub depth_band: Option<String>,
}

/// The matching section.
#[derive(Debug, Clone, Serialize)]
pub struct MatchesSection {
    /// Rosetta k.
    pub k: usize,
    /// Strict buddy pairs, and the fraction of A's live units in one.
    pub strict_buddies: usize,
    /// Fraction of A's live units with a strict buddy.
    pub strict_fraction_a: f64,
    /// Rosetta pairs.
    pub rosetta_buddies: usize,
    /// Fraction of A's live units with a Rosetta buddy.
    pub rosetta_fraction_a: f64,
    /// Mean score of the whole-table one-to-one assignment.
    pub assignment_mean: f64,
    /// Mean score of the identity pairing (unit k of A with unit k of B, same-named layers).
    pub identity_mean: Option<f64>,
    /// Units of A whose best match is the same channel of the same-named layer of B.
    pub identity_best: usize,
    /// Live units of A.
    pub live_a: usize,
    /// The top pairs of the whole table.
    pub top_pairs: Vec<PairRow>,
    /// The strict buddies, best first.
    pub buddies: Vec<PairRow>,
    /// Gallery figures of the top pairs.
    pub top_galleries: Vec<GalleryPair>,
    /// Gallery figures of the strict buddies.
    pub buddy_galleries: Vec<GalleryPair>,
    /// Why galleries are missing, when they are.
    pub gallery_note: Option<String>,
    /// Overlay alpha and the number of z searched per pair.
    pub gallery_alpha: f32,
    /// Codes searched for each pair's best z.
    pub gallery_samples: usize,
}

/// One row of the significance table.
#[derive(Debug, Clone, Serialize)]
pub struct SignificanceRow {
    /// The null model.
    pub null: String,
    /// Layer of A.
    pub layer_a: String,
    /// Layer of B.
    pub layer_b: String,
    /// Observed mean best-match score.
    pub observed: f64,
    /// Null mean and sd of it.
    pub null_mean: f64,
    /// Null sd (n - 1).
    pub null_sd: Option<f64>,
    /// z-score.
    pub z: Option<f64>,
    /// Empirical p-value.
    pub p: f64,
    /// Observed mean assigned score, its null mean, z and p.
    pub assigned: f64,
    /// Null mean of the assigned score.
    pub assigned_null_mean: f64,
    /// z of the assigned score.
    pub assigned_z: Option<f64>,
    /// p of the assigned score.
    pub assigned_p: f64,
    /// Best-match pairs of this block flagged significant, of how many.
    pub significant_pairs: usize,
    /// Best-match pairs tested.
    pub tested_pairs: usize,
}

/// The significance section (`significance.json`).
#[derive(Debug, Clone, Serialize)]
pub struct SignificanceSection {
    /// Draws per null model.
    pub draws: usize,
    /// Level of the pair flags.
    pub alpha: f64,
    /// Smallest attainable p-value.
    pub min_p: f64,
    /// The multiple-testing correction.
    pub correction: String,
    /// One row per null model and layer pair.
    pub rows: Vec<SignificanceRow>,
}

/// The evolution section (a sweep folder).
#[derive(Debug, Clone, Serialize)]
pub struct EvolutionSection {
    /// The sweep folder.
    pub dir: PathBuf,
    /// Latent codes compared at every epoch.
    pub samples: u64,
    /// Epochs compared.
    pub epochs: Vec<usize>,
    /// `evolution.csv`.
    pub rows: Vec<EvolutionRow>,
    /// Mean best-match r against epoch; linear CKA against epoch.
    pub figures: [String; 2],
    /// The first and last trained epochs (the seed's Figure 2): epoch, full table, block table.
    pub first_last: Vec<(usize, String, String)>,
}

/// The CKA section (`cka.json`).
#[derive(Debug, Clone, Serialize)]
pub struct CkaSection {
    /// Every layer pair (A x B, within A, within B).
    pub rows: Vec<LayerCka>,
    /// A x B linear CKA as a layer x layer heatmap.
    pub figure: String,
}

/// GAN A against a classifier (a compare folder whose B is a classifier): the seed's future
/// work, "a generator against a discriminative network".
#[derive(Debug, Clone, Serialize)]
pub struct ClassifierMatchSection {
    /// The compare folder.
    pub dir: PathBuf,
    /// Latent codes accumulated (the classifier saw A's images of them).
    pub samples: u64,
    /// Units of A and of the classifier.
    pub units: [usize; 2],
    /// Per layer pair: mean, max, mean of row max, mean of column max.
    pub layer_pairs: Vec<LayerPairSummary>,
    /// Figures: the full table and one cell per layer pair (mean best-match r).
    pub figures: [String; 2],
    /// Strict mutual best buddies.
    pub strict_buddies: usize,
    /// Fraction of A's live units with a strict buddy.
    pub strict_fraction_a: f64,
    /// Rosetta (top-k) buddies.
    pub rosetta_buddies: usize,
    /// Fraction of A's live units with a Rosetta buddy.
    pub rosetta_fraction_a: f64,
    /// Rosetta k.
    pub k: usize,
    /// The strict buddies, best first.
    pub buddies: Vec<PairRow>,
    /// Gallery figures of the best buddies.
    pub galleries: Vec<GalleryPair>,
    /// Why galleries are missing, when they are.
    pub gallery_note: Option<String>,
    /// Significance against the null models run with the comparison.
    pub significance: Option<SignificanceSection>,
}

/// One tested pair of the causal section.
#[derive(Debug, Clone, Serialize)]
pub struct CausalRow {
    /// `layer:channel` of A's and B's unit.
    pub units: [String; 2],
    /// Table score.
    pub score: f64,
    /// Agreement of the two |delta image| maps (pooled over samples and pixels; within pixel).
    pub agreement: [Option<f64>; 2],
    /// Control (a), B's unit against a random unit of A's layer: mean and p.
    pub control_random_a: [Option<f64>; 2],
    /// Control (b), unmatched pairs: mean and p.
    pub control_unmatched: [Option<f64>; 2],
}

/// The causal section (`causal.json` of `unitmatch causal`).
#[derive(Debug, Clone, Serialize)]
pub struct CausalSection {
    /// The causal folder.
    pub dir: PathBuf,
    /// `summary` of causal.json as written.
    pub summary: serde_json::Value,
    /// One row per tested pair.
    pub rows: Vec<CausalRow>,
    /// Example figures copied into the report, with captions.
    pub figures: Vec<(String, String)>,
}

/// The pruning section (`prune_curve.json` of `unitmatch prune`).
#[derive(Debug, Clone, Serialize)]
pub struct PruneSection {
    /// The pruning folder.
    pub dir: PathBuf,
    /// `report` of prune_curve.json as written (parameters, FD of the unpruned generator, every
    /// point).
    pub curve: serde_json::Value,
    /// The curve figure, copied.
    pub figure: Option<String>,
}

/// One evaluated image set of the quality section.
#[derive(Debug, Clone, Serialize)]
pub struct QualityRow {
    /// What was evaluated: a run and epoch, a checkpoint, or a real-data reference.
    pub name: String,
    /// Run name (for per-epoch rows).
    pub run: Option<String>,
    /// Epoch (for per-epoch rows).
    pub epoch: Option<usize>,
    /// FD-FMNIST against the test set.
    pub fd: f64,
    /// KID and its standard error.
    pub kid: f64,
    /// Standard error of the KID.
    pub kid_std_error: f64,
    /// IS analogue.
    pub is_mean: f64,
    /// KL divergence of the class histogram from uniform.
    pub kl_from_uniform: f64,
}

/// The quality section (`quality.json`, and the classifier's `metrics.json`).
#[derive(Debug, Clone, Serialize)]
pub struct QualitySection {
    /// Test accuracy of the classifier, when its folder is given.
    pub classifier_accuracy: Option<f64>,
    /// Its training epochs and seconds.
    pub classifier_epochs: Option<usize>,
    /// Training seconds.
    pub classifier_seconds: Option<f64>,
    /// Generated images per generator.
    pub samples: usize,
    /// Real-data references (train vs test, noised test).
    pub calibration: Vec<QualityRow>,
    /// The evaluated generators.
    pub generators: Vec<QualityRow>,
    /// FD against epoch (when runs were evaluated per epoch) and the confusion matrix.
    pub figures: Vec<(String, String)>,
}

/// One of the seed's findings, tested on our outputs.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The seed's claim.
    pub claim: String,
    /// Whether our numbers agree (`None`: the inputs to decide are missing).
    pub holds: Option<bool>,
    /// The numbers, in words.
    pub evidence: String,
}

/// Everything the report shows (`report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct ReportData {
    /// `"unitmatch.report"`.
    pub kind: String,
    /// Versions of the tool.
    pub versions: serde_json::Value,
    /// Input folders.
    pub inputs: ReportInputs,
    /// Options.
    pub options: ReportOptions,
    /// The seed's three findings with our numbers.
    pub findings: Vec<Finding>,
    /// Training runs.
    pub training: Vec<TrainingRun>,
    /// The A x B table.
    pub table: Option<TableSection>,
    /// Matches.
    pub matches: Option<MatchesSection>,
    /// Significance against null models.
    pub significance: Option<SignificanceSection>,
    /// Evolution over epochs.
    pub evolution: Option<EvolutionSection>,
    /// Layer CKA.
    pub cka: Option<CkaSection>,
    /// GAN quality through the classifier.
    pub quality: Option<QualitySection>,
    /// GAN A against the classifier.
    pub classifier_match: Option<ClassifierMatchSection>,
    /// The causal test of the top matches.
    pub causal: Option<CausalSection>,
    /// Removing duplicate units, against baselines.
    pub prune: Option<PruneSection>,
    /// `(section, note)` for each hidden section: why, and how to produce it.
    pub missing: Vec<(String, String)>,
}

/// The `layer:channel` name of a unit, without the `gen.` prefix.
fn unit_name(layer: &str, channel: usize) -> String {
    format!("{}:{channel}", layer.trim_start_matches("gen."))
}

fn read_json(path: &Path) -> Result<serde_json::Value, ReportError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| invalid(path, e.to_string()))
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<String, ReportError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(io(&path))?;
    Ok(name.to_string())
}

fn copy_file(from: &Path, dir: &Path, name: &str) -> Result<Option<String>, ReportError> {
    if !from.exists() {
        return Ok(None);
    }
    let to = dir.join(name);
    std::fs::copy(from, &to).map_err(io(&to))?;
    Ok(Some(name.to_string()))
}

fn figure_err(name: &str) -> impl Fn(String) -> ReportError + '_ {
    move |m| invalid(Path::new(name), format!("drawing the figure: {m}"))
}

fn spans(ranges: &[crate::similarity::LayerRange]) -> Vec<LayerSpan> {
    ranges
        .iter()
        .map(|r| LayerSpan {
            name: r.name.trim_start_matches("gen.").to_string(),
            start: r.start,
            len: r.end - r.start,
        })
        .collect()
}

/// The full, reordered and block heatmaps of a table, written as `{prefix}.png` etc.
fn table_heatmaps(
    table: &SimilarityTable,
    report: &MatchReport,
    title: &str,
    b_units: &str,
    dir: &Path,
    prefix: &str,
) -> Result<(String, String, String, String), ReportError> {
    let (rs, cs) = (spans(&table.row_layers), spans(&table.col_layers));
    let full = Heatmap {
        values: table.values.view(),
        rows: &rs,
        cols: &cs,
        title,
        row_label: "GAN A units",
        col_label: b_units,
        limit: Some(1.0),
    };
    let name = format!("{prefix}.png");
    let png = write_file(dir, &name, &full.png().map_err(figure_err(&name))?)?;
    let name = format!("{prefix}.svg");
    let svg = write_file(
        dir,
        &name,
        full.svg().map_err(figure_err(&name))?.as_bytes(),
    )?;
    let pairs: Vec<(usize, usize)> = report
        .assignment
        .pairs
        .iter()
        .map(|&(i, j, _)| (i, j))
        .collect();
    let (values, _, _) = reorder_by_assignment(table.values.view(), &pairs);
    let reordered_title = format!("{title}, reordered by the one-to-one assignment");
    let reordered = Heatmap {
        values: values.view(),
        rows: &[],
        cols: &[],
        title: &reordered_title,
        row_label: "GAN A units (assignment order)",
        col_label: "GAN B units (assignment order)",
        limit: Some(1.0),
    };
    let name = format!("{prefix}_reordered.png");
    let reordered = write_file(dir, &name, &reordered.png().map_err(figure_err(&name))?)?;
    let block = block_values(table.values.view(), &rs, &cs, BlockStat::MeanRowMax);
    let (br, bc) = (block_spans(&rs), block_spans(&cs));
    let block_title = format!("{title}: mean best-match r per layer pair");
    let heat = Heatmap {
        values: block.view(),
        rows: &br,
        cols: &bc,
        title: &block_title,
        row_label: "GAN A layer",
        col_label: "GAN B layer",
        limit: Some(1.0),
    };
    let name = format!("{prefix}_block.png");
    let block = write_file(dir, &name, &heat.png().map_err(figure_err(&name))?)?;
    Ok((png, svg, reordered, block))
}

/// Training runs: numbers from `losses.csv` and `run.json`, figures copied.
fn training_runs(inputs: &ReportInputs, dir: &Path) -> Result<Vec<TrainingRun>, ReportError> {
    let mut out = Vec::new();
    for (k, (name, run)) in inputs.runs.iter().enumerate() {
        let epochs = read_losses(&run.join("losses.csv")).map_err(|e| ReportError::Invalid {
            path: run.join("losses.csv"),
            message: e.to_string(),
        })?;
        let cfg = read_json(&run.join("run.json")).ok();
        let cfg = cfg.as_ref().map(|v| &v["config"]);
        let tag = format!("run{}", k + 1);
        let last = epochs.last().map(|e| e.epoch).unwrap_or(0);
        out.push(TrainingRun {
            name: name.clone(),
            dir: run.clone(),
            seed: cfg.and_then(|c| c["seed"].as_u64()),
            width: cfg.and_then(|c| c["model"]["width"].as_f64()),
            gif: copy_file(
                &run.join("progress.gif"),
                dir,
                &format!("{tag}_progress.gif"),
            )?,
            losses_png: copy_file(&run.join("losses.png"), dir, &format!("{tag}_losses.png"))?,
            last_grid: copy_file(
                &run.join("samples").join(format!("epoch-{last:04}.png")),
                dir,
                &format!("{tag}_samples.png"),
            )?,
            epochs,
        });
    }
    Ok(out)
}

/// Family-wise p-values of best-match pairs, per null model: `(null, flat_a, flat_b) -> p`.
fn pair_p_values(significance: Option<&serde_json::Value>) -> Vec<(NullKind, usize, usize, f64)> {
    let mut out = Vec::new();
    let Some(s) = significance else {
        return out;
    };
    for kind in NULL_COLUMNS {
        for lp in s["nulls"][kind.name()]["layer_pairs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for p in lp["pairs"].as_array().into_iter().flatten() {
                if let (Some(a), Some(b), Some(pv)) =
                    (p["flat_a"].as_u64(), p["flat_b"].as_u64(), p["p"].as_f64())
                {
                    out.push((kind, a as usize, b as usize, pv));
                }
            }
        }
    }
    out
}

fn pair_row(
    table: &SimilarityTable,
    report: &MatchReport,
    p_values: &[(NullKind, usize, usize, f64)],
    (a, b, score, rank): (usize, usize, f64, usize),
) -> PairRow {
    let ua = &table.rows[a];
    let ub = &table.cols[b];
    let is = |list: &[crate::matching::PairScore]| list.iter().any(|p| p.a == a && p.b == b);
    PairRow {
        unit_a: unit_name(&ua.layer, ua.channel),
        unit_b: unit_name(&ub.layer, ub.channel),
        score,
        rank,
        strict_buddy: is(&report.strict),
        rosetta_buddy: is(&report.rosetta),
        p: NULL_COLUMNS.map(|k| {
            p_values
                .iter()
                .find(|&&(n, x, y, _)| n == k && x == a && y == b)
                .map(|t| t.3)
        }),
    }
}

fn significance_section(s: &serde_json::Value) -> SignificanceSection {
    let mut rows = Vec::new();
    for kind in NULL_COLUMNS {
        for lp in s["nulls"][kind.name()]["layer_pairs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (mb, ma) = (&lp["mean_best"], &lp["mean_assigned"]);
            let pairs = lp["pairs"].as_array().cloned().unwrap_or_default();
            rows.push(SignificanceRow {
                null: kind.name().to_string(),
                layer_a: lp["layer_a"].as_str().unwrap_or("").to_string(),
                layer_b: lp["layer_b"].as_str().unwrap_or("").to_string(),
                observed: mb["observed"].as_f64().unwrap_or(f64::NAN),
                null_mean: mb["mean"].as_f64().unwrap_or(f64::NAN),
                null_sd: mb["sd"].as_f64(),
                z: mb["z"].as_f64(),
                p: mb["p"].as_f64().unwrap_or(f64::NAN),
                assigned: ma["observed"].as_f64().unwrap_or(f64::NAN),
                assigned_null_mean: ma["mean"].as_f64().unwrap_or(f64::NAN),
                assigned_z: ma["z"].as_f64(),
                assigned_p: ma["p"].as_f64().unwrap_or(f64::NAN),
                significant_pairs: pairs.iter().filter(|p| p["significant"] == true).count(),
                tested_pairs: pairs.len(),
            });
        }
    }
    SignificanceSection {
        draws: s["options"]["draws"].as_u64().unwrap_or(0) as usize,
        alpha: s["options"]["alpha"].as_f64().unwrap_or(f64::NAN),
        min_p: s["min_attainable_p"].as_f64().unwrap_or(f64::NAN),
        correction: s["correction"].as_str().unwrap_or("").to_string(),
        rows,
    }
}

/// Per unit of A: the random-init null's band, `mean ± 2 sd` of the mean best-match score of
/// the unit's layer against the B layer where that null mean is highest.
fn depth_band(table: &SimilarityTable, sig: &SignificanceSection) -> Option<Vec<(f64, f64)>> {
    let mut band = vec![(f64::NAN, f64::NAN); table.rows.len()];
    for rl in &table.row_layers {
        let best = sig
            .rows
            .iter()
            .filter(|r| r.null == NullKind::RandomInit.name() && r.layer_a == rl.name)
            .max_by(|x, y| x.null_mean.total_cmp(&y.null_mean))?;
        let sd = best.null_sd?;
        for b in &mut band[rl.range()] {
            *b = (best.null_mean - 2.0 * sd, best.null_mean + 2.0 * sd);
        }
    }
    Some(band)
}

fn row_max(values: &Array2<f64>) -> Vec<f64> {
    values
        .rows()
        .into_iter()
        .map(|r| r.fold(f64::NEG_INFINITY, |m, &v| m.max(v)))
        .collect()
}

/// Reads `evolution.csv` back into rows.
pub fn read_evolution_csv(path: &Path) -> Result<Vec<EvolutionRow>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut lines = text.lines();
    if lines.next() != Some(EVOLUTION_HEADER) {
        return Err(invalid(
            path,
            format!("expected the header `{EVOLUTION_HEADER}`"),
        ));
    }
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let bad = || invalid(path, format!("line {}: `{line}`", n + 2));
        if f.len() != EVOLUTION_HEADER.split(',').count() {
            return Err(bad());
        }
        let num = |s: &str| -> Result<Option<f64>, ReportError> {
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse::<f64>().map(Some).map_err(|_| bad())
            }
        };
        let req = |s: &str| num(s)?.ok_or_else(bad);
        let int = |s: &str| s.parse::<usize>().map_err(|_| bad());
        let null = |z: &str, p: &str| -> Result<Option<(Option<f64>, f64)>, ReportError> {
            Ok(num(p)?.map(|p| (num(z).ok().flatten(), p)))
        };
        rows.push(EvolutionRow {
            epoch: int(f[0])?,
            layer_a: f[1].to_string(),
            layer_b: f[2].to_string(),
            mean_row_max: req(f[3])?,
            mean_assigned: req(f[4])?,
            strict_buddies: int(f[5])?,
            rosetta_buddies: int(f[6])?,
            cka_linear: num(f[7])?,
            cka_debiased: num(f[8])?,
            nulls: [null(f[9], f[10])?, null(f[11], f[12])?],
        });
    }
    Ok(rows)
}

fn fmt_z(z: Option<f64>) -> String {
    z.map_or("n/a".into(), |z| format!("{z:.1}"))
}

/// The seed's three findings, decided from our numbers.
fn findings(data: &ReportData) -> Vec<Finding> {
    let mut out = Vec::new();
    // 1. No clean diagonal.
    out.push(match &data.matches {
        Some(m) => {
            let identity = m.identity_mean;
            Finding {
                claim: "No clean diagonal: unit k of A is not unit k of B".into(),
                holds: identity.map(|i| i < m.assignment_mean),
                evidence: format!(
                    "the identity pairing (unit k with unit k) has mean r = {}, the best \
                     one-to-one assignment {:.3}; {} of {} units of A have their best match at \
                     their own index; strict mutual buddies cover {:.1}% of A's units",
                    identity.map_or("n/a".into(), |v| format!("{v:.3}")),
                    m.assignment_mean,
                    m.identity_best,
                    m.live_a,
                    100.0 * m.strict_fraction_a
                ),
            }
        }
        None => Finding {
            claim: "No clean diagonal: unit k of A is not unit k of B".into(),
            holds: None,
            evidence: "no compare folder".into(),
        },
    });
    // 2. Deepest layers most similar.
    let diag: Vec<&LayerPairSummary> = data
        .table
        .as_ref()
        .map(|t| {
            t.layer_pairs
                .iter()
                .filter(|p| p.layer_a == p.layer_b)
                .collect()
        })
        .unwrap_or_default();
    let claim = "The best similarity is deep in the generator (block2 / out), not in block1";
    out.push(if diag.len() >= 2 {
        let first = diag[0];
        let deeper_best = diag[1..]
            .iter()
            .max_by(|x, y| x.mean_row_max.total_cmp(&y.mean_row_max))
            .expect("at least one deeper layer");
        let z = |layer: &str, null: NullKind| {
            data.significance.as_ref().and_then(|s| {
                s.rows
                    .iter()
                    .find(|r| r.null == null.name() && r.layer_a == layer && r.layer_b == layer)
            })
        };
        let sig = |layer: &str| match (
            z(layer, NullKind::RandomInit),
            z(layer, NullKind::PermutedZ),
        ) {
            (Some(r), Some(p)) => format!(
                " (vs random-init z = {}, p = {:.3}; vs permuted-z z = {}, p = {:.3})",
                fmt_z(r.z),
                r.p,
                fmt_z(p.z),
                p.p
            ),
            (Some(r), None) => format!(" (vs random-init z = {}, p = {:.3})", fmt_z(r.z), r.p),
            _ => String::new(),
        };
        let parts: Vec<String> = diag
            .iter()
            .map(|p| {
                format!(
                    "{} x {}: {:.3}{}",
                    p.layer_a.trim_start_matches("gen."),
                    p.layer_b.trim_start_matches("gen."),
                    p.mean_row_max,
                    sig(&p.layer_a)
                )
            })
            .collect();
        Finding {
            claim: claim.into(),
            holds: Some(deeper_best.mean_row_max > first.mean_row_max),
            evidence: format!("mean best-match r per layer: {}", parts.join("; ")),
        }
    } else {
        Finding {
            claim: claim.into(),
            holds: None,
            evidence: "needs a compare folder with at least two layers".into(),
        }
    });
    // 3. Early layers diverge over training.
    let claim = "Early layers are more alike at the start of training and diverge";
    out.push(match &data.evolution {
        Some(e) => {
            let trained: Vec<usize> = e.epochs.iter().copied().filter(|&x| x >= 1).collect();
            let first_layer = e
                .rows
                .first()
                .map(|r| r.layer_a.clone())
                .unwrap_or_default();
            let at = |epoch: usize| {
                e.rows.iter().find(|r| {
                    r.epoch == epoch && r.layer_a == first_layer && r.layer_b == first_layer
                })
            };
            match (trained.first(), trained.last()) {
                (Some(&f), Some(&l)) if f < l => {
                    let (rf, rl) = (at(f), at(l));
                    let z = |r: Option<&EvolutionRow>, k: usize| {
                        fmt_z(r.and_then(|r| r.nulls[k].and_then(|n| n.0)))
                    };
                    let v = |r: Option<&EvolutionRow>| r.map_or(f64::NAN, |r| r.mean_row_max);
                    let init = e.epochs.contains(&0).then(|| v(at(0)));
                    // Sampling error of a correlation over n independent samples is
                    // (1 - r^2) / sqrt(n - 1); the z are the independent samples (positions
                    // within one z are not), and a layer's mean best-match r is no noisier
                    // than one unit's. A change counts when it exceeds twice the standard
                    // error of a difference of two such estimates.
                    let n = e.samples.max(2) as f64;
                    let r = v(rf).max(v(rl));
                    let tol = 2.0 * std::f64::consts::SQRT_2 * (1.0 - r * r) / (n - 1.0).sqrt();
                    let change = v(rl) - v(rf);
                    let holds = if change < -tol {
                        Some(true)
                    } else if change > tol {
                        Some(false)
                    } else {
                        None
                    };
                    Finding {
                        claim: claim.into(),
                        holds,
                        evidence: format!(
                            "{} x {} mean best-match r: epoch {f} {:.3} (random-init z {}, \
                             permuted-z z {}), epoch {l} {:.3} (z {}, {}){}",
                            first_layer.trim_start_matches("gen."),
                            first_layer.trim_start_matches("gen."),
                            v(rf),
                            z(rf, 0),
                            z(rf, 1),
                            v(rl),
                            z(rl, 0),
                            z(rl, 1),
                            init.map_or(String::new(), |i| format!("; at initialisation {i:.3}"))
                        ) + &format!(
                            "; change {change:+.3} against a sampling tolerance of ±{tol:.3} \
                             (2 sqrt(2) (1 - r^2) / sqrt(n - 1), n = {} z)",
                            e.samples
                        ),
                    }
                }
                _ => Finding {
                    claim: claim.into(),
                    holds: None,
                    evidence: "the sweep has fewer than two trained epochs".into(),
                },
            }
        }
        None => Finding {
            claim: claim.into(),
            holds: None,
            evidence: "no sweep folder (run `unitmatch sweep RUN_A RUN_B`)".into(),
        },
    });
    out
}

/// Builds every section into `dir` (figures) and returns the data.
fn build(
    inputs: &ReportInputs,
    opts: &ReportOptions,
    dir: &Path,
    device: &Device,
) -> Result<ReportData, ReportError> {
    let mut data = ReportData {
        kind: "unitmatch.report".into(),
        versions: versions(),
        inputs: inputs.clone(),
        options: opts.clone(),
        findings: Vec::new(),
        training: training_runs(inputs, dir)?,
        table: None,
        matches: None,
        significance: None,
        evolution: None,
        cka: None,
        quality: None,
        classifier_match: None,
        causal: None,
        prune: None,
        missing: Vec::new(),
    };
    if data.training.is_empty() {
        data.missing.push((
            "training".into(),
            "no training run folder given: pass the folders written by `unitmatch train`".into(),
        ));
    }
    if let Some(cdir) = &inputs.compare {
        compare_sections(&mut data, cdir, opts, dir, device)?;
    } else {
        for s in ["table", "matches", "significance", "cka"] {
            data.missing.push((
                s.into(),
                "no compare folder given: run `unitmatch compare A B --out DIR --null \
                 random-init,permuted-z` and pass DIR"
                    .into(),
            ));
        }
    }
    match &inputs.sweep {
        Some(sdir) => data.evolution = Some(evolution_section(sdir, dir)?),
        None => data.missing.push((
            "evolution".into(),
            "no sweep folder given: run `unitmatch sweep RUN_A RUN_B` and pass its folder".into(),
        )),
    }
    match &inputs.quality {
        Some(q) => data.quality = Some(quality_section(q, inputs.classifier.as_deref(), dir)?),
        None => data.missing.push((
            "quality".into(),
            "no quality folder given: run `unitmatch classifier train --out CLS`, then \
             `unitmatch evaluate --classifier CLS/classifier.safetensors --every-epoch RUN --out Q` \
             and pass Q (and CLS)"
                .into(),
        )),
    }
    match &inputs.classifier_compare {
        Some(c) => data.classifier_match = Some(classifier_match_section(c, opts, dir, device)?),
        None => data.missing.push((
            "classifier-match".into(),
            "no generator-vs-classifier comparison given: run `unitmatch compare GEN.safetensors \
             CLS/classifier.safetensors --out DIR --null random-init` and pass DIR"
                .into(),
        )),
    }
    match &inputs.causal {
        Some(c) => data.causal = Some(causal_section(c, dir)?),
        None => data.missing.push((
            "causal".into(),
            "no causal test given: run `unitmatch causal COMPARE_DIR` (it writes \
             COMPARE_DIR/causal) and pass the folder"
                .into(),
        )),
    }
    match &inputs.prune {
        Some(p) => {
            let path = p.join("prune_curve.json");
            let v = read_json(&path)?;
            if !v["report"]["points"].is_array() {
                return Err(invalid(&path, "no report.points list"));
            }
            data.prune = Some(PruneSection {
                dir: p.clone(),
                curve: v["report"].clone(),
                figure: copy_file(&p.join("prune_curve.png"), dir, "prune_curve.png")?,
            });
        }
        None => data.missing.push((
            "prune".into(),
            "no pruning folder given: run `unitmatch prune CKPT --classifier CLS --out DIR` \
             and pass DIR"
                .into(),
        )),
    }
    data.findings = findings(&data);
    Ok(data)
}

/// The causal section: numbers from `causal.json`, the first pair figures copied.
fn causal_section(cdir: &Path, dir: &Path) -> Result<CausalSection, ReportError> {
    let path = cdir.join("causal.json");
    let v = read_json(&path)?;
    let pairs = v["pairs"]
        .as_array()
        .ok_or_else(|| invalid(&path, "no \"pairs\" list"))?;
    let unit = |u: &serde_json::Value| {
        format!(
            "{}:{}",
            u["layer"]
                .as_str()
                .unwrap_or("?")
                .trim_start_matches("gen."),
            u["channel"].as_u64().unwrap_or(0)
        )
    };
    let mut rows = Vec::new();
    let mut figures = Vec::new();
    for p in pairs {
        let control = |k: &str| [p[k]["mean"].as_f64(), p[k]["p"].as_f64()];
        let row = CausalRow {
            units: [unit(&p["a"]), unit(&p["b"])],
            score: p["score"].as_f64().unwrap_or(f64::NAN),
            agreement: [
                p["agreement"]["pooled"].as_f64(),
                p["agreement"]["within_pixel"].as_f64(),
            ],
            control_random_a: control("control_random_a"),
            control_unmatched: control("control_unmatched"),
        };
        if let Some(f) = p["figure"].as_str()
            && let Some(copied) = copy_file(&cdir.join(f), dir, &format!("causal_{f}"))?
        {
            figures.push((
                copied,
                format!(
                    "A {} ablated / B {} ablated: rows are z; A before, after, |delta|, then B",
                    row.units[0], row.units[1]
                ),
            ));
        }
        rows.push(row);
    }
    Ok(CausalSection {
        dir: cdir.to_path_buf(),
        summary: v["summary"].clone(),
        rows,
        figures,
    })
}

/// What the report reads from a compare folder: the table, run.json, the per-layer-pair
/// summary, the matching (with the options of its matching.json, default otherwise) and
/// significance.json when present.
struct CompareFolder {
    table: SimilarityTable,
    run: serde_json::Value,
    layer_pairs: Vec<LayerPairSummary>,
    match_opts: MatchOptions,
    report: MatchReport,
    sig_json: Option<serde_json::Value>,
}

fn read_compare_folder(cdir: &Path) -> Result<CompareFolder, ReportError> {
    let table = load_table(cdir).map_err(|e| invalid(cdir, e.to_string()))?;
    let run = read_json(&cdir.join("run.json"))?;
    let summary = read_json(&cdir.join("summary.json"))?;
    let layer_pairs: Vec<LayerPairSummary> = serde_json::from_value(summary["layer_pairs"].clone())
        .map_err(|e| invalid(&cdir.join("summary.json"), e.to_string()))?;
    let match_opts = read_json(&cdir.join("matching.json"))
        .ok()
        .and_then(|m| serde_json::from_value::<MatchOptions>(m["options"].clone()).ok())
        .unwrap_or_default();
    let report = match_table(&table, &match_opts);
    Ok(CompareFolder {
        table,
        run,
        layer_pairs,
        match_opts,
        report,
        sig_json: read_json(&cdir.join("significance.json")).ok(),
    })
}

/// The generator-vs-classifier section from a compare folder whose B is a classifier.
fn classifier_match_section(
    cdir: &Path,
    opts: &ReportOptions,
    dir: &Path,
    device: &Device,
) -> Result<ClassifierMatchSection, ReportError> {
    let CompareFolder {
        table,
        run,
        layer_pairs,
        match_opts,
        report,
        sig_json,
    } = read_compare_folder(cdir)?;
    let p_values = pair_p_values(sig_json.as_ref());
    let (png, _, _, block) = table_heatmaps(
        &table,
        &report,
        "GAN A x classifier (Pearson r)",
        "classifier units",
        dir,
        "cls_table",
    )?;
    let mut strict = report.strict.clone();
    strict.sort_by(|x, y| y.score.total_cmp(&x.score));
    let buddies: Vec<PairRow> = strict
        .iter()
        .map(|p| pair_row(&table, &report, &p_values, (p.a, p.b, p.score, p.rank)))
        .collect();
    let pairs: Vec<(usize, usize)> = strict
        .iter()
        .take(opts.buddies)
        .map(|p| (p.a, p.b))
        .collect();
    let (galleries, gallery_note) =
        match gallery::GalleryMaker::new(cdir, opts.gallery_samples, device) {
            Ok(maker) => (
                maker
                    .draw(&table, &pairs, dir, "gallery_cls")
                    .map_err(|m| invalid(cdir, m))?,
                None,
            ),
            Err(why) => (Vec::new(), Some(format!("galleries not drawn: {why}"))),
        };
    Ok(ClassifierMatchSection {
        dir: cdir.to_path_buf(),
        samples: run["samples"].as_u64().unwrap_or(0),
        units: [table.rows.len(), table.cols.len()],
        layer_pairs,
        figures: [png, block],
        strict_buddies: report.strict.len(),
        strict_fraction_a: report.fractions.strict_a,
        rosetta_buddies: report.rosetta.len(),
        rosetta_fraction_a: report.fractions.rosetta_a,
        k: match_opts.k,
        buddies,
        galleries,
        gallery_note,
        significance: sig_json.as_ref().map(significance_section),
    })
}

fn compare_sections(
    data: &mut ReportData,
    cdir: &Path,
    opts: &ReportOptions,
    dir: &Path,
    device: &Device,
) -> Result<(), ReportError> {
    let CompareFolder {
        table,
        run,
        layer_pairs,
        match_opts,
        report,
        sig_json,
    } = read_compare_folder(cdir)?;
    let sig = sig_json.as_ref().map(significance_section);
    let (png, svg, reordered, block) = table_heatmaps(
        &table,
        &report,
        "A x B unit similarity (Pearson r)",
        "GAN B units",
        dir,
        "table",
    )?;
    let band = sig.as_ref().and_then(|s| depth_band(&table, s));
    let (rs, cs) = (spans(&table.row_layers), spans(&table.col_layers));
    let depth =
        |scores: &[f64], sp: &[LayerSpan], band: Option<&[(f64, f64)]>, title, name: &str| {
            let curve = DepthCurve {
                title,
                scores,
                spans: sp,
                band,
                y_label: "best-match r",
            };
            write_file(dir, name, &curve.png().map_err(figure_err(name))?)
        };
    let depth_a = depth(
        &row_max(&table.values),
        &rs,
        band.as_deref(),
        "Scores vs depth: each unit of A, its best r in B",
        "depth_a.png",
    )?;
    let depth_b = depth(
        &row_max(&table.values.t().to_owned()),
        &cs,
        None,
        "Scores vs depth: each unit of B, its best r in A",
        "depth_b.png",
    )?;
    let width = |k: &str| run["inputs"][k]["width"].as_f64();
    let dead = |u: &[crate::similarity::UnitInfo]| u.iter().filter(|u| u.dead).count();
    data.table = Some(TableSection {
        dir: cdir.to_path_buf(),
        checkpoints: ["a", "b"].map(|k| run["inputs"][k][0].as_str().unwrap_or("").to_string()),
        widths: [width("model_a"), width("model_b")],
        measure: table.measure.name().to_string(),
        samples: run["samples"].as_u64().unwrap_or(0),
        units: [table.rows.len(), table.cols.len()],
        dead: [dead(&table.rows), dead(&table.cols)],
        layer_pairs,
        figures: TableFigures {
            table: png,
            table_svg: svg,
            reordered,
            block,
            depth_a,
            depth_b,
            depth_band: band.map(|_| {
                "random-init null: mean ± 2 sd over draws of the layer's mean best-match r, \
                 against the B layer where that mean is highest"
                    .to_string()
            }),
        },
    });

    let p_values = pair_p_values(sig_json.as_ref());
    let top_pairs: Vec<PairRow> = report
        .top_pairs
        .iter()
        .map(|p| pair_row(&table, &report, &p_values, (p.a, p.b, p.score, p.rank)))
        .collect();
    let buddies: Vec<PairRow> = report
        .strict
        .iter()
        .map(|p| pair_row(&table, &report, &p_values, (p.a, p.b, p.score, p.rank)))
        .collect();
    let mut buddy_pairs: Vec<(usize, usize, f64)> =
        report.strict.iter().map(|p| (p.a, p.b, p.score)).collect();
    buddy_pairs.sort_by(|x, y| y.2.total_cmp(&x.2));
    // Identity pairing: unit k of A's layer L with unit k of B's layer L.
    let mut identity = Vec::new();
    let mut identity_best = 0;
    for rl in &table.row_layers {
        let Some(cl) = table.col_layers.iter().find(|c| c.name == rl.name) else {
            continue;
        };
        for k in 0..(rl.end - rl.start).min(cl.end - cl.start) {
            identity.push(table.values[[rl.start + k, cl.start + k]]);
            let best = report.best_a[rl.start + k].best;
            identity_best += usize::from(best.is_some_and(|b| b.flat == cl.start + k));
        }
    }
    let (mut top_galleries, mut buddy_galleries, mut gallery_note) = (Vec::new(), Vec::new(), None);
    match gallery::GalleryMaker::new(cdir, opts.gallery_samples, device) {
        Ok(maker) => {
            let top: Vec<(usize, usize)> = report
                .top_pairs
                .iter()
                .take(opts.top)
                .map(|p| (p.a, p.b))
                .collect();
            let bud: Vec<(usize, usize)> = buddy_pairs
                .iter()
                .take(opts.buddies)
                .map(|p| (p.0, p.1))
                .collect();
            let draw = |pairs: &[(usize, usize)], prefix| {
                maker
                    .draw(&table, pairs, dir, prefix)
                    .map_err(|m| invalid(cdir, m))
            };
            top_galleries = draw(&top, "gallery_top")?;
            buddy_galleries = draw(&bud, "gallery_buddy")?;
        }
        Err(why) => gallery_note = Some(format!("galleries not drawn: {why}")),
    }
    data.matches = Some(MatchesSection {
        k: match_opts.k,
        strict_buddies: report.strict.len(),
        strict_fraction_a: report.fractions.strict_a,
        rosetta_buddies: report.rosetta.len(),
        rosetta_fraction_a: report.fractions.rosetta_a,
        assignment_mean: report.assignment.mean,
        identity_mean: (!identity.is_empty())
            .then(|| identity.iter().sum::<f64>() / identity.len() as f64),
        identity_best,
        live_a: table.rows.iter().filter(|u| !u.dead).count(),
        top_pairs,
        buddies,
        top_galleries,
        buddy_galleries,
        gallery_note,
        gallery_alpha: gallery::OVERLAY_ALPHA,
        gallery_samples: opts.gallery_samples,
    });
    match sig {
        Some(s) => data.significance = Some(s),
        None => data.missing.push((
            "significance".into(),
            format!(
                "{} has no significance.json: rerun `unitmatch compare ... --null \
                 random-init,permuted-z --null-draws 19`",
                cdir.display()
            ),
        )),
    }
    let cka_path = cdir.join("cka.json");
    match read_json(&cka_path) {
        Ok(v) => {
            let rows: Vec<LayerCka> =
                serde_json::from_value(v).map_err(|e| invalid(&cka_path, e.to_string()))?;
            let cross: Vec<&LayerCka> = rows
                .iter()
                .filter(|r| r.network_p == "a" && r.network_q == "b")
                .collect();
            let names = |f: fn(&LayerCka) -> &String| {
                let mut n: Vec<String> = Vec::new();
                for r in &cross {
                    if !n.contains(f(r)) {
                        n.push(f(r).clone());
                    }
                }
                n
            };
            let (la, lb) = (names(|r| &r.layer_p), names(|r| &r.layer_q));
            let m = Array2::from_shape_fn((la.len(), lb.len()), |(i, j)| {
                cross
                    .iter()
                    .find(|r| r.layer_p == la[i] && r.layer_q == lb[j])
                    .and_then(|r| r.linear)
                    .unwrap_or(f64::NAN)
            });
            let span = |n: &[String]| -> Vec<LayerSpan> {
                n.iter()
                    .enumerate()
                    .map(|(i, s)| LayerSpan {
                        name: s.trim_start_matches("gen.").into(),
                        start: i,
                        len: 1,
                    })
                    .collect()
            };
            let (sa, sb) = (span(&la), span(&lb));
            let heat = Heatmap {
                values: m.view(),
                rows: &sa,
                cols: &sb,
                title: "Linear CKA, A x B layers",
                row_label: "GAN A layer",
                col_label: "GAN B layer",
                limit: Some(1.0),
            };
            let figure = write_file(dir, "cka.png", &heat.png().map_err(figure_err("cka.png"))?)?;
            data.cka = Some(CkaSection { rows, figure });
        }
        Err(_) => data.missing.push((
            "cka".into(),
            format!(
                "{} has no cka.json: rerun `unitmatch compare`",
                cdir.display()
            ),
        )),
    }
    Ok(())
}

fn evolution_section(sdir: &Path, dir: &Path) -> Result<EvolutionSection, ReportError> {
    let rows = read_evolution_csv(&sdir.join("evolution.csv"))?;
    let mut epochs: Vec<usize> = rows.iter().map(|r| r.epoch).collect();
    epochs.dedup();
    let best = render::evolution_png(
        &crate::sweep::diagonal_series(&rows, |r| Some(r.mean_row_max)),
        "Mean best-match r, A vs B, per layer",
        "epoch (0 = initialisation)",
        "mean best-match r",
    )
    .map_err(figure_err("evolution.png"))?;
    let cka = render::evolution_png(
        &crate::sweep::diagonal_series(&rows, |r| r.cka_linear),
        "Linear CKA, A vs B, per layer",
        "epoch (0 = initialisation)",
        "linear CKA",
    )
    .map_err(figure_err("evolution_cka.png"))?;
    let figures = [
        write_file(dir, "evolution.png", &best)?,
        write_file(dir, "evolution_cka.png", &cka)?,
    ];
    let trained: Vec<usize> = epochs.iter().copied().filter(|&e| e >= 1).collect();
    let mut first_last = Vec::new();
    let picks: Vec<usize> = match (trained.first(), trained.last()) {
        (Some(&f), Some(&l)) if f < l => vec![f, l],
        (Some(&f), _) => vec![f],
        _ => Vec::new(),
    };
    for e in picks {
        let edir = sdir.join(crate::sweep::epoch_dir_name(e));
        let table = load_table(&edir).map_err(|err| invalid(&edir, err.to_string()))?;
        let report = match_table(&table, &MatchOptions::default());
        let (png, _, _, block) = table_heatmaps(
            &table,
            &report,
            &format!("Epoch {e}: A x B unit similarity"),
            "GAN B units",
            dir,
            &format!("epoch{e}_table"),
        )?;
        first_last.push((e, png, block));
    }
    let samples = read_json(&sdir.join("sweep.json"))
        .ok()
        .and_then(|v| v["identity"]["z"]["samples"].as_u64())
        .unwrap_or(0);
    Ok(EvolutionSection {
        dir: sdir.to_path_buf(),
        samples,
        epochs,
        rows,
        figures,
        first_last,
    })
}

fn quality_section(
    qdir: &Path,
    cdir: Option<&Path>,
    dir: &Path,
) -> Result<QualitySection, ReportError> {
    let path = qdir.join("quality.json");
    let q = read_json(&path)?;
    let row = |name: String, run: Option<String>, epoch: Option<usize>, v: &serde_json::Value| {
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        QualityRow {
            name,
            run,
            epoch,
            fd: f("fd"),
            kid: f("kid"),
            kid_std_error: f("kid_std_error"),
            is_mean: f("is_mean"),
            kl_from_uniform: f("kl_from_uniform"),
        }
    };
    let cal = &q["calibration"];
    let mut calibration = vec![row(
        "real: train (10,000) vs test".into(),
        None,
        None,
        &cal["train_vs_test"],
    )];
    for n in cal["noised_test"].as_array().into_iter().flatten() {
        let sigma = n[0].as_f64().unwrap_or(f64::NAN);
        calibration.push(row(
            format!("real: test + noise sigma {sigma}"),
            None,
            None,
            &n[1],
        ));
    }
    calibration.push(row(
        "real: test vs itself".into(),
        None,
        None,
        &cal["test_self"],
    ));
    let generators = q["generators"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            let run = g["run"].as_str().map(|r| {
                Path::new(r)
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| r.to_string())
            });
            let epoch = g["epoch"].as_u64().map(|e| e as usize);
            let name = match (&run, epoch) {
                (Some(r), Some(e)) => format!("{r} epoch {e}"),
                _ => g["checkpoint"][0].as_str().unwrap_or("?").to_string(),
            };
            row(name, run, epoch, &g["quality"])
        })
        .collect();
    let mut figures = Vec::new();
    if let Some(f) = copy_file(&qdir.join("quality_fd.png"), dir, "quality_fd.png")? {
        figures.push((
            f,
            "FD-FMNIST against epoch, per run (lower is better)".to_string(),
        ));
    }
    let metrics = cdir.and_then(|c| read_json(&c.join("metrics.json")).ok());
    if let Some(c) = cdir
        && let Some(f) = copy_file(&c.join("confusion.png"), dir, "confusion.png")?
    {
        figures.push((
            f,
            "The classifier's confusion matrix on the test set".to_string(),
        ));
    }
    Ok(QualitySection {
        classifier_accuracy: metrics.as_ref().and_then(|m| m["test_accuracy"].as_f64()),
        classifier_epochs: metrics
            .as_ref()
            .and_then(|m| m["epochs"].as_array().map(|e| e.len())),
        classifier_seconds: metrics.as_ref().and_then(|m| m["seconds"].as_f64()),
        samples: q["samples"].as_u64().unwrap_or(0) as usize,
        calibration,
        generators,
        figures,
    })
}

/// Writes the report folder `out` (index.html, figures, report.json) atomically and returns the
/// data shown.
pub fn write_report(
    inputs: &ReportInputs,
    out: &Path,
    opts: &ReportOptions,
    device: &Device,
) -> Result<ReportData, ReportError> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("report");
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let result = (|| {
        let data = build(inputs, opts, &tmp, device)?;
        let json = serde_json::to_string_pretty(&data).map_err(|e| invalid(out, e.to_string()))?;
        write_file(&tmp, "report.json", json.as_bytes())?;
        write_file(&tmp, "index.html", html::page(&data).as_bytes())?;
        Ok::<_, ReportError>(data)
    })();
    match result {
        Ok(data) => {
            if out.exists() {
                std::fs::remove_dir_all(out).map_err(io(out))?;
            }
            std::fs::rename(&tmp, out).map_err(io(out))?;
            Ok(data)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}
