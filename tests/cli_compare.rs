//! `unitmatch compare` / `merge` / `export` end to end, checked against PyTorch's own float64
//! tables (tests/fixtures/make_torch_fixture.py) and against the engine's invariants.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use burn::module::Param;
use burn::tensor::{Device, TensorData};
use common::fixtures;
use ndarray::Array2;
use ndarray_npy::read_npy;
use unitmatch::checkpoint::save_generator;
use unitmatch::model::{Generator, ModelConfig};
use unitmatch::similarity::{Measure, cross_table};
use unitmatch::stats::MomentAccumulator;

fn unitmatch() -> Command {
    Command::cargo_bin("unitmatch").unwrap()
}

fn compare(a: &Path, b: &Path, out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    unitmatch()
        .args(["--threads", "1", "compare"])
        .arg(a)
        .arg(b)
        .arg("--out")
        .arg(out)
        .args(extra)
        .assert()
}

fn table(dir: &Path) -> Array2<f32> {
    read_npy(dir.join("table.npy")).unwrap()
}

fn max_diff(a: &Array2<f32>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

fn fixture_args() -> Vec<String> {
    let z = fixtures().join("z_table.npy");
    vec![
        "--z".into(),
        z.display().to_string(),
        "--batch".into(),
        "16".into(),
    ]
}

#[test]
fn tables_match_pytorch_float64_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (
        fixtures().join("gen_w0125.pt"),
        fixtures().join("gen_b_w0125.pt"),
    );
    for measure in ["pearson", "seed"] {
        let out = tmp.path().join(measure);
        let mut args = fixture_args();
        args.extend(["--measure".into(), measure.into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        compare(&a, &b, &out, &args).success();
        let expected: Array2<f64> =
            read_npy(fixtures().join(format!("table_{measure}.npy"))).unwrap();
        let d = max_diff(&table(&out), &expected);
        assert!(d < 1e-4, "{measure}: max |ours - pytorch| = {d}");
    }
    let out = tmp.path().join("pearson");
    let units = std::fs::read_to_string(out.join("units_a.csv")).unwrap();
    let lines: Vec<&str> = units.lines().collect();
    assert_eq!(lines[0], "flat,layer,channel,mean,std,dead");
    assert_eq!(lines.len(), 1 + 16 + 8 + 1);
    assert!(lines[1].starts_with("0,gen.block1,0,"));
    assert!(lines[17].starts_with("16,gen.block2,0,"));
    assert!(lines[25].starts_with("24,gen.out,0,"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["layer_pairs"].as_array().unwrap().len(), 9);
    assert_eq!(summary["units_a"], 25);
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["samples"], 64);
    assert_eq!(
        run["inputs"]["a"][1].as_str().unwrap().len(),
        64,
        "sha256 of A recorded"
    );
    assert_eq!(run["inputs"]["z"]["kind"], "npy");
}

#[test]
fn self_match_is_diagonal_and_swap_transposes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (
        fixtures().join("gen_w0125.pt"),
        fixtures().join("gen_b_w0125.pt"),
    );
    let args = ["--samples", "40", "--batch", "20"];
    compare(&a, &a, &tmp.path().join("aa"), &args).success();
    let t = table(&tmp.path().join("aa"));
    for i in 0..t.nrows() {
        assert!(
            (t[[i, i]] - 1.0).abs() < 1e-6,
            "diagonal {i}: {}",
            t[[i, i]]
        );
        for j in 0..t.ncols() {
            assert!((t[[i, j]] - t[[j, i]]).abs() < 1e-6);
        }
    }
    compare(&a, &b, &tmp.path().join("ab"), &args).success();
    compare(&b, &a, &tmp.path().join("ba"), &args).success();
    let (ab, ba) = (table(&tmp.path().join("ab")), table(&tmp.path().join("ba")));
    assert_eq!(ab.t(), ba, "compare(B, A) is compare(A, B) transposed");
}

#[test]
fn merged_shards_equal_a_single_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (
        fixtures().join("gen_w0125.pt"),
        fixtures().join("gen_b_w0125.pt"),
    );
    let args = ["--samples", "50", "--batch", "10"];
    compare(&a, &b, &tmp.path().join("single"), &args).success();
    let mut shards: Vec<PathBuf> = Vec::new();
    for k in 0..3 {
        let out = tmp.path().join(format!("shard{k}"));
        let shard = format!("{k}/3");
        let mut with_shard = args.to_vec();
        with_shard.extend(["--shard", &shard]);
        compare(&a, &b, &out, &with_shard).success();
        assert!(
            !out.join("table.npy").exists(),
            "a shard writes accumulators only"
        );
        shards.push(out);
    }
    unitmatch()
        .arg("merge")
        .args(&shards)
        .arg("--out")
        .arg(tmp.path().join("merged"))
        .assert()
        .success();
    let single = MomentAccumulator::load(&tmp.path().join("single/stats.safetensors")).unwrap();
    let merged = MomentAccumulator::load(&tmp.path().join("merged/stats.safetensors")).unwrap();
    assert_eq!(single.count(), merged.count());
    let (ts, tm) = (
        cross_table(&single, Measure::Pearson),
        cross_table(&merged, Measure::Pearson),
    );
    let d = ts
        .values
        .iter()
        .zip(tm.values.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(d < 1e-9, "merged vs single: {d}");
    // Merging a shard twice is refused.
    let assert = unitmatch()
        .arg("merge")
        .args([&shards[0], &shards[0]])
        .arg("--out")
        .arg(tmp.path().join("twice"))
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(err.contains("twice"), "{err}");
    // A missing shard is refused too.
    let assert = unitmatch()
        .arg("merge")
        .args([&shards[0], &shards[1]])
        .arg("--out")
        .arg(tmp.path().join("partial"))
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(err.contains("missing") && err.contains("[2]"), "{err}");
}

#[test]
fn dead_unit_scores_zero_and_is_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let cfg = ModelConfig {
        width: 0.125,
        bn_eps: 0.8,
    };
    let mut g = Generator::new(&cfg, 9, &device);
    // gamma = 0 for block2's channel 3: its output is the constant LeakyReLU(beta).
    let mut gamma: Vec<f32> = g.bn2.gamma.val().into_data().try_into_vec().unwrap();
    gamma[3] = 0.0;
    g.bn2.gamma = Param::from_data(TensorData::new(gamma, [8]), &device);
    let path = tmp.path().join("dead.safetensors");
    save_generator(&g, &cfg, &path).unwrap();
    let other = fixtures().join("gen_b_w0125.pt");
    compare(
        &path,
        &other,
        &tmp.path().join("out"),
        &["--samples", "20", "--batch", "10"],
    )
    .success();
    let t = table(&tmp.path().join("out"));
    assert!(t.iter().all(|v| v.is_finite()), "no NaN anywhere");
    let dead_row = 16 + 3;
    assert!(t.row(dead_row).iter().all(|&v| v == 0.0));
    let units = std::fs::read_to_string(tmp.path().join("out/units_a.csv")).unwrap();
    let flagged: Vec<&str> = units.lines().filter(|l| l.ends_with(",true")).collect();
    assert_eq!(flagged.len(), 1, "{units}");
    assert!(flagged[0].starts_with("19,gen.block2,3,"));
    let summary = std::fs::read_to_string(tmp.path().join("out/summary.json")).unwrap();
    assert!(summary.contains("\"dead_a\": 1"), "{summary}");
}

#[test]
fn bad_inputs_fail_clearly_and_leave_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let a = fixtures().join("gen_w0125.pt");
    let check = |b: &Path, extra: &[&str], needle: &str| {
        let out = tmp.path().join("out");
        let assert = compare(&a, b, &out, extra).failure();
        let err = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
        assert!(err.contains(needle), "expected `{needle}` in: {err}");
        assert!(!out.exists(), "no partial output folder");
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "no temporary folders left");
    };
    // z with the wrong dtype and the wrong shape.
    let z64 = tmp.path().join("z64.npy");
    ndarray_npy::write_npy(&z64, &Array2::<f64>::zeros((4, 100))).unwrap();
    check(&a, &["--z", z64.to_str().unwrap()], "z64.npy");
    let zshape = tmp.path().join("zshape.npy");
    ndarray_npy::write_npy(&zshape, &Array2::<f32>::zeros((4, 99))).unwrap();
    check(&a, &["--z", zshape.to_str().unwrap()], "[4, 99]");
    // A corrupt safetensors file, a truncated .pt, a generator of another architecture.
    let corrupt = tmp.path().join("corrupt.safetensors");
    std::fs::write(&corrupt, b"not a checkpoint").unwrap();
    check(&corrupt, &["--samples", "10"], "corrupt.safetensors");
    let pt = std::fs::read(&a).unwrap();
    let truncated = tmp.path().join("truncated.pt");
    std::fs::write(&truncated, &pt[..pt.len() - 1000]).unwrap();
    check(&truncated, &["--samples", "10"], "truncated.pt");
    check(&a, &["--layers", "block9"], "block9");
    check(&a, &["--shard", "3/3"], "shard");
}

#[test]
fn export_torch_names_round_trips_through_compare() {
    let tmp = tempfile::tempdir().unwrap();
    let a = fixtures().join("gen_w0125.pt");
    let exported = tmp.path().join("a_torch.safetensors");
    unitmatch()
        .arg("export")
        .arg(&a)
        .arg("--torch-names")
        .arg("--out")
        .arg(&exported)
        .assert()
        .success();
    // The export is the same network: it matches the original perfectly.
    compare(
        &a,
        &exported,
        &tmp.path().join("cmp"),
        &["--samples", "20", "--batch", "10"],
    )
    .success();
    let t = table(&tmp.path().join("cmp"));
    for i in 0..t.nrows() {
        assert!((t[[i, i]] - 1.0).abs() < 1e-6);
    }
}

#[test]
fn match_adds_buddies_and_assignment_to_a_compare_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let a = fixtures().join("gen_w0125.pt");
    let out = tmp.path().join("aa");
    compare(&a, &a, &out, &["--samples", "30", "--batch", "10"]).success();
    for f in ["cka.json", "redundancy.json"] {
        assert!(out.join(f).exists(), "{f} written by compare");
    }
    // Self-match: linear CKA of a layer with itself is 1.
    let cka: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cka.json")).unwrap()).unwrap();
    let same = cka
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["layer_p"] == "gen.block2"
                && r["layer_q"] == "gen.block2"
                && r["network_p"] == "a"
                && r["network_q"] == "b"
        })
        .expect("A.block2 x B.block2 row");
    assert!((same["linear"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    let assert = unitmatch().arg("match").arg(&out).assert().success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    assert!(
        stdout.contains("100.0%"),
        "every unit is its own buddy: {stdout}"
    );
    let assignment = std::fs::read_to_string(out.join("assignment.csv")).unwrap();
    let all: Vec<&str> = assignment
        .lines()
        .filter(|l| l.starts_with("all,"))
        .collect();
    assert_eq!(all.len(), 25, "one assigned pair per unit: {assignment}");
    let buddies = std::fs::read_to_string(out.join("buddies.csv")).unwrap();
    assert_eq!(
        buddies.lines().filter(|l| l.starts_with("strict")).count(),
        25,
        "{buddies}"
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("matching.json")).unwrap()).unwrap();
    assert!(m.is_object());
    // A folder that is not a comparison is a clear error.
    let assert = unitmatch().arg("match").arg(tmp.path()).assert().failure();
    let err = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(err.contains(&tmp.path().display().to_string()), "{err}");
}

/// A fake training run folder with generators (seeds) saved as the given epochs.
fn fake_run(dir: &Path, epochs: &[(usize, u64)]) -> PathBuf {
    let cfg = ModelConfig {
        width: 0.125,
        bn_eps: 0.8,
    };
    let ckpts = dir.join("checkpoints");
    std::fs::create_dir_all(&ckpts).unwrap();
    for &(epoch, seed) in epochs {
        let g = Generator::new(&cfg, seed, &Device::flex());
        let name = unitmatch::checkpoint::checkpoint_name(epoch);
        save_generator(&g, &cfg, &ckpts.join(name)).unwrap();
    }
    dir.to_path_buf()
}

fn sweep(a: &Path, b: &Path, out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    let samples = if extra.contains(&"--samples") {
        &[][..]
    } else {
        &["--samples", "20"][..]
    };
    unitmatch()
        .args(["--threads", "1", "sweep"])
        .arg(a)
        .arg(b)
        .arg("--out")
        .arg(out)
        .args(["--batch", "10", "--null-draws", "2"])
        .args(samples)
        .args(extra)
        .assert()
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn sweep_compares_common_epochs_and_resumes_without_recomputing() {
    let tmp = tempfile::tempdir().unwrap();
    // Epoch 0 is the same network in both runs (a self-match); epoch 2 differs; epoch 1 is
    // only in B and so is not compared.
    let a = fake_run(&tmp.path().join("a"), &[(0, 7), (2, 8)]);
    let b = fake_run(&tmp.path().join("b"), &[(0, 7), (1, 9), (2, 10)]);
    let out = tmp.path().join("sweep");
    let first = sweep(&a, &b, &out, &[]).success();
    let stdout = String::from_utf8_lossy(&first.get_output().stdout).to_string();
    assert!(stdout.contains("2 epochs compared, 0 reused"), "{stdout}");
    for f in [
        "evolution.csv",
        "evolution.png",
        "evolution.svg",
        "sweep.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    for e in ["epoch-0000", "epoch-0002"] {
        for f in [
            "table.npy",
            "significance.json",
            "cka.json",
            "matching.json",
        ] {
            assert!(out.join(e).join(f).exists(), "{e}/{f}");
        }
    }
    assert!(!out.join("epoch-0001").exists());
    let rows = csv_rows(&out.join("evolution.csv"));
    assert_eq!(rows.len(), 2 * 9, "two epochs x 3 x 3 layer pairs");
    let units = [("block1", 16), ("block2", 8), (".out", 1)];
    for r in &rows {
        let epoch: usize = r[0].parse().unwrap();
        let mean_row_max: f64 = r[3].parse().unwrap();
        let buddies: usize = r[5].parse().unwrap();
        let cka: f64 = r[7].parse().unwrap();
        let z_random: f64 = r[9].parse().unwrap();
        // The evolution row equals the epoch folder's own summary.json.
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("epoch-{epoch:04}/summary.json"))).unwrap(),
        )
        .unwrap();
        let block = summary["layer_pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["layer_a"] == r[1].as_str() && p["layer_b"] == r[2].as_str())
            .unwrap();
        // evolution.csv is computed from table.npy (float32), summary.json from the f64 table.
        assert!((block["mean_row_max"].as_f64().unwrap() - mean_row_max).abs() < 1e-6);
        if epoch == 0 && r[1] == r[2] {
            let n = units.iter().find(|u| r[1].ends_with(u.0)).unwrap().1;
            assert!((mean_row_max - 1.0).abs() < 1e-6, "self-match: {r:?}");
            assert!((cka - 1.0).abs() < 1e-6, "self-match CKA: {r:?}");
            assert_eq!(buddies, n, "every unit its own buddy: {r:?}");
            assert!(z_random > 0.0, "a self-match beats random networks: {r:?}");
        }
        assert!(r[10].parse::<f64>().unwrap() >= 1.0 / 3.0, "p >= 1/(1+D)");
    }
    let evolution = std::fs::read(out.join("evolution.csv")).unwrap();
    let stats = out.join("epoch-0002/stats.safetensors");
    let modified = std::fs::metadata(&stats).unwrap().modified().unwrap();

    // A rerun recomputes nothing and writes the same evolution.csv.
    let again = sweep(&a, &b, &out, &[]).success();
    let stdout = String::from_utf8_lossy(&again.get_output().stdout).to_string();
    assert!(stdout.contains("0 epochs compared, 2 reused"), "{stdout}");
    assert_eq!(std::fs::read(out.join("evolution.csv")).unwrap(), evolution);
    assert_eq!(
        std::fs::metadata(&stats).unwrap().modified().unwrap(),
        modified
    );

    // A changed checkpoint is recomputed, and only that epoch.
    fake_run(&b, &[(2, 11)]);
    let changed = sweep(&a, &b, &out, &[]).success();
    let stdout = String::from_utf8_lossy(&changed.get_output().stdout).to_string();
    assert!(stdout.contains("1 epochs compared, 1 reused"), "{stdout}");
    assert_ne!(std::fs::read(out.join("evolution.csv")).unwrap(), evolution);

    // Other z on the same folder is refused (nothing is overwritten) unless --force.
    let refused = sweep(&a, &b, &out, &["--samples", "30"]).failure();
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).to_string();
    assert!(
        stderr.contains("sweep.json") && stderr.contains("--force"),
        "{stderr}"
    );
    // An epoch missing from one run is named.
    let missing = sweep(&a, &b, &tmp.path().join("s2"), &["--epochs", "0,1"]).failure();
    let stderr = String::from_utf8_lossy(&missing.get_output().stderr).to_string();
    assert!(
        stderr.contains("epoch 1") && stderr.contains(&a.display().to_string()),
        "{stderr}"
    );
    assert!(!tmp.path().join("s2").exists(), "no output on bad input");
}

#[test]
fn report_on_a_lone_compare_folder_hides_missing_sections_and_escapes_text() {
    let tmp = tempfile::tempdir().unwrap();
    // A checkpoint name with markup characters, which the page shows.
    let odd = tmp.path().join("a<b>&'q'.pt");
    std::fs::copy(fixtures().join("gen_w0125.pt"), &odd).unwrap();
    let cmp = tmp.path().join("cmp");
    compare(
        &odd,
        &fixtures().join("gen_b_w0125.pt"),
        &cmp,
        &["--samples", "40", "--batch", "20"],
    )
    .success();
    let out = tmp.path().join("rep");
    let ok = unitmatch()
        .args(["--threads", "1", "report"])
        .arg(&cmp)
        .arg("--out")
        .arg(&out)
        .args(["--top", "2", "--buddies", "1", "--gallery-samples", "40"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&ok.get_output().stdout).to_string();
    assert!(stdout.contains("index.html"), "{stdout}");
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("a&lt;b&gt;&amp;&#39;q&#39;.pt"), "escaped");
    assert!(!html.contains("a<b>"), "never raw");
    // No sweep, no significance, no runs: those sections say how to produce them.
    for hint in ["unitmatch sweep", "--null", "unitmatch train"] {
        assert!(html.contains(hint), "{hint}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let missing: Vec<&str> = json["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[0].as_str().unwrap())
        .collect();
    assert_eq!(
        missing,
        [
            "training",
            "significance",
            "evolution",
            "quality",
            "classifier-match",
            "causal",
            "prune"
        ]
    );
    assert!(json["evolution"].is_null() && json["findings"][2]["holds"].is_null());
    // The galleries found the checkpoints and drew the asked pairs.
    assert_eq!(
        json["matches"]["top_galleries"].as_array().unwrap().len(),
        2
    );
    for src in html
        .split("src=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
    {
        assert!(out.join(src).exists(), "{src}");
    }
    // A folder that is none of the inputs is an error naming it; nothing is written.
    let bad = unitmatch()
        .arg("report")
        .arg(tmp.path().join("cmp").join("..").join("nothing-here"))
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&bad.get_output().stderr).to_string();
    assert!(err.contains("nothing-here"), "{err}");
}

#[test]
fn compare_accepts_a_classifier_as_b() {
    use unitmatch::classifier::{Classifier, ClassifierConfig, save_classifier};
    use unitmatch::unroll::{ZSource, tensor_to_array4, unroll_generator};
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let cls = Classifier::new(&ClassifierConfig { width: 0.125 }, 4, &device);
    let cls_path = tmp.path().join("cls.safetensors");
    save_classifier(&cls, &cls_path).unwrap();
    let gen_path = fixtures().join("gen_w0125.pt");
    let out = tmp.path().join("out");
    compare(
        &gen_path,
        &cls_path,
        &out,
        &[
            "--samples",
            "40",
            "--batch",
            "20",
            "--null",
            "permuted-z,random-init",
            "--null-draws",
            "2",
        ],
    )
    .success();
    let t = table(&out);
    // A: 16 + 8 + 1 generator units; B: the classifier's 4 + 8 + 16 block units.
    assert_eq!(t.shape(), &[25, 28]);
    let units = std::fs::read_to_string(out.join("units_b.csv")).unwrap();
    let layers: Vec<&str> = units
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(layers.iter().filter(|l| **l == "cls.block1").count(), 4);
    assert_eq!(layers.iter().filter(|l| **l == "cls.block3").count(), 16);
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["inputs"]["network_b"], "classifier");
    assert!(out.join("significance.json").exists());
    // Self-consistency: A's image (gen.out) against the classifier's block1 maps of those very
    // images, both 32 x 32, is the plain Pearson correlation over samples and pixels.
    let (g, _) = unitmatch::checkpoint::load_generator(&gen_path, 0.8, &device).unwrap();
    let z = ZSource::seeded(40, 20);
    let (mut xs, mut ys) = (vec![Vec::new(); 1], vec![Vec::new(); 4]);
    for b in 0..z.batches() {
        let zb = z.batch(b);
        let img = unroll_generator(&g, &zb, &["gen.out".to_string()], &device).remove(0);
        let (n, _, h, w) = img.dim();
        let x = burn::tensor::Tensor::<4>::from_data(
            TensorData::new(img.iter().copied().collect::<Vec<f32>>(), [n, 1, h, w]),
            &device,
        );
        let acts = tensor_to_array4(
            cls.forward_with_activations(x, false)
                .activations
                .remove(0)
                .1,
        );
        xs[0].extend(img.iter().map(|&v| v as f64));
        for (c, y) in ys.iter_mut().enumerate() {
            y.extend(
                acts.slice(ndarray::s![.., c, .., ..])
                    .iter()
                    .map(|&v| v as f64),
            );
        }
    }
    let pearson = |a: &[f64], b: &[f64]| {
        let n = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    };
    let mut live = 0;
    for c in 0..4 {
        let want = pearson(&xs[0], &ys[c]);
        let got = t[[24, c]] as f64;
        if want.is_nan() {
            // A ReLU channel that never fires: dead, scored 0 and flagged.
            assert_eq!(got, 0.0);
            assert!(
                units.lines().nth(1 + c).unwrap().ends_with(",true"),
                "channel {c} dead"
            );
        } else {
            live += 1;
            assert!((got - want).abs() < 1e-4, "channel {c}: {got} vs {want}");
        }
    }
    assert!(live >= 2, "most channels are live");
    // The report shows a classifier comparison in its own section, with galleries of its
    // buddies (the table's largest entry is always a strict mutual buddy, so there is one).
    unitmatch()
        .args(["report"])
        .arg(&out)
        .args(["--top", "1", "--buddies", "1", "--gallery-samples", "20"])
        .assert()
        .success();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report/report.json")).unwrap())
            .unwrap();
    let c = &json["classifier_match"];
    assert!(c["strict_buddies"].as_u64().unwrap() >= 1);
    let galleries = c["galleries"].as_array().unwrap();
    assert_eq!(galleries.len(), 1);
    assert!(galleries[0]["unit_b"].as_str().unwrap().starts_with("cls."));
    assert!(
        c["buddies"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["unit_b"].as_str().unwrap().starts_with("cls."))
    );
    assert!(
        json["matches"].is_null(),
        "no generator-vs-generator table given"
    );
}
