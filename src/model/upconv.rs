//! "Nearest upsample x2, then conv 3x3 (padding 1)", the generator's two expensive layers,
//! computed exactly without the upsampled tensor.
//!
//! Output pixel `(2i + a, 2j + b)` of the reference path only ever sees input rows `i - 1, i`
//! (phase `a = 0`) or `i, i + 1` (`a = 1`), and the same for columns: nearest upsampling repeats
//! each input pixel, so the 3x3 taps that land on the same input pixel add up. With kernel rows
//! `W0, W1, W2`, phase 0 uses `[W0, W1 + W2]` and phase 1 `[W0 + W1, W2]`; likewise for columns.
//! So each output phase is a 2x2 convolution of the low-resolution input: 16 instead of 36
//! multiply-adds per input pixel and channel pair (2.25x fewer), and no 4x larger upsampled
//! tensor. (This is the sub-pixel view of resize-convolution.)
//!
//! The four phases together are one stride-2 transposed convolution with padding 1 and a 4x4
//! kernel whose taps, per axis, are `[W2, W1 + W2, W0 + W1, W0]`: input pixel `p` reaches output
//! `2p + k - 1`, so output `2i` takes `W0` from `p = i - 1` and `W1 + W2` from `p = i`, and
//! output `2i + 1` takes `W0 + W1` from `p = i` and `W2` from `p = i + 1`. burn runs that as one
//! GEMM and a col2im, forward and backward. The folded kernel is derived from the 3x3 weight
//! with tensor ops on every call, so autodiff folds its gradient back onto the 3x3 taps and
//! checkpoints keep the 3x3 layout.

use burn::tensor::Tensor;
use burn::tensor::module::{conv_transpose2d, conv2d, interpolate};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, InterpolateMode, InterpolateOptions};
use serde::{Deserialize, Serialize};

/// Which computation of upsample + conv the generator uses. Both give the same numbers up to
/// float rounding (tested); `Reference` exists for A/B checks (`--reference-ops`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpConvOps {
    /// The four 2x2 phase convolutions on the low-resolution input, as one stride-2
    /// transposed convolution with the folded 4x4 kernel.
    #[default]
    Phase,
    /// Nearest upsampling by 2, then the 3x3 convolution (what PyTorch computes).
    Reference,
}

/// Nearest-neighbour upsampling by 2 (PyTorch `nn.Upsample(scale_factor=2)`).
pub fn upsample_nearest2(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([2 * h, 2 * w]),
    )
}

/// `conv3x3(upsample_nearest2(x))` with padding 1, by `ops`.
///
/// # Shapes
/// - x: `[n, c_in, h, w]`; weight: `[c_out, c_in, 3, 3]`; bias: `[c_out]`
/// - output: `[n, c_out, 2h, 2w]`
pub fn up_conv(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    ops: UpConvOps,
) -> Tensor<4> {
    match ops {
        UpConvOps::Reference => conv2d(
            upsample_nearest2(x),
            weight,
            bias,
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        ),
        UpConvOps::Phase => conv_transpose2d(
            x,
            transposed_kernel(weight),
            bias,
            ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], 1),
        ),
    }
}

/// The 4-tap fold of a 3-tap axis for a stride-2 transposed convolution with padding 1:
/// `[t2, t1 + t2, t0 + t1, t0]`.
fn fold_axis_transposed(w: Tensor<4>, dim: usize) -> Tensor<4> {
    let tap = |k: usize| w.clone().narrow(dim, k, 1);
    let (t0, t1, t2) = (tap(0), tap(1), tap(2));
    Tensor::cat(vec![t2.clone(), t1.clone() + t2, t0.clone() + t1, t0], dim)
}

/// The phase kernels as one 4x4 transposed-convolution kernel, `[c_in, c_out, 4, 4]`.
pub fn transposed_kernel(weight: Tensor<4>) -> Tensor<4> {
    fold_axis_transposed(fold_axis_transposed(weight, 2), 3).swap_dims(0, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    fn random(shape: [usize; 4], seed: u64, dev: &Device) -> Tensor<4> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
        Tensor::from_data(TensorData::new(v, shape), dev)
    }

    fn max_rel_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
        let a = a.into_data().try_into_vec::<f32>().unwrap();
        let b = b.into_data().try_into_vec::<f32>().unwrap();
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / scale)
            .fold(0.0, f32::max)
    }

    #[test]
    fn phase_path_equals_upsample_then_conv() {
        let dev = Device::default();
        for (k, &(n, cin, cout, h, w)) in [
            (1, 1, 1, 1, 1),
            (1, 3, 5, 4, 4),
            (2, 7, 3, 8, 8),
            (3, 16, 8, 5, 7),
            (4, 32, 16, 16, 16),
        ]
        .iter()
        .enumerate()
        {
            let seed = 10 * k as u64;
            let x = random([n, cin, h, w], seed, &dev);
            let wt = random([cout, cin, 3, 3], seed + 1, &dev);
            let b: Tensor<1> = random([1, 1, 1, cout], seed + 2, &dev).reshape([cout]);
            let fast = up_conv(x.clone(), wt.clone(), Some(b.clone()), UpConvOps::Phase);
            let slow = up_conv(x, wt, Some(b), UpConvOps::Reference);
            assert_eq!(fast.dims(), [n, cout, 2 * h, 2 * w]);
            let d = max_rel_diff(fast, slow);
            assert!(d < 1e-5, "case {k}: relative difference {d}");
        }
    }

    #[test]
    fn transposed_kernel_sums_the_taps_that_share_an_input_pixel() {
        let dev = Device::default();
        // One 3x3 kernel with taps 1..9 (row-major): rows r0 = [1 2 3], r1 = [4 5 6], r2 = [7 8 9].
        let w = Tensor::<4>::from_data(
            TensorData::new((1..=9).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 3, 3]),
            &dev,
        );
        let k = transposed_kernel(w)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        // Per axis [t2, t1 + t2, t0 + t1, t0]; the 2-D kernel is the outer fold of both axes.
        let fold = |t: [f32; 3]| [t[2], t[1] + t[2], t[0] + t[1], t[0]];
        let rows = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]];
        // Fold each row along the columns, then each resulting column along the rows.
        let cols: Vec<[f32; 4]> = rows.iter().map(|&r| fold(r)).collect();
        let folded: Vec<[f32; 4]> = (0..4)
            .map(|kx| fold([cols[0][kx], cols[1][kx], cols[2][kx]]))
            .collect();
        let expect: Vec<f32> = (0..4)
            .flat_map(|ky| folded.iter().map(move |col| col[ky]))
            .collect();
        assert_eq!(k, expect);
        assert_eq!(k[0], 9.0, "the first tap is W[2][2]");
        assert_eq!(k[15], 1.0, "the last tap is W[0][0]");
    }

    /// Gradients of `sum(up_conv(x) * probe)` for x, weight and bias, by `ops`.
    fn grads(
        ops: UpConvOps,
        (x, w, b, probe): (&[f32], &[f32], &[f32], &[f32]),
        [n, cin, cout, h, wd]: [usize; 5],
    ) -> [Vec<f32>; 3] {
        let dev = Device::flex().autodiff();
        let x = Tensor::<4>::from_data(TensorData::new(x.to_vec(), [n, cin, h, wd]), &dev)
            .require_grad();
        let w = Tensor::<4>::from_data(TensorData::new(w.to_vec(), [cout, cin, 3, 3]), &dev)
            .require_grad();
        let b = Tensor::<1>::from_data(TensorData::new(b.to_vec(), [cout]), &dev).require_grad();
        let probe = Tensor::<4>::from_data(
            TensorData::new(probe.to_vec(), [n, cout, 2 * h, 2 * wd]),
            &dev,
        );
        let loss = (up_conv(x.clone(), w.clone(), Some(b.clone()), ops) * probe).sum();
        let g = loss.backward();
        let v4 = |t: Option<Tensor<4>>| t.unwrap().into_data().try_into_vec::<f32>().unwrap();
        [
            v4(x.grad(&g)),
            v4(w.grad(&g)),
            b.grad(&g)
                .unwrap()
                .into_data()
                .try_into_vec::<f32>()
                .unwrap(),
        ]
    }

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
    }

    #[test]
    fn phase_gradients_equal_reference_gradients() {
        for (k, dims) in [[1, 1, 1, 2, 2], [2, 3, 5, 4, 3], [3, 8, 4, 8, 8]]
            .into_iter()
            .enumerate()
        {
            let [n, cin, cout, h, w] = dims;
            let seed = 100 * k as u64;
            let x = values(n * cin * h * w, seed);
            let wt = values(cout * cin * 9, seed + 1);
            let b = values(cout, seed + 2);
            let probe = values(n * cout * 4 * h * w, seed + 3);
            let inputs = (&x[..], &wt[..], &b[..], &probe[..]);
            let fast = grads(UpConvOps::Phase, inputs, dims);
            let slow = grads(UpConvOps::Reference, inputs, dims);
            for (name, (f, s)) in ["input", "weight", "bias"]
                .iter()
                .zip(fast.iter().zip(&slow))
            {
                let scale = s.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
                let d = f
                    .iter()
                    .zip(s)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(
                    d / scale < 1e-4,
                    "case {k}, {name}: relative difference {}",
                    d / scale
                );
            }
        }
    }

    /// Direct f64 evaluation of `sum(conv3x3(upsample2(x)) * probe)` (no bias), the loss the
    /// finite differences are taken of.
    fn naive_loss(x: &[f64], w: &[f64], probe: &[f64], [cin, cout, h, wd]: [usize; 4]) -> f64 {
        let (oh, ow) = (2 * h, 2 * wd);
        let up = |c: usize, y: isize, xx: isize| -> f64 {
            if y < 0 || xx < 0 || y >= oh as isize || xx >= ow as isize {
                0.0
            } else {
                x[(c * h + y as usize / 2) * wd + xx as usize / 2]
            }
        };
        let mut loss = 0.0;
        for o in 0..cout {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut acc = 0.0;
                    for c in 0..cin {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                acc += w[((o * cin + c) * 3 + ky) * 3 + kx]
                                    * up(
                                        c,
                                        y as isize + ky as isize - 1,
                                        xx as isize + kx as isize - 1,
                                    );
                            }
                        }
                    }
                    loss += acc * probe[(o * oh + y) * ow + xx];
                }
            }
        }
        loss
    }

    #[test]
    fn phase_gradients_pass_a_finite_difference_check_in_f64() {
        let dims @ [cin, cout, h, wd] = [2, 2, 3, 3];
        let x: Vec<f64> = values(cin * h * wd, 7).iter().map(|&v| v as f64).collect();
        let w: Vec<f64> = values(cout * cin * 9, 8)
            .iter()
            .map(|&v| v as f64)
            .collect();
        let probe: Vec<f64> = values(cout * 4 * h * wd, 9)
            .iter()
            .map(|&v| v as f64)
            .collect();
        let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let zero_bias = vec![0.0f32; cout];
        let [gx, gw, _] = grads(
            UpConvOps::Phase,
            (&f32s(&x), &f32s(&w), &zero_bias, &f32s(&probe)),
            [1, cin, cout, h, wd],
        );
        // Central differences in f64 of the exact loss; the loss is linear in each argument, so
        // they are exact up to f64 rounding, and the f32 autodiff gradient must match them to
        // f32 precision.
        let eps = 1e-3;
        let check = |grad: &[f32], which: usize| {
            let base = if which == 0 { &x } else { &w };
            for i in 0..base.len() {
                let mut plus = base.clone();
                let mut minus = base.clone();
                plus[i] += eps;
                minus[i] -= eps;
                let (lp, lm) = if which == 0 {
                    (
                        naive_loss(&plus, &w, &probe, dims),
                        naive_loss(&minus, &w, &probe, dims),
                    )
                } else {
                    (
                        naive_loss(&x, &plus, &probe, dims),
                        naive_loss(&x, &minus, &probe, dims),
                    )
                };
                let fd = (lp - lm) / (2.0 * eps);
                let got = grad[i] as f64;
                assert!(
                    (got - fd).abs() <= 1e-4 * fd.abs().max(1.0),
                    "{} gradient {i}: autodiff {got}, finite difference {fd}",
                    ["input", "weight"][which]
                );
            }
        };
        check(&gx, 0);
        check(&gw, 1);
    }
}
