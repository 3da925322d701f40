//! End-to-end `unitmatch train` on the real Debian Fashion-MNIST files, through the binary.

mod common;

use std::path::Path;

use assert_cmd::Command;
use common::REAL_DATA;

fn unitmatch() -> Command {
    Command::cargo_bin("unitmatch").unwrap()
}

fn train_args(out: &Path, epochs: usize) -> Vec<String> {
    [
        "train",
        "--seed",
        "3",
        "--epochs",
        &epochs.to_string(),
        "--width",
        "0.125",
        "--batch",
        "32",
        "--limit",
        "96",
        "--data",
        REAL_DATA,
        "--threads",
        "1",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string()])
    .collect()
}

#[test]
fn train_writes_every_artefact_and_refuses_to_overwrite() {
    assert!(
        Path::new(REAL_DATA).exists(),
        "install dataset-fashion-mnist (the CI script does)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    unitmatch().args(train_args(&out, 2)).assert().success();

    for e in 1..=2 {
        let ck = out.join(format!("checkpoints/generator-epoch-{e:04}.safetensors"));
        let bytes = std::fs::read(&ck).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("bn0.gamma").unwrap().shape(), &[16]);
        let png = image::open(out.join(format!("samples/epoch-{e:04}.png"))).unwrap();
        assert_eq!(
            png.width(),
            10 * 34 + 2,
            "10 columns of 32 px plus 2 px padding"
        );
        assert_eq!(png.height(), 5 * 34 + 2, "50 samples in 5 rows");
    }
    use image::AnimationDecoder;
    let gif = std::fs::File::open(out.join("progress.gif")).unwrap();
    let frames = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(gif))
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    assert_eq!(frames.len(), 2, "one GIF frame per epoch");
    image::open(out.join("losses.png")).unwrap();

    let csv = std::fs::read_to_string(out.join("losses.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "epoch,g_loss,d_loss,d_real_acc,d_fake_acc,seconds,img_per_s"
    );
    assert_eq!(lines.len(), 3);
    for (i, line) in lines[1..].iter().enumerate() {
        let f: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
        assert_eq!(f[0] as usize, i + 1);
        assert!(f[1] > 0.0 && f[2] > 0.0, "losses are positive: {line}");
    }
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["config"]["seed"], 3);
    assert_eq!(run["config"]["model"]["width"], 0.125);
    assert_eq!(run["data"]["images"], 96);
    assert_eq!(run["data"]["files"].as_array().unwrap().len(), 2);
    assert_eq!(run["epochs_done"], 2);
    assert!(
        run["versions"]["burn"]
            .as_str()
            .unwrap()
            .starts_with("0.22")
    );

    // Refuses to overwrite; names the folder and both ways out.
    let assert = unitmatch().args(train_args(&out, 2)).assert().failure();
    let err = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(
        err.contains("already exists") && err.contains("--resume") && err.contains("--force"),
        "{err}"
    );
    assert!(
        out.join("checkpoints/generator-epoch-0002.safetensors")
            .exists(),
        "nothing was deleted"
    );

    // --resume with more epochs continues from epoch 2.
    let mut args = train_args(&out, 3);
    args.push("--resume".into());
    unitmatch().args(args).assert().success();
    let csv = std::fs::read_to_string(out.join("losses.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4);
    assert!(
        out.join("checkpoints/generator-epoch-0003.safetensors")
            .exists()
    );
}

#[test]
fn missing_data_names_the_path_and_both_fixes() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing-here");
    let out = tmp.path().join("run");
    let assert = unitmatch()
        .args(["train", "--epochs", "1", "--width", "0.125", "--out"])
        .arg(&out)
        .arg("--data")
        .arg(&missing)
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(
        err.contains("apt-get install -y dataset-fashion-mnist"),
        "{err}"
    );
    assert!(err.contains("unitmatch data fetch"), "{err}");
    assert!(!out.exists(), "no run folder is left behind on bad input");
}

#[test]
fn classifier_learns_fashion_mnist_in_one_short_epoch_and_scores_gan_quality() {
    assert!(
        Path::new(REAL_DATA).exists(),
        "install dataset-fashion-mnist"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cls");
    let args = [
        "classifier",
        "train",
        "--epochs",
        "1",
        "--limit",
        "5000",
        "--width",
        "0.5",
        "--batch",
        "16",
    ];
    let run = || {
        let mut cmd = unitmatch();
        cmd.args(args)
            .args(["--data", REAL_DATA, "--threads", "1", "--out"])
            .arg(&out);
        cmd
    };
    run().assert().success();
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let acc = metrics["test_accuracy"].as_f64().unwrap();
    // One epoch over 5,000 images, all 10,000 test images: a real, deterministic bar.
    assert!(acc > 0.80, "test accuracy {acc}");
    assert_eq!(metrics["test_images"], 10_000);
    let confusion: Vec<Vec<u64>> = serde_json::from_value(metrics["confusion"].clone()).unwrap();
    assert_eq!(confusion.iter().flatten().sum::<u64>(), 10_000);
    let csv = std::fs::read_to_string(out.join("confusion.csv")).unwrap();
    assert_eq!(csv.lines().count(), 11);
    assert!(image::open(out.join("confusion.png")).is_ok());
    assert!(unitmatch::classifier::is_classifier_checkpoint(
        &out.join("classifier.safetensors")
    ));
    // The folder is not overwritten without --force.
    let refused = run().assert().failure();
    let err = String::from_utf8_lossy(&refused.get_output().stderr).to_string();
    assert!(err.contains("already exists"), "{err}");

    // GAN quality through this classifier, calibrated on real data.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let q = tmp.path().join("quality");
    unitmatch()
        .arg("evaluate")
        .arg(fixtures.join("gen_w0125.pt"))
        .arg("--classifier")
        .arg(out.join("classifier.safetensors"))
        .args(["--samples", "300", "--data", REAL_DATA, "--out"])
        .arg(&q)
        .assert()
        .success();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(q.join("quality.json")).unwrap()).unwrap();
    let cal = &json["calibration"];
    let fd = |v: &serde_json::Value| v["fd"].as_f64().unwrap();
    let (train_test, noise1, noise3) = (
        fd(&cal["train_vs_test"]),
        fd(&cal["noised_test"][0][1]),
        fd(&cal["noised_test"][1][1]),
    );
    assert!(
        fd(&cal["test_self"]).abs() < 1e-9,
        "FD of the test set with itself"
    );
    assert!(noise1 < noise3, "FD grows with noise: {noise1} vs {noise3}");
    let generated = fd(&json["generators"][0]["quality"]);
    // An untrained fixture generator is far worse than real training images.
    assert!(
        generated > 10.0 * train_test.max(1e-3),
        "{generated} vs {train_test}"
    );
    let hist: Vec<u64> =
        serde_json::from_value(json["generators"][0]["quality"]["class_histogram"].clone())
            .unwrap();
    assert_eq!(hist.iter().sum::<u64>(), 300);
    let csv = std::fs::read_to_string(q.join("quality.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2);
    // A generator checkpoint given as the classifier is refused, naming the file.
    let bad = unitmatch()
        .arg("evaluate")
        .arg(fixtures.join("gen_w0125.pt"))
        .arg("--classifier")
        .arg(fixtures.join("gen_b_w0125.pt"))
        .args(["--data", REAL_DATA, "--out"])
        .arg(tmp.path().join("q2"))
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&bad.get_output().stderr).to_string();
    assert!(err.contains("gen_b_w0125.pt"), "{err}");
    assert!(!tmp.path().join("q2").exists());
}
