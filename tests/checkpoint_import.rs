//! Checkpoint interop: the PyTorch fixture (made by tests/fixtures/make_torch_fixture.py),
//! a malicious pickle, our format's round trip, the torch-names export, and bad files.

mod common;

use burn::tensor::Device;
use common::fixtures;
use ndarray::{Array2, Array4};
use ndarray_npy::read_npy;
use unitmatch::checkpoint::{export_torch_names, load_generator, save_generator};
use unitmatch::model::{Generator, ModelConfig};
use unitmatch::unroll::unroll_generator;

fn layers() -> Vec<String> {
    ["gen.block1", "gen.block2", "gen.out"]
        .map(String::from)
        .to_vec()
}

fn max_abs_diff(a: &Array4<f32>, b: &Array4<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn pytorch_state_dict_matches_pytorch_forward() {
    let device = Device::flex();
    let (g, cfg) = load_generator(&fixtures().join("gen_w0125.pt"), 0.8, &device).unwrap();
    assert_eq!(cfg.width, 0.125, "width inferred from the shapes");
    let z: Array2<f32> = read_npy(fixtures().join("z.npy")).unwrap();
    let acts = unroll_generator(&g, z.as_slice().unwrap(), &layers(), &device);
    for (i, name) in ["block1", "block2", "out"].iter().enumerate() {
        let expected: Array4<f32> = read_npy(fixtures().join(format!("{name}.npy"))).unwrap();
        let d = max_abs_diff(&acts[i], &expected);
        assert!(d < 1e-4, "{name}: max |ours - pytorch| = {d}");
    }
}

#[test]
fn malicious_pickle_is_not_executed() {
    let marker = std::path::Path::new("/tmp/unitmatch-pickle-executed");
    let _ = std::fs::remove_file(marker);
    let device = Device::flex();
    // The payload sits beside the real tensors; whether or not the file loads, no code runs.
    let result = load_generator(&fixtures().join("evil.pt"), 0.8, &device);
    assert!(
        !marker.exists(),
        "loading a checkpoint executed pickle code"
    );
    if let Err(e) = result {
        assert!(
            e.to_string().contains("evil.pt"),
            "error names the file: {e}"
        );
    }
}

#[test]
fn our_format_and_torch_export_round_trip() {
    let device = Device::flex();
    let cfg = ModelConfig {
        width: 0.25,
        bn_eps: 0.7,
    };
    let g = Generator::new(&cfg, 11, &device);
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("g.safetensors");
    let torch = tmp.path().join("g_torch.safetensors");
    save_generator(&g, &cfg, &ours).unwrap();
    export_torch_names(&g, &cfg, &torch).unwrap();
    let z: Vec<f32> = (0..300)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let reference = unroll_generator(&g, &z, &layers(), &device);
    for path in [&ours, &torch] {
        let (h, loaded_cfg) = load_generator(path, 0.8, &device).unwrap();
        assert_eq!(
            loaded_cfg,
            cfg,
            "width and bn_eps survive {}",
            path.display()
        );
        let again = unroll_generator(&h, &z, &layers(), &device);
        for (a, b) in reference.iter().zip(&again) {
            assert_eq!(a, b, "bit-identical after reloading {}", path.display());
        }
    }
    // The export uses the seed's key names and layouts.
    let bytes = std::fs::read(&torch).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("l1.0.weight").unwrap().shape(), &[32 * 64, 100]);
    assert_eq!(
        st.tensor("conv_blocks.2.weight").unwrap().shape(),
        &[32, 32, 3, 3]
    );
    assert_eq!(
        st.tensor("conv_blocks.7.running_var").unwrap().shape(),
        &[16]
    );
    assert_eq!(
        st.tensor("conv_blocks.3.num_batches_tracked")
            .unwrap()
            .dtype(),
        safetensors::Dtype::I64
    );
}

#[test]
fn wrong_shape_names_key_and_both_shapes() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = ModelConfig {
        width: 0.125,
        bn_eps: 0.8,
    };
    let g = Generator::new(&cfg, 1, &device);
    let good = tmp.path().join("good.safetensors");
    export_torch_names(&g, &cfg, &good).unwrap();
    // Rewrite conv_blocks.6.weight with 3x3 kernels over 15 input channels instead of 16.
    let bytes = std::fs::read(&good).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>, safetensors::Dtype)> = Vec::new();
    for (name, t) in st.tensors() {
        if name == "conv_blocks.6.weight" {
            owned.push((
                name,
                vec![8, 15, 3, 3],
                vec![0u8; 8 * 15 * 9 * 4],
                t.dtype(),
            ));
        } else {
            owned.push((name, t.shape().to_vec(), t.data().to_vec(), t.dtype()));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(n, s, b, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let bad = tmp.path().join("bad.safetensors");
    std::fs::write(&bad, safetensors::serialize(views, None).unwrap()).unwrap();
    let err = load_generator(&bad, 0.8, &device).unwrap_err().to_string();
    assert!(err.contains("bad.safetensors"), "{err}");
    assert!(err.contains("conv_blocks.6.weight"), "{err}");
    assert!(
        err.contains("[8, 15, 3, 3]") && err.contains("[8, 16, 3, 3]"),
        "{err}"
    );
}

#[test]
fn corrupt_and_truncated_files_are_clear_errors() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let corrupt = tmp.path().join("corrupt.safetensors");
    std::fs::write(
        &corrupt,
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}",
    )
    .unwrap();
    let err = load_generator(&corrupt, 0.8, &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("corrupt.safetensors") && err.contains("not a valid checkpoint"),
        "{err}"
    );

    let pt = std::fs::read(fixtures().join("gen_w0125.pt")).unwrap();
    let truncated = tmp.path().join("truncated.pt");
    std::fs::write(&truncated, &pt[..pt.len() / 2]).unwrap();
    let err = load_generator(&truncated, 0.8, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated.pt"), "{err}");

    let missing = tmp.path().join("missing.safetensors");
    let err = load_generator(&missing, 0.8, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.safetensors"), "{err}");
}
