//! The files of a training run folder: resume state (burnpack), `losses.csv`, `run.json`, and
//! the end-of-run figures. Split from the loop so that train.rs reads as the algorithm.

use std::path::{Path, PathBuf};

use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::store::{BurnpackStore, ModuleSnapshot};

use super::{
    EpochStats, Paths, TrainConfig, TrainError, discriminator_seed, generator_seed, io_err,
};
use crate::data::FashionMnist;
use crate::fsutil::{atomic_write, versions};
use crate::model::{Discriminator, Generator};
use crate::render;

pub(super) fn save_state(
    dir: &Path,
    g: &Generator,
    d: &Discriminator,
    opt_g: &ModuleOptimizer,
    opt_d: &ModuleOptimizer,
) -> Result<(), TrainError> {
    let err = |p: PathBuf| {
        move |e: String| TrainError::Io {
            path: p,
            message: e,
        }
    };
    let gp = dir.join("generator.bpk");
    g.save_into(&mut BurnpackStore::from_file(&gp).overwrite(true))
        .map_err(|e| err(gp.clone())(e.to_string()))?;
    let dp = dir.join("discriminator.bpk");
    d.save_into(&mut BurnpackStore::from_file(&dp).overwrite(true))
        .map_err(|e| err(dp.clone())(e.to_string()))?;
    let og = dir.join("adam_g.bpk");
    opt_g
        .save(&og)
        .map_err(|e| err(og.clone())(format!("{e:?}")))?;
    let od = dir.join("adam_d.bpk");
    opt_d
        .save(&od)
        .map_err(|e| err(od.clone())(format!("{e:?}")))?;
    Ok(())
}

pub(super) fn load_state(
    dir: &Path,
    g: &mut Generator,
    d: &mut Discriminator,
    opt_g: &mut ModuleOptimizer,
    opt_d: &mut ModuleOptimizer,
) -> Result<(), TrainError> {
    let err = |p: PathBuf, e: String| TrainError::Io {
        path: p,
        message: e,
    };
    let gp = dir.join("generator.bpk");
    let r = g
        .load_from(&mut BurnpackStore::from_file(&gp))
        .map_err(|e| err(gp.clone(), e.to_string()))?;
    if !r.errors.is_empty() || !r.missing.is_empty() {
        return Err(err(
            gp,
            format!("incomplete state: {:?} {:?}", r.errors, r.missing),
        ));
    }
    let dp = dir.join("discriminator.bpk");
    let r = d
        .load_from(&mut BurnpackStore::from_file(&dp))
        .map_err(|e| err(dp.clone(), e.to_string()))?;
    if !r.errors.is_empty() || !r.missing.is_empty() {
        return Err(err(
            dp,
            format!("incomplete state: {:?} {:?}", r.errors, r.missing),
        ));
    }
    let og = dir.join("adam_g.bpk");
    *opt_g = std::mem::replace(opt_g, AdamConfig::new().init())
        .load(&og)
        .map_err(|e| err(og.clone(), format!("{e:?}")))?;
    let od = dir.join("adam_d.bpk");
    *opt_d = std::mem::replace(opt_d, AdamConfig::new().init())
        .load(&od)
        .map_err(|e| err(od.clone(), format!("{e:?}")))?;
    Ok(())
}

const LOSSES_HEADER: &str = "epoch,g_loss,d_loss,d_real_acc,d_fake_acc,seconds,img_per_s";

/// Writes `losses.csv` with full precision (Rust's shortest round-trip float formatting), so
/// that reading it back gives the same numbers.
pub(super) fn write_losses(path: &Path, rows: &[EpochStats]) -> Result<(), TrainError> {
    let mut text = String::from(LOSSES_HEADER);
    text.push('\n');
    for s in rows {
        text.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            s.epoch, s.g_loss, s.d_loss, s.d_real_acc, s.d_fake_acc, s.seconds, s.img_per_s
        ));
    }
    atomic_write(path, text.as_bytes()).map_err(io_err(path))
}

/// Reads a run's `losses.csv`.
pub fn read_losses(path: &Path) -> Result<Vec<EpochStats>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let bad = |line: usize, msg: &str| TrainError::Io {
        path: path.to_path_buf(),
        message: format!("line {line}: {msg}"),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 7 {
            return Err(bad(i + 1, "expected 7 columns"));
        }
        let num = |k: usize| f[k].parse::<f64>().map_err(|_| bad(i + 1, "not a number"));
        out.push(EpochStats {
            epoch: f[0].parse().map_err(|_| bad(i + 1, "bad epoch"))?,
            g_loss: num(1)?,
            d_loss: num(2)?,
            d_real_acc: num(3)?,
            d_fake_acc: num(4)?,
            seconds: num(5)?,
            img_per_s: num(6)?,
        });
    }
    Ok(out)
}

pub(super) fn write_run_json(
    cfg: &TrainConfig,
    paths: &Paths,
    data: &FashionMnist,
    history: &[EpochStats],
    seconds_this_session: Option<f64>,
) -> Result<(), TrainError> {
    let json = serde_json::json!({
        "kind": "unitmatch.train",
        "config": cfg,
        "seeds": {
            "run": cfg.seed,
            "generator_init": generator_seed(cfg.seed),
            "discriminator_init": discriminator_seed(cfg.seed),
            "sample_z": cfg.sample_seed,
        },
        "versions": versions(),
        "threads": rayon::current_num_threads(),
        "data": {
            "dir": cfg.data_dir,
            "images": data.len(),
            "files": data.file_hashes().iter().map(|(n, h)| serde_json::json!({"file": n, "sha256": h})).collect::<Vec<_>>(),
        },
        "epochs_done": history.len(),
        "timings": {
            "epoch_seconds": history.iter().map(|s| s.seconds).collect::<Vec<_>>(),
            "total_epoch_seconds": history.iter().map(|s| s.seconds).sum::<f64>(),
            "wall_seconds_last_session": seconds_this_session,
        },
    });
    let path = paths.root.join("run.json");
    let text = serde_json::to_string_pretty(&json).unwrap_or_default();
    atomic_write(&path, text.as_bytes()).map_err(io_err(&path))
}

/// The end-of-run figures: the progress GIF from the per-epoch grids and the loss curves.
pub(super) fn finish_run(paths: &Paths, history: &[EpochStats]) -> Result<(), TrainError> {
    let mut frames = Vec::new();
    for s in history {
        let p = paths.sample_png(s.epoch);
        frames.push(std::fs::read(&p).map_err(io_err(&p))?);
    }
    let gif_path = paths.root.join("progress.gif");
    let gif = render::gif_from_pngs(&frames, 50).map_err(|e| TrainError::Io {
        path: gif_path.clone(),
        message: e,
    })?;
    atomic_write(&gif_path, &gif).map_err(io_err(&gif_path))?;
    let plot_path = paths.root.join("losses.png");
    let png = render::loss_plot_png(history).map_err(|e| TrainError::Io {
        path: plot_path.clone(),
        message: e,
    })?;
    atomic_write(&plot_path, &png).map_err(io_err(&plot_path))
}
