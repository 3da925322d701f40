//! The `unitmatch` binary: parse -> run -> print the error chain -> exit code.

mod cli;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use cli::{Cli, Command, DataAction, DemoArgs, TrainArgs};
use unitmatch::data;
use unitmatch::device::{DeviceKind, select_device, set_threads};
use unitmatch::model::ModelConfig;
use unitmatch::train::{self, StartMode, TrainConfig, TrainEvent};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    set_threads(cli.threads).map_err(anyhow::Error::msg)?;
    let kind: DeviceKind = cli.device.parse().map_err(anyhow::Error::msg)?;
    let show = !cli.quiet && std::io::stderr().is_terminal();
    match cli.command {
        Command::Train(args) => cmd_train(args, kind, show),
        Command::Demo(args) => cmd_demo(args, kind, show),
        Command::Data {
            action: DataAction::Fetch { dir, url },
        } => {
            let dir = data::resolve_data_dir(dir.as_deref());
            let url = url.unwrap_or_else(|| data::OFFICIAL_MIRROR.to_string());
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let files = data::fetch(&dir, &url, &mut |name, done, total| {
                if show {
                    match total {
                        Some(t) => eprint!("\r{name}: {done}/{t} bytes"),
                        None => eprint!("\r{name}: {done} bytes"),
                    }
                }
            })?;
            if show {
                eprintln!();
            }
            for f in files {
                println!("{}", f.display());
            }
            Ok(())
        }
    }
}

fn start_mode(resume: bool, force: bool) -> StartMode {
    match (resume, force) {
        (true, _) => StartMode::Resume,
        (_, true) => StartMode::Force,
        _ => StartMode::Fresh,
    }
}

fn cmd_train(a: TrainArgs, kind: DeviceKind, show: bool) -> Result<()> {
    let device = select_device(kind)?.autodiff();
    let mut cfg = TrainConfig::reference(
        a.seed,
        a.epochs,
        data::resolve_data_dir(a.data.data.as_deref()),
    );
    cfg.model = ModelConfig {
        width: a.width,
        bn_eps: a.bn_eps,
    };
    cfg.batch = a.batch;
    cfg.lr = a.lr;
    cfg.limit = a.limit;
    let summary = train_with_progress(
        &cfg,
        &a.out,
        start_mode(a.resume, a.force),
        &device,
        show,
        "",
    )?;
    if let Some(last) = summary.epochs.last() {
        println!(
            "{}: {} epochs, last epoch g_loss {:.4} d_loss {:.4}, {:.1} img/s; checkpoint {}",
            a.out.display(),
            summary.epochs.len(),
            last.g_loss,
            last.d_loss,
            last.img_per_s,
            summary.last_checkpoint.display()
        );
    }
    Ok(())
}

fn cmd_demo(a: DemoArgs, kind: DeviceKind, show: bool) -> Result<()> {
    let device = select_device(kind)?.autodiff();
    let data_dir = data::resolve_data_dir(a.data.data.as_deref());
    let mode = start_mode(a.resume, a.force);
    if mode == StartMode::Fresh && a.out.exists() {
        anyhow::bail!(
            "{} already exists: pass --resume to continue it or --force to start over",
            a.out.display()
        );
    }
    if mode == StartMode::Force && a.out.exists() {
        std::fs::remove_dir_all(&a.out).with_context(|| format!("removing {}", a.out.display()))?;
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    for (name, seed) in [("gan-a", 0u64), ("gan-b", 1u64)] {
        let cfg = TrainConfig::demo(seed, data_dir.clone());
        let run = a.out.join(name);
        let mode = if run.join("state").exists() {
            StartMode::Resume
        } else {
            StartMode::Force
        };
        let label = format!("{name} ");
        let s = train_with_progress(&cfg, &run, mode, &device, show, &label)?;
        println!(
            "{}: samples in {}",
            name,
            run.join("progress.gif").display()
        );
        if let Some(last) = s.epochs.last() {
            println!(
                "  {} epochs at width {}: last g_loss {:.4} d_loss {:.4}, {:.1} img/s",
                s.epochs.len(),
                cfg.model.width,
                last.g_loss,
                last.d_loss,
                last.img_per_s
            );
        }
    }
    Ok(())
}

fn train_with_progress(
    cfg: &TrainConfig,
    out: &Path,
    mode: StartMode,
    device: &burn::tensor::Device,
    show: bool,
    label: &str,
) -> Result<train::TrainSummary> {
    let bar = if show {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix}[{elapsed_precise}] {bar:30} {pos}/{len} {msg} (ETA {eta})",
        )
        .expect("valid template"),
    );
    let label = label.to_string();
    let mut epoch_info = String::new();
    let summary = train::train(cfg, out, mode, device, &mut |event| match event {
        TrainEvent::EpochStart {
            epoch,
            epochs,
            iters,
        } => {
            bar.set_length(iters as u64);
            bar.set_position(0);
            epoch_info = format!("epoch {epoch}/{epochs}");
            bar.set_prefix(format!("{label}{epoch_info} "));
        }
        TrainEvent::Iteration {
            iter,
            g_loss,
            d_loss,
            img_per_s,
        } => {
            bar.set_position(iter as u64);
            bar.set_message(format!("G {g_loss:.3} D {d_loss:.3} {img_per_s:.0} img/s"));
        }
        TrainEvent::EpochEnd(s) => {
            bar.println(format!(
                "{label}epoch {}: G {:.4} D {:.4} D-acc real {:.2} fake {:.2} {:.0} img/s",
                s.epoch, s.g_loss, s.d_loss, s.d_real_acc, s.d_fake_acc, s.img_per_s
            ));
        }
    })
    .with_context(|| format!("training into {}", out.display()))?;
    bar.finish_and_clear();
    Ok(summary)
}
