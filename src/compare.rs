//! `unitmatch compare`: unroll two generators on the same z, stream the moments, write the table.
//!
//! `compare(&CompareConfig { .. }, out_dir, &device, &mut |event| ..)` writes a self-describing
//! folder (table.npy, units_*.csv, stats.safetensors, summary.json, run.json); `merge(dirs, out)`
//! combines shard folders written with `shard: Some((k, n))` into the same outputs.
//! `compare_with_nulls` adds null models and significance.json (see [`crate::null`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use burn::tensor::{Tensor, TensorData};
use ndarray::{Array2, Array4, ArrayView4};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointError, load_generator};
use crate::cka;
use crate::classifier::{Classifier, is_classifier_checkpoint, load_classifier};
use crate::fsutil::{sha256_file, versions};
use crate::model::{GEN_LAYERS, Generator, ModelConfig};

/// The generator's output layer: A's images, which a classifier B sees.
const GEN_OUT: &str = GEN_LAYERS[2];
use crate::null::{
    NullAccumulators, NullKind, NullOptions, layer_pair_significance, permuted_acts,
    random_init_seed, significance_json,
};
use crate::similarity::{Measure, SimilarityTable, UnitInfo, cross_table, summarize};
use crate::stats::{LayerSpec, MomentAccumulator, StatsError};
use crate::unroll::{UnrollError, ZSource, tensor_to_array4, unroll_generator};

/// What to compare and how.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// Checkpoint of network A (rows).
    pub a: PathBuf,
    /// Checkpoint of network B (columns).
    pub b: PathBuf,
    /// Latent codes.
    pub z: ZSource,
    /// Score per unit pair.
    pub measure: Measure,
    /// Layer names, e.g. `["gen.block1", "gen.block2", "gen.out"]`.
    pub layers: Vec<String>,
    /// `Some((k, n))`: process only batches `i` with `i % n == k` and write the accumulators.
    pub shard: Option<(usize, usize)>,
    /// BatchNorm eps for checkpoints that do not record it (PyTorch files).
    pub default_bn_eps: f64,
    /// Replace an existing output folder.
    pub force: bool,
}

/// Errors from compare and merge; each names the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A checkpoint could not be loaded.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// z or layer selection failed.
    #[error(transparent)]
    Unroll(#[from] UnrollError),
    /// The statistics failed (layout or file).
    #[error(transparent)]
    Stats(#[from] StatsError),
    /// Output folder exists.
    #[error("{0} already exists: pass --force to replace it")]
    OutputExists(PathBuf),
    /// Invalid option.
    #[error("{0}")]
    Config(String),
    /// Shards do not belong together.
    #[error("{path}: {message}")]
    Mismatch {
        /// The shard folder.
        path: PathBuf,
        /// What differs.
        message: String,
    },
    /// File I/O.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        message: String,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CompareError + '_ {
    move |e| CompareError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Progress of a comparison.
#[derive(Debug, Clone)]
pub enum CompareEvent {
    /// Starting: number of batches this process will run.
    Start {
        /// Batches to run.
        batches: usize,
        /// Samples to run.
        samples: usize,
    },
    /// A batch finished.
    Batch {
        /// Samples done so far.
        samples_done: usize,
        /// Throughput so far.
        samples_per_s: f64,
    },
}

/// What a finished comparison returns.
#[derive(Debug, Clone)]
pub struct CompareSummary {
    /// The table (None for a shard, which only writes accumulators).
    pub table: Option<SimilarityTable>,
    /// Samples accumulated.
    pub samples: u64,
    /// Seconds spent.
    pub seconds: f64,
}

/// The provenance saved in run.json and checked by `merge`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CompareInputs {
    /// Checkpoint A path and SHA-256.
    pub a: (PathBuf, String),
    /// Checkpoint B path and SHA-256.
    pub b: (PathBuf, String),
    /// Architecture of A as loaded.
    pub model_a: ModelConfig,
    /// Architecture of B as loaded (for a classifier B: its width, and its BatchNorm eps 1e-5).
    pub model_b: ModelConfig,
    /// What B is: `"generator"` (default, also for older run.json files) or `"classifier"`
    /// (B's activations are the classifier's response to A's generated images).
    #[serde(default = "generator_kind")]
    pub network_b: String,
    /// z source description.
    pub z: serde_json::Value,
    /// Measure name.
    pub measure: Measure,
    /// Compared layers.
    pub layers: Vec<String>,
}

fn generator_kind() -> String {
    "generator".into()
}

/// Network B of a comparison: another generator on the same z, or a classifier that sees A's
/// generated images (the seed's "generator against a discriminative network").
pub enum NetworkB {
    /// A generator, unrolled on the same z as A.
    Generator(Generator),
    /// A classifier, run on A's images for the same z.
    Classifier(Classifier),
}

impl NetworkB {
    /// Loads B: a classifier checkpoint (metadata format `unitmatch-classifier-v1`) or any
    /// generator checkpoint `load_generator` reads.
    pub fn load(
        path: &Path,
        default_bn_eps: f64,
        device: &Device,
    ) -> Result<(Self, ModelConfig), CompareError> {
        if is_classifier_checkpoint(path) {
            let c = load_classifier(path, device).map_err(|e| CompareError::Io {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            let width = c.config().width;
            Ok((
                Self::Classifier(c),
                ModelConfig {
                    width,
                    bn_eps: 1e-5,
                },
            ))
        } else {
            let (g, m) = load_generator(path, default_bn_eps, device)?;
            Ok((Self::Generator(g), m))
        }
    }

    /// `"generator"` or `"classifier"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Generator(_) => "generator",
            Self::Classifier(_) => "classifier",
        }
    }

    /// `(layer, channels, side)` of the layers compared on B's side.
    fn layer_shapes(&self, layers: &[String]) -> Vec<(String, usize, usize)> {
        match self {
            Self::Generator(g) => g
                .layer_shapes()
                .into_iter()
                .filter(|(n, _, _)| layers.contains(n))
                .collect(),
            Self::Classifier(c) => c.layer_shapes(),
        }
    }

    /// A freshly initialised, untrained network of the same architecture (random-init null).
    fn random_like(&self, model: &ModelConfig, seed: u64, device: &Device) -> Self {
        match self {
            // The same (possibly pruned) per-layer channels as B.
            Self::Generator(g) => {
                Self::Generator(Generator::with_channels(model, g.channels(), seed, device))
            }
            Self::Classifier(c) => Self::Classifier(Classifier::new(&c.config(), seed, device)),
        }
    }

    /// B's activations for one z batch: the generator unrolled on `z`, or the classifier run on
    /// A's images `images_a` (`[n, 1, 32, 32]`).
    pub fn activations(
        &self,
        z: &[f32],
        images_a: &Array4<f32>,
        layers: &[String],
        device: &Device,
    ) -> Vec<Array4<f32>> {
        match self {
            Self::Generator(g) => unroll_generator(g, z, layers, device),
            Self::Classifier(c) => {
                let (n, _, h, w) = images_a.dim();
                let data =
                    TensorData::new(images_a.iter().copied().collect::<Vec<f32>>(), [n, 1, h, w]);
                let out = c.forward_with_activations(Tensor::<4>::from_data(data, device), false);
                out.activations
                    .into_iter()
                    .map(|(_, t)| tensor_to_array4(t))
                    .collect()
            }
        }
    }
}

/// Layer layout of the accumulator: A's layers (network "a") then B's (network "b").
/// For a classifier B, all of its layers (`cls.block1..3`) are compared.
pub fn layer_specs(ga: &Generator, gb: &NetworkB, layers: &[String]) -> Vec<LayerSpec> {
    let a = ga
        .layer_shapes()
        .into_iter()
        .filter(|(n, _, _)| layers.contains(n))
        .map(|s| ("a", s));
    let b = gb.layer_shapes(layers).into_iter().map(|s| ("b", s));
    a.chain(b)
        .map(|(net, (name, c, side))| LayerSpec {
            network: net.to_string(),
            name,
            channels: c,
            height: side,
            width: side,
        })
        .collect()
}

/// Runs a comparison into `out` (see the module doc). Nothing is left at `out` on error:
/// outputs are written into a temporary sibling folder that is renamed at the end.
pub fn compare(
    cfg: &CompareConfig,
    out: &Path,
    device: &Device,
    progress: &mut dyn FnMut(CompareEvent),
) -> Result<CompareSummary, CompareError> {
    compare_with_nulls(cfg, &NullOptions::none(), out, device, progress)
}

/// [`compare`] plus null models (see [`crate::null`]): every draw of every null keeps its own
/// accumulator (A's layers, then the null-B layers), fed with the same z batches; the folder
/// gets significance.json. Nulls cannot be combined with shards yet (the null accumulators are
/// not written into shard folders, so `merge` could not test significance): that is an error.
pub fn compare_with_nulls(
    cfg: &CompareConfig,
    nulls: &NullOptions,
    out: &Path,
    device: &Device,
    progress: &mut dyn FnMut(CompareEvent),
) -> Result<CompareSummary, CompareError> {
    if let Some((k, n)) = cfg.shard
        && (n == 0 || k >= n)
    {
        return Err(CompareError::Config(format!(
            "bad shard {k}/{n}: need 0 <= k < n"
        )));
    }
    if nulls.enabled() && cfg.shard.is_some() {
        return Err(CompareError::Config(
            "--null cannot be combined with --shard yet: null accumulators are not written into \
             shard folders, so merge could not test significance; run the null models without --shard"
                .into(),
        ));
    }
    nulls.validate().map_err(CompareError::Config)?;
    if cfg.layers.is_empty() {
        return Err(CompareError::Config("no layers selected".into()));
    }
    check_output(out, cfg.force)?;
    let (ga, ma) = load_generator(&cfg.a, cfg.default_bn_eps, device)?;
    let (gb, mb) = NetworkB::load(&cfg.b, cfg.default_bn_eps, device)?;
    let inputs = CompareInputs {
        a: (cfg.a.clone(), sha256_file(&cfg.a).map_err(io(&cfg.a))?),
        b: (cfg.b.clone(), sha256_file(&cfg.b).map_err(io(&cfg.b))?),
        model_a: ma,
        model_b: mb,
        network_b: gb.kind().to_string(),
        z: cfg.z.describe(),
        measure: cfg.measure,
        layers: cfg.layers.clone(),
    };
    let specs = layer_specs(&ga, &gb, &cfg.layers);
    let mut acc = MomentAccumulator::new(specs.clone())?;
    let mut null_accs = nulls
        .kinds
        .iter()
        .map(|&k| NullAccumulators::new(k, nulls.draws, &specs))
        .collect::<Result<Vec<_>, _>>()?;
    // Random-init null: untrained generators with B's architecture, seed 1_000_003 + d.
    let random_b: Vec<NetworkB> = if nulls.kinds.contains(&NullKind::RandomInit) {
        (0..nulls.draws)
            .map(|d| gb.random_like(&mb, random_init_seed(d), device))
            .collect()
    } else {
        Vec::new()
    };
    let batches: Vec<usize> = (0..cfg.z.batches())
        .filter(|i| cfg.shard.is_none_or(|(k, n)| i % n == k))
        .collect();
    let total: usize = batches.iter().map(|&i| cfg.z.batch(i).len() / 100).sum();
    progress(CompareEvent::Start {
        batches: batches.len(),
        samples: total,
    });
    let t0 = Instant::now();
    let mut done = 0;
    for &i in &batches {
        let z = cfg.z.batch(i);
        // A classifier B sees A's images: unroll A's output too when it is not compared.
        let with_image =
            matches!(gb, NetworkB::Classifier(_)) && !cfg.layers.contains(&GEN_OUT.to_string());
        let mut layers_a = cfg.layers.clone();
        if with_image {
            layers_a.push(GEN_OUT.to_string());
        }
        let mut acts_a = unroll_generator(&ga, &z, &layers_a, device);
        let images_a = if with_image {
            acts_a.pop().expect("gen.out was unrolled")
        } else {
            let k = cfg.layers.iter().position(|l| l == GEN_OUT);
            k.map(|k| acts_a[k].clone())
                .unwrap_or_else(|| Array4::zeros((0, 1, 32, 32)))
        };
        let acts_b = gb.activations(&z, &images_a, &cfg.layers, device);
        let views: Vec<ArrayView4<f32>> = acts_a.iter().chain(&acts_b).map(|a| a.view()).collect();
        acc.add_batch(&views)?;
        for na in &mut null_accs {
            match na.kind {
                NullKind::PermutedZ => {
                    na.add_batch(&acts_a, &mut |d| permuted_acts(&acts_b, d, i))?;
                }
                NullKind::RandomInit => {
                    na.add_batch(&acts_a, &mut |d| {
                        random_b[d].activations(&z, &images_a, &cfg.layers, device)
                    })?;
                }
            }
        }
        done += z.len() / 100;
        progress(CompareEvent::Batch {
            samples_done: done,
            samples_per_s: done as f64 / t0.elapsed().as_secs_f64().max(1e-9),
        });
    }
    let seconds = t0.elapsed().as_secs_f64();
    let timing = serde_json::json!({
        "seconds": seconds,
        "samples_per_s": done as f64 / seconds.max(1e-9),
        "threads": rayon::current_num_threads(),
    });
    let null = nulls.enabled().then_some((nulls, null_accs.as_slice()));
    let table = write_outputs(&acc, &inputs, cfg.shard, out, timing, null)?;
    Ok(CompareSummary {
        table,
        samples: acc.count(),
        seconds,
    })
}

fn check_output(out: &Path, force: bool) -> Result<(), CompareError> {
    if out.exists() && !force {
        return Err(CompareError::OutputExists(out.to_path_buf()));
    }
    Ok(())
}

/// Writes the comparison folder atomically (temporary sibling, then rename). Shards get only
/// the accumulators and run.json; complete runs get every output. Returns the table if written.
fn write_outputs(
    acc: &MomentAccumulator,
    inputs: &CompareInputs,
    shard: Option<(usize, usize)>,
    out: &Path,
    timing: serde_json::Value,
    null: Option<(&NullOptions, &[NullAccumulators])>,
) -> Result<Option<SimilarityTable>, CompareError> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("compare");
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let result = (|| {
        acc.save(&tmp.join("stats.safetensors"))?;
        let table = if shard.is_none() {
            let table = cross_table(acc, inputs.measure);
            write_table_files(&table, &tmp)?;
            write_layer_files(acc, &tmp)?;
            if let Some((opts, accs)) = null {
                let results: Vec<_> = accs
                    .iter()
                    .map(|na| {
                        let tables = na.tables(inputs.measure);
                        (
                            na.kind,
                            layer_pair_significance(&table, &tables, opts.alpha),
                        )
                    })
                    .collect();
                write_json(
                    &tmp.join("significance.json"),
                    &significance_json(opts, &results),
                )?;
            }
            Some(table)
        } else {
            None
        };
        let run = serde_json::json!({
            "kind": "unitmatch.compare",
            "inputs": inputs,
            "shard": shard.map(|(k, n)| serde_json::json!({"index": k, "count": n})),
            "samples": acc.count(),
            "versions": versions(),
            "timing": timing,
        });
        write_json(&tmp.join("run.json"), &run)?;
        Ok::<_, CompareError>(table)
    })();
    match result {
        Ok(table) => {
            if out.exists() {
                std::fs::remove_dir_all(out).map_err(io(out))?;
            }
            std::fs::rename(&tmp, out).map_err(io(out))?;
            Ok(table)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// table.npy (float32, rows = units of A), units_a.csv, units_b.csv, summary.json.
fn write_table_files(table: &SimilarityTable, dir: &Path) -> Result<(), CompareError> {
    let values: Array2<f32> = table.values.mapv(|v| v as f32);
    let path = dir.join("table.npy");
    let file = std::fs::File::create(&path).map_err(io(&path))?;
    ndarray_npy::WriteNpyExt::write_npy(&values, file).map_err(|e| CompareError::Io {
        path: path.clone(),
        message: e.to_string(),
    })?;
    write_units(&dir.join("units_a.csv"), &table.rows)?;
    write_units(&dir.join("units_b.csv"), &table.cols)?;
    let dead_a = table.rows.iter().filter(|u| u.dead).count();
    let dead_b = table.cols.iter().filter(|u| u.dead).count();
    let summary = serde_json::json!({
        "units_a": table.rows.len(),
        "units_b": table.cols.len(),
        "dead_a": dead_a,
        "dead_b": dead_b,
        "layer_pairs": summarize(table),
    });
    write_json(&dir.join("summary.json"), &summary)
}

/// cka.json (layer-level linear CKA, from the same co-moments) and redundancy.json
/// (near-duplicate units inside A and inside B, |r| >= 0.9).
fn write_layer_files(acc: &MomentAccumulator, dir: &Path) -> Result<(), CompareError> {
    let path = dir.join("cka.json");
    cka::write_cka_json(&path, &cka::layer_cka(acc)).map_err(io(&path))?;
    let mut clusters = cka::redundancy(acc, "a", cka::DEFAULT_TAU);
    clusters.extend(cka::redundancy(acc, "b", cka::DEFAULT_TAU));
    let path = dir.join("redundancy.json");
    cka::write_redundancy_json(&path, &clusters).map_err(io(&path))
}

/// One row per unit: flat index, layer, channel, mean, std, dead.
fn write_units(path: &Path, units: &[UnitInfo]) -> Result<(), CompareError> {
    let mut text = String::from("flat,layer,channel,mean,std,dead\n");
    for u in units {
        text.push_str(&format!(
            "{},{},{},{:.9e},{:.9e},{}\n",
            u.flat, u.layer, u.channel, u.mean, u.std, u.dead
        ));
    }
    std::fs::write(path, text).map_err(io(path))
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), CompareError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    std::fs::write(path, text).map_err(io(path))
}

/// Reads a compare folder's run.json inputs.
pub fn read_inputs(dir: &Path) -> Result<(CompareInputs, Option<(usize, usize)>), CompareError> {
    let path = dir.join("run.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let bad = |m: String| CompareError::Mismatch {
        path: path.clone(),
        message: m,
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let inputs: CompareInputs =
        serde_json::from_value(v["inputs"].clone()).map_err(|e| bad(format!("bad inputs: {e}")))?;
    let shard = v["shard"].as_object().and_then(|s| {
        Some((
            s.get("index")?.as_u64()? as usize,
            s.get("count")?.as_u64()? as usize,
        ))
    });
    Ok((inputs, shard))
}

/// Combines shard folders (`compare --shard k/n`) into one comparison folder at `out`, with
/// Chan's parallel update; the result equals a single run over all batches.
pub fn merge(dirs: &[PathBuf], out: &Path, force: bool) -> Result<CompareSummary, CompareError> {
    let t0 = Instant::now();
    let Some(first) = dirs.first() else {
        return Err(CompareError::Config(
            "merge needs at least one folder".into(),
        ));
    };
    check_output(out, force)?;
    let (inputs, _) = read_inputs(first)?;
    let mut acc = MomentAccumulator::load(&first.join("stats.safetensors"))?;
    let mut seen = vec![read_inputs(first)?.1];
    for dir in &dirs[1..] {
        let (other, shard) = read_inputs(dir)?;
        if other != inputs {
            return Err(CompareError::Mismatch {
                path: dir.clone(),
                message: format!("compares different inputs than {}", first.display()),
            });
        }
        if shard.is_some() && seen.contains(&shard) {
            return Err(CompareError::Mismatch {
                path: dir.clone(),
                message: "the same shard is given twice".into(),
            });
        }
        seen.push(shard);
        acc.merge(&MomentAccumulator::load(&dir.join("stats.safetensors"))?)?;
    }
    // Shards of one job must all be there: a partial merge would silently use fewer z.
    if let Some(Some((_, n))) = seen.first() {
        let missing: Vec<usize> = (0..*n)
            .filter(|k| !seen.iter().any(|s| s.map(|(i, _)| i) == Some(*k)))
            .collect();
        if !missing.is_empty() || seen.iter().any(|s| s.map(|(_, m)| m) != Some(*n)) {
            return Err(CompareError::Mismatch {
                path: first.clone(),
                message: format!(
                    "incomplete shard set: shards {missing:?} of {n} are missing (or shard counts differ)"
                ),
            });
        }
    }
    let timing =
        serde_json::json!({"merge_seconds": t0.elapsed().as_secs_f64(), "merged_from": dirs});
    let table = write_outputs(&acc, &inputs, None, out, timing, None)?;
    Ok(CompareSummary {
        table,
        samples: acc.count(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}
