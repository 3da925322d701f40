//! `unitmatch sweep`: the comparison of two training runs, epoch by epoch, on the same z.
//!
//! `sweep(&SweepConfig { .. }, out, &device, &mut |event| ..)` compares the generators of
//! `run_a` and `run_b` saved after the same epochs (epoch 0 is the initialisation) and writes:
//!
//! - `epoch-NNNN/`: a complete compare folder per epoch (with `significance.json` when null
//!   models are requested, and the matching files of `unitmatch match`);
//! - `evolution.csv`: one row per epoch and layer pair ([`EvolutionRow`]);
//! - `evolution.png` / `.svg`: mean best-match r against epoch, one line per same-named layer
//!   pair, and `evolution_cka.png`: linear CKA against epoch;
//! - `sweep.json`: the inputs, options, and for each epoch whether it was computed or reused.
//!
//! **Resuming.** An epoch folder is reused when its `run.json` names the same checkpoint
//! contents (SHA-256), z, measure and layers, and its `significance.json` the same null
//! options; otherwise it is recomputed. Evolution rows are always rebuilt from the files on
//! disk, so a rerun that reuses everything writes the same `evolution.csv` byte for byte. A
//! folder made for other runs or other z is refused unless `force` is set.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use burn::tensor::Device;
use serde::Serialize;

use crate::checkpoint::{checkpoint_name, run_checkpoints};
use crate::cka::LayerCka;
use crate::compare::{CompareConfig, CompareError, CompareEvent, compare_with_nulls};
use crate::fsutil::{atomic_write, sha256_file, versions};
use crate::matching::{MatchError, MatchOptions, load_table, match_table, write_match_outputs};
use crate::null::{NullKind, NullOptions, block_statistics};
use crate::render;
use crate::similarity::Measure;
use crate::unroll::ZSource;

/// Which epochs to compare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum EpochSelection {
    /// Every epoch for which both runs have a checkpoint.
    All,
    /// These epochs (each must exist in both runs), in increasing order.
    List(Vec<usize>),
}

impl FromStr for EpochSelection {
    type Err = String;

    /// `all`, or a comma-separated list of epochs such as `0,1,2,5`.
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "all" {
            return Ok(Self::All);
        }
        let mut list = s
            .split(',')
            .map(|p| {
                p.trim().parse::<usize>().map_err(|_| {
                    format!("`{p}` is not an epoch number (expected e.g. 1,2,5 or all)")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        list.sort_unstable();
        list.dedup();
        Ok(Self::List(list))
    }
}

/// What a sweep compares and how.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// Training run folder of GAN A (rows).
    pub run_a: PathBuf,
    /// Training run folder of GAN B (columns).
    pub run_b: PathBuf,
    /// Epochs to compare.
    pub epochs: EpochSelection,
    /// Latent codes, the same for every epoch.
    pub z: ZSource,
    /// Score per unit pair.
    pub measure: Measure,
    /// Compared layers.
    pub layers: Vec<String>,
    /// Null models per epoch (their z-scores go into `evolution.csv`).
    pub nulls: NullOptions,
    /// Matching options (buddy counts).
    pub matching: MatchOptions,
    /// BatchNorm eps for checkpoints that do not record it.
    pub default_bn_eps: f64,
    /// Delete an existing sweep folder first.
    pub force: bool,
}

/// Errors of a sweep; each names the folder or file.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A run folder has no checkpoints, or an asked epoch is missing.
    #[error("{path}: {message}")]
    Runs {
        /// The run folder.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
    /// The output folder holds a sweep of other inputs.
    #[error("{path}: {message}; pass --force to replace it")]
    OtherSweep {
        /// `sweep.json` of the existing folder.
        path: PathBuf,
        /// What differs.
        message: String,
    },
    /// One epoch's comparison failed.
    #[error("epoch {epoch}: {source}")]
    Compare {
        /// The epoch.
        epoch: usize,
        /// The cause.
        source: CompareError,
    },
    /// One epoch's matching failed.
    #[error("epoch {epoch}: {source}")]
    Match {
        /// The epoch.
        epoch: usize,
        /// The cause.
        source: MatchError,
    },
    /// A file of an epoch folder is missing or malformed.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// File system error.
    #[error("{path}: {message}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        message: String,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SweepError + '_ {
    move |e| SweepError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Progress of a sweep.
#[derive(Debug, Clone)]
pub enum SweepEvent {
    /// Starting epoch `epoch` (the `index`-th of `total`); `reused` when its folder is current.
    Epoch {
        /// The epoch.
        epoch: usize,
        /// 0-based position in the sweep.
        index: usize,
        /// Epochs in the sweep.
        total: usize,
        /// Whether the finished folder is reused (nothing is computed).
        reused: bool,
    },
    /// Progress of the epoch's comparison.
    Compare(CompareEvent),
}

/// One row of `evolution.csv`: one epoch and one layer pair (layer of A x layer of B).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvolutionRow {
    /// Training epoch (0 = initialisation).
    pub epoch: usize,
    /// Layer of A.
    pub layer_a: String,
    /// Layer of B.
    pub layer_b: String,
    /// `(1/|LA|) sum_i max_j r(i, j)` over the block.
    pub mean_row_max: f64,
    /// Mean score of the block's one-to-one (Hungarian) assignment.
    pub mean_assigned: f64,
    /// Strict mutual best buddies (whole-table argmax both ways) inside this layer pair.
    pub strict_buddies: usize,
    /// Rosetta buddies (top-k) inside this layer pair.
    pub rosetta_buddies: usize,
    /// Linear CKA of the two layers.
    pub cka_linear: Option<f64>,
    /// Debiased linear CKA of the two layers.
    pub cka_debiased: Option<f64>,
    /// For each null model run (in [`NULL_COLUMNS`] order; `None` when not run): the z-score and
    /// empirical p-value of `mean_row_max` against it.
    pub nulls: [Option<(Option<f64>, f64)>; 2],
}

/// The null models with columns in `evolution.csv`, in column order.
pub const NULL_COLUMNS: [NullKind; 2] = [NullKind::RandomInit, NullKind::PermutedZ];

/// Header of `evolution.csv`.
pub const EVOLUTION_HEADER: &str = "epoch,layer_a,layer_b,mean_row_max,mean_assigned,\
strict_buddies,rosetta_buddies,cka_linear,cka_debiased,z_random_init,p_random_init,\
z_permuted_z,p_permuted_z";

/// What a sweep produced.
#[derive(Debug, Clone)]
pub struct SweepSummary {
    /// Every row of `evolution.csv`, epochs ascending, layer pairs row layers outermost.
    pub rows: Vec<EvolutionRow>,
    /// Epochs compared in this call.
    pub computed: Vec<usize>,
    /// Epochs whose finished folders were reused.
    pub reused: Vec<usize>,
    /// Seconds spent.
    pub seconds: f64,
}

/// Epoch folder name: `epoch-NNNN`.
pub fn epoch_dir_name(epoch: usize) -> String {
    format!("epoch-{epoch:04}")
}

/// The epochs to compare and each one's two checkpoints.
fn select_epochs(cfg: &SweepConfig) -> Result<Vec<(usize, PathBuf, PathBuf)>, SweepError> {
    let list = |run: &Path| {
        let found = run_checkpoints(run).map_err(|e| SweepError::Runs {
            path: run.to_path_buf(),
            message: format!("not a training run folder (no checkpoints/): {e}"),
        })?;
        if found.is_empty() {
            return Err(SweepError::Runs {
                path: run.to_path_buf(),
                message: "no generator checkpoints in checkpoints/".into(),
            });
        }
        Ok(found)
    };
    let (a, b) = (list(&cfg.run_a)?, list(&cfg.run_b)?);
    let common: Vec<(usize, PathBuf, PathBuf)> = a
        .iter()
        .filter_map(|(e, pa)| {
            let (_, pb) = b.iter().find(|(f, _)| f == e)?;
            Some((*e, pa.clone(), pb.clone()))
        })
        .collect();
    match &cfg.epochs {
        EpochSelection::All if common.is_empty() => Err(SweepError::Runs {
            path: cfg.run_b.clone(),
            message: format!(
                "no epoch has a checkpoint in both this run and {}",
                cfg.run_a.display()
            ),
        }),
        EpochSelection::All => Ok(common),
        EpochSelection::List(want) if want.is_empty() => Err(SweepError::Runs {
            path: cfg.run_a.clone(),
            message: "the epoch list is empty".into(),
        }),
        EpochSelection::List(want) => want
            .iter()
            .map(|&e| {
                common.iter().find(|c| c.0 == e).cloned().ok_or_else(|| {
                    let missing = if a.iter().all(|(f, _)| *f != e) {
                        &cfg.run_a
                    } else {
                        &cfg.run_b
                    };
                    SweepError::Runs {
                        path: missing.clone(),
                        message: format!("no checkpoint for epoch {e} ({})", checkpoint_name(e)),
                    }
                })
            })
            .collect(),
    }
}

/// The inputs a sweep folder is bound to (written to and checked against `sweep.json`).
fn sweep_identity(cfg: &SweepConfig) -> serde_json::Value {
    serde_json::json!({
        "run_a": cfg.run_a,
        "run_b": cfg.run_b,
        "z": cfg.z.describe(),
        "measure": cfg.measure,
        "layers": cfg.layers,
    })
}

fn read_json(path: &Path) -> Result<serde_json::Value, SweepError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| SweepError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Whether `dir` holds a finished comparison of exactly these checkpoints and options.
fn epoch_is_current(dir: &Path, sha_a: &str, sha_b: &str, cfg: &SweepConfig) -> bool {
    let Ok(run) = read_json(&dir.join("run.json")) else {
        return false;
    };
    let inputs = &run["inputs"];
    let same = inputs["a"][1] == sha_a
        && inputs["b"][1] == sha_b
        && inputs["z"] == cfg.z.describe()
        && inputs["measure"] == serde_json::json!(cfg.measure)
        && inputs["layers"] == serde_json::json!(cfg.layers)
        && run["shard"].is_null()
        && ["table.npy", "units_a.csv", "units_b.csv", "cka.json"]
            .iter()
            .all(|f| dir.join(f).exists());
    if !same {
        return false;
    }
    if !cfg.nulls.enabled() {
        return true;
    }
    read_json(&dir.join("significance.json"))
        .is_ok_and(|s| s["options"] == serde_json::json!(cfg.nulls))
}

/// Whether `dir/matching.json` was written with `opts`.
fn matching_is_current(dir: &Path, opts: &MatchOptions) -> bool {
    read_json(&dir.join("matching.json")).is_ok_and(|m| m["options"] == serde_json::json!(opts))
}

/// Compares the two runs epoch by epoch into `out` (see the module doc).
pub fn sweep(
    cfg: &SweepConfig,
    out: &Path,
    device: &Device,
    progress: &mut dyn FnMut(SweepEvent),
) -> Result<SweepSummary, SweepError> {
    let t0 = Instant::now();
    let epochs = select_epochs(cfg)?;
    let identity = sweep_identity(cfg);
    let sweep_json = out.join("sweep.json");
    if out.exists() && cfg.force {
        std::fs::remove_dir_all(out).map_err(io(out))?;
    } else if sweep_json.exists() {
        let saved = read_json(&sweep_json)?;
        if saved["identity"] != identity {
            return Err(SweepError::OtherSweep {
                path: sweep_json,
                message: format!(
                    "this folder holds a sweep of other inputs ({} vs {})",
                    saved["identity"], identity
                ),
            });
        }
    } else if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(SweepError::OtherSweep {
            path: out.to_path_buf(),
            message: "the folder exists and is not a sweep folder (no sweep.json)".into(),
        });
    }
    std::fs::create_dir_all(out).map_err(io(out))?;

    let (mut computed, mut reused, mut per_epoch) = (Vec::new(), Vec::new(), Vec::new());
    for (index, (epoch, ckpt_a, ckpt_b)) in epochs.iter().enumerate() {
        let dir = out.join(epoch_dir_name(*epoch));
        let sha_a = sha256_file(ckpt_a).map_err(io(ckpt_a))?;
        let sha_b = sha256_file(ckpt_b).map_err(io(ckpt_b))?;
        let current = epoch_is_current(&dir, &sha_a, &sha_b, cfg);
        progress(SweepEvent::Epoch {
            epoch: *epoch,
            index,
            total: epochs.len(),
            reused: current,
        });
        if !current {
            let ccfg = CompareConfig {
                a: ckpt_a.clone(),
                b: ckpt_b.clone(),
                z: cfg.z.clone(),
                measure: cfg.measure,
                layers: cfg.layers.clone(),
                shard: None,
                default_bn_eps: cfg.default_bn_eps,
                force: true,
            };
            compare_with_nulls(&ccfg, &cfg.nulls, &dir, device, &mut |e| {
                progress(SweepEvent::Compare(e))
            })
            .map_err(|source| SweepError::Compare {
                epoch: *epoch,
                source,
            })?;
            computed.push(*epoch);
        } else {
            reused.push(*epoch);
        }
        let match_err = |source| SweepError::Match {
            epoch: *epoch,
            source,
        };
        if !current || !matching_is_current(&dir, &cfg.matching) {
            let table = load_table(&dir).map_err(match_err)?;
            let report = match_table(&table, &cfg.matching);
            write_match_outputs(&report, &table, &dir).map_err(match_err)?;
        }
        per_epoch.push(serde_json::json!({
            "epoch": epoch,
            "folder": epoch_dir_name(*epoch),
            "checkpoint_a": [ckpt_a, sha_a],
            "checkpoint_b": [ckpt_b, sha_b],
            "reused": current,
        }));
    }

    let mut rows = Vec::new();
    for (epoch, _, _) in &epochs {
        rows.extend(evolution_rows(
            *epoch,
            &out.join(epoch_dir_name(*epoch)),
            cfg,
        )?);
    }
    let csv = out.join("evolution.csv");
    atomic_write(&csv, evolution_csv(&rows).as_bytes()).map_err(io(&csv))?;
    write_evolution_figures(&rows, out)?;
    let seconds = t0.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "kind": "unitmatch.sweep",
        "identity": identity,
        "nulls": cfg.nulls,
        "matching": cfg.matching,
        "epochs": per_epoch,
        "computed": computed,
        "reused": reused,
        "seconds": seconds,
        "threads": rayon::current_num_threads(),
        "versions": versions(),
    });
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    atomic_write(&sweep_json, text.as_bytes()).map_err(io(&sweep_json))?;
    Ok(SweepSummary {
        rows,
        computed,
        reused,
        seconds,
    })
}

/// The evolution rows of one finished epoch folder, from its files only.
pub fn evolution_rows(
    epoch: usize,
    dir: &Path,
    cfg: &SweepConfig,
) -> Result<Vec<EvolutionRow>, SweepError> {
    let table = load_table(dir).map_err(|source| SweepError::Match { epoch, source })?;
    let report = match_table(&table, &cfg.matching);
    let blocks = block_statistics(&table);
    let cka_path = dir.join("cka.json");
    let cka: Vec<LayerCka> =
        serde_json::from_value(read_json(&cka_path)?).map_err(|e| SweepError::Invalid {
            path: cka_path.clone(),
            message: e.to_string(),
        })?;
    let significance = if cfg.nulls.enabled() {
        Some(read_json(&dir.join("significance.json"))?)
    } else {
        None
    };
    let mut rows = Vec::new();
    for (k, b) in blocks.iter().enumerate() {
        let counts = &report.layer_pairs[k];
        debug_assert!(counts.layer_a == b.layer_a && counts.layer_b == b.layer_b);
        let layer_cka = cka.iter().find(|c| {
            c.network_p == "a"
                && c.network_q == "b"
                && c.layer_p == b.layer_a
                && c.layer_q == b.layer_b
        });
        let nulls = NULL_COLUMNS.map(|kind| {
            let s = significance.as_ref()?;
            if !cfg.nulls.kinds.contains(&kind) {
                return None;
            }
            let pairs = s["nulls"][kind.name()]["layer_pairs"].as_array()?;
            let pair = pairs.iter().find(|p| {
                p["layer_a"] == b.layer_a.as_str() && p["layer_b"] == b.layer_b.as_str()
            })?;
            let stat = &pair["mean_best"];
            Some((stat["z"].as_f64(), stat["p"].as_f64()?))
        });
        rows.push(EvolutionRow {
            epoch,
            layer_a: b.layer_a.clone(),
            layer_b: b.layer_b.clone(),
            mean_row_max: b.mean_best,
            mean_assigned: b.mean_assigned,
            strict_buddies: counts.strict_buddies,
            rosetta_buddies: counts.rosetta_buddies,
            cka_linear: layer_cka.and_then(|c| c.linear),
            cka_debiased: layer_cka.and_then(|c| c.debiased),
            nulls,
        });
    }
    Ok(rows)
}

/// `evolution.csv`: [`EVOLUTION_HEADER`], then one line per row; numbers in Rust's shortest
/// round-trip form, empty fields for values that were not computed.
pub fn evolution_csv(rows: &[EvolutionRow]) -> String {
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    let mut text = format!("{EVOLUTION_HEADER}\n");
    for r in rows {
        let nulls: Vec<String> = r
            .nulls
            .iter()
            .flat_map(|n| match n {
                Some((z, p)) => [opt(*z), p.to_string()],
                None => [String::new(), String::new()],
            })
            .collect();
        text.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r.epoch,
            r.layer_a,
            r.layer_b,
            r.mean_row_max,
            r.mean_assigned,
            r.strict_buddies,
            r.rosetta_buddies,
            opt(r.cka_linear),
            opt(r.cka_debiased),
            nulls.join(",")
        ));
    }
    text
}

/// One `(name, [(epoch, value)])` series per same-named layer pair (`block1 x block1`, ...).
pub fn diagonal_series(
    rows: &[EvolutionRow],
    value: impl Fn(&EvolutionRow) -> Option<f64>,
) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in rows.iter().filter(|r| r.layer_a == r.layer_b) {
        let name = format!("{} x {}", r.layer_a, r.layer_b);
        let point = (r.epoch as f64, value(r).unwrap_or(f64::NAN));
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, pts)) => pts.push(point),
            None => series.push((name, vec![point])),
        }
    }
    series
}

fn write_evolution_figures(rows: &[EvolutionRow], out: &Path) -> Result<(), SweepError> {
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |message: String| SweepError::Invalid { path, message }
    };
    let best = diagonal_series(rows, |r| Some(r.mean_row_max));
    let (title, x, y) = (
        "Mean best-match r, A vs B, per layer",
        "epoch",
        "mean best-match r",
    );
    let png = out.join("evolution.png");
    let bytes = render::evolution_png(&best, title, x, y).map_err(fail(&png))?;
    atomic_write(&png, &bytes).map_err(io(&png))?;
    let svg = out.join("evolution.svg");
    let text = render::evolution_svg(&best, title, x, y).map_err(fail(&svg))?;
    atomic_write(&svg, text.as_bytes()).map_err(io(&svg))?;
    let cka = diagonal_series(rows, |r| r.cka_linear);
    let png = out.join("evolution_cka.png");
    let bytes = render::evolution_png(&cka, "Linear CKA, A vs B, per layer", "epoch", "linear CKA")
        .map_err(fail(&png))?;
    atomic_write(&png, &bytes).map_err(io(&png))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_lists_parse_sorted_and_deduplicated() {
        assert_eq!("all".parse::<EpochSelection>(), Ok(EpochSelection::All));
        assert_eq!(
            "5, 1,2,1".parse::<EpochSelection>(),
            Ok(EpochSelection::List(vec![1, 2, 5]))
        );
        let err = "1,x".parse::<EpochSelection>().unwrap_err();
        assert!(err.contains("`x`"), "{err}");
    }

    fn row(epoch: usize, a: &str, b: &str, v: f64) -> EvolutionRow {
        EvolutionRow {
            epoch,
            layer_a: a.into(),
            layer_b: b.into(),
            mean_row_max: v,
            mean_assigned: v / 2.0,
            strict_buddies: 3,
            rosetta_buddies: 4,
            cka_linear: Some(0.25),
            cka_debiased: None,
            nulls: [Some((Some(12.5), 0.5)), None],
        }
    }

    #[test]
    fn csv_has_one_line_per_row_and_empty_fields_for_missing_values() {
        let text = evolution_csv(&[
            row(0, "block1", "block1", 0.1),
            row(1, "block1", "out", 0.3),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], EVOLUTION_HEADER);
        assert_eq!(lines[1], "0,block1,block1,0.1,0.05,3,4,0.25,,12.5,0.5,,");
        assert_eq!(lines.len(), 3);
        for l in &lines {
            assert_eq!(
                l.split(',').count(),
                EVOLUTION_HEADER.split(',').count(),
                "{l}"
            );
        }
    }

    #[test]
    fn diagonal_series_group_same_named_layers_by_epoch() {
        let rows = [
            row(0, "block1", "block1", 0.1),
            row(0, "block1", "out", 0.9),
            row(0, "out", "out", 0.2),
            row(3, "block1", "block1", 0.4),
            row(3, "out", "out", 0.5),
        ];
        let s = diagonal_series(&rows, |r| Some(r.mean_row_max));
        assert_eq!(
            s,
            vec![
                ("block1 x block1".to_string(), vec![(0.0, 0.1), (3.0, 0.4)]),
                ("out x out".to_string(), vec![(0.0, 0.2), (3.0, 0.5)]),
            ]
        );
        let s = diagonal_series(&rows, |r| r.cka_debiased);
        assert!(s[0].1.iter().all(|p| p.1.is_nan()));
    }
}
