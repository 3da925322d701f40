//! Interventions on the generator (`unitmatch::intervene`), the causal test of a match
//! (`unitmatch::causal`) and the `edit` / `causal` commands end to end.

mod common;

use std::path::Path;

use assert_cmd::Command;
use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use ndarray::{Array2, Axis};
use unitmatch::causal::{Unrolled, agreements};
use unitmatch::checkpoint::save_generator;
use unitmatch::fsutil::sha256_file;
use unitmatch::intervene::{Action, EditLayer, Intervention, Region, UnitRef, generate_with};
use unitmatch::model::{Generator, LATENT_DIM, ModelConfig, UpConvOps};
use unitmatch::unroll::ZSource;

const SMALL: ModelConfig = ModelConfig {
    width: 0.125,
    bn_eps: 0.8,
};

fn dev() -> Device {
    Device::flex()
}

fn generator(seed: u64) -> Generator {
    Generator::new(&SMALL, seed, &dev())
}

fn z(n: usize, seed: u64) -> Tensor<2> {
    let zs = ZSource::Seeded {
        base_seed: seed,
        samples: n,
        batch: n,
    };
    Tensor::from_data(TensorData::new(zs.batch(0), [n, LATENT_DIM]), &dev())
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec().unwrap()
}

fn unit(s: &str) -> UnitRef {
    s.parse().unwrap()
}

#[test]
fn no_interventions_equal_the_plain_forward() {
    for seed in 0..3 {
        let g = generator(seed);
        let zt = z(6, 100 + seed);
        for ops in [UpConvOps::Phase, UpConvOps::Reference] {
            let plain = g.forward_with_activations_ops(zt.clone(), false, ops);
            let ours = generate_with(&g, zt.clone(), &[], ops);
            let pairs = plain.activations.into_iter().zip(ours.activations).chain([(
                ("image".to_string(), plain.image),
                ("image".to_string(), ours.image),
            )]);
            for ((name, a), (name_b, b)) in pairs {
                assert_eq!(name, name_b);
                let d = values(a)
                    .iter()
                    .zip(values(b))
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f32, f32::max);
                assert!(d <= 1e-6, "seed {seed} {ops:?} {name}: max diff {d}");
            }
        }
    }
}

/// Zeroes input channel `c` of a conv weight `[c_out, c_in, 3, 3]`: the unit's outgoing weights.
fn zero_input_channel(p: &mut Param<Tensor<4>>, c: usize) {
    let w = p.val();
    let [co, ci, kh, kw] = w.dims();
    let mut v = values(w);
    for o in 0..co {
        let s = (o * ci + c) * kh * kw;
        v[s..s + kh * kw].fill(0.0);
    }
    *p = Param::from_data(TensorData::new(v, [co, ci, kh, kw]), &dev());
}

#[test]
fn ablating_a_unit_without_outgoing_weights_changes_nothing() {
    let mut g = generator(7);
    zero_input_channel(&mut g.conv2.weight, 4); // block1 unit 4 feeds nothing
    zero_input_channel(&mut g.conv_out.weight, 2); // block2 unit 2 feeds nothing
    let zt = z(5, 7);
    let plain = values(generate_with(&g, zt.clone(), &[], UpConvOps::default()).image);
    for (u, action) in [
        ("block1:4", Action::Zero),
        ("block1:4", Action::Set { value: 3.0 }),
        ("block2:2", Action::Zero),
        ("block2:2", Action::Scale { factor: -4.0 }),
    ] {
        let u = unit(u);
        let iv = Intervention {
            layer: u.layer,
            channel: u.channel,
            action,
            region: None,
        };
        let edited = values(generate_with(&g, zt.clone(), &[iv], UpConvOps::default()).image);
        assert_eq!(plain, edited, "{u} {action:?}");
    }
    // Control: a unit that does feed the output changes it.
    let edited = values(
        generate_with(
            &g,
            zt,
            &[Intervention::ablate(unit("block2:3"))],
            UpConvOps::default(),
        )
        .image,
    );
    assert_ne!(plain, edited);
}

#[test]
fn a_block2_edit_in_a_region_stays_in_its_receptive_field() {
    let g = generator(8);
    let zt = z(4, 8);
    let plain = values(generate_with(&g, zt.clone(), &[], UpConvOps::default()).image);
    let region = Region {
        x0: 10,
        y0: 12,
        x1: 14,
        y1: 15,
    };
    // conv_out is 3x3 with padding 1: an output pixel sees block2 pixels within 1 of it, so
    // only the region grown by one pixel on every side can change.
    let grown = Region {
        x0: region.x0 - 1,
        y0: region.y0 - 1,
        x1: region.x1 + 1,
        y1: region.y1 + 1,
    };
    for action in [Action::Set { value: 5.0 }, Action::Scale { factor: 3.0 }] {
        let iv = [
            Intervention {
                layer: EditLayer::Block2,
                channel: 3,
                action,
                region: Some(region),
            },
            Intervention {
                layer: EditLayer::Block2,
                channel: 6,
                action,
                region: Some(region),
            },
        ];
        let edited = values(generate_with(&g, zt.clone(), &iv, UpConvOps::default()).image);
        let mut changed_inside = 0;
        for n in 0..4 {
            for y in 0..32 {
                for x in 0..32 {
                    let k = (n * 32 + y) * 32 + x;
                    if grown.contains(y, x) {
                        changed_inside += usize::from(edited[k] != plain[k]);
                    } else {
                        assert_eq!(edited[k], plain[k], "{action:?}: image {n} y {y} x {x}");
                    }
                }
            }
        }
        assert!(changed_inside > 0, "{action:?} changed nothing");
    }
}

#[test]
fn the_causal_agreement_of_a_unit_with_itself_is_one() {
    let g = generator(9);
    let zs = ZSource::seeded(40, 16); // three batches: 16 + 16 + 8
    let pairs: Vec<(UnitRef, UnitRef)> = ["block1:0", "block1:11", "block2:5"]
        .iter()
        .map(|s| (unit(s), unit(s)))
        .collect();
    let r = agreements(
        &g,
        &g,
        &zs,
        &zs,
        &pairs,
        UpConvOps::default(),
        &dev(),
        &mut |_, _| {},
    );
    for ((u, _), a) in pairs.iter().zip(r) {
        let (p, w) = (a.pooled.unwrap(), a.within_pixel.unwrap());
        assert!((p - 1.0).abs() < 1e-6, "{u}: pooled {p}");
        assert!((w - 1.0).abs() < 1e-6, "{u}: within-pixel {w}");
    }
}

/// Two independent random generators, ablated on independent z: how far from 0 may their
/// agreement be?
///
/// The pooled agreement (Pearson over all sample x pixel rows) is *not* expected to be 0: it
/// contains the correlation of the two mean change profiles over the canvas, `E|dA|(p)` and
/// `E|dB|(p)`, which does not shrink with more samples (both generators pad with zeros, so both
/// change less at the border, for instance). That is what the causal test's controls measure.
/// The within-pixel agreement removes each pixel's mean over samples and is 0 in expectation.
///
/// Bound. Let `X_s, Y_s` (s = 1..n) be A's and B's centred change maps (vectors over the P
/// pixels) with covariances `Sx`, `Sy`; all X are independent of all Y (independent z) and the
/// samples are i.i.d. The within-pixel agreement is
/// `r = sum_s <X_s, Y_s> / sqrt(sum_s |X_s|^2 sum_s |Y_s|^2)`. Its numerator is a sum of n
/// i.i.d. terms with mean 0 and variance `E <X, Y>^2 = E[X^T Sy X] = tr(Sx Sy)`; the
/// denominator is about `n sqrt(tr Sx tr Sy)`. So
/// `var r ~= tr(Sx Sy) / (n tr Sx tr Sy) = 1 / N_eff`, and by Cauchy-Schwarz with
/// `||S||_F <= tr S` for a covariance matrix, `tr(Sx Sy) <= tr Sx tr Sy`: `N_eff >= n` (all
/// pixels moving together) and `N_eff <= n P` (independent pixels). We estimate
/// `tr(Sx Sy) = ||X Y^T||_F^2 / n^2` (unbiased: every X_s is independent of every Y_t) and
/// require `|r| < 4 / sqrt(N_eff)` (by the central limit theorem over the n samples, a false
/// failure has probability about 6e-5 per pair), and also check `N_eff >= n`.
#[test]
fn independent_units_on_independent_z_agree_about_zero_within_pixels() {
    let (ga, gb) = (generator(21), generator(22));
    let n = 256;
    let (za, zb) = (
        ZSource::Seeded {
            base_seed: 1000,
            samples: n,
            batch: n,
        },
        ZSource::Seeded {
            base_seed: 2000,
            samples: n,
            batch: n,
        },
    );
    let pairs: Vec<(UnitRef, UnitRef)> = [
        ("block1:3", "block1:9"),
        ("block2:1", "block2:6"),
        ("block1:0", "block2:4"),
    ]
    .iter()
    .map(|(a, b)| (unit(a), unit(b)))
    .collect();
    let ops = UpConvOps::default();
    let r = agreements(&ga, &gb, &za, &zb, &pairs, ops, &dev(), &mut |_, _| {});
    let (ua, ub) = (
        Unrolled::new(&ga, z(n, 1000), ops),
        Unrolled::new(&gb, z(n, 2000), ops),
    );
    let centred = |v: Vec<f32>| {
        let m =
            Array2::from_shape_vec((n, 1024), v.iter().map(|&x| f64::from(x)).collect()).unwrap();
        let mean = m.mean_axis(Axis(0)).unwrap();
        m - &mean
    };
    for (&(a, b), ag) in pairs.iter().zip(&r) {
        let (x, y) = (
            centred(ua.abs_change(&ga, a, ops)),
            centred(ub.abs_change(&gb, b, ops)),
        );
        let nf = n as f64;
        let tr_sx = x.iter().map(|v| v * v).sum::<f64>() / nf;
        let tr_sy = y.iter().map(|v| v * v).sum::<f64>() / nf;
        let tr_sxsy = x.dot(&y.t()).iter().map(|v| v * v).sum::<f64>() / (nf * nf);
        let n_eff = nf * tr_sx * tr_sy / tr_sxsy;
        let w = ag.within_pixel.unwrap();
        eprintln!(
            "{a} x {b}: within-pixel {w:.4}, pooled {:.4}, N_eff {n_eff:.0} (n = {n}, 4 sd = {:.4})",
            ag.pooled.unwrap(),
            4.0 / n_eff.sqrt()
        );
        assert!(n_eff >= nf * 0.99, "{a} x {b}: N_eff {n_eff} < n");
        assert!(
            w.abs() < 4.0 / n_eff.sqrt(),
            "{a} x {b}: within-pixel agreement {w} beyond 4 sd (N_eff {n_eff:.0})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The commands.

fn unitmatch() -> Command {
    Command::cargo_bin("unitmatch").unwrap()
}

fn checkpoint(dir: &Path, name: &str, seed: u64) -> std::path::PathBuf {
    let path = dir.join(name);
    save_generator(&generator(seed), &SMALL, &path).unwrap();
    path
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).to_string()
}

#[test]
fn edit_writes_grids_diff_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(tmp.path(), "g.safetensors", 3);
    let out = tmp.path().join("edit");
    unitmatch()
        .args(["--threads", "1", "edit"])
        .arg(&ckpt)
        .args(["--unit", "block2:3", "--unit", "gen.block1:5", "--zero"])
        .args(["--region", "0,0,8,8", "--samples", "6", "--out"])
        .arg(&out)
        .assert()
        .success();
    for f in ["before.png", "after.png", "diff.png", "edit.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // Six 32 x 32 images, 3 per row, 2 pixels of padding: 104 x 70.
    for f in ["before.png", "after.png", "diff.png"] {
        let img = image::open(out.join(f)).unwrap();
        assert_eq!((img.width(), img.height()), (104, 70), "{f}");
    }
    let e = json(&out.join("edit.json"));
    assert_eq!(
        e["checkpoint"]["sha256"].as_str().unwrap(),
        sha256_file(&ckpt).unwrap()
    );
    let ivs = e["interventions"].as_array().unwrap();
    assert_eq!(ivs.len(), 2);
    assert_eq!(ivs[0]["layer"], "gen.block2");
    assert_eq!(ivs[0]["channel"], 3);
    assert_eq!(ivs[0]["action"]["kind"], "zero");
    assert_eq!(ivs[1]["region"]["x1"], 8);
    assert_eq!(e["z"]["base_seed"], 5555);
    let per: Vec<f64> = e["per_image_mean_abs_delta"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(per.len(), 6);
    let overall = e["mean_abs_delta"].as_f64().unwrap();
    assert!((overall - per.iter().sum::<f64>() / 6.0).abs() < 1e-12);
    assert!(overall > 0.0, "ablating two live units changes the images");
    assert!(e["files"]["diff.png"].as_str().unwrap().contains("jet"));
    // An existing folder is refused without --force; --mean records the mean it used.
    let again = unitmatch()
        .args(["--threads", "1", "edit"])
        .arg(&ckpt)
        .args(["--unit", "block2:3", "--mean", "--out"])
        .arg(&out)
        .assert()
        .failure();
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    unitmatch()
        .args(["--threads", "1", "edit"])
        .arg(&ckpt)
        .args([
            "--unit",
            "block2:3",
            "--mean",
            "--samples",
            "2",
            "--force",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    let e = json(&out.join("edit.json"));
    assert_eq!(e["interventions"][0]["action"]["kind"], "mean");
    assert!(e["interventions"][0]["action"]["value"].as_f64().is_some());
    assert_eq!(e["mean"]["z"]["samples"], 500);
}

#[test]
fn a_bad_unit_is_a_clear_error_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(tmp.path(), "g.safetensors", 3);
    for (spec, expect) in [
        ("block7:1", "block1 and block2"),
        ("block2", "LAYER:CHANNEL"),
        ("block2:99", "8 channels"),
    ] {
        let out = tmp.path().join("edit");
        let a = unitmatch()
            .args(["--threads", "1", "edit"])
            .arg(&ckpt)
            .args(["--unit", spec, "--zero", "--out"])
            .arg(&out)
            .assert()
            .failure();
        let err = stderr(&a);
        assert!(err.contains(spec) && err.contains(expect), "{spec}: {err}");
        assert!(!out.exists(), "{spec}: an output folder was written");
        let leftovers = std::fs::read_dir(tmp.path()).unwrap().count();
        assert_eq!(leftovers, 1, "{spec}: only the checkpoint remains");
    }
}

#[test]
fn causal_on_compare_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let a = checkpoint(tmp.path(), "a.safetensors", 31);
    let b = checkpoint(tmp.path(), "b.safetensors", 32);
    let compare = |x: &Path, y: &Path, name: &str| {
        let out = tmp.path().join(name);
        unitmatch()
            .args(["--threads", "1", "compare"])
            .arg(x)
            .arg(y)
            .args(["--samples", "40", "--batch", "20", "--out"])
            .arg(&out)
            .assert()
            .success();
        out
    };
    let causal = |dir: &Path| {
        unitmatch()
            .args(["--threads", "1", "causal"])
            .arg(dir)
            .args([
                "--top",
                "3",
                "--samples",
                "24",
                "--batch",
                "12",
                "--controls",
                "4",
            ])
            .assert()
    };
    // A against itself: the top pairs are units with themselves, whose agreement is 1.
    let aa = compare(&a, &a, "aa");
    causal(&aa).success();
    let c = json(&aa.join("causal/causal.json"));
    let pairs = c["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 3);
    for p in pairs {
        assert_eq!(p["a"], p["b"]);
        let r = p["agreement"]["pooled"].as_f64().unwrap();
        assert!((r - 1.0).abs() < 1e-6, "self agreement {r}");
        let ctl = &p["control_random_a"];
        assert_eq!(ctl["draws"].as_array().unwrap().len(), 4);
        assert!(ctl["p"].as_f64().unwrap() >= 0.2 - 1e-12);
    }
    for k in 1..=3 {
        assert!(aa.join(format!("causal/pair-{k:02}.png")).is_file());
    }
    assert!((c["summary"]["min_attainable_p"].as_f64().unwrap() - 0.2).abs() < 1e-12);
    // A against B runs and reports every field.
    let ab = compare(&a, &b, "ab");
    causal(&ab).success();
    let c = json(&ab.join("causal/causal.json"));
    let s = &c["summary"];
    assert_eq!(s["pairs"], 3);
    assert!(s["mean_agreement"].is_f64() && s["mean_control_unmatched"].is_f64());
    // A comparison against a classifier is refused, and nothing is written.
    let run = ab.join("run.json");
    let mut v = json(&run);
    v["inputs"]["network_b"] = "classifier".into();
    std::fs::write(&run, v.to_string()).unwrap();
    std::fs::remove_dir_all(ab.join("causal")).unwrap();
    let err = stderr(&causal(&ab).failure());
    assert!(
        err.contains("classifier") && err.contains("run.json"),
        "{err}"
    );
    assert!(!ab.join("causal").exists());
}

#[test]
fn prune_writes_a_curve_and_pruned_checkpoints_load_and_compare() {
    use unitmatch::checkpoint::load_generator;
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("g.safetensors");
    let g = generator(11);
    save_generator(&g, &SMALL, &ckpt).unwrap();
    let out = tmp.path().join("prune");
    // tau 0 removes every unit but the first of each layer; 0.9 usually removes none.
    unitmatch()
        .args(["prune"])
        .arg(&ckpt)
        .args(["--tau", "0,0.9", "--samples", "20", "--out"])
        .arg(&out)
        .assert()
        .success();
    for f in ["prune_curve.csv", "prune_curve.json", "prune_curve.png"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let csv = std::fs::read_to_string(out.join("prune_curve.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 3, "{csv}");
    let [c0, c1, c2] = g.channels();
    let row0 = csv.lines().nth(1).unwrap();
    assert!(
        row0.starts_with(&format!("duplicates,0,{},{},", c1 - 1, c2 - 1)),
        "{row0}"
    );
    // Every method at tau 0 removes the same counts, so the same parameters.
    let params: Vec<&str> = csv
        .lines()
        .skip(1)
        .take(3)
        .map(|l| l.split(',').nth(4).unwrap())
        .collect();
    assert!(params.iter().all(|p| *p == params[0]), "{params:?}");
    // A pruned checkpoint loads with its narrower layers and gives the same images as the
    // generator pruned in memory.
    let path = out.join("checkpoints/duplicates-tau0.safetensors");
    let (p, cfg) = load_generator(&path, 0.8, &dev()).unwrap();
    assert_eq!(p.channels(), [c0, 1, 1]);
    assert_eq!(cfg.width, SMALL.width);
    let moments = unitmatch::prune::unit_moments(&g, &ZSource::seeded(20, 20), &dev());
    let plan = unitmatch::prune::duplicate_plan(&moments, 0.0);
    let again = unitmatch::prune::prune(&g, &plan, true, &dev());
    let zz = z(4, 99);
    assert_eq!(
        values(p.forward(zz.clone(), false)),
        values(again.forward(zz, false))
    );
    // And compares against the original like any generator, with a random-init null of its own
    // (narrower) architecture.
    let cmp = tmp.path().join("cmp");
    unitmatch()
        .args(["compare"])
        .arg(&ckpt)
        .arg(&path)
        .args([
            "--samples",
            "10",
            "--batch",
            "10",
            "--null",
            "random-init,permuted-z",
        ])
        .args(["--null-draws", "2", "--out"])
        .arg(&cmp)
        .assert()
        .success();
    let table: ndarray::Array2<f32> = ndarray_npy::read_npy(cmp.join("table.npy")).unwrap();
    assert_eq!(table.dim(), (c1 + c2 + 1, 3));
    assert!(cmp.join("significance.json").exists());
    // The single-checkpoint form writes only the folded generator.
    let one = tmp.path().join("pruned.safetensors");
    unitmatch()
        .args(["prune"])
        .arg(&ckpt)
        .args(["--tau", "0", "--samples", "20", "--out"])
        .arg(&one)
        .assert()
        .success();
    let (q, _) = load_generator(&one, 0.8, &dev()).unwrap();
    let zz = z(4, 98);
    assert_eq!(
        values(q.forward(zz.clone(), false)),
        values(again.forward(zz, false))
    );
    unitmatch()
        .args(["prune"])
        .arg(&ckpt)
        .args(["--tau", "0,0.5", "--out"])
        .arg(&one)
        .arg("--force")
        .assert()
        .failure();
    // A bad threshold is a clear error and leaves nothing.
    let bad = tmp.path().join("bad");
    let err = unitmatch()
        .args(["prune"])
        .arg(&ckpt)
        .args(["--tau", "1.5", "--out"])
        .arg(&bad)
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&err);
    assert!(
        err.contains("g.safetensors") && err.contains("tau"),
        "{err}"
    );
    assert!(!bad.exists());
}
