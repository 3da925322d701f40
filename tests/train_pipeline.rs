//! Training on tiny synthetic data: D accuracy moves, determinism, resume equivalence,
//! checkpoint reload.

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use common::{one_thread, synthetic_data};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use unitmatch::checkpoint::{checkpoint_name, load_generator};
use unitmatch::data::{FashionMnist, Split};
use unitmatch::model::{Discriminator, Generator, IMG_SIZE, UpConvOps};
use unitmatch::train::{
    self, StartMode, TrainConfig, discriminator_seed, generator_seed, normal_z, sample_images,
};

fn tiny_config(data: &std::path::Path, epochs: usize) -> TrainConfig {
    let mut cfg = TrainConfig::reference(7, epochs, data.to_path_buf());
    cfg.model.width = 0.125;
    cfg.batch = 64;
    cfg.limit = Some(256);
    cfg.grid_samples = 10;
    cfg
}

fn tensors_of(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.data().to_vec()))
        .collect();
    v.sort();
    v
}

/// D's accuracy (eval mode) on 256 real images and 256 fakes from `g`.
fn d_accuracy(d: &Discriminator, g: &Generator, data: &FashionMnist, device: &Device) -> f64 {
    let n = data.len();
    let real = Tensor::<4>::from_data(
        TensorData::new(data.images().to_vec(), [n, 1, IMG_SIZE, IMG_SIZE]),
        device,
    );
    let z = normal_z(&mut ChaCha8Rng::seed_from_u64(99), n);
    let fake = sample_images(g, &z, device);
    let fake = Tensor::<4>::from_data(TensorData::new(fake, [n, 1, IMG_SIZE, IMG_SIZE]), device);
    let pr: Vec<f32> = d.forward(real, None).into_data().try_into_vec().unwrap();
    let pf: Vec<f32> = d.forward(fake, None).into_data().try_into_vec().unwrap();
    let ok = pr.iter().filter(|&&p| p > 0.5).count() + pf.iter().filter(|&&p| p < 0.5).count();
    ok as f64 / (2 * n) as f64
}

#[test]
fn training_moves_d_accuracy_and_checkpoint_reloads() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_data(tmp.path(), 256, 1);
    // A larger step and smaller batches than the reference, so 48 iterations move D visibly.
    let mut cfg = tiny_config(tmp.path(), 3);
    cfg.lr = 2e-3;
    cfg.batch = 16;
    let run = tmp.path().join("run");
    let device = Device::flex().autodiff();
    let summary =
        one_thread(|| train::train(&cfg, &run, StartMode::Fresh, &device, &mut |_| {})).unwrap();
    assert_eq!(summary.epochs.len(), 3);
    let s = &summary.epochs[0];
    assert!(s.g_loss.is_finite() && s.d_loss.is_finite());
    assert!((0.0..=1.0).contains(&s.d_real_acc) && (0.0..=1.0).contains(&s.d_fake_acc));

    // Before training, D (eval mode) is at chance on real vs fake; after one epoch it is not.
    let plain = Device::flex();
    let data = FashionMnist::load(tmp.path(), Split::Train, Some(256)).unwrap();
    let g0 = Generator::new(&cfg.model, generator_seed(cfg.seed), &plain);
    let d0 = Discriminator::new(&cfg.model, discriminator_seed(cfg.seed), &plain);
    let before = d_accuracy(&d0, &g0, &data, &plain);
    let (g1, _) = load_generator(
        &run.join("checkpoints").join(checkpoint_name(3)),
        0.8,
        &plain,
    )
    .unwrap();
    let mut d1 = Discriminator::new(&cfg.model, 0, &plain);
    use burn::store::{BurnpackStore, ModuleSnapshot};
    d1.load_from(&mut BurnpackStore::from_file(
        run.join("state/epoch-0003/discriminator.bpk"),
    ))
    .unwrap();
    let after = d_accuracy(&d1, &g1, &data, &plain);
    assert!(
        (before - 0.5).abs() < 0.1,
        "untrained D is near chance: {before}"
    );
    assert!(
        (after - before).abs() > 0.1,
        "D accuracy moved: before {before}, after {after}"
    );

    // The checkpoint reloads to the same forward output as the resume state's generator.
    let mut g_state = Generator::new(&cfg.model, 0, &plain);
    g_state
        .load_from(&mut BurnpackStore::from_file(
            run.join("state/epoch-0003/generator.bpk"),
        ))
        .unwrap();
    let z = normal_z(&mut ChaCha8Rng::seed_from_u64(3), 5);
    assert_eq!(
        sample_images(&g1, &z, &plain),
        sample_images(&g_state, &z, &plain)
    );
}

#[test]
fn same_seed_one_thread_gives_bit_identical_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_data(tmp.path(), 256, 2);
    let cfg = tiny_config(tmp.path(), 1);
    let device = Device::flex().autodiff();
    for name in ["r1", "r2"] {
        one_thread(|| {
            train::train(
                &cfg,
                &tmp.path().join(name),
                StartMode::Fresh,
                &device,
                &mut |_| {},
            )
        })
        .unwrap();
    }
    let ck = |r: &str| {
        tmp.path()
            .join(r)
            .join("checkpoints")
            .join(checkpoint_name(1))
    };
    assert_eq!(tensors_of(&ck("r1")), tensors_of(&ck("r2")));
    // A different seed gives different weights.
    let mut other = cfg.clone();
    other.seed = 8;
    one_thread(|| {
        train::train(
            &other,
            &tmp.path().join("r3"),
            StartMode::Fresh,
            &device,
            &mut |_| {},
        )
    })
    .unwrap();
    assert_ne!(tensors_of(&ck("r1")), tensors_of(&ck("r3")));
}

#[test]
fn resume_equals_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_data(tmp.path(), 256, 3);
    let device = Device::flex().autodiff();
    let full = tmp.path().join("full");
    let split = tmp.path().join("split");
    one_thread(|| {
        train::train(
            &tiny_config(tmp.path(), 2),
            &full,
            StartMode::Fresh,
            &device,
            &mut |_| {},
        )
    })
    .unwrap();
    one_thread(|| {
        train::train(
            &tiny_config(tmp.path(), 1),
            &split,
            StartMode::Fresh,
            &device,
            &mut |_| {},
        )
    })
    .unwrap();
    let resumed = one_thread(|| {
        train::train(
            &tiny_config(tmp.path(), 2),
            &split,
            StartMode::Resume,
            &device,
            &mut |_| {},
        )
    })
    .unwrap();
    assert_eq!(resumed.epochs.len(), 2, "history holds both epochs");
    let ck = |r: &std::path::Path| r.join("checkpoints").join(checkpoint_name(2));
    assert_eq!(tensors_of(&ck(&full)), tensors_of(&ck(&split)));
    let losses = |r: &std::path::Path| {
        train::read_losses(&r.join("losses.csv"))
            .unwrap()
            .iter()
            .map(|s| (s.g_loss, s.d_loss))
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&full), losses(&split));
}

#[test]
fn existing_run_is_refused_and_resume_checks_config() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_data(tmp.path(), 64, 4);
    let mut cfg = tiny_config(tmp.path(), 1);
    cfg.limit = Some(64);
    let run = tmp.path().join("run");
    let device = Device::flex().autodiff();
    train::train(&cfg, &run, StartMode::Fresh, &device, &mut |_| {}).unwrap();
    let err = train::train(&cfg, &run, StartMode::Fresh, &device, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let mut other = cfg.clone();
    other.lr = 1e-3;
    other.epochs = 2;
    let err = train::train(&other, &run, StartMode::Resume, &device, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("different config"), "{err}");
}

#[test]
fn phase_and_reference_ops_train_alike_for_20_iterations() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_data(tmp.path(), 320, 5);
    let mut cfg = tiny_config(tmp.path(), 1);
    cfg.batch = 16;
    cfg.limit = Some(320); // 20 iterations
    let device = Device::flex().autodiff();
    let mut losses = Vec::new();
    for (name, ops) in [
        ("phase", UpConvOps::Phase),
        ("reference", UpConvOps::Reference),
    ] {
        let mut c = cfg.clone();
        c.ops = ops;
        let mut steps = Vec::new();
        one_thread(|| {
            train::train(
                &c,
                &tmp.path().join(name),
                StartMode::Fresh,
                &device,
                &mut |e| {
                    if let train::TrainEvent::Iteration { g_loss, d_loss, .. } = e {
                        steps.push((g_loss, d_loss));
                    }
                },
            )
        })
        .unwrap();
        losses.push(steps);
    }
    assert_eq!(losses[0].len(), 20);
    let worst_loss = losses[0]
        .iter()
        .zip(&losses[1])
        .map(|(p, r)| (p.0 - r.0).abs().max((p.1 - r.1).abs()))
        .fold(0.0f32, f32::max);
    eprintln!("phase vs reference: largest per-iteration loss difference {worst_loss}");
    for (k, (p, r)) in losses[0].iter().zip(&losses[1]).enumerate() {
        assert!(
            (p.0 - r.0).abs() < 1e-4 && (p.1 - r.1).abs() < 1e-4,
            "iteration {}: phase {p:?}, reference {r:?}",
            k + 1
        );
    }
    // Adam moves a weight by at most about lr per step, so two runs whose gradients differ only
    // by rounding stay within 20 * lr of each other; in practice far closer.
    let weights = |name: &str| {
        let bytes = std::fs::read(
            tmp.path()
                .join(name)
                .join("checkpoints")
                .join(checkpoint_name(1)),
        )
        .unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut v: Vec<(String, Vec<f32>)> = st
            .tensors()
            .into_iter()
            .map(|(n, t)| {
                let f = t
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                (n, f)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let (p, r) = (weights("phase"), weights("reference"));
    let bound = 20.0 * cfg.lr as f32;
    let mut worst = 0.0f32;
    for ((name, a), (_, b)) in p.iter().zip(&r) {
        for (x, y) in a.iter().zip(b) {
            worst = worst.max((x - y).abs());
        }
        assert_eq!(a.len(), b.len(), "{name}");
    }
    eprintln!("phase vs reference after 20 iterations: largest weight difference {worst}");
    assert!(
        worst < bound,
        "largest weight difference {worst} >= {bound}"
    );
}
