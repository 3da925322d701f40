//! The demo's orchestration on a tiny configuration: two GANs side by side, then compare;
//! a rerun with resume recomputes nothing and gives the same table.

mod common;

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
        t.epochs = 1;
        t.limit = Some(128);
        t.grid_samples = 10;
    }
    cfg.samples = 30;
    cfg.nulls.draws = 2;
    cfg.sweep_nulls.draws = 2;
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
    // The sweep covers the initialisation (epoch 0) and the one trained epoch, 9 layer pairs each.
    assert_eq!(s.sweep.computed, vec![0, 1]);
    assert_eq!(s.sweep.rows.len(), 2 * 9);
    let evolution = std::fs::read(out.join("sweep/evolution.csv")).unwrap();

    let err = run_demo(&cfg, &out, StartMode::Fresh, &device, &|_| {}).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let again = run_demo(&cfg, &out, StartMode::Resume, &device, &|_| {}).unwrap();
    assert_eq!(
        again.gans[0].1.epochs, s.gans[0].1.epochs,
        "no epoch retrained"
    );
    assert_eq!(std::fs::read(out.join("compare/table.npy")).unwrap(), first);
    assert_eq!(
        again.sweep.reused,
        vec![0, 1],
        "finished sweep epochs are reused"
    );
    assert!(again.sweep.computed.is_empty());
    assert_eq!(
        std::fs::read(out.join("sweep/evolution.csv")).unwrap(),
        evolution
    );
}
