//! The demo's orchestration on a tiny configuration: two GANs side by side, compare with nulls,
//! sweep, report; a rerun with resume recomputes nothing and gives the same table. The report
//! is then loaded in headless Chromium (required when `CI` is set).

mod common;

use std::path::Path;

use burn::tensor::Device;
use common::synthetic_data;
use unitmatch::demo::{DemoConfig, run_demo};
use unitmatch::train::StartMode;

#[test]
fn tiny_demo_trains_both_gans_compares_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_data(tmp.path(), 128, 5);
    let mut cfg = DemoConfig::preset(tmp.path().to_path_buf());
    for t in [&mut cfg.a, &mut cfg.b] {
        t.model.width = 0.125;
        t.epochs = 2;
        t.limit = Some(128);
        t.grid_samples = 10;
    }
    cfg.samples = 30;
    cfg.nulls.draws = 2;
    cfg.sweep_nulls.draws = 2;
    cfg.classifier.model.width = 0.125;
    cfg.classifier.epochs = 1;
    cfg.quality_samples = 40;
    cfg.causal_samples = 16;
    cfg.prune_taus = vec![0.9, 0.0];
    cfg.prune_quality_samples = 20;
    // Train the classifier here rather than copying the committed one (it would not fit
    // synthetic data).
    cfg.classifier_checkpoint = None;
    let out = tmp.path().join("demo");
    let device = Device::flex().autodiff();
    let s = run_demo(&cfg, &out, StartMode::Fresh, &device, &|_| {}).unwrap();
    assert_eq!(s.gans.len(), 2);
    for name in ["gan-a", "gan-b"] {
        assert!(out.join(name).join("progress.gif").exists());
        assert!(
            out.join(name)
                .join("checkpoints/generator-epoch-0001.safetensors")
                .exists()
        );
    }
    let table = s.comparison.table.as_ref().unwrap();
    assert_eq!((table.rows.len(), table.cols.len()), (25, 25));
    // Different seeds: the two GANs are different networks, so no entry is a perfect match.
    assert!(table.values.iter().all(|v| v.abs() < 1.0 - 1e-6));
    let first = std::fs::read(out.join("compare/table.npy")).unwrap();
    for f in [
        "matches.csv",
        "assignment.csv",
        "buddies.csv",
        "matching.json",
    ] {
        assert!(out.join("compare").join(f).exists(), "{f}");
    }
    assert_eq!(s.matches.assignment.pairs.len(), 25);
    assert!(out.join("compare/significance.json").exists());
    // The sweep covers the initialisation (epoch 0) and both trained epochs, 9 layer pairs each.
    assert_eq!(s.sweep.computed, vec![0, 1, 2]);
    assert_eq!(s.sweep.rows.len(), 3 * 9);
    let evolution = std::fs::read(out.join("sweep/evolution.csv")).unwrap();

    let err = run_demo(&cfg, &out, StartMode::Fresh, &device, &|_| {}).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let again = run_demo(&cfg, &out, StartMode::Resume, &device, &|_| {}).unwrap();
    assert_eq!(
        again.gans[0].1.epochs, s.gans[0].1.epochs,
        "no epoch retrained"
    );
    check_report(&out.join("report"), &s.report);
    assert_eq!(std::fs::read(out.join("compare/table.npy")).unwrap(), first);
    assert_eq!(
        again.sweep.reused,
        vec![0, 1, 2],
        "finished sweep epochs are reused"
    );
    assert!(again.sweep.computed.is_empty());
    assert_eq!(
        std::fs::read(out.join("sweep/evolution.csv")).unwrap(),
        evolution
    );
}

/// The report folder: every section shown, every image present, numbers from report.json.
fn check_report(dir: &Path, data: &unitmatch::report::ReportData) {
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    for id in unitmatch::report::html::SECTIONS {
        assert!(
            html.contains(&format!("<section id=\"{id}\">")),
            "section {id}"
        );
    }
    assert!(
        data.missing.is_empty(),
        "nothing hidden: {:?}",
        data.missing
    );
    assert!(!html.contains("Not shown"));
    let srcs: Vec<&str> = html
        .split("src=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert!(srcs.len() >= 20, "figures on the page: {srcs:?}");
    for src in &srcs {
        let bytes = std::fs::read(dir.join(src)).unwrap_or_else(|_| panic!("{src} missing"));
        assert!(image::load_from_memory(&bytes).is_ok(), "{src} is an image");
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from the network"
    );
    // report.json holds what the page shows.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["findings"].as_array().unwrap().len(), 3);
    let m = &data.matches.as_ref().unwrap();
    assert_eq!(m.top_galleries.len(), 6);
    assert!(html.contains(&format!("{:.3}", m.assignment_mean)));
    assert_eq!(
        json["matches"]["assignment_mean"].as_f64().unwrap(),
        m.assignment_mean
    );
    assert!(
        data.findings[..2].iter().all(|f| f.holds.is_some()),
        "{:?}",
        data.findings
    );
    // The third finding compares epochs; with a few z it may be within sampling error, and
    // then says so.
    assert!(
        data.findings[2].holds.is_some() || data.findings[2].evidence.contains("tolerance"),
        "{:?}",
        data.findings[2]
    );
    // GAN A against the classifier: every strict buddy listed, galleries drawn, units named.
    let c = data.classifier_match.as_ref().unwrap();
    assert_eq!(c.buddies.len(), c.strict_buddies);
    assert_eq!(c.galleries.len(), c.strict_buddies.min(6));
    assert!(c.buddies.iter().all(|b| b.unit_b.starts_with("cls.block")));
    assert_eq!(c.units[0], 25);
    assert_eq!(
        json["classifier_match"]["strict_buddies"].as_u64().unwrap() as usize,
        c.strict_buddies
    );
    // The pruning curve: three methods per threshold, FD measured for each.
    let p = data.prune.as_ref().unwrap();
    assert_eq!(p.curve["points"].as_array().unwrap().len(), 6);
    assert!(p.curve["fd"].as_array().unwrap().iter().all(|v| v.is_f64()));
    // The causal test of the top matches: every tested pair listed, the first figures copied.
    let k = data.causal.as_ref().unwrap();
    assert!(!k.rows.is_empty());
    assert_eq!(k.figures.len(), k.rows.len().min(4));
    assert!(
        k.rows
            .iter()
            .all(|r| r.agreement[0].is_none_or(|a| (-1.0..=1.0).contains(&a)))
    );
    browser_check(dir);
}

/// Loads the page in headless Chromium: no broken image, no script error. Saves a screenshot
/// to target/report-screenshot.png for review. Without Chromium the check is skipped, except
/// under CI, where it must run.
fn browser_check(dir: &Path) {
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium");
        eprintln!("chromium not installed: browser check skipped");
        return;
    };
    let url = format!(
        "file://{}",
        dir.join("index.html").canonicalize().unwrap().display()
    );
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--virtual-time-budget=10000",
    ];
    let out = std::process::Command::new(chromium)
        .args(flags)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let attr = |name: &str| -> Option<String> {
        let i = dom.find(&format!("{name}=\""))? + name.len() + 2;
        Some(dom[i..i + dom[i..].find('"')?].to_string())
    };
    assert_eq!(
        attr("data-loaded").as_deref(),
        Some("1"),
        "page loaded: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        attr("data-broken-images").as_deref(),
        Some("0"),
        "no broken image"
    );
    assert_eq!(attr("data-errors").as_deref(), Some("0"), "no script error");
    assert!(attr("data-images").unwrap().parse::<usize>().unwrap() >= 20);
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-screenshot.png");
    let status = std::process::Command::new(chromium)
        .args(flags)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,6000")
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(image::open(&shot).is_ok(), "screenshot written");
}
