//! Command-line interface: a clap `Command` enum, one documented variant per subcommand.
//! Parsing only; `main.rs` calls the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Find which units (channels) of one neural network correspond to which units of another.
#[derive(Debug, Parser)]
#[command(name = "unitmatch", version, about)]
pub struct Cli {
    /// Compute device: cpu (burn-flex), wgpu or cuda (those need the cargo feature of that name).
    #[arg(long, global = true, default_value = "cpu")]
    pub device: String,
    /// CPU threads (default: all cores, or RAYON_NUM_THREADS). With 1 thread runs are bit-reproducible.
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Hide progress bars (they are also hidden when stderr is not a terminal).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train one DCGAN on Fashion-MNIST into a run folder (METHOD.md section 1).
    Train(TrainArgs),
    /// Train GAN A (seed 0) and GAN B (seed 1) with the demo preset, compare and match them (runs/demo/).
    Demo(DemoArgs),
    /// Score every unit of generator A against every unit of generator B on the same z.
    Compare(CompareArgs),
    /// Match units in a compare folder: best matches, mutual buddies, one-to-one assignment.
    Match(MatchArgs),
    /// Compare two training runs epoch by epoch on the same z: one compare folder per epoch and
    /// evolution.csv.
    Sweep(SweepArgs),
    /// Write a self-contained HTML report (figures, tables, report.json) from run, compare and
    /// sweep folders (or a demo folder holding them).
    Report(ReportArgs),
    /// Combine `compare --shard k/n` folders into one comparison (Chan's parallel update).
    Merge(MergeArgs),
    /// Write a generator checkpoint in another layout.
    Export(ExportArgs),
    /// The Fashion-MNIST classifier (the discriminative network and the quality metrics' features).
    Classifier {
        /// What to do.
        #[command(subcommand)]
        action: ClassifierAction,
    },
    /// GAN quality through the classifier: FD-FMNIST, KID, IS analogue, class histogram.
    Evaluate(EvaluateArgs),
    /// Generate samples with units of block1/block2 ablated, set or scaled (optionally inside a
    /// rectangle): before.png, after.png, diff.png, edit.json.
    Edit(EditArgs),
    /// Causal test of matched pairs of a compare folder: ablate i in A and j in B on the same z
    /// and correlate the pixel changes, against random-unit controls (causal.json).
    Causal(CausalArgs),
    /// Remove near-duplicate units of a generator (folded into their kept twin) and measure
    /// what it costs against random and smallest-L1 removal: prune_curve.csv and .png.
    Prune(PruneArgs),
    /// Fashion-MNIST files.
    Data {
        /// What to do with the data.
        #[command(subcommand)]
        action: DataAction,
    },
}

/// `unitmatch data ...`
#[derive(Debug, Subcommand)]
pub enum DataAction {
    /// Download the four Fashion-MNIST files from the official mirror and verify their SHA-256.
    Fetch {
        /// Destination folder (default: --data, UNITMATCH_DATA, or /usr/share/datasets/fashion-mnist).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Base URL of the mirror.
        #[arg(long)]
        url: Option<String>,
    },
}

/// Data location, shared by commands that read Fashion-MNIST.
#[derive(Debug, Args, Clone)]
pub struct DataArgs {
    /// Folder with the IDX files (default: UNITMATCH_DATA, else /usr/share/datasets/fashion-mnist,
    /// from the Debian package dataset-fashion-mnist).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// `unitmatch train`
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Run seed (weights, shuffling, z, dropout).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Epochs.
    #[arg(long, default_value_t = 200)]
    pub epochs: usize,
    /// Channel width multiplier (1 = the reference).
    #[arg(long, default_value_t = 1.0)]
    pub width: f64,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    /// Use only the first N training images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Epsilon of the BatchNorms after convolutions (the reference's 0.8).
    #[arg(long, default_value_t = 0.8)]
    pub bn_eps: f64,
    /// Compute the generator's upsample + conv as upsample then 3x3 conv (as PyTorch does)
    /// instead of the default, exact, 2.25x cheaper phase decomposition; for A/B checks.
    #[arg(long)]
    pub reference_ops: bool,
    /// Run folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the last finished epoch.
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// Delete an existing run folder and start over.
    #[arg(long)]
    pub force: bool,
    /// Data location.
    #[command(flatten)]
    pub data: DataArgs,
}

/// `unitmatch demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Continue an interrupted demo (finished epochs are kept).
    #[arg(long)]
    pub resume: bool,
    /// Delete an existing demo folder and start over.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Data location.
    #[command(flatten)]
    pub data: DataArgs,
}

/// `unitmatch compare`
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Generator A (rows): our .safetensors checkpoint or the seed's PyTorch .pt state_dict.
    pub a: PathBuf,
    /// Generator B (columns).
    pub b: PathBuf,
    /// Number of latent codes (batch i uses seed 5555 + i).
    #[arg(long, default_value_t = 10_000)]
    pub samples: usize,
    /// Codes per batch.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Read z from a float32 [N, 100] .npy file instead of drawing it (overrides --samples).
    #[arg(long)]
    pub z: Option<PathBuf>,
    /// pearson (exact correlation after upsampling) or seed (the reference's formula).
    #[arg(long, default_value = "pearson")]
    pub measure: String,
    /// Layers to compare, comma-separated.
    #[arg(long, default_value = "block1,block2,out")]
    pub layers: String,
    /// Process only shard k of n (k/n, 0-based): writes accumulators for `unitmatch merge`.
    #[arg(long)]
    pub shard: Option<String>,
    /// BatchNorm eps for PyTorch checkpoints, which do not record it.
    #[arg(long, default_value_t = 0.8)]
    pub bn_eps: f64,
    /// Null models to test against, comma-separated: random-init (untrained generators of B's
    /// architecture, seed 1000003 + draw), permuted-z (B's samples permuted within each z batch,
    /// seed 2000003 + draw). Writes significance.json; not allowed with --shard.
    #[arg(long)]
    pub null: Option<String>,
    /// Draws per null model D (the smallest p-value is 1 / (1 + D)).
    #[arg(long, default_value_t = 5)]
    pub null_draws: usize,
    /// Level at which matched unit pairs are flagged significant (max-statistic correction).
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    pub force: bool,
}

/// `unitmatch merge`
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Shard folders written by `compare --shard`.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    pub force: bool,
}

/// `unitmatch export`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Generator checkpoint (ours or PyTorch).
    pub checkpoint: PathBuf,
    /// Write the seed's PyTorch key names and layouts (load with
    /// `load_state_dict(safetensors.torch.load_file(OUT))`).
    #[arg(long, required = true)]
    pub torch_names: bool,
    /// BatchNorm eps for PyTorch input checkpoints.
    #[arg(long, default_value_t = 0.8)]
    pub bn_eps: f64,
    /// Output .safetensors file.
    #[arg(long)]
    pub out: PathBuf,
}

/// `unitmatch match`
#[derive(Debug, Args)]
pub struct MatchArgs {
    /// A folder written by `unitmatch compare` (outputs are added to it).
    pub dir: PathBuf,
    /// Match on |r| instead of signed r (default: signed; a negatively correlated unit paints
    /// the complement, a different feature).
    #[arg(long)]
    pub abs: bool,
    /// Rosetta buddies: accept A's top-1 if A's unit is within B's unit's top k.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Number of top pairs to list, overall and per layer pair.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
}

/// `unitmatch sweep`
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Training run folder of GAN A (rows), as written by `unitmatch train`.
    pub run_a: PathBuf,
    /// Training run folder of GAN B (columns).
    pub run_b: PathBuf,
    /// Epochs to compare: `all` (every epoch with a checkpoint in both runs; 0 is the
    /// initialisation) or a list such as 0,1,2,5.
    #[arg(long, default_value = "all")]
    pub epochs: String,
    /// Number of latent codes per epoch (batch i uses seed 5555 + i; the same z every epoch).
    #[arg(long, default_value_t = 2000)]
    pub samples: usize,
    /// Codes per batch.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// pearson or seed.
    #[arg(long, default_value = "pearson")]
    pub measure: String,
    /// Layers to compare, comma-separated.
    #[arg(long, default_value = "block1,block2,out")]
    pub layers: String,
    /// Null models per epoch (their z-scores go into evolution.csv), or `none`.
    #[arg(long, default_value = "random-init,permuted-z")]
    pub null: String,
    /// Draws per null model and epoch.
    #[arg(long, default_value_t = 5)]
    pub null_draws: usize,
    /// Level at which matched unit pairs are flagged significant.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Rosetta buddies' top k (the buddy counts of evolution.csv).
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// BatchNorm eps for PyTorch checkpoints.
    #[arg(long, default_value_t = 0.8)]
    pub bn_eps: f64,
    /// Output folder (default: `sweep/` beside RUN_A). Rerunning reuses finished epochs.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Delete an existing sweep folder and start over.
    #[arg(long)]
    pub force: bool,
}

/// `unitmatch report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Training run folders, one compare folder, one sweep folder, or a folder holding them
    /// (such as runs/demo).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Output folder (default: `report/` inside the first folder). Replaced if it exists.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Top pairs drawn as galleries.
    #[arg(long, default_value_t = 6)]
    pub top: usize,
    /// Strict buddies drawn as galleries.
    #[arg(long, default_value_t = 6)]
    pub buddies: usize,
    /// Latent codes searched for each gallery pair's best z.
    #[arg(long, default_value_t = 500)]
    pub gallery_samples: usize,
}

/// `unitmatch classifier ...`
#[derive(Debug, Subcommand)]
pub enum ClassifierAction {
    /// Train the CNN on the training split; writes the checkpoint, metrics and confusion matrix.
    Train(ClassifierTrainArgs),
}

/// `unitmatch classifier train`
#[derive(Debug, Args)]
pub struct ClassifierTrainArgs {
    /// Epochs over the training images.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Seed of the weights and the shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Channel width multiplier of the blocks (32, 64, 128 at width 1).
    #[arg(long, default_value_t = 1.0)]
    pub width: f64,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Use only the first N training images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    pub force: bool,
    /// Data location.
    #[command(flatten)]
    pub data: DataArgs,
}

/// `unitmatch evaluate`
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Generator checkpoints to evaluate.
    pub generators: Vec<PathBuf>,
    /// Classifier checkpoint (`classifier train` writes DIR/classifier.safetensors).
    #[arg(long)]
    pub classifier: PathBuf,
    /// Generated images per generator (z batch i from seed 7777 + i).
    #[arg(long, default_value_t = 10_000)]
    pub samples: usize,
    /// Evaluate every checkpoint of this training run (repeatable); adds quality_fd.png.
    #[arg(long)]
    pub every_epoch: Vec<PathBuf>,
    /// BatchNorm eps for PyTorch generator checkpoints.
    #[arg(long, default_value_t = 0.8)]
    pub bn_eps: f64,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    pub force: bool,
    /// Data location.
    #[command(flatten)]
    pub data: DataArgs,
}

/// `unitmatch edit`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("action").required(true).multiple(false)))]
pub struct EditArgs {
    /// Generator checkpoint (ours or PyTorch).
    pub checkpoint: PathBuf,
    /// Unit to edit, LAYER:CHANNEL with LAYER block1 or block2 (e.g. block2:17); repeatable.
    #[arg(long = "unit", required = true)]
    pub units: Vec<String>,
    /// Set the units to this constant.
    #[arg(long, group = "action", allow_hyphen_values = true)]
    pub set: Option<f32>,
    /// Multiply the units by this factor.
    #[arg(long, group = "action", allow_hyphen_values = true)]
    pub scale: Option<f32>,
    /// Set the units to 0 (ablation).
    #[arg(long, group = "action")]
    pub zero: bool,
    /// Set each unit to its mean over 500 seeded z (mean ablation).
    #[arg(long, group = "action")]
    pub mean: bool,
    /// Edit only inside x0,y0,x1,y1 (half-open, in the unit's layer pixels: 16 x 16 for block1,
    /// 32 x 32 for block2).
    #[arg(long)]
    pub region: Option<String>,
    /// Number of sample images.
    #[arg(long, default_value_t = 16)]
    pub samples: usize,
    /// Seed of the z (ChaCha8, standard normal).
    #[arg(long, default_value_t = 5555)]
    pub seed: u64,
    /// BatchNorm eps for PyTorch checkpoints.
    #[arg(long, default_value_t = 0.8)]
    pub bn_eps: f64,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    pub force: bool,
}

/// `unitmatch causal`
#[derive(Debug, Args)]
pub struct CausalArgs {
    /// A folder written by `unitmatch compare` (generator vs generator).
    pub dir: PathBuf,
    /// Number of top pairs (by table score, block1/block2 units) to test.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Latent codes (batch i from seed 5555 + i, as compare draws them).
    #[arg(long, default_value_t = 256)]
    pub samples: usize,
    /// Codes per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Draws per control and pair.
    #[arg(long, default_value_t = 20)]
    pub controls: usize,
    /// Seed of the control draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (default: DIR/causal).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an existing output folder.
    #[arg(long)]
    pub force: bool,
}

/// `unitmatch prune`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Generator checkpoint (ours or PyTorch).
    pub checkpoint: PathBuf,
    /// Thresholds on |r| between units of a layer, comma-separated (one pruned generator per
    /// threshold and method).
    #[arg(long, default_value = "0.95,0.9,0.8,0.7,0.6,0.5")]
    pub tau: String,
    /// Codes for the unit statistics and the image change.
    #[arg(long, default_value_t = 500)]
    pub samples: usize,
    /// Classifier checkpoint for FD-FMNIST of every pruned generator.
    #[arg(long)]
    pub classifier: Option<PathBuf>,
    /// Generated images per generator for FD-FMNIST.
    #[arg(long, default_value_t = 2000)]
    pub quality_samples: usize,
    /// Seed of the random-removal baseline.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// BatchNorm eps for PyTorch checkpoints.
    #[arg(long, default_value_t = 0.8)]
    pub bn_eps: f64,
    /// Output folder for the curve, or a `.safetensors` file: then one tau is required and
    /// only the generator pruned by duplicates (folded) is written.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
    /// Data location (for FD-FMNIST).
    #[command(flatten)]
    pub data: DataArgs,
}
