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
    /// Train GAN A (seed 0) and GAN B (seed 1) with the demo preset into runs/demo/.
    Demo(DemoArgs),
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
