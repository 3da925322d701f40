//! GAN quality metrics on feature vectors: Frechet distance (FID-style), kernel inception
//! distance (KID), inception score (IS) and the class-balance of generated samples. Used to score
//! generated Fashion-MNIST images through a classifier's penultimate features (FD, KID) and its
//! softmax outputs (IS, class histogram). Pure `f64` maths, no I/O, no printing.
//! Use: `let fd = frechet_distance(&gaussian(real.view()), &gaussian(fake.view()));`,
//! `let k = kid(real.view(), fake.view(), DEFAULT_KID_SUBSETS, DEFAULT_KID_SUBSET_SIZE, seed)?;`,
//! `let is = inception_score(probs.view());`,
//! `let kl = kl_from_uniform(&class_histogram(probs.view()));`
//!
//! # Layout
//! Every matrix input has one row per sample and one column per feature (or class, for
//! probabilities): `[n, d]`.
//!
//! # Frechet distance
//! The squared 2-Wasserstein distance between the Gaussians fitted to two feature sets
//! (Heusel et al. 2017): `FD = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^{1/2})`.
//! The trace term is computed through the symmetric PSD matrix `S_a^{1/2} S_b S_a^{1/2}`, which is
//! similar to `S_a S_b` and so has the same eigenvalues; see [`frechet_distance`].
//!
//! # KID
//! Squared maximum mean discrepancy with the polynomial kernel `k(x, y) = (x.y / d + 1)^3`,
//! estimated without bias on random subsets and averaged (Binkowski et al. 2018, as in
//! torch-fidelity); see [`kid`].
//!
//! # Inception score
//! `IS = exp(mean_n KL(p(y|x_n) || p(y)))` (Salimans et al. 2016); see [`inception_score`] and
//! [`inception_score_splits`].

use nalgebra::{DMatrix, SymmetricEigen};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, s};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Conventional number of splits of [`inception_score_splits`] (Salimans et al. 2016, and every
/// common implementation since).
pub const DEFAULT_IS_SPLITS: usize = 10;

/// Conventional number of random subsets of [`kid`] (torch-fidelity's default).
pub const DEFAULT_KID_SUBSETS: usize = 100;

/// Conventional subset size of [`kid`] (torch-fidelity's default; capped at the smaller set).
pub const DEFAULT_KID_SUBSET_SIZE: usize = 1000;

/// Relative tolerance under which a negative Frechet distance is taken as round-off and clamped
/// to 0: `fd < 0` with `|fd| <= FD_ROUNDOFF_TOL * (|mu_a - mu_b|^2 + tr S_a + tr S_b)`.
const FD_ROUNDOFF_TOL: f64 = 1e-9;

/// A Gaussian fitted to a feature set, the input of [`frechet_distance`]: the sample mean
/// `mu = 1/n sum_r x_r`, the unbiased sample covariance
/// `S = 1/(n-1) sum_r (x_r - mu)(x_r - mu)^T` and the number of samples `n` it came from (kept
/// so callers can report it and judge how well `S` is estimated: `S` has rank at most `n - 1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Gaussian {
    /// Sample mean `mu`, length `d`.
    pub mean: Array1<f64>,
    /// Sample covariance `S` with the `n - 1` denominator, `[d, d]`.
    pub cov: Array2<f64>,
    /// Number of samples (rows) it was fitted to.
    pub n: usize,
}

/// Fits a [`Gaussian`] to `features` `[n, d]` (rows = samples): mean
/// `mu = 1/n sum_r x_r` and covariance `S = X_c^T X_c / (n - 1)` with `X_c` the centred rows,
/// i.e. the unbiased estimator used by FID implementations (`numpy.cov(rowvar=False)`).
/// With a single row the covariance cannot be estimated and is all zeros.
///
/// # Panics
/// If `features` has no rows (the mean is undefined).
pub fn gaussian(features: ArrayView2<f64>) -> Gaussian {
    let (n, _) = features.dim();
    let mean = features
        .mean_axis(Axis(0))
        .expect("gaussian: features must have at least one row");
    let centred = &features - &mean;
    let mut cov = centred.t().dot(&centred);
    if n > 1 {
        cov /= (n - 1) as f64;
    } else {
        cov.fill(0.0);
    }
    Gaussian { mean, cov, n }
}

/// Copies a square ndarray matrix into a symmetric nalgebra matrix `(S + S^T) / 2`, removing any
/// asymmetry left by round-off (the eigen solver only reads one triangle).
fn symmetric_dmatrix(m: &Array2<f64>) -> DMatrix<f64> {
    let d = m.nrows();
    DMatrix::from_fn(d, d, |i, j| 0.5 * (m[[i, j]] + m[[j, i]]))
}

/// Principal square root of a symmetric PSD matrix, `V diag(sqrt(max(l, 0))) V^T` from its
/// eigendecomposition `S = V diag(l) V^T`; negative eigenvalues (round-off) are clamped to 0.
fn psd_sqrt(s: DMatrix<f64>) -> DMatrix<f64> {
    let eig = SymmetricEigen::new(s);
    let mut scaled = eig.eigenvectors.clone();
    for (j, l) in eig.eigenvalues.iter().enumerate() {
        let r = l.max(0.0).sqrt();
        scaled.column_mut(j).scale_mut(r);
    }
    scaled * eig.eigenvectors.transpose()
}

/// Frechet distance between two Gaussians (the "FID" formula, here on any features):
/// `FD = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^{1/2})`, the squared
/// 2-Wasserstein distance between `N(mu_a, S_a)` and `N(mu_b, S_b)`. Lower is better; 0 for
/// identical Gaussians.
///
/// The trace term is computed robustly, without the non-symmetric matrix square root used by
/// scipy-based implementations (which can go complex on round-off): `S_a S_b` is similar to the
/// symmetric PSD matrix `M = S_a^{1/2} S_b S_a^{1/2}`, so
/// `tr((S_a S_b)^{1/2}) = sum_i sqrt(max(lambda_i, 0))` with `lambda_i` the eigenvalues of `M`.
/// Each square root `S^{1/2} = V diag(sqrt(max(l, 0))) V^T` comes from nalgebra's
/// `SymmetricEigen` of the symmetrised covariance, negative eigenvalues (round-off on a PSD
/// matrix) clamped to 0. Since `M = C^T C` with `C = S_b^{1/2} S_a^{1/2}`, the
/// `sqrt(lambda_i)` are exactly the singular values `sigma_i` of `C`, and the sum is taken as
/// `sum_i sigma_i` from nalgebra's SVD of `C`: an SVD gets `sigma_i` to an absolute error of about
/// `eps * sigma_max`, whereas eigenvalues of `M` come with an error of about `eps * lambda_max`
/// that the square root inflates to `sqrt(eps * lambda_max)` (~1e-8 relative) for every zero
/// eigenvalue. Zero eigenvalues are common here: dead (constant) units, or fewer samples than
/// features, make the covariances singular.
///
/// A result that is negative by no more than `1e-9 * (|mu_a - mu_b|^2 + tr S_a + tr S_b)` is
/// round-off and returned as 0; a larger negative value is returned unchanged, since it can only
/// come from a covariance that is not PSD (a caller bug worth seeing).
///
/// # Panics
/// If the two Gaussians have different dimensions or a covariance is not `[d, d]`.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> f64 {
    let d = a.mean.len();
    assert_eq!(b.mean.len(), d, "frechet_distance: dimension mismatch");
    assert_eq!(a.cov.dim(), (d, d), "frechet_distance: a.cov is not [d, d]");
    assert_eq!(b.cov.dim(), (d, d), "frechet_distance: b.cov is not [d, d]");
    let diff = &a.mean - &b.mean;
    let mean_term = diff.dot(&diff);
    if d == 0 {
        return mean_term;
    }
    let tr_a = a.cov.diag().sum();
    let tr_b = b.cov.diag().sum();
    let root_a = psd_sqrt(symmetric_dmatrix(&a.cov));
    let root_b = psd_sqrt(symmetric_dmatrix(&b.cov));
    // M = S_a^{1/2} S_b S_a^{1/2} = C^T C with C = S_b^{1/2} S_a^{1/2}: sqrt(lambda_i(M)) are
    // the singular values of C (non-negative by construction).
    let c = root_b * root_a;
    let trace_sqrt: f64 = c.singular_values().iter().sum();
    let fd = mean_term + tr_a + tr_b - 2.0 * trace_sqrt;
    let scale = mean_term + tr_a + tr_b;
    if fd < 0.0 && -fd <= FD_ROUNDOFF_TOL * scale {
        0.0
    } else {
        fd
    }
}

/// Kernel inception distance of two feature sets, see [`kid`]. `value` is the mean of the
/// per-subset unbiased MMD^2 estimates, `std_error = sd / sqrt(subsets)` their standard error
/// (sd with the `subsets - 1` denominator; `NaN` when `subsets == 1`). Note torch-fidelity's
/// `kernel_inception_distance_std` is the sd itself, i.e. `std_error * sqrt(subsets)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kid {
    /// Mean over subsets of the unbiased MMD^2; about 0 for equal distributions (can be slightly
    /// negative, the estimator is unbiased).
    pub value: f64,
    /// Standard error of `value`: sd over subsets (`n - 1`) / `sqrt(subsets)`; `NaN` for 1 subset.
    pub std_error: f64,
    /// Number of subsets averaged.
    pub subsets: usize,
    /// Rows per subset actually used (the requested size capped at `min(len a, len b)`).
    pub subset_size: usize,
}

/// Polynomial KID kernel matrix `K_ij = (p_i . q_j / d + 1)^3` for rows `p_i`, `q_j` of length `d`.
fn poly_kernel(p: ArrayView2<f64>, q: ArrayView2<f64>) -> Array2<f64> {
    let d = p.ncols() as f64;
    let mut k = p.dot(&q.t());
    k.mapv_inplace(|v| (v / d + 1.0).powi(3));
    k
}

/// Unbiased MMD^2 of two equally sized sets `x`, `y` (`m` rows each) with [`poly_kernel`]:
/// `sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1))
///  - 2 sum_{i,j} k(x_i, y_j) / m^2`.
fn mmd2_unbiased(x: ArrayView2<f64>, y: ArrayView2<f64>) -> f64 {
    let m = x.nrows() as f64;
    let off_diagonal = |k: &Array2<f64>| k.sum() - k.diag().sum();
    let kxx = poly_kernel(x, x);
    let kyy = poly_kernel(y, y);
    let kxy = poly_kernel(x, y);
    (off_diagonal(&kxx) + off_diagonal(&kyy)) / (m * (m - 1.0)) - 2.0 * kxy.sum() / (m * m)
}

/// Kernel inception distance (Binkowski et al. 2018) between feature sets `a` `[n_a, d]` and
/// `b` `[n_b, d]`: the squared maximum mean discrepancy with the polynomial kernel
/// `k(x, y) = (x.y / d + 1)^3`. Unlike FD it has an unbiased estimator, so it is comparable
/// across sample sizes and 0 in expectation for equal distributions. Lower is better.
///
/// As in torch-fidelity: for each of `subsets` subsets, `m = min(subset_size, n_a, n_b)` rows of
/// `a` and `m` rows of `b` are drawn without replacement (a fresh random draw per subset, all from
/// one `ChaCha8Rng::seed_from_u64(seed)`, `a`'s indices then `b`'s, subset after subset, so the
/// result depends only on the inputs and `seed`), and the unbiased estimate
/// `MMD^2_u = sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1))
///  - 2 sum_{i,j} k(x_i, y_j) / m^2`
/// is taken. `value` is the mean over subsets, `std_error` their sd (`subsets - 1`) divided by
/// `sqrt(subsets)`. Subsets are evaluated in parallel (rayon); the draws are made first, in order.
///
/// # Errors
/// If either set has fewer than 2 rows, the feature dimensions differ or are 0, or
/// `subsets` is 0, or the capped subset size is below 2.
pub fn kid(
    a: ArrayView2<f64>,
    b: ArrayView2<f64>,
    subsets: usize,
    subset_size: usize,
    seed: u64,
) -> Result<Kid, String> {
    let (na, d) = a.dim();
    let (nb, db) = b.dim();
    if na < 2 || nb < 2 {
        return Err(format!(
            "kid needs at least 2 rows in each set, got {na} and {nb}"
        ));
    }
    if d != db {
        return Err(format!("kid: feature dimensions differ ({d} vs {db})"));
    }
    if d == 0 {
        return Err("kid: features have no columns".to_string());
    }
    if subsets == 0 {
        return Err("kid: subsets must be at least 1".to_string());
    }
    let m = subset_size.min(na).min(nb);
    if m < 2 {
        return Err(format!(
            "kid: subset_size must be at least 2, got {subset_size}"
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let draws: Vec<(Vec<usize>, Vec<usize>)> = (0..subsets)
        .map(|_| {
            let ia = sample(&mut rng, na, m).into_vec();
            let ib = sample(&mut rng, nb, m).into_vec();
            (ia, ib)
        })
        .collect();
    let values: Vec<f64> = draws
        .par_iter()
        .map(|(ia, ib)| {
            let x = a.select(Axis(0), ia);
            let y = b.select(Axis(0), ib);
            mmd2_unbiased(x.view(), y.view())
        })
        .collect();
    let s = subsets as f64;
    let value = values.iter().sum::<f64>() / s;
    let std_error = if subsets > 1 {
        let var = values.iter().map(|v| (v - value).powi(2)).sum::<f64>() / (s - 1.0);
        (var / s).sqrt()
    } else {
        f64::NAN
    };
    Ok(Kid {
        value,
        std_error,
        subsets,
        subset_size: m,
    })
}

/// `KL(p || q) = sum_c p_c (ln p_c - ln q_c)` with `0 ln 0 = 0` (terms with `p_c = 0` skipped).
fn kl_divergence(p: ArrayView1<f64>, q: ArrayView1<f64>) -> f64 {
    p.iter()
        .zip(q.iter())
        .filter(|&(&pc, _)| pc > 0.0)
        .map(|(&pc, &qc)| pc * (pc.ln() - qc.ln()))
        .sum()
}

/// Inception score of class probabilities `probs` `[n, C]` (each row a predicted distribution
/// `p(y|x_n)`, e.g. a softmax; used as given, not renormalised):
/// `IS = exp(mean_n KL(p(y|x_n) || p(y)))` with the marginal `p(y) = 1/n sum_n p(y|x_n)` and
/// `0 ln 0 = 0`. High when each sample is classified confidently (low conditional entropy) and
/// the classes are used evenly (high marginal entropy); it ranges over `[1, C]`: `C` for
/// confident predictions spread uniformly over all classes, 1 when all rows are equal.
/// `NaN` for no rows.
pub fn inception_score(probs: ArrayView2<f64>) -> f64 {
    let n = probs.nrows();
    let Some(marginal) = probs.mean_axis(Axis(0)) else {
        return f64::NAN;
    };
    let total: f64 = probs
        .rows()
        .into_iter()
        .map(|p| kl_divergence(p, marginal.view()))
        .sum();
    (total / n as f64).exp()
}

/// Inception score over `splits` consecutive, near-equal splits (the conventional protocol, with
/// [`DEFAULT_IS_SPLITS`] = 10): split `k` is rows `k n / splits .. (k + 1) n / splits`, each
/// scored by [`inception_score`] with its own marginal, returning
/// `(mean, sd)` of the split scores with the population sd (`1 / splits`), as in the original
/// OpenAI code (`np.std`). Rows are not shuffled (torch-fidelity shuffles first and uses the
/// `splits - 1` sd); shuffle beforehand if the row order is not random. `splits` is clamped to
/// `[1, n]` so that no split is empty; `(NaN, NaN)` for no rows.
pub fn inception_score_splits(probs: ArrayView2<f64>, splits: usize) -> (f64, f64) {
    let n = probs.nrows();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let k = splits.clamp(1, n);
    let scores: Vec<f64> = (0..k)
        .map(|i| inception_score(probs.slice(s![i * n / k..(i + 1) * n / k, ..])))
        .collect();
    let kf = k as f64;
    let mean = scores.iter().sum::<f64>() / kf;
    let var = scores.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / kf;
    (mean, var.sqrt())
}

/// Histogram of predicted classes: entry `c` counts the rows of `probs` `[n, C]` whose argmax is
/// `c` (length `C`). Ties go to the lowest class index; `NaN` entries never win (a row that is all
/// `NaN` counts as class 0). Used to see which classes a generator produces (mode collapse shows
/// as a few dominant classes); see [`kl_from_uniform`].
pub fn class_histogram(probs: ArrayView2<f64>) -> Vec<usize> {
    let c = probs.ncols();
    let mut hist = vec![0usize; c];
    if c == 0 {
        return hist;
    }
    for row in probs.rows() {
        let mut best = 0;
        for j in 1..c {
            let (v, b) = (row[j], row[best]);
            if v > b || (b.is_nan() && !v.is_nan()) {
                best = j;
            }
        }
        hist[best] += 1;
    }
    hist
}

/// KL divergence of the normalised class histogram `q_c = hist_c / sum hist` from the uniform
/// distribution over its `C = hist.len()` classes: `KL(q || U) = sum_c q_c ln(q_c C)` with
/// `0 ln 0 = 0`. A class-balance score for generated samples (the test set of Fashion-MNIST is
/// uniform): 0 for a perfectly balanced histogram, at most `ln C` when every sample falls in one
/// class. `NaN` when the histogram is empty or all zero.
pub fn kl_from_uniform(hist: &[usize]) -> f64 {
    let total: usize = hist.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let c = hist.len() as f64;
    let total = total as f64;
    hist.iter()
        .filter(|&&h| h > 0)
        .map(|&h| {
            let q = h as f64 / total;
            q * (q * c).ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};
    use rand_distr::{Distribution, StandardNormal};

    fn normal_matrix(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((rows, cols), |_| StandardNormal.sample(&mut rng))
    }

    /// Samples with a non-trivial covariance: standard normals times a fixed mixing matrix.
    fn correlated_samples(rows: usize, seed: u64) -> Array2<f64> {
        let z = normal_matrix(rows, 4, seed);
        let mix = array![
            [1.0, 0.5, 0.0, 0.2],
            [0.0, 2.0, 0.3, 0.0],
            [0.0, 0.0, 0.7, -0.4],
            [0.1, 0.0, 0.0, 1.5]
        ];
        z.dot(&mix)
    }

    /// Row `i` is the one-hot prediction of class `i % classes`.
    fn cycling_one_hot(rows: usize, classes: usize) -> Array2<f64> {
        Array2::from_shape_fn((rows, classes), |(i, c)| {
            f64::from(u8::from(i % classes == c))
        })
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn gaussian_mean_and_unbiased_cov() {
        let x = array![[1.0, 2.0], [3.0, 6.0], [5.0, 4.0]];
        let g = gaussian(x.view());
        assert_eq!(g.n, 3);
        assert_eq!(g.mean, array![3.0, 4.0]);
        // centred: [-2,-2], [0,2], [2,0]; X^T X = [[8,4],[4,8]]; / (n-1) = 2.
        assert_eq!(g.cov, array![[4.0, 2.0], [2.0, 4.0]]);
        let one = gaussian(array![[1.0, 2.0]].view());
        assert_eq!(one.cov, Array2::<f64>::zeros((2, 2)));
    }

    #[test]
    fn frechet_diagonal_closed_form() {
        let a = Gaussian {
            mean: array![0.0, 0.0],
            cov: array![[1.0, 0.0], [0.0, 4.0]],
            n: 10,
        };
        let b = Gaussian {
            mean: array![1.0, 2.0],
            cov: array![[9.0, 0.0], [0.0, 16.0]],
            n: 10,
        };
        // |dmu|^2 = 5, tr = 5 + 25, trace term = sqrt(1*9) + sqrt(4*16) = 3 + 8.
        let expected = 5.0 + 5.0 + 25.0 - 2.0 * (3.0 + 8.0);
        assert!((frechet_distance(&a, &b) - expected).abs() < 1e-12);
        assert!((frechet_distance(&b, &a) - expected).abs() < 1e-12);
    }

    #[test]
    fn frechet_non_commuting_2x2_closed_form() {
        let sa: Array2<f64> = array![[2.0, 1.0], [1.0, 2.0]];
        let sb: Array2<f64> = array![[3.0, 0.0], [0.0, 1.0]];
        let prod = sa.dot(&sb);
        assert_ne!(prod, sb.dot(&sa), "test needs non-commuting covariances");
        // For 2x2 M with non-negative eigenvalues: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)).
        let tr_m = prod[[0, 0]] + prod[[1, 1]];
        let det_m = prod[[0, 0]] * prod[[1, 1]] - prod[[0, 1]] * prod[[1, 0]];
        let trace_sqrt = (tr_m + 2.0 * det_m.sqrt()).sqrt();
        assert!((trace_sqrt - 14f64.sqrt()).abs() < 1e-12);
        let a = Gaussian {
            mean: array![1.0, -1.0],
            cov: sa,
            n: 5,
        };
        let b = Gaussian {
            mean: array![0.5, 1.0],
            cov: sb,
            n: 5,
        };
        let expected = 0.25 + 4.0 + 4.0 + 4.0 - 2.0 * trace_sqrt;
        assert!((frechet_distance(&a, &b) - expected).abs() < 1e-12);
        assert!((frechet_distance(&b, &a) - expected).abs() < 1e-12);
    }

    #[test]
    fn frechet_symmetric_and_zero_on_self() {
        let a = gaussian(correlated_samples(300, 1).view());
        let mut y = correlated_samples(200, 2);
        y.mapv_inplace(|v| 1.3 * v + 0.2);
        let b = gaussian(y.view());
        let ab = frechet_distance(&a, &b);
        let ba = frechet_distance(&b, &a);
        assert!(ab > 0.1, "distinct Gaussians must be apart, got {ab}");
        assert!(close(ab, ba, 1e-9), "FD(a,b) = {ab}, FD(b,a) = {ba}");
        assert!(frechet_distance(&a, &a).abs() < 1e-9);
        assert!(frechet_distance(&b, &b).abs() < 1e-9);
    }

    #[test]
    fn frechet_rank_deficient_self_is_zero() {
        // Fewer samples than features: singular covariance, negative round-off eigenvalues.
        let x = normal_matrix(5, 12, 7);
        let g = gaussian(x.view());
        let fd = frechet_distance(&g, &g);
        assert!((0.0..1e-9).contains(&fd), "FD(a, a) = {fd}");
    }

    #[test]
    fn frechet_dead_unit_contributes_nothing() {
        // A constant (dead) feature in both sets adds exactly 0 to the distance.
        let x = correlated_samples(300, 5);
        let mut y = correlated_samples(300, 6);
        y.mapv_inplace(|v| 0.8 * v - 0.1);
        let pad = |m: &Array2<f64>| {
            Array2::from_shape_fn((m.nrows(), 5), |(r, c)| if c < 4 { m[[r, c]] } else { 0.5 })
        };
        let live = frechet_distance(&gaussian(x.view()), &gaussian(y.view()));
        let padded = frechet_distance(&gaussian(pad(&x).view()), &gaussian(pad(&y).view()));
        assert!(live > 0.1);
        assert!(close(live, padded, 1e-12), "{live} vs {padded}");
    }

    #[test]
    fn frechet_grows_with_noise() {
        let x = correlated_samples(500, 3);
        let noise = normal_matrix(500, 4, 4);
        let base = gaussian(x.view());
        let fds: Vec<f64> = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0]
            .iter()
            .map(|&sigma| {
                let y = &x + &(&noise * sigma);
                frechet_distance(&base, &gaussian(y.view()))
            })
            .collect();
        assert!(fds[0].abs() < 1e-9, "no noise: {}", fds[0]);
        for w in fds.windows(2) {
            assert!(w[1] > w[0], "FD not increasing with noise: {fds:?}");
        }
        // sigma = 4 adds about 16 per dimension to the covariance.
        assert!(fds[5] > 20.0, "{fds:?}");
    }

    #[test]
    fn kid_tiny_matches_triple_loop() {
        let x = array![[0.5, 1.0], [-1.0, 2.0], [0.0, 0.3], [1.5, -0.5]];
        let y = array![[1.0, 1.0], [2.0, 0.0], [-0.5, -1.5], [0.2, 0.7]];
        let d = 2.0;
        let k = |p: ArrayView1<f64>, q: ArrayView1<f64>| {
            let mut dot = 0.0;
            for t in 0..p.len() {
                dot += p[t] * q[t];
            }
            (dot / d + 1.0).powi(3)
        };
        let m = 4usize;
        let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
        for i in 0..m {
            for j in 0..m {
                if i != j {
                    sxx += k(x.row(i), x.row(j));
                    syy += k(y.row(i), y.row(j));
                }
                sxy += k(x.row(i), y.row(j));
            }
        }
        let mf = m as f64;
        let expected = sxx / (mf * (mf - 1.0)) + syy / (mf * (mf - 1.0)) - 2.0 * sxy / (mf * mf);
        let r = kid(x.view(), y.view(), 1, 4, 0).unwrap();
        assert!(
            (r.value - expected).abs() < 1e-12,
            "{} vs {expected}",
            r.value
        );
        assert_eq!(r.subsets, 1);
        assert_eq!(r.subset_size, 4);
        assert!(r.std_error.is_nan());
        // Requested size above the set sizes is capped.
        let capped = kid(x.view(), y.view(), 1, 100, 5).unwrap();
        assert_eq!(capped.subset_size, 4);
        assert!((capped.value - expected).abs() < 1e-12);
    }

    #[test]
    fn kid_same_distribution_small_shifted_large() {
        let a = normal_matrix(600, 8, 10);
        let b = normal_matrix(600, 8, 11);
        let mut c = normal_matrix(600, 8, 12);
        c += 1.0;
        let same = kid(a.view(), b.view(), 50, 200, 1).unwrap();
        let itself = kid(a.view(), a.view(), 50, 200, 2).unwrap();
        let shifted = kid(a.view(), c.view(), 50, 200, 3).unwrap();
        assert!(shifted.value > 0.0);
        assert!(
            shifted.value > 10.0 * shifted.std_error,
            "shifted KID {} +- {}",
            shifted.value,
            shifted.std_error
        );
        assert!(
            same.value.abs() < 0.05 * shifted.value,
            "{same:?} vs {shifted:?}"
        );
        assert!(
            itself.value.abs() < 0.05 * shifted.value,
            "{itself:?} vs {shifted:?}"
        );
        // Same-distribution values are consistent with 0.
        assert!(same.value.abs() < 4.0 * same.std_error, "{same:?}");
    }

    #[test]
    fn kid_deterministic_in_seed() {
        let a = normal_matrix(100, 3, 20);
        let b = normal_matrix(80, 3, 21);
        let r1 = kid(a.view(), b.view(), 10, 30, 9).unwrap();
        let r2 = kid(a.view(), b.view(), 10, 30, 9).unwrap();
        let r3 = kid(a.view(), b.view(), 10, 30, 10).unwrap();
        assert_eq!(r1, r2);
        assert_ne!(r1.value, r3.value);
    }

    #[test]
    fn kid_errors() {
        let one = array![[1.0, 2.0]];
        let two = array![[1.0, 2.0], [3.0, 4.0]];
        let wide = array![[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]];
        assert!(kid(one.view(), two.view(), 1, 2, 0).is_err());
        assert!(kid(two.view(), one.view(), 1, 2, 0).is_err());
        assert!(kid(two.view(), wide.view(), 1, 2, 0).is_err());
        assert!(kid(two.view(), two.view(), 0, 2, 0).is_err());
        assert!(kid(two.view(), two.view(), 1, 1, 0).is_err());
        assert!(kid(two.view(), two.view(), 1, 2, 0).is_ok());
    }

    #[test]
    fn inception_score_values() {
        let classes = 10;
        let one_hot = cycling_one_hot(50, classes);
        assert!((inception_score(one_hot.view()) - 10.0).abs() < 1e-12);
        let same = Array2::from_shape_fn((7, 3), |(_, c)| [0.2, 0.5, 0.3][c]);
        assert!((inception_score(same.view()) - 1.0).abs() < 1e-12);
        // Rows [1, 0] and [0.5, 0.5]: p(y) = [0.75, 0.25], KLs ln(4/3) and 0.5 ln(4/3).
        let mixed = array![[1.0, 0.0], [0.5, 0.5]];
        let expected = (4.0f64 / 3.0).powf(0.75);
        assert!((inception_score(mixed.view()) - expected).abs() < 1e-12);
        assert!(inception_score(Array2::<f64>::zeros((0, 3)).view()).is_nan());
    }

    #[test]
    fn inception_score_splits_values() {
        let classes = 10;
        let one_hot = cycling_one_hot(100, classes);
        let (mean, sd) = inception_score_splits(one_hot.view(), DEFAULT_IS_SPLITS);
        assert!((mean - 10.0).abs() < 1e-12);
        assert!(sd.abs() < 1e-12);
        // Two splits: first half all class 0 (IS 1), second half rows [1,0],[0.5,0.5] alternating.
        let mut rows = vec![[1.0, 0.0]; 4];
        rows.extend([[1.0, 0.0], [0.5, 0.5], [1.0, 0.0], [0.5, 0.5]]);
        let p = Array2::from_shape_fn((8, 2), |(i, c)| rows[i][c]);
        let s2 = (4.0f64 / 3.0).powf(0.75);
        let (mean, sd) = inception_score_splits(p.view(), 2);
        assert!((mean - (1.0 + s2) / 2.0).abs() < 1e-12);
        assert!((sd - (s2 - 1.0) / 2.0).abs() < 1e-12);
        // More splits than rows: clamped to one row per split, each scoring 1.
        let (mean, sd) = inception_score_splits(p.view(), 100);
        assert!((mean - 1.0).abs() < 1e-12 && sd.abs() < 1e-12);
    }

    #[test]
    fn histogram_ties_go_low() {
        let probs = array![
            [0.5, 0.5, 0.0],
            [0.2, 0.4, 0.4],
            [0.0, 0.0, 1.0],
            [0.3, 0.3, 0.3],
            [f64::NAN, 0.1, 0.2]
        ];
        assert_eq!(class_histogram(probs.view()), vec![2, 1, 2]);
        assert!(class_histogram(Array2::<f64>::zeros((3, 0)).view()).is_empty());
    }

    #[test]
    fn kl_from_uniform_values() {
        assert!(kl_from_uniform(&[5, 5, 5, 5]).abs() < 1e-15);
        assert!((kl_from_uniform(&[0, 7, 0]) - 3f64.ln()).abs() < 1e-15);
        let mut one_class = vec![0usize; 10];
        one_class[9] = 4;
        assert!((kl_from_uniform(&one_class) - 10f64.ln()).abs() < 1e-15);
        let expected = 0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln();
        assert!((kl_from_uniform(&[3, 1]) - expected).abs() < 1e-15);
        assert!(kl_from_uniform(&[0, 0]).is_nan());
        assert!(kl_from_uniform(&[]).is_nan());
    }
}
