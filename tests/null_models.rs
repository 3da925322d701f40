//! `unitmatch compare --null ...`: significance.json on the fixtures, and the refusals.

mod common;

use std::path::Path;

use assert_cmd::Command;
use common::fixtures;

fn compare(out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    Command::cargo_bin("unitmatch")
        .unwrap()
        .args(["--threads", "1", "compare"])
        .arg(fixtures().join("gen_w0125.pt"))
        .arg(fixtures().join("gen_b_w0125.pt"))
        .arg("--out")
        .arg(out)
        .args(["--samples", "40", "--batch", "10"])
        .args(extra)
        .assert()
}

fn finite(v: &serde_json::Value) -> f64 {
    let x = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!(x.is_finite());
    x
}

#[test]
fn compare_with_nulls_writes_significance_json() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    compare(
        &out,
        &["--null", "random-init,permuted-z", "--null-draws", "3"],
    )
    .success();
    let text = std::fs::read_to_string(out.join("significance.json")).unwrap();
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(j["options"]["draws"], 3);
    assert_eq!(finite(&j["min_attainable_p"]), 0.25);
    assert_eq!(j["alpha_attainable"], false);
    assert!(j["correction"].as_str().unwrap().contains("max-statistic"));
    for kind in ["random-init", "permuted-z"] {
        let pairs = j["nulls"][kind]["layer_pairs"].as_array().unwrap();
        assert_eq!(pairs.len(), 9, "{kind}: 3 x 3 layer pairs");
        for lp in pairs {
            for stat in ["mean_best", "mean_assigned"] {
                let st = &lp[stat];
                let obs = finite(&st["observed"]);
                assert!((-1.0..=1.0 + 1e-6).contains(&obs));
                let null = st["null"].as_array().unwrap();
                assert_eq!(null.len(), 3);
                null.iter().for_each(|v| {
                    finite(v);
                });
                finite(&st["mean"]);
                assert!(finite(&st["sd"]) >= 0.0);
                let p = finite(&st["p"]);
                assert!(p > 0.0 && p <= 1.0, "{kind} {stat}: p {p}");
                // p = (1 + #{null >= obs}) / 4
                assert!([0.25, 0.5, 0.75, 1.0].contains(&p));
            }
            assert_eq!(lp["null_block_max"].as_array().unwrap().len(), 3);
            for pair in lp["pairs"].as_array().unwrap() {
                let p = finite(&pair["p"]);
                assert!(p > 0.0 && p <= 1.0);
                assert_eq!(
                    pair["significant"], false,
                    "1/4 > 0.05: nothing significant"
                );
                finite(&pair["score"]);
            }
        }
    }
    // The regular outputs are still there.
    assert!(out.join("table.npy").exists() && out.join("summary.json").exists());
}

#[test]
fn null_with_shard_is_refused_without_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    let a = compare(&out, &["--null", "permuted-z", "--shard", "0/2"]).failure();
    let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert!(
        err.contains("--null cannot be combined with --shard"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn unknown_null_name_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    let a = compare(&out, &["--null", "random-init,shuffled"]).failure();
    let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert!(err.contains("unknown null model `shuffled`"), "{err}");
    assert!(!out.exists());
}
