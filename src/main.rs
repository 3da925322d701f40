//! The `unitmatch` binary: parse -> run -> print the error chain -> exit code.

mod cli;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use cli::{
    CausalArgs, ClassifierAction, ClassifierTrainArgs, Cli, Command, CompareArgs, DataAction,
    DemoArgs, EditArgs, EvaluateArgs, PruneArgs, ReportArgs, SweepArgs, TrainArgs,
};
use unitmatch::causal::{self, CausalConfig};
use unitmatch::classifier::{self, ClassifierEvent, ClassifierTrainConfig};
use unitmatch::compare::{self, CompareConfig, CompareEvent, CompareSummary};
use unitmatch::demo::{DemoConfig, DemoEvent, run_demo};
use unitmatch::device::{DeviceKind, select_device, set_threads};
use unitmatch::evaluate::{self, EvaluateConfig, EvaluateEvent};
use unitmatch::intervene::{self, EditAction, EditConfig, Region, UnitRef};
use unitmatch::matching::{self, MatchOptions, MatchReport};
use unitmatch::model::{ModelConfig, UpConvOps};
use unitmatch::null::{NullOptions, parse_null_list};
use unitmatch::prune;
use unitmatch::report::{self as report, ReportOptions};
use unitmatch::similarity::Measure;
use unitmatch::sweep::{self, EpochSelection, SweepConfig, SweepEvent, SweepSummary};
use unitmatch::train::{self, StartMode, TrainConfig, TrainEvent};
use unitmatch::unroll::{ZSource, parse_layers};
use unitmatch::{checkpoint, data};

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
        Command::Compare(args) => cmd_compare(args, kind, show),
        Command::Match(args) => {
            let opts = MatchOptions {
                abs: args.abs,
                k: args.k,
                top_n: args.top,
            };
            let table = matching::load_table(&args.dir)?;
            let report = matching::match_table(&table, &opts);
            matching::write_match_outputs(&report, &table, &args.dir)?;
            print_match_report(&args.dir, &report);
            Ok(())
        }
        Command::Sweep(args) => cmd_sweep(args, kind, show),
        Command::Report(args) => cmd_report(args, kind),
        Command::Merge(args) => {
            let s = compare::merge(&args.dirs, &args.out, args.force)?;
            report_compare(&args.out, &s);
            Ok(())
        }
        Command::Export(args) => {
            let device = select_device(kind)?;
            let (g, cfg) = checkpoint::load_generator(&args.checkpoint, args.bn_eps, &device)?;
            if args.torch_names {
                checkpoint::export_torch_names(&g, &cfg, &args.out)?;
            }
            println!("{}", args.out.display());
            Ok(())
        }
        Command::Classifier {
            action: ClassifierAction::Train(args),
        } => cmd_classifier_train(args, kind, show),
        Command::Evaluate(args) => cmd_evaluate(args, kind, show),
        Command::Edit(args) => cmd_edit(args, kind),
        Command::Causal(args) => cmd_causal(args, kind, show),
        Command::Prune(args) => cmd_prune(args, kind),
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
    if a.reference_ops {
        cfg.ops = UpConvOps::Reference;
    }
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
    let cfg = DemoConfig::preset(data::resolve_data_dir(a.data.data.as_deref()));
    let multi = MultiProgress::new();
    if !show {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style =
        ProgressStyle::with_template("{prefix:>22} [{elapsed_precise}] {bar:25} {pos}/{len} {msg}")
            .expect("valid template");
    let bars: Vec<ProgressBar> = ["gan-a", "gan-b", "compare"]
        .iter()
        .map(|name| {
            let b = multi.add(ProgressBar::new(0));
            b.set_style(style.clone());
            b.set_prefix(name.to_string());
            b
        })
        .collect();
    let progress = |e: DemoEvent| match e {
        DemoEvent::Train(name, ev) => {
            show_train_event(&bars[usize::from(name == "gan-b")], &format!("{name} "), ev)
        }
        DemoEvent::Compare(CompareEvent::Start { samples, .. }) => {
            bars[2].set_length(samples as u64)
        }
        DemoEvent::Compare(CompareEvent::Batch {
            samples_done,
            samples_per_s,
        })
        | DemoEvent::Sweep(SweepEvent::Compare(CompareEvent::Batch {
            samples_done,
            samples_per_s,
        })) => {
            bars[2].set_position(samples_done as u64);
            bars[2].set_message(format!("{samples_per_s:.0} z/s"));
        }
        DemoEvent::Sweep(SweepEvent::Compare(CompareEvent::Start { samples, .. })) => {
            bars[2].set_length(samples as u64);
            bars[2].set_position(0);
        }
        DemoEvent::Sweep(SweepEvent::Epoch {
            epoch,
            index,
            total,
            ..
        }) => bars[2].set_prefix(format!("sweep epoch {epoch} ({}/{total})", index + 1)),
        DemoEvent::Stage(name) => {
            bars[2].set_prefix(name.to_string());
            bars[2].set_message("");
        }
    };
    let s = run_demo(
        &cfg,
        &a.out,
        start_mode(a.resume, a.force),
        &device,
        &progress,
    )?;
    for b in &bars {
        b.finish_and_clear();
    }
    for (name, t) in &s.gans {
        if let Some(last) = t.epochs.last() {
            println!(
                "{name}: {} epochs at width {}: G {:.4} D {:.4}, {:.0} img/s; samples: {}",
                t.epochs.len(),
                cfg.a.model.width,
                last.g_loss,
                last.d_loss,
                last.img_per_s,
                a.out.join(name).join("progress.gif").display()
            );
        }
    }
    report_compare(&s.compare_dir, &s.comparison);
    println!(
        "  significance.json: random-init and permuted-z nulls x {} draws",
        cfg.nulls.draws
    );
    print_match_report(&s.compare_dir, &s.matches);
    report_sweep(&s.sweep_dir, &s.sweep);
    print_report(&s.report_dir, &s.report);
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
    let bar = progress_bar(
        show,
        "{prefix}[{elapsed_precise}] {bar:30} {pos}/{len} {msg} (ETA {eta})",
    );
    let summary = train::train(cfg, out, mode, device, &mut |event| {
        show_train_event(&bar, label, event)
    })
    .with_context(|| format!("training into {}", out.display()))?;
    bar.finish_and_clear();
    Ok(summary)
}

/// A progress bar with `template`, or a hidden one when progress is not shown.
fn progress_bar(show: bool, template: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}

/// Shows one training event on `bar`; finished epochs are printed above the bars as a line.
fn show_train_event(bar: &ProgressBar, label: &str, event: TrainEvent) {
    match event {
        TrainEvent::EpochStart {
            epoch,
            epochs,
            iters,
        } => {
            bar.set_length(iters as u64);
            bar.set_position(0);
            bar.set_prefix(format!("{label}epoch {epoch}/{epochs} "));
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
    }
}

/// Parses `k/n`.
fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let (k, n) = s
        .split_once('/')
        .with_context(|| format!("--shard `{s}`: expected k/n, e.g. 0/4"))?;
    let k: usize = k
        .trim()
        .parse()
        .with_context(|| format!("--shard `{s}`: bad k"))?;
    let n: usize = n
        .trim()
        .parse()
        .with_context(|| format!("--shard `{s}`: bad n"))?;
    Ok((k, n))
}

fn cmd_compare(a: CompareArgs, kind: DeviceKind, show: bool) -> Result<()> {
    let device = select_device(kind)?;
    let measure: Measure = a
        .measure
        .parse()
        .map_err(|e| anyhow::anyhow!("--measure: {e}"))?;
    let z = match &a.z {
        Some(path) => ZSource::from_npy(path, a.batch)?,
        None => ZSource::seeded(a.samples, a.batch),
    };
    let cfg = CompareConfig {
        a: a.a.clone(),
        b: a.b.clone(),
        z,
        measure,
        layers: parse_layers(&a.layers)?,
        shard: a.shard.as_deref().map(parse_shard).transpose()?,
        default_bn_eps: a.bn_eps,
        force: a.force,
    };
    let nulls = match &a.null {
        Some(list) => NullOptions {
            kinds: parse_null_list(list).map_err(|e| anyhow::anyhow!("--null: {e}"))?,
            draws: a.null_draws,
            alpha: a.alpha,
        },
        None => NullOptions::none(),
    };
    let s = compare_with_progress(&cfg, &nulls, &a.out, &device, show)?;
    report_compare(&a.out, &s);
    if nulls.enabled() {
        println!(
            "  significance.json: {} null model(s) x {} draws (smallest attainable p {:.3})",
            nulls.kinds.len(),
            nulls.draws,
            nulls.min_attainable_p()
        );
    }
    Ok(())
}

fn cmd_classifier_train(a: ClassifierTrainArgs, kind: DeviceKind, show: bool) -> Result<()> {
    let device = select_device(kind)?.autodiff();
    let mut cfg =
        ClassifierTrainConfig::new(a.seed, data::resolve_data_dir(a.data.data.as_deref()));
    cfg.model.width = a.width;
    cfg.epochs = a.epochs;
    cfg.batch = a.batch;
    cfg.lr = a.lr;
    cfg.limit = a.limit;
    let bar = progress_bar(
        show,
        "{prefix}[{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
    );
    let s = classifier::train_classifier(&cfg, &a.out, a.force, &device, &mut |e| match e {
        ClassifierEvent::EpochStart { epoch, iters } => {
            bar.set_length(iters as u64);
            bar.set_position(0);
            bar.set_prefix(format!("classifier epoch {epoch}/{} ", cfg.epochs));
        }
        ClassifierEvent::Iteration { iter, loss } => {
            bar.set_position(iter as u64);
            bar.set_message(format!("loss {loss:.3}"));
        }
        ClassifierEvent::EpochEnd(e) => bar.println(format!(
            "classifier epoch {}: loss {:.4}, train accuracy {:.2}%, {:.0} s",
            e.epoch,
            e.loss,
            100.0 * e.train_accuracy,
            e.seconds
        )),
        ClassifierEvent::Testing => bar.set_message("testing"),
    })
    .with_context(|| format!("training the classifier into {}", a.out.display()))?;
    bar.finish_and_clear();
    println!(
        "{}: test accuracy {:.2}% on {} images after {} epochs ({:.0} s); classifier.safetensors, confusion.csv, confusion.png, metrics.json",
        a.out.display(),
        100.0 * s.test_accuracy,
        s.test_images,
        s.epochs.len(),
        s.seconds
    );
    Ok(())
}

fn cmd_evaluate(a: EvaluateArgs, kind: DeviceKind, show: bool) -> Result<()> {
    let device = select_device(kind)?;
    let cfg = EvaluateConfig {
        generators: a.generators.clone(),
        every_epoch: a.every_epoch.clone(),
        classifier: a.classifier.clone(),
        samples: a.samples,
        data_dir: data::resolve_data_dir(a.data.data.as_deref()),
        default_bn_eps: a.bn_eps,
        force: a.force,
    };
    let bar = progress_bar(
        show,
        "{prefix}[{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
    );
    let r = evaluate::evaluate(&cfg, &a.out, &device, &mut |e| match e {
        EvaluateEvent::Calibrating => bar.set_message("real-data calibration"),
        EvaluateEvent::Generator { index, total, path } => {
            bar.set_length(total as u64);
            bar.set_position(index as u64);
            bar.set_message(path.display().to_string());
        }
    })
    .with_context(|| format!("evaluating into {}", a.out.display()))?;
    bar.finish_and_clear();
    let c = &r.calibration;
    println!(
        "calibration: FD train vs test {:.3}; test + noise 0.1: {:.3}, 0.3: {:.3}; test IS {:.2}",
        c.train_vs_test.fd, c.noised_test[0].1.fd, c.noised_test[1].1.fd, c.test_self.is_mean
    );
    for g in &r.generators {
        let q = &g.quality;
        println!(
            "{}: FD {:.3}  KID {:.4} ± {:.4}  IS {:.2}  KL(classes || uniform) {:.3}",
            g.checkpoint.0.display(),
            q.fd,
            q.kid,
            q.kid_std_error,
            q.is_mean,
            q.kl_from_uniform
        );
    }
    println!("{}: quality.json, quality.csv", a.out.display());
    Ok(())
}

fn cmd_report(a: ReportArgs, kind: DeviceKind) -> Result<()> {
    let device = select_device(kind)?;
    let inputs = report::discover(&a.dirs)?;
    let out = a.out.unwrap_or_else(|| a.dirs[0].join("report"));
    let opts = ReportOptions {
        top: a.top,
        buddies: a.buddies,
        gallery_samples: a.gallery_samples,
    };
    let data = report::write_report(&inputs, &out, &opts, &device)
        .with_context(|| format!("writing the report into {}", out.display()))?;
    print_report(&out, &data);
    Ok(())
}

fn print_report(out: &Path, data: &report::ReportData) {
    for f in &data.findings {
        let verdict = match f.holds {
            Some(true) => "holds",
            Some(false) => "does not hold",
            None => "undecided",
        };
        println!("  {}: {verdict}", f.claim);
    }
    for (section, note) in &data.missing {
        println!("  (section {section} hidden: {note})");
    }
    println!("report: {}", out.join("index.html").display());
}

/// `--null` of sweep: a list of null models, or `none`.
fn null_options(list: &str, draws: usize, alpha: f64) -> Result<NullOptions> {
    if list.trim() == "none" {
        return Ok(NullOptions::none());
    }
    Ok(NullOptions {
        kinds: parse_null_list(list).map_err(|e| anyhow::anyhow!("--null: {e}"))?,
        draws,
        alpha,
    })
}

fn cmd_sweep(a: SweepArgs, kind: DeviceKind, show: bool) -> Result<()> {
    let device = select_device(kind)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.run_a.parent().unwrap_or(Path::new(".")).join("sweep"));
    let cfg = SweepConfig {
        run_a: a.run_a.clone(),
        run_b: a.run_b.clone(),
        epochs: a
            .epochs
            .parse::<EpochSelection>()
            .map_err(|e| anyhow::anyhow!("--epochs: {e}"))?,
        z: ZSource::seeded(a.samples, a.batch),
        measure: a
            .measure
            .parse()
            .map_err(|e| anyhow::anyhow!("--measure: {e}"))?,
        layers: parse_layers(&a.layers)?,
        nulls: null_options(&a.null, a.null_draws, a.alpha)?,
        matching: MatchOptions {
            k: a.k,
            ..MatchOptions::default()
        },
        default_bn_eps: a.bn_eps,
        force: a.force,
    };
    let s = sweep_with_progress(&cfg, &out, &device, show)?;
    report_sweep(&out, &s);
    Ok(())
}

fn sweep_with_progress(
    cfg: &SweepConfig,
    out: &Path,
    device: &burn::tensor::Device,
    show: bool,
) -> Result<SweepSummary> {
    let bar = progress_bar(
        show,
        "{prefix}[{elapsed_precise}] {bar:30} {pos}/{len} z {msg} (ETA {eta})",
    );
    let s = sweep::sweep(cfg, out, device, &mut |e| match e {
        SweepEvent::Epoch {
            epoch,
            index,
            total,
            reused,
        } => {
            bar.set_prefix(format!("sweep epoch {epoch} ({}/{total}) ", index + 1));
            if reused {
                bar.println(format!("sweep: epoch {epoch} is current, reused"));
            }
        }
        SweepEvent::Compare(CompareEvent::Start { samples, .. }) => {
            bar.set_length(samples as u64);
            bar.set_position(0);
        }
        SweepEvent::Compare(CompareEvent::Batch {
            samples_done,
            samples_per_s,
        }) => {
            bar.set_position(samples_done as u64);
            bar.set_message(format!("{samples_per_s:.0} z/s"));
        }
    })
    .with_context(|| format!("sweeping into {}", out.display()))?;
    bar.finish_and_clear();
    Ok(s)
}

fn report_sweep(out: &Path, s: &SweepSummary) {
    println!(
        "{}: {} epochs compared, {} reused, in {:.1} s; evolution.csv, evolution.png",
        out.display(),
        s.computed.len(),
        s.reused.len(),
        s.seconds
    );
    for r in s.rows.iter().filter(|r| r.layer_a == r.layer_b) {
        println!(
            "  epoch {:>3} {:>6} x {:<6} mean best r {:.3}  assigned {:.3}  CKA {}",
            r.epoch,
            r.layer_a,
            r.layer_b,
            r.mean_row_max,
            r.mean_assigned,
            r.cka_linear.map_or("-".into(), |v| format!("{v:.3}"))
        );
    }
}

fn compare_with_progress(
    cfg: &CompareConfig,
    nulls: &NullOptions,
    out: &Path,
    device: &burn::tensor::Device,
    show: bool,
) -> Result<CompareSummary> {
    let bar = progress_bar(
        show,
        "compare [{elapsed_precise}] {bar:30} {pos}/{len} z {msg} (ETA {eta})",
    );
    let s = compare::compare_with_nulls(cfg, nulls, out, device, &mut |e| match e {
        CompareEvent::Start { samples, .. } => bar.set_length(samples as u64),
        CompareEvent::Batch {
            samples_done,
            samples_per_s,
        } => {
            bar.set_position(samples_done as u64);
            bar.set_message(format!("{samples_per_s:.0} z/s"));
        }
    })
    .with_context(|| format!("comparing into {}", out.display()))?;
    bar.finish_and_clear();
    Ok(s)
}

fn report_compare(out: &Path, s: &CompareSummary) {
    match &s.table {
        Some(t) => println!(
            "{}: {} x {} table over {} samples in {:.1} s ({} dead in A, {} dead in B)",
            out.display(),
            t.rows.len(),
            t.cols.len(),
            s.samples,
            s.seconds,
            t.rows.iter().filter(|u| u.dead).count(),
            t.cols.iter().filter(|u| u.dead).count()
        ),
        None => println!(
            "{}: shard accumulators over {} samples",
            out.display(),
            s.samples
        ),
    }
}

fn print_match_report(dir: &Path, r: &MatchReport) {
    let f = &r.fractions;
    println!(
        "{}: strict buddies cover {:.1}% of A's units ({:.1}% Rosetta, k = {}); whole-table assignment mean {:.3}",
        dir.display(),
        100.0 * f.strict_a,
        100.0 * f.rosetta_a,
        r.options.k,
        r.assignment.mean
    );
    println!("  outputs: matches.csv assignment.csv buddies.csv matching.json");
}

fn cmd_edit(a: EditArgs, kind: DeviceKind) -> Result<()> {
    let units = a
        .units
        .iter()
        .map(|u| u.parse::<UnitRef>())
        .collect::<Result<Vec<_>, _>>()?;
    let region = a.region.as_deref().map(str::parse::<Region>).transpose()?;
    let action = match (a.set, a.scale, a.zero) {
        (Some(v), _, _) => EditAction::Set(v),
        (_, Some(f), _) => EditAction::Scale(f),
        (_, _, true) => EditAction::Zero,
        _ => EditAction::Mean,
    };
    let device = select_device(kind)?;
    let cfg = EditConfig {
        checkpoint: a.checkpoint.clone(),
        units,
        action,
        region,
        samples: a.samples,
        seed: a.seed,
        default_bn_eps: a.bn_eps,
        ops: UpConvOps::default(),
        force: a.force,
    };
    let s = intervene::edit(&cfg, &a.out, &device)
        .with_context(|| format!("editing into {}", a.out.display()))?;
    println!(
        "{}: mean |after - before| {:.4} (largest {:.4}) over {} images; before.png after.png diff.png edit.json",
        a.out.display(),
        s.mean_abs_delta,
        s.max_abs_delta,
        s.per_image_mean_abs_delta.len()
    );
    Ok(())
}

fn cmd_causal(a: CausalArgs, kind: DeviceKind, show: bool) -> Result<()> {
    let device = select_device(kind)?;
    let out = a.out.clone().unwrap_or_else(|| a.dir.join("causal"));
    let cfg = CausalConfig {
        dir: a.dir.clone(),
        top: a.top,
        samples: a.samples,
        batch: a.batch,
        controls: a.controls,
        seed: a.seed,
        ops: UpConvOps::default(),
        force: a.force,
    };
    let bar = progress_bar(
        show,
        "causal [{elapsed_precise}] {bar:30} {pos}/{len} batches",
    );
    let r = causal::causal(&cfg, &out, &device, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .with_context(|| format!("causal test into {}", out.display()))?;
    bar.finish_and_clear();
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let s = &r.summary;
    println!(
        "{}: {} pairs; mean agreement {} vs controls: random unit of A {}, unmatched pairs {}; p <= 0.05 for {} and {} pairs (smallest p {:.3}); causal.json",
        out.display(),
        s.pairs,
        f(s.mean_agreement),
        f(s.mean_control_random_a),
        f(s.mean_control_unmatched),
        s.pairs_p_random_a_le_005,
        s.pairs_p_unmatched_le_005,
        s.min_attainable_p
    );
    Ok(())
}

fn cmd_prune(a: PruneArgs, kind: DeviceKind) -> Result<()> {
    let taus = a
        .tau
        .split(',')
        .map(|t| t.trim().parse::<f64>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("--tau {:?}: expected numbers separated by commas", a.tau))?;
    let device = select_device(kind)?;
    if a.out.extension().is_some_and(|e| e == "safetensors") {
        let [tau] = taus[..] else {
            bail!(
                "--out {} is a checkpoint: give exactly one --tau",
                a.out.display()
            );
        };
        if a.out.exists() && !a.force {
            bail!(
                "{} already exists: pass --force to replace it",
                a.out.display()
            );
        }
        let (plan, [before, after]) =
            prune::prune_checkpoint(&a.checkpoint, tau, a.samples, a.bn_eps, &a.out, &device)
                .with_context(|| format!("pruning {}", a.checkpoint.display()))?;
        println!(
            "{}: removed {} block1 and {} block2 units (|r| >= {tau}), folded; {before} -> {after} parameters",
            a.out.display(),
            plan[0].len(),
            plan[1].len()
        );
        return Ok(());
    }
    let cfg = prune::CurveConfig {
        checkpoint: a.checkpoint.clone(),
        taus,
        samples: a.samples,
        classifier: a.classifier.clone(),
        quality_samples: a.quality_samples,
        data_dir: data::resolve_data_dir(a.data.data.as_deref()),
        default_bn_eps: a.bn_eps,
        seed: a.seed,
        force: a.force,
    };
    let r = prune::prune_curve(&cfg, &a.out, &device)
        .with_context(|| format!("pruning {}", a.checkpoint.display()))?;
    println!(
        "{}: {} pruned generators of {} parameters (FD-FMNIST unpruned: {})",
        a.out.display(),
        r.points.len(),
        r.params,
        r.fd_unpruned.map_or("-".into(), |v| format!("{v:.1}"))
    );
    for (p, fd) in r.points.iter().zip(&r.fd) {
        println!(
            "  {:<10} tau {:<4} removed {:>2}+{:<2} params -{:>5.1}%  mean |delta| {:.4} (border {:.4})  FD {}",
            p.method,
            p.tau,
            p.removed[0],
            p.removed[1],
            100.0 * p.params_removed,
            p.mean_abs_delta,
            p.border_abs_delta,
            fd.map_or("-".into(), |v| format!("{v:.1}"))
        );
    }
    println!("  prune_curve.csv prune_curve.json prune_curve.png checkpoints/");
    Ok(())
}
