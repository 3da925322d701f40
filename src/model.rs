//! The seed's DCGAN: `Generator` and `Discriminator`, exactly as `METHOD.md` section 1 states.
//!
//! Build with `Generator::new(&cfg, seed, &device)`; call `forward` for images or
//! `forward_with_activations` for images plus the named unit maps (`gen.block1`, `gen.block2`,
//! `gen.out`) that the similarity engine compares. Weights are initialised from our own seeded
//! RNG (not burn's), so the same seed gives the same network on every machine.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{leaky_relu, sigmoid, tanh};
use burn::tensor::module::{batch_norm, batch_norm_train};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};
use serde::{Deserialize, Serialize};

mod upconv;
pub use upconv::{UpConvOps, transposed_kernel, up_conv, upsample_nearest2};

/// Size of the latent code z.
pub const LATENT_DIM: usize = 100;
/// Side of the square images the GAN makes and sees (Fashion-MNIST resized from 28).
pub const IMG_SIZE: usize = 32;
/// Slope of every LeakyReLU in both networks.
pub const LEAKY_SLOPE: f64 = 0.2;
/// Probability of zeroing a whole channel in the discriminator's Dropout2d.
pub const DROPOUT_P: f64 = 0.25;
/// BatchNorm momentum, PyTorch convention: `running = (1 - m) running + m batch`.
pub const BN_MOMENTUM: f64 = 0.1;

/// Names of the generator layers whose units are compared, in unit order.
pub const GEN_LAYERS: [&str; 3] = ["gen.block1", "gen.block2", "gen.out"];

/// Architecture options shared by the generator and the discriminator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Multiplies every channel count (1.0 is the reference; 0.125 is the test size).
    pub width: f64,
    /// Epsilon of the BatchNorms that follow convolutions. The reference passes 0.8 as
    /// BatchNorm2d's second positional argument, which is eps; we reproduce it by default so
    /// that reference checkpoints behave identically.
    pub bn_eps: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            width: 1.0,
            bn_eps: 0.8,
        }
    }
}

impl ModelConfig {
    /// Channel count `round(base * width)`, at least 1.
    pub fn channels(&self, base: usize) -> usize {
        ((base as f64 * self.width).round() as usize).max(1)
    }

    /// Checks that the width is positive and finite.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.width.is_finite() && self.width > 0.0) {
            return Err(format!("width must be positive, got {}", self.width));
        }
        if !(self.bn_eps.is_finite() && self.bn_eps > 0.0) {
            return Err(format!("bn_eps must be positive, got {}", self.bn_eps));
        }
        Ok(())
    }
}

/// The seed's generator.
///
/// `l1`: Linear(100 -> 128w*8*8); `bn0`: BatchNorm2d(128w, eps 1e-5); up x2; `conv1`
/// 3x3 (128w -> 128w); `bn1` (eps 0.8); LeakyReLU -> **block1**; up x2; `conv2` 3x3
/// (128w -> 64w); `bn2` (eps 0.8); LeakyReLU -> **block2**; `conv_out` 3x3 (64w -> 1); tanh ->
/// **out**. Field names map one to one onto the PyTorch keys (`l1.0`, `conv_blocks.{0,2,3,6,7,9}`).
#[derive(Module, Debug)]
pub struct Generator {
    /// Linear(100 -> 128w * 8 * 8).
    pub l1: Linear,
    /// BatchNorm2d(128w) on the reshaped linear output (eps 1e-5).
    pub bn0: BatchNorm,
    /// Conv 3x3 after the first nearest x2 upsample.
    pub conv1: Conv2d,
    /// BatchNorm of block1 (eps = `bn_eps`).
    pub bn1: BatchNorm,
    /// Conv 3x3 after the second nearest x2 upsample.
    pub conv2: Conv2d,
    /// BatchNorm of block2 (eps = `bn_eps`).
    pub bn2: BatchNorm,
    /// Output conv 3x3 to one channel, followed by tanh.
    pub conv_out: Conv2d,
}

/// The generated image and the named unit maps on the way to it.
#[derive(Debug, Clone)]
pub struct GeneratorOutput {
    /// `[batch, 1, 32, 32]` in [-1, 1].
    pub image: Tensor<4>,
    /// `(layer name, [batch, channels, h, w])` in unit order: block1, block2, out.
    pub activations: Vec<(String, Tensor<4>)>,
}

impl GeneratorOutput {
    /// The output of one pass from its block1 and block2 maps and its image, named as
    /// [`GEN_LAYERS`].
    pub fn from_maps(block1: Tensor<4>, block2: Tensor<4>, image: Tensor<4>) -> Self {
        Self {
            image: image.clone(),
            activations: vec![
                (GEN_LAYERS[0].to_string(), block1),
                (GEN_LAYERS[1].to_string(), block2),
                (GEN_LAYERS[2].to_string(), image),
            ],
        }
    }
}

impl Generator {
    /// A freshly initialised generator: conv weights ~ N(0, 0.02), BatchNorm weights ~
    /// N(1, 0.02) and biases 0 (the seed's `weights_init_normal`); the linear layer and conv
    /// biases keep PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)). All draws come from
    /// `ChaCha8Rng::seed_from_u64(seed)` in field order.
    pub fn new(cfg: &ModelConfig, seed: u64, device: &Device) -> Self {
        let c = cfg.channels(128);
        Self::with_channels(cfg, [c, c, cfg.channels(64)], seed, device)
    }

    /// A freshly initialised generator with `[c0, c1, c2]` channels (l1's maps, block1,
    /// block2), initialised as [`Generator::new`]: the architecture of a pruned generator.
    pub fn with_channels(
        cfg: &ModelConfig,
        [c0, c1, c2]: [usize; 3],
        seed: u64,
        device: &Device,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let init = 8 * 8;
        let mut l1 = LinearConfig::new(LATENT_DIM, c0 * init).init(device);
        torch_default_linear(&mut l1, LATENT_DIM, c0 * init, &mut rng, device);
        let bn = |c: usize, eps: f64, rng: &mut ChaCha8Rng| {
            let mut bn = BatchNormConfig::new(c)
                .with_epsilon(eps)
                .with_momentum(BN_MOMENTUM)
                .init(device);
            init_bn(&mut bn, c, rng, device);
            bn
        };
        let bn0 = bn(c0, 1e-5, &mut rng);
        let conv1 = conv3x3(c0, c1, 1, &mut rng, device);
        let bn1 = bn(c1, cfg.bn_eps, &mut rng);
        let conv2 = conv3x3(c1, c2, 1, &mut rng, device);
        let bn2 = bn(c2, cfg.bn_eps, &mut rng);
        let conv_out = conv3x3(c2, 1, 1, &mut rng, device);
        Self {
            l1,
            bn0,
            conv1,
            bn1,
            conv2,
            bn2,
            conv_out,
        }
    }

    /// `[c0, c1, c2]`: channels of l1's 8 x 8 maps, of block1 and of block2. The reference
    /// architecture has `[128w, 128w, 64w]`; a pruned generator has fewer in block1 or block2.
    pub fn channels(&self) -> [usize; 3] {
        [
            self.base_channels(),
            self.bn1.gamma.dims()[0],
            self.bn2.gamma.dims()[0],
        ]
    }

    /// Channels of the linear layer's reshaped output (= 128 * width).
    pub fn base_channels(&self) -> usize {
        self.bn0.gamma.dims()[0]
    }

    /// `(layer name, channels, side)` of the compared layers, in unit order.
    pub fn layer_shapes(&self) -> Vec<(String, usize, usize)> {
        let c1 = self.bn1.gamma.dims()[0];
        let c2 = self.bn2.gamma.dims()[0];
        vec![
            (GEN_LAYERS[0].to_string(), c1, 16),
            (GEN_LAYERS[1].to_string(), c2, 32),
            (GEN_LAYERS[2].to_string(), 1, 32),
        ]
    }

    /// Images only; see [`Generator::forward_with_activations`].
    pub fn forward(&self, z: Tensor<2>, train: bool) -> Tensor<4> {
        self.forward_with_activations(z, train).image
    }

    /// Images only, computing upsample + conv by `ops`.
    pub fn forward_ops(&self, z: Tensor<2>, train: bool, ops: UpConvOps) -> Tensor<4> {
        self.forward_with_activations_ops(z, train, ops).image
    }

    /// [`Generator::forward_with_activations_ops`] with the default (phase) up-convolution.
    pub fn forward_with_activations(&self, z: Tensor<2>, train: bool) -> GeneratorOutput {
        self.forward_with_activations_ops(z, train, UpConvOps::default())
    }

    /// Runs the generator and returns the image with the named activations.
    ///
    /// `train` selects batch statistics in BatchNorm (and updates the running statistics, as
    /// PyTorch's train mode does); otherwise the running statistics are used (eval mode).
    /// `ops` chooses how "upsample x2, conv 3x3" is computed; both give the same numbers up to
    /// float rounding.
    ///
    /// # Shapes
    /// - z: `[batch, 100]`
    /// - image: `[batch, 1, 32, 32]`
    pub fn forward_with_activations_ops(
        &self,
        z: Tensor<2>,
        train: bool,
        ops: UpConvOps,
    ) -> GeneratorOutput {
        if !train {
            return self.forward_eval(z, ops);
        }
        let [batch, _] = z.dims();
        let c0 = self.base_channels();
        let x = self.l1.forward(z); // [batch, 128w * 64]
        let x = x.reshape([batch, c0, 8, 8]); // [batch, 128w, 8, 8]
        let x = bn_forward(&self.bn0, x, train);
        let up_conv = |x, conv: &Conv2d| {
            up_conv(
                x,
                conv.weight.val(),
                conv.bias.as_ref().map(|b| b.val()),
                ops,
            )
        };
        let x = up_conv(x, &self.conv1); // upsample to 16 x 16, conv: [batch, 128w, 16, 16]
        let block1 = leaky_relu(bn_forward(&self.bn1, x, train), LEAKY_SLOPE);
        let x = up_conv(block1.clone(), &self.conv2); // up to 32 x 32: [batch, 64w, 32, 32]
        let block2 = leaky_relu(bn_forward(&self.bn2, x, train), LEAKY_SLOPE);
        let out = tanh(self.conv_out.forward(block2.clone())); // [batch, 1, 32, 32]
        GeneratorOutput::from_maps(block1, block2, out)
    }

    /// Eval mode with every BatchNorm folded into the layer before it, so that no separate
    /// normalisation pass runs: with `s = gamma / sqrt(running_var + eps)` per channel, the
    /// layer's weights become `s W` and its bias `s (b - running_mean) + beta`. Same numbers as
    /// the unfolded eval path up to float rounding (tested against PyTorch fixtures). Built from
    /// the three stages below, which interventions use to edit a map between stages.
    fn forward_eval(&self, z: Tensor<2>, ops: UpConvOps) -> GeneratorOutput {
        let block1 = self.eval_block1(z, ops);
        let block2 = self.eval_block2(block1.clone(), ops);
        let out = self.eval_image(block2.clone());
        GeneratorOutput::from_maps(block1, block2, out)
    }

    /// Eval stage 1: z to the block1 map (l1 and bn0 folded, up-conv with bn1 folded,
    /// LeakyReLU).
    ///
    /// # Shapes
    /// - z: `[batch, 100]`; output: `[batch, 128w, 16, 16]`
    pub fn eval_block1(&self, z: Tensor<2>, ops: UpConvOps) -> Tensor<4> {
        let [batch, _] = z.dims();
        let c0 = self.base_channels();
        // l1's columns are channel-major: column j feeds channel j / 64 of the 8 x 8 map.
        let (s0, t0) = bn_scale_shift(&self.bn0);
        let per_column = |v: Tensor<1>| v.reshape([c0, 1]).repeat_dim(1, 64).reshape([1, c0 * 64]);
        let (s0, t0) = (per_column(s0), per_column(t0));
        let w = self.l1.weight.val() * s0.clone();
        let b = match &self.l1.bias {
            Some(b) => b.val().reshape([1, c0 * 64]) * s0 + t0,
            None => t0,
        };
        let x = (z.matmul(w) + b).reshape([batch, c0, 8, 8]);
        folded_up_conv(x, &self.conv1, &self.bn1, ops)
    }

    /// Eval stage 2: a (possibly edited) block1 map to the block2 map.
    ///
    /// # Shapes
    /// - block1: `[batch, 128w, 16, 16]`; output: `[batch, 64w, 32, 32]`
    pub fn eval_block2(&self, block1: Tensor<4>, ops: UpConvOps) -> Tensor<4> {
        folded_up_conv(block1, &self.conv2, &self.bn2, ops)
    }

    /// Eval stage 3: a (possibly edited) block2 map to the image (conv_out, tanh).
    ///
    /// # Shapes
    /// - block2: `[batch, 64w, 32, 32]`; output: `[batch, 1, 32, 32]`
    pub fn eval_image(&self, block2: Tensor<4>) -> Tensor<4> {
        tanh(self.conv_out.forward(block2))
    }
}

/// Upsample x2 and conv 3x3 with the following eval-mode BatchNorm folded into the weights,
/// then LeakyReLU.
fn folded_up_conv(x: Tensor<4>, conv: &Conv2d, bn: &BatchNorm, ops: UpConvOps) -> Tensor<4> {
    let (s, t) = bn_scale_shift(bn);
    let c = s.dims()[0];
    let w = conv.weight.val() * s.clone().reshape([c, 1, 1, 1]);
    let b = match &conv.bias {
        Some(b) => b.val() * s + t,
        None => t,
    };
    leaky_relu(up_conv(x, w, Some(b), ops), LEAKY_SLOPE)
}

/// The seed's discriminator: four blocks `Conv 3x3 stride 2 ; LeakyReLU ; Dropout2d(0.25) ;
/// BatchNorm(eps 0.8)` (no BatchNorm in the first), channels 1 -> 16 -> 32 -> 64 -> 128 (times
/// width), then Linear(128w * 2 * 2 -> 1) and a sigmoid.
#[derive(Module, Debug)]
pub struct Discriminator {
    /// Conv 1 -> 16w, stride 2.
    pub conv1: Conv2d,
    /// Conv 16w -> 32w, stride 2.
    pub conv2: Conv2d,
    /// BatchNorm after conv2.
    pub bn2: BatchNorm,
    /// Conv 32w -> 64w, stride 2.
    pub conv3: Conv2d,
    /// BatchNorm after conv3.
    pub bn3: BatchNorm,
    /// Conv 64w -> 128w, stride 2.
    pub conv4: Conv2d,
    /// BatchNorm after conv4.
    pub bn4: BatchNorm,
    /// Linear(128w * 2 * 2 -> 1).
    pub head: Linear,
}

impl Discriminator {
    /// A freshly initialised discriminator (same init rules as [`Generator::new`]).
    pub fn new(cfg: &ModelConfig, seed: u64, device: &Device) -> Self {
        let ch = [1, cfg.channels(16), cfg.channels(32), cfg.channels(64)];
        let c4 = cfg.channels(128);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let bn = |c: usize, rng: &mut ChaCha8Rng| {
            let mut bn = BatchNormConfig::new(c)
                .with_epsilon(cfg.bn_eps)
                .with_momentum(BN_MOMENTUM)
                .init(device);
            init_bn(&mut bn, c, rng, device);
            bn
        };
        let conv1 = conv3x3(ch[0], ch[1], 2, &mut rng, device);
        let conv2 = conv3x3(ch[1], ch[2], 2, &mut rng, device);
        let bn2 = bn(ch[2], &mut rng);
        let conv3 = conv3x3(ch[2], ch[3], 2, &mut rng, device);
        let bn3 = bn(ch[3], &mut rng);
        let conv4 = conv3x3(ch[3], c4, 2, &mut rng, device);
        let bn4 = bn(c4, &mut rng);
        let mut head = LinearConfig::new(c4 * 4, 1).init(device);
        torch_default_linear(&mut head, c4 * 4, 1, &mut rng, device);
        Self {
            conv1,
            conv2,
            bn2,
            conv3,
            bn3,
            conv4,
            bn4,
            head,
        }
    }

    /// Probability that each image is real.
    ///
    /// `dropout`: `Some(rng)` is train mode (Dropout2d masks drawn from `rng`, BatchNorm on
    /// batch statistics); `None` is eval mode.
    ///
    /// # Shapes
    /// - images: `[batch, 1, 32, 32]`
    /// - output: `[batch, 1]`
    pub fn forward(&self, images: Tensor<4>, mut dropout: Option<&mut ChaCha8Rng>) -> Tensor<2> {
        let train = dropout.is_some();
        let mut block = |x: Tensor<4>, conv: &Conv2d, bn: Option<&BatchNorm>| {
            let x = leaky_relu(conv.forward(x), LEAKY_SLOPE);
            let x = match dropout.as_deref_mut() {
                Some(rng) => dropout2d(x, DROPOUT_P, rng),
                None => x,
            };
            match bn {
                Some(bn) => bn_forward(bn, x, train),
                None => x,
            }
        };
        let x = block(images, &self.conv1, None); // [batch, 16w, 16, 16]
        let x = block(x, &self.conv2, Some(&self.bn2)); // [batch, 32w, 8, 8]
        let x = block(x, &self.conv3, Some(&self.bn3)); // [batch, 64w, 4, 4]
        let x = block(x, &self.conv4, Some(&self.bn4)); // [batch, 128w, 2, 2]
        let [batch, c, h, w] = x.dims();
        sigmoid(self.head.forward(x.reshape([batch, c * h * w])))
    }
}

/// Eval-mode BatchNorm as a per-channel affine map `y = s x + t`:
/// `s = gamma / sqrt(running_var + eps)`, `t = beta - s running_mean`.
fn bn_scale_shift(bn: &BatchNorm) -> (Tensor<1>, Tensor<1>) {
    let s = bn.gamma.val() / bn.running_var.value().add_scalar(bn.epsilon).sqrt();
    let t = bn.beta.val() - s.clone() * bn.running_mean.value();
    (s, t)
}

/// BatchNorm2d with PyTorch semantics.
///
/// Train mode normalises with the biased batch variance and updates the running variance with
/// the *unbiased* one, `var * n / (n - 1)` with `n = batch * h * w` (burn's own layer uses the
/// biased one, which would drift from PyTorch checkpoints). Eval mode uses the running statistics.
pub fn bn_forward(bn: &BatchNorm, x: Tensor<4>, train: bool) -> Tensor<4> {
    if !train {
        return batch_norm(
            x,
            bn.gamma.val(),
            bn.beta.val(),
            bn.running_mean.value(),
            bn.running_var.value(),
            bn.epsilon,
        );
    }
    let [b, _, h, w] = x.dims();
    let n = (b * h * w) as f64;
    let out = batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    let m = bn.momentum;
    let unbias = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
    let mean = bn
        .running_mean
        .value_sync()
        .mul_scalar(1.0 - m)
        .add(out.mean.detach().mul_scalar(m));
    let var = bn
        .running_var
        .value_sync()
        .mul_scalar(1.0 - m)
        .add(out.variance.detach().mul_scalar(m * unbias));
    // burn's RunningState keeps an update pending per thread until the next read with
    // `value_sync`; sync now so that saving (which reads without syncing) sees this step.
    bn.running_mean.update(mean.detach());
    bn.running_var.update(var.detach());
    let _ = (bn.running_mean.value_sync(), bn.running_var.value_sync());
    out.output
}

/// Dropout2d: zeroes whole channels with probability `p` and scales survivors by `1/(1-p)`.
///
/// The `[batch, channels, 1, 1]` Bernoulli mask is drawn from `rng`, so training is
/// reproducible from the run seed.
pub fn dropout2d(x: Tensor<4>, p: f64, rng: &mut ChaCha8Rng) -> Tensor<4> {
    let [b, c, _, _] = x.dims();
    let keep = 1.0 - p;
    let scale = (1.0 / keep) as f32;
    let mask: Vec<f32> = (0..b * c)
        .map(|_| {
            if rng.random::<f64>() < keep {
                scale
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::<4>::from_data(TensorData::new(mask, [b, c, 1, 1]), &x.device());
    x * mask
}

/// Conv 3x3 (padding 1) with weights ~ N(0, 0.02) and PyTorch's default bias init.
pub(crate) fn conv3x3(
    cin: usize,
    cout: usize,
    stride: usize,
    rng: &mut ChaCha8Rng,
    dev: &Device,
) -> Conv2d {
    let mut conv = Conv2dConfig::new([cin, cout], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(dev);
    let normal = Normal::new(0.0f32, 0.02).expect("valid normal");
    let w: Vec<f32> = (0..cout * cin * 9).map(|_| normal.sample(rng)).collect();
    conv.weight = Param::from_data(TensorData::new(w, [cout, cin, 3, 3]), dev);
    let bound = 1.0 / ((cin * 9) as f32).sqrt();
    let b = uniform_vec(cout, bound, rng);
    conv.bias = Some(Param::from_data(TensorData::new(b, [cout]), dev));
    conv
}

/// PyTorch's default Linear init: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
/// burn stores the weight as `[d_in, d_out]` (PyTorch's transpose).
pub(crate) fn torch_default_linear(
    l: &mut Linear,
    d_in: usize,
    d_out: usize,
    rng: &mut ChaCha8Rng,
    dev: &Device,
) {
    let bound = 1.0 / (d_in as f32).sqrt();
    let w = uniform_vec(d_in * d_out, bound, rng);
    l.weight = Param::from_data(TensorData::new(w, [d_in, d_out]), dev);
    let b = uniform_vec(d_out, bound, rng);
    l.bias = Some(Param::from_data(TensorData::new(b, [d_out]), dev));
}

/// BatchNorm weight ~ N(1, 0.02), bias 0.
pub(crate) fn init_bn(bn: &mut BatchNorm, c: usize, rng: &mut ChaCha8Rng, dev: &Device) {
    let normal = Normal::new(1.0f32, 0.02).expect("valid normal");
    let g: Vec<f32> = (0..c).map(|_| normal.sample(rng)).collect();
    bn.gamma = Param::from_data(TensorData::new(g, [c]), dev);
    bn.beta = Param::from_data(TensorData::new(vec![0.0f32; c], [c]), dev);
}

fn uniform_vec(n: usize, bound: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let u = Uniform::new_inclusive(-bound, bound).expect("valid bound");
    (0..n).map(|_| u.sample(rng)).collect()
}

/// Total number of trainable scalars: every float parameter except BatchNorm's running
/// statistics (which burn's `num_params` counts too).
pub fn trainable_params<M: Module>(m: &M) -> usize {
    struct Count {
        path: Vec<String>,
        total: usize,
    }
    impl burn::module::ModuleVisitor for Count {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let last = self.path.last().map(String::as_str);
            if !matches!(last, Some("running_mean" | "running_var")) {
                self.total += param.shape().num_elements();
            }
        }
    }
    let mut count = Count {
        path: Vec::new(),
        total: 0,
    };
    m.visit(&mut count);
    count.total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Device {
        Device::flex()
    }

    fn z(n: usize) -> Tensor<2> {
        let v: Vec<f32> = (0..n * LATENT_DIM)
            .map(|i| ((i * 7919 % 200) as f32 / 100.0) - 1.0)
            .collect();
        Tensor::from_data(TensorData::new(v, [n, LATENT_DIM]), &dev())
    }

    #[test]
    fn reference_generator_has_the_papers_size() {
        let g = Generator::new(&ModelConfig::default(), 0, &dev());
        assert_eq!(trainable_params(&g), 1_049_985);
        let units: usize = g.layer_shapes().iter().map(|(_, c, _)| c).sum();
        assert_eq!(units, 193);
    }

    #[test]
    fn shapes_at_width_one_eighth() {
        let cfg = ModelConfig {
            width: 0.125,
            bn_eps: 0.8,
        };
        let g = Generator::new(&cfg, 0, &dev());
        let out = g.forward_with_activations(z(3), false);
        assert_eq!(out.image.dims(), [3, 1, 32, 32]);
        let dims: Vec<[usize; 4]> = out.activations.iter().map(|(_, t)| t.dims()).collect();
        assert_eq!(dims, vec![[3, 16, 16, 16], [3, 8, 32, 32], [3, 1, 32, 32]]);
        let names: Vec<&str> = out.activations.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, GEN_LAYERS);
        let d = Discriminator::new(&cfg, 0, &dev());
        let p = d.forward(out.image, None);
        assert_eq!(p.dims(), [3, 1]);
        let p: Vec<f32> = p.into_data().try_into_vec().unwrap();
        assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn image_is_in_tanh_range() {
        let g = Generator::new(
            &ModelConfig {
                width: 0.125,
                bn_eps: 0.8,
            },
            1,
            &dev(),
        );
        let v: Vec<f32> = g.forward(z(4), false).into_data().try_into_vec().unwrap();
        assert!(v.iter().all(|x| (-1.0..=1.0).contains(x)));
    }

    #[test]
    fn batchnorm_train_uses_batch_stats_and_updates_running_unbiased() {
        let cfg = ModelConfig {
            width: 0.125,
            bn_eps: 0.8,
        };
        let g = Generator::new(&cfg, 2, &dev());
        let x: Vec<f32> = (0..2 * 16 * 2 * 2).map(|i| (i % 5) as f32).collect();
        let t = Tensor::<4>::from_data(TensorData::new(x.clone(), [2, 16, 2, 2]), &dev());
        let before_eval: Vec<f32> = bn_forward(&g.bn0, t.clone(), false)
            .into_data()
            .try_into_vec()
            .unwrap();
        let train: Vec<f32> = bn_forward(&g.bn0, t.clone(), true)
            .into_data()
            .try_into_vec()
            .unwrap();
        assert_ne!(before_eval, train, "train and eval modes differ");
        // Running statistics after one step, computed by hand for channel 0.
        let ch0: Vec<f64> = [0, 1, 2, 3, 64, 65, 66, 67]
            .iter()
            .map(|&i| x[i] as f64)
            .collect();
        let mean = ch0.iter().sum::<f64>() / 8.0;
        let var_unbiased = ch0.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 7.0;
        let rm: Vec<f32> = g
            .bn0
            .running_mean
            .value()
            .into_data()
            .try_into_vec()
            .unwrap();
        let rv: Vec<f32> = g
            .bn0
            .running_var
            .value()
            .into_data()
            .try_into_vec()
            .unwrap();
        assert!(
            (rm[0] as f64 - 0.1 * mean).abs() < 1e-6,
            "{} vs {}",
            rm[0],
            0.1 * mean
        );
        assert!((rv[0] as f64 - (0.9 + 0.1 * var_unbiased)).abs() < 1e-5);
        // Train mode normalises each channel to mean beta = 0 over the batch.
        let c0_mean: f32 = (0..2)
            .flat_map(|n| (0..4).map(move |k| n * 64 + k))
            .map(|i| train[i])
            .sum::<f32>()
            / 8.0;
        assert!(c0_mean.abs() < 1e-5);
    }

    #[test]
    fn dropout2d_zeroes_whole_channels_and_rescales() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let x = Tensor::<4>::ones([4, 32, 3, 3], &dev());
        let y: Vec<f32> = dropout2d(x, 0.25, &mut rng)
            .into_data()
            .try_into_vec()
            .unwrap();
        let mut zeroed = 0;
        for ch in y.chunks(9) {
            assert!(ch.iter().all(|&v| v == ch[0]), "a channel is dropped whole");
            assert!(ch[0] == 0.0 || (ch[0] - 1.0 / 0.75).abs() < 1e-6);
            zeroed += (ch[0] == 0.0) as usize;
        }
        // 128 channels at p = 0.25: 32 expected, sd ~4.9.
        assert!((12..=52).contains(&zeroed), "{zeroed} of 128 dropped");
    }

    #[test]
    fn discriminator_eval_is_deterministic_and_train_is_not() {
        let cfg = ModelConfig {
            width: 0.125,
            bn_eps: 0.8,
        };
        let d = Discriminator::new(&cfg, 3, &dev());
        let img = Generator::new(&cfg, 3, &dev()).forward(z(8), false);
        let e1: Vec<f32> = d
            .forward(img.clone(), None)
            .into_data()
            .try_into_vec()
            .unwrap();
        let e2: Vec<f32> = d
            .forward(img.clone(), None)
            .into_data()
            .try_into_vec()
            .unwrap();
        assert_eq!(e1, e2);
        let mut r1 = ChaCha8Rng::seed_from_u64(1);
        let mut r2 = ChaCha8Rng::seed_from_u64(2);
        let t1: Vec<f32> = d
            .forward(img.clone(), Some(&mut r1))
            .into_data()
            .try_into_vec()
            .unwrap();
        let t2: Vec<f32> = d
            .forward(img, Some(&mut r2))
            .into_data()
            .try_into_vec()
            .unwrap();
        assert_ne!(t1, t2, "different dropout masks give different outputs");
    }

    #[test]
    fn same_seed_same_weights() {
        let cfg = ModelConfig {
            width: 0.125,
            bn_eps: 0.8,
        };
        let a: Vec<f32> = Generator::new(&cfg, 5, &dev())
            .forward(z(2), false)
            .into_data()
            .try_into_vec()
            .unwrap();
        let b: Vec<f32> = Generator::new(&cfg, 5, &dev())
            .forward(z(2), false)
            .into_data()
            .try_into_vec()
            .unwrap();
        let c: Vec<f32> = Generator::new(&cfg, 6, &dev())
            .forward(z(2), false)
            .into_data()
            .try_into_vec()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
