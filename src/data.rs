//! Fashion-MNIST from local IDX files (plain or `.gz`), preprocessed exactly like the PyTorch reference.
//! Use: `let ds = FashionMnist::load(&resolve_data_dir(flag), Split::Train, None)?;` then read
//! `ds.image(i)` (32x32 f32 in [-1, 1]) and `ds.labels()`; `fetch` downloads the files, verified.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

mod fetch;
pub use fetch::{FetchSpec, OFFICIAL_MIRROR, PINNED, PinnedFile, fetch, fetch_with};

/// Directory where the Debian package `dataset-fashion-mnist` installs the four `.gz` files.
pub const DEFAULT_DATA_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Environment variable naming the data directory (used when no CLI flag is given).
pub const DATA_DIR_ENV: &str = "UNITMATCH_DATA";
/// Side length of a raw Fashion-MNIST image.
pub const RAW_SIDE: usize = 28;
/// Side length of a preprocessed image (after `Resize(32)`).
pub const SIDE: usize = 32;
/// Number of classes; every label is below this.
pub const NUM_CLASSES: u8 = 10;

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;
/// Cap on the up-front buffer reservation while reading (the header may claim any size).
const RESERVE_CAP_BYTES: u64 = 64 << 20;

/// Everything that can go wrong reading or fetching the data; every variant names the file or URL.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A dataset file is missing (neither the plain nor the `.gz` name exists).
    #[error(
        "Fashion-MNIST file {file} (or {file}.gz) not found in {dir}; install the Debian package: \
         apt-get install -y dataset-fashion-mnist (it installs to {DEFAULT_DATA_DIR}), \
         or run: unitmatch data fetch --dir {dir}"
    )]
    NotFound {
        /// Directory searched.
        dir: PathBuf,
        /// Base file name looked for (without `.gz`).
        file: String,
    },
    /// An operating-system I/O error on `path`.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// The IDX magic number is not the expected one.
    #[error(
        "{path} is not an IDX file of the expected kind: magic 0x{found:08x}, expected 0x{expected:08x}"
    )]
    BadMagic {
        /// File read.
        path: PathBuf,
        /// Magic number found.
        found: u32,
        /// Magic number expected.
        expected: u32,
    },
    /// The (decompressed) file is shorter than its header says.
    #[error("{path} is truncated: header implies {expected_bytes} bytes, found {found_bytes}")]
    Truncated {
        /// File read.
        path: PathBuf,
        /// Length implied by the header (or the header length if it is cut short).
        expected_bytes: u64,
        /// Length found (after decompression).
        found_bytes: u64,
    },
    /// The (decompressed) file is longer than its header says.
    #[error(
        "{path} has trailing bytes: header implies {expected_bytes} bytes, found {found_bytes}"
    )]
    TrailingBytes {
        /// File read.
        path: PathBuf,
        /// Length implied by the header.
        expected_bytes: u64,
        /// Length found (after decompression).
        found_bytes: u64,
    },
    /// The image and label files hold different numbers of items.
    #[error("{images_path} has {images} images but {labels_path} has {labels} labels")]
    CountMismatch {
        /// Image file.
        images_path: PathBuf,
        /// Number of images.
        images: usize,
        /// Label file.
        labels_path: PathBuf,
        /// Number of labels.
        labels: usize,
    },
    /// A label is not in `0..10`.
    #[error("{path}: label {label} at index {index} is out of range 0..{NUM_CLASSES}")]
    LabelOutOfRange {
        /// Label file.
        path: PathBuf,
        /// Index of the bad label.
        index: usize,
        /// The bad label.
        label: u8,
    },
    /// The file starts with the gzip magic but its stream is corrupt.
    #[error("{path} is a corrupt gzip stream: {source}")]
    Gzip {
        /// File read.
        path: PathBuf,
        /// Decoder error.
        source: io::Error,
    },
    /// Content is valid IDX but not usable here (e.g. images not 28x28), or bad input to a writer.
    #[error("{path}: {reason}")]
    Invalid {
        /// File involved.
        path: PathBuf,
        /// What is wrong, with expected and found values.
        reason: String,
    },
    /// A downloaded file does not have the pinned SHA-256; it was discarded.
    #[error(
        "checksum mismatch for {path}: expected sha256 {expected}, found {found} (download discarded)"
    )]
    Checksum {
        /// Destination the file would have had.
        path: PathBuf,
        /// Pinned SHA-256 (hex).
        expected: String,
        /// SHA-256 of what was received (hex).
        found: String,
    },
    /// The HTTP request failed (connection, status code, or body read).
    #[error("download of {url} failed: {message}")]
    Http {
        /// URL requested.
        url: String,
        /// What went wrong.
        message: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Raw IDX image data: `n` images of `rows x cols` u8 pixels, row-major, image after image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub n: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `n * rows * cols` pixels.
    pub pixels: Vec<u8>,
}

/// A parsed IDX file: dimensions, payload, and SHA-256 of the file bytes and of the IDX bytes.
struct Idx {
    dims: Vec<usize>,
    payload: Vec<u8>,
    file_sha256: String,
    idx_sha256: String,
}

/// Appends up to `n` bytes to `out`; fewer means end of stream. Errors become `Gzip` when `gz`.
fn read_upto(
    r: &mut impl Read,
    n: u64,
    path: &Path,
    gz: bool,
    out: &mut Vec<u8>,
) -> Result<(), DataError> {
    r.take(n)
        .read_to_end(out)
        .map(|_| ())
        .map_err(stream_err(path, gz))
}

/// Maps a read error on the (possibly decompressing) stream of `path` to `Gzip` or `Io`.
fn stream_err(path: &Path, gz: bool) -> impl FnOnce(io::Error) -> DataError + '_ {
    move |source| match gz {
        true => DataError::Gzip {
            path: path.to_path_buf(),
            source,
        },
        false => DataError::Io {
            path: path.to_path_buf(),
            source,
        },
    }
}

fn parse_idx(
    mut r: impl Read,
    path: &Path,
    magic: u32,
    gz: bool,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let truncated = |expected: u64, found: usize| DataError::Truncated {
        path: path.to_path_buf(),
        expected_bytes: expected,
        found_bytes: found as u64,
    };
    let mut buf = Vec::new();
    read_upto(&mut r, 4, path, gz, &mut buf)?;
    if buf.len() < 4 {
        return Err(truncated(4, buf.len()));
    }
    let found = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found,
            expected: magic,
        });
    }
    let header = 4 + 4 * (magic & 0xff) as u64;
    read_upto(&mut r, header - 4, path, gz, &mut buf)?;
    if (buf.len() as u64) < header {
        return Err(truncated(header, buf.len()));
    }
    let dims: Vec<usize> = buf[4..]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let body = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
    let Some(expected) = body.and_then(|b| b.checked_add(header)) else {
        let reason = format!("dimensions {dims:?} overflow");
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            reason,
        });
    };
    buf.reserve(expected.min(RESERVE_CAP_BYTES) as usize);
    // Read one byte past the expected end to detect trailing garbage without unbounded memory.
    read_upto(&mut r, expected - header + 1, path, gz, &mut buf)?;
    if (buf.len() as u64) < expected {
        return Err(truncated(expected, buf.len()));
    }
    if buf.len() as u64 > expected {
        let rest = io::copy(&mut r, &mut io::sink()).map_err(stream_err(path, gz))?;
        return Err(DataError::TrailingBytes {
            path: path.to_path_buf(),
            expected_bytes: expected,
            found_bytes: buf.len() as u64 + rest,
        });
    }
    Ok((dims, buf))
}

/// Reads an IDX file (gzip detected by the magic bytes `1f 8b`, not by the name) and hashes it.
fn read_idx(path: &Path, magic: u32) -> Result<Idx, DataError> {
    let raw = fs::read(path).map_err(io_err(path))?;
    let file_sha256 = hex(&Sha256::digest(&raw));
    let (dims, whole) = if raw.starts_with(&[0x1f, 0x8b]) {
        parse_idx(MultiGzDecoder::new(raw.as_slice()), path, magic, true)?
    } else {
        parse_idx(raw.as_slice(), path, magic, false)?
    };
    let idx_sha256 = hex(&Sha256::digest(&whole));
    let mut payload = whole;
    payload.drain(..4 + 4 * dims.len());
    Ok(Idx {
        dims,
        payload,
        file_sha256,
        idx_sha256,
    })
}

fn images_from_idx(idx: Idx) -> IdxImages {
    IdxImages {
        n: idx.dims[0],
        rows: idx.dims[1],
        cols: idx.dims[2],
        pixels: idx.payload,
    }
}

fn check_labels(path: &Path, labels: &[u8]) -> Result<(), DataError> {
    match labels.iter().position(|&l| l >= NUM_CLASSES) {
        Some(index) => Err(DataError::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            label: labels[index],
        }),
        None => Ok(()),
    }
}

/// Reads an IDX image file (magic `0x00000803`: dims n, rows, cols; u8 pixels), plain or gzip.
/// The length must equal header + n*rows*cols exactly.
pub fn read_idx_images(path: &Path) -> Result<IdxImages, DataError> {
    read_idx(path, IMAGES_MAGIC).map(images_from_idx)
}

/// Reads an IDX label file (magic `0x00000801`: dim n; u8 labels), plain or gzip; labels must be < 10.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let labels = read_idx(path, LABELS_MAGIC)?.payload;
    check_labels(path, &labels)?;
    Ok(labels)
}

fn write_idx(
    path: &Path,
    magic: u32,
    dims: &[usize],
    data: &[u8],
    gzip: bool,
) -> Result<(), DataError> {
    let mut bytes = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    bytes.extend_from_slice(&magic.to_be_bytes());
    for &d in dims {
        let d = u32::try_from(d).map_err(|_| DataError::Invalid {
            path: path.to_path_buf(),
            reason: format!("dimension {d} does not fit in u32"),
        })?;
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    if gzip {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&bytes).map_err(io_err(path))?;
        bytes = enc.finish().map_err(io_err(path))?;
    }
    fs::write(path, bytes).map_err(io_err(path))
}

/// Writes `images` as an IDX image file (gzip-compressed when `gzip`); for fixtures and small test sets.
pub fn write_idx_images(path: &Path, images: &IdxImages, gzip: bool) -> Result<(), DataError> {
    let expected = images
        .n
        .checked_mul(images.rows)
        .and_then(|v| v.checked_mul(images.cols));
    if expected != Some(images.pixels.len()) {
        let reason = format!(
            "{}x{}x{} images need {expected:?} pixels, found {}",
            images.n,
            images.rows,
            images.cols,
            images.pixels.len()
        );
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            reason,
        });
    }
    write_idx(
        path,
        IMAGES_MAGIC,
        &[images.n, images.rows, images.cols],
        &images.pixels,
        gzip,
    )
}

/// Writes `labels` as an IDX label file (gzip-compressed when `gzip`); labels must be < 10.
pub fn write_idx_labels(path: &Path, labels: &[u8], gzip: bool) -> Result<(), DataError> {
    check_labels(path, labels)?;
    write_idx(path, LABELS_MAGIC, &[labels.len()], labels, gzip)
}

/// The data directory: the CLI flag if given, else `$UNITMATCH_DATA` if set and non-empty,
/// else [`DEFAULT_DATA_DIR`].
pub fn resolve_data_dir(cli: Option<&Path>) -> PathBuf {
    match (cli, std::env::var_os(DATA_DIR_ENV)) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(env)) if !env.is_empty() => PathBuf::from(env),
        _ => PathBuf::from(DEFAULT_DATA_DIR),
    }
}

/// Which half of Fashion-MNIST: 60,000 training or 10,000 test items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// `train-*` files, 60,000 items.
    Train,
    /// `t10k-*` files, 10,000 items.
    Test,
}

impl Split {
    /// Base names (without `.gz`) of the image and label files of this split.
    pub fn file_names(self) -> (&'static str, &'static str) {
        match self {
            Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        }
    }
}

/// PIL's bilinear coefficients for 28 -> 32: per output index, first source index, count, and
/// weights in 22-bit fixed point (`PRECISION_BITS = 32 - 8 - 2` in Pillow's `Resample.c`).
fn pil_coeffs() -> [(usize, usize, [i64; 3]); SIDE] {
    let scale = RAW_SIDE as f64 / SIDE as f64; // < 1, so the filter is not widened: support 1
    let mut out = [(0, 0, [0i64; 3]); SIDE];
    for (xx, slot) in out.iter_mut().enumerate() {
        let center = (xx as f64 + 0.5) * scale;
        let xmin = ((center - 1.0 + 0.5) as i64).max(0) as usize; // C `(int)` truncation
        let xmax = ((center + 1.0 + 0.5) as i64).min(RAW_SIDE as i64) as usize - xmin;
        let mut w = [0f64; 3];
        for (x, wx) in w.iter_mut().enumerate().take(xmax) {
            *wx = (1.0 - ((x + xmin) as f64 - center + 0.5).abs()).max(0.0);
        }
        let ww: f64 = w.iter().sum();
        let mut k = [0i64; 3];
        for x in 0..xmax {
            k[x] = (0.5 + w[x] / ww * f64::from(1u32 << 22)) as i64;
        }
        *slot = (xmin, xmax, k);
    }
    out
}

/// Resizes a 28x28 u8 image (row-major) to 32x32 exactly like Pillow's `Image.resize((32, 32),
/// BILINEAR)`, which is what torchvision's `Resize(32)` calls on a PIL image.
///
/// Per axis, output index `d` samples the source at `s = (d + 0.5) * 28/32 - 0.5` with the triangle
/// filter `w(i) = max(0, 1 - |i - s|)` over the source pixels `i` inside the image, weights divided
/// by their sum (this equals clamping at the edges). As in Pillow, weights are rounded to 22-bit
/// fixed point, the horizontal pass runs first and is rounded back to u8 (round half up, clamp to
/// 0..=255), then the vertical pass likewise. Because the fixed-point arithmetic and intermediate
/// rounding are reproduced, the result is bit-identical to Pillow 13.0 on all 70,000 Fashion-MNIST
/// images (max |diff| 0, 0 of 71,680,000 pixels differ; see `tests/fixtures/make_resize_fixture.py`).
/// Returns `None` when `src` does not hold exactly 784 pixels.
pub fn resize_28_to_32(src: &[u8]) -> Option<[u8; SIDE * SIDE]> {
    if src.len() != RAW_SIDE * RAW_SIDE {
        return None;
    }
    let coeffs = pil_coeffs();
    let round = |acc: i64| ((acc + (1 << 21)) >> 22).clamp(0, 255) as u8;
    let mut tmp = [0u8; RAW_SIDE * SIDE];
    for y in 0..RAW_SIDE {
        for (xx, &(xmin, cnt, k)) in coeffs.iter().enumerate() {
            let row = &src[y * RAW_SIDE + xmin..y * RAW_SIDE + xmin + cnt];
            tmp[y * SIDE + xx] = round(row.iter().zip(k).map(|(&p, w)| i64::from(p) * w).sum());
        }
    }
    let mut out = [0u8; SIDE * SIDE];
    for (yy, &(ymin, cnt, k)) in coeffs.iter().enumerate() {
        for xx in 0..SIDE {
            let acc: i64 = (0..cnt)
                .map(|y| i64::from(tmp[(ymin + y) * SIDE + xx]) * k[y])
                .sum();
            out[yy * SIDE + xx] = round(acc);
        }
    }
    Some(out)
}

/// `ToTensor()` then `Normalize([0.5], [0.5])` in f32, as torchvision computes it: `(v/255 - 0.5)/0.5`.
pub fn normalize_pixel(v: u8) -> f32 {
    (f32::from(v) / 255.0 - 0.5) / 0.5
}

/// One split of Fashion-MNIST, preprocessed: images `[n, 32, 32]` f32 in [-1, 1], labels in 0..10.
#[derive(Debug, Clone)]
pub struct FashionMnist {
    images: Vec<f32>,
    labels: Vec<u8>,
    n: usize,
    /// (file name, SHA-256 of file bytes, SHA-256 of decompressed IDX bytes), images then labels.
    sources: Vec<(String, String, String)>,
}

/// Finds `base` or `base.gz` in `dir` (the `.gz` name, as shipped by Debian and `fetch`, first).
fn locate(dir: &Path, base: &str) -> Result<PathBuf, DataError> {
    [dir.join(format!("{base}.gz")), dir.join(base)]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| DataError::NotFound {
            dir: dir.to_path_buf(),
            file: base.to_string(),
        })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl FashionMnist {
    /// Loads `split` from `dir` (plain or `.gz` files), keeping the first `limit` items if given,
    /// and preprocesses: PIL bilinear resize to 32x32, `/255`, `(x - 0.5) / 0.5`.
    pub fn load(dir: &Path, split: Split, limit: Option<usize>) -> Result<FashionMnist, DataError> {
        let (img_base, lbl_base) = split.file_names();
        let (img_path, lbl_path) = (locate(dir, img_base)?, locate(dir, lbl_base)?);
        let img = read_idx(&img_path, IMAGES_MAGIC)?;
        let lbl = read_idx(&lbl_path, LABELS_MAGIC)?;
        let mut sources = vec![];
        for (path, idx) in [(&img_path, &img), (&lbl_path, &lbl)] {
            sources.push((
                file_name(path),
                idx.file_sha256.clone(),
                idx.idx_sha256.clone(),
            ));
        }
        let raw = images_from_idx(img);
        if (raw.rows, raw.cols) != (RAW_SIDE, RAW_SIDE) {
            let reason = format!(
                "images are {}x{}, expected {RAW_SIDE}x{RAW_SIDE}",
                raw.rows, raw.cols
            );
            return Err(DataError::Invalid {
                path: img_path,
                reason,
            });
        }
        let mut labels = lbl.payload;
        check_labels(&lbl_path, &labels)?;
        if raw.n != labels.len() {
            return Err(DataError::CountMismatch {
                images_path: img_path,
                images: raw.n,
                labels_path: lbl_path,
                labels: labels.len(),
            });
        }
        let n = limit.map_or(raw.n, |l| l.min(raw.n));
        labels.truncate(n);
        let mut images = Vec::with_capacity(n * SIDE * SIDE);
        for src in raw.pixels.chunks_exact(RAW_SIDE * RAW_SIDE).take(n) {
            let resized = resize_28_to_32(src).unwrap_or([0; SIDE * SIDE]); // length checked above
            images.extend(resized.iter().map(|&v| normalize_pixel(v)));
        }
        Ok(FashionMnist {
            images,
            labels,
            n,
            sources,
        })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when no items were kept.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// All images, `[n, 32, 32]` row-major, values in [-1, 1].
    pub fn images(&self) -> &[f32] {
        &self.images
    }

    /// Image `i` (1024 values); `None` when `i >= len()`.
    pub fn image(&self, i: usize) -> Option<&[f32]> {
        self.images.get(i * SIDE * SIDE..(i + 1) * SIDE * SIDE)
    }

    /// All labels, each in 0..10.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// (file name, SHA-256 hex of the file bytes) of the image and label files actually read.
    pub fn file_hashes(&self) -> Vec<(String, String)> {
        self.sources
            .iter()
            .map(|(n, f, _)| (n.clone(), f.clone()))
            .collect()
    }

    /// (file name, SHA-256 hex of the decompressed IDX bytes): the same for any gzip of one content;
    /// compare with [`PinnedFile::idx_sha256`].
    pub fn content_hashes(&self) -> Vec<(String, String)> {
        self.sources
            .iter()
            .map(|(n, _, c)| (n.clone(), c.clone()))
            .collect()
    }
}

/// Order in which to visit `n` items in `epoch`: a Fisher-Yates shuffle (from the last index down,
/// `j = random_range(0..=i as u64)`) driven by
/// `ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))`.
/// Stateless in `(seed, epoch)`, so a resumed run shuffles identically.
pub fn epoch_permutation(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i as u64) as usize;
        perm.swap(i, j);
    }
    perm
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn synthetic(n: usize) -> IdxImages {
        let pixels = (0..n * 784).map(|i| (i * 7 % 256) as u8).collect();
        IdxImages {
            n,
            rows: 28,
            cols: 28,
            pixels,
        }
    }

    fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = magic.to_be_bytes().to_vec();
        dims.iter()
            .for_each(|d| b.extend_from_slice(&d.to_be_bytes()));
        b.extend_from_slice(data);
        b
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn assert_names(err: &DataError, path: &Path) {
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string()),
            "message {msg:?} does not name {path:?}"
        );
    }

    #[test]
    fn idx_round_trip_plain_and_gz() {
        let dir = tempfile::tempdir().unwrap();
        let images = synthetic(3);
        let labels = vec![0u8, 9, 4];
        for gzip in [false, true] {
            let (ip, lp) = (
                dir.path().join(format!("i{gzip}")),
                dir.path().join(format!("l{gzip}")),
            );
            write_idx_images(&ip, &images, gzip).unwrap();
            write_idx_labels(&lp, &labels, gzip).unwrap();
            let head = fs::read(&ip).unwrap();
            assert_eq!(head.starts_with(&[0x1f, 0x8b]), gzip);
            if !gzip {
                assert_eq!(head.len(), 16 + 3 * 784);
                assert_eq!(&head[..8], &[0, 0, 8, 3, 0, 0, 0, 3]);
            }
            assert_eq!(read_idx_images(&ip).unwrap(), images);
            assert_eq!(read_idx_labels(&lp).unwrap(), labels);
        }
    }

    #[test]
    fn size_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = idx_bytes(LABELS_MAGIC, &[4], &[1, 2, 3, 4]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("short", good[..good.len() - 1].to_vec()),
            ("short.gz", gz(&good[..good.len() - 1])),
            ("header", good[..6].to_vec()),
            ("long", [good.as_slice(), &[0, 0]].concat()),
            ("long.gz", gz(&[good.as_slice(), &[0, 0]].concat())),
        ];
        for (name, bytes) in cases {
            let p = dir.path().join(name);
            fs::write(&p, bytes).unwrap();
            let err = read_idx_labels(&p).unwrap_err();
            assert_names(&err, &p);
            match (name, err) {
                (
                    "short" | "short.gz",
                    DataError::Truncated {
                        expected_bytes: 12,
                        found_bytes: 11,
                        ..
                    },
                ) => {}
                (
                    "header",
                    DataError::Truncated {
                        expected_bytes: 8,
                        found_bytes: 6,
                        ..
                    },
                ) => {}
                (
                    "long" | "long.gz",
                    DataError::TrailingBytes {
                        expected_bytes: 12,
                        found_bytes: 14,
                        ..
                    },
                ) => {}
                (n, e) => panic!("{n}: unexpected {e:?}"),
            }
        }
    }

    #[test]
    fn bad_magic_bad_gzip_and_bad_label() {
        let dir = tempfile::tempdir().unwrap();
        let labels = dir.path().join("labels");
        fs::write(&labels, idx_bytes(LABELS_MAGIC, &[3], &[1, 10, 2])).unwrap();
        let err = read_idx_images(&labels).unwrap_err();
        assert_names(&err, &labels);
        assert!(
            matches!(
                err,
                DataError::BadMagic {
                    found: 0x801,
                    expected: 0x803,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("0x00000801"));
        let err = read_idx_labels(&labels).unwrap_err();
        assert_names(&err, &labels);
        assert!(
            matches!(
                err,
                DataError::LabelOutOfRange {
                    index: 1,
                    label: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        let bad_gz = dir.path().join("bad.gz");
        let mut bytes = gz(&idx_bytes(LABELS_MAGIC, &[3], &[1, 2, 3]));
        let mid = bytes.len() / 2;
        bytes[10..mid].iter_mut().for_each(|b| *b = 0xff);
        fs::write(&bad_gz, bytes).unwrap();
        let err = read_idx_labels(&bad_gz).unwrap_err();
        assert_names(&err, &bad_gz);
        assert!(matches!(err, DataError::Gzip { .. }), "{err:?}");
        let missing = dir.path().join("missing");
        assert!(
            matches!(read_idx_labels(&missing), Err(DataError::Io { path, .. }) if path == missing)
        );
        let err = write_idx_labels(&labels, &[11], false).unwrap_err();
        assert!(matches!(
            err,
            DataError::LabelOutOfRange {
                index: 0,
                label: 11,
                ..
            }
        ));
        let bad_shape = IdxImages {
            n: 2,
            rows: 28,
            cols: 28,
            pixels: vec![0; 784],
        };
        let err = write_idx_images(&dir.path().join("x"), &bad_shape, false).unwrap_err();
        assert!(matches!(err, DataError::Invalid { .. }) && err.to_string().contains("784"));
    }

    #[test]
    fn missing_dir_message_names_path_and_fixes() {
        let dir = Path::new("/nonexistent/fmnist-dir");
        let err = FashionMnist::load(dir, Split::Test, None).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, DataError::NotFound { file, .. } if file == "t10k-images-idx3-ubyte")
        );
        assert!(msg.contains("/nonexistent/fmnist-dir"), "{msg}");
        assert!(
            msg.contains("apt-get install -y dataset-fashion-mnist"),
            "{msg}"
        );
        assert!(
            msg.contains("unitmatch data fetch --dir /nonexistent/fmnist-dir"),
            "{msg}"
        );
    }

    #[test]
    fn load_synthetic_split_with_limit_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let images = synthetic(5);
        // Images gzipped under the .gz name, labels plain under the plain name: both are found.
        write_idx_images(
            &dir.path().join("train-images-idx3-ubyte.gz"),
            &images,
            true,
        )
        .unwrap();
        write_idx_labels(
            &dir.path().join("train-labels-idx1-ubyte"),
            &[3, 1, 4, 1, 5],
            false,
        )
        .unwrap();
        let ds = FashionMnist::load(dir.path(), Split::Train, Some(3)).unwrap();
        assert_eq!(
            (ds.len(), ds.labels(), ds.images().len()),
            (3, &[3u8, 1, 4][..], 3 * 1024)
        );
        let second = resize_28_to_32(&images.pixels[784..1568]).unwrap();
        let expect: Vec<f32> = second.iter().map(|&v| normalize_pixel(v)).collect();
        assert_eq!(ds.image(1).unwrap(), expect.as_slice());
        assert!(ds.image(3).is_none());
        let all = FashionMnist::load(dir.path(), Split::Train, Some(100)).unwrap();
        assert_eq!(all.len(), 5);
        let hashes = ds.file_hashes();
        assert_eq!(hashes[0].0, "train-images-idx3-ubyte.gz");
        assert_eq!(hashes[1].0, "train-labels-idx1-ubyte");
        for (name, sha) in &hashes {
            let bytes = fs::read(dir.path().join(name)).unwrap();
            assert_eq!(sha, &hex(&Sha256::digest(&bytes)));
        }
        // Content hash is of the decompressed bytes: equal to the hash of a plain copy.
        let plain = dir.path().join("plain");
        write_idx_images(&plain, &images, false).unwrap();
        assert_eq!(
            ds.content_hashes()[0].1,
            hex(&Sha256::digest(fs::read(&plain).unwrap()))
        );
        assert_eq!(ds.content_hashes()[1].1, hashes[1].1);
    }

    #[test]
    fn load_rejects_count_mismatch_and_wrong_size() {
        let dir = tempfile::tempdir().unwrap();
        let (ip, lp) = (
            dir.path().join("t10k-images-idx3-ubyte"),
            dir.path().join("t10k-labels-idx1-ubyte"),
        );
        write_idx_images(&ip, &synthetic(4), false).unwrap();
        write_idx_labels(&lp, &[1, 2, 3], false).unwrap();
        let err = FashionMnist::load(dir.path(), Split::Test, Some(2)).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    images: 4,
                    labels: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_names(&err, &ip);
        assert_names(&err, &lp);
        write_idx_images(
            &ip,
            &IdxImages {
                n: 3,
                rows: 27,
                cols: 29,
                pixels: vec![0; 3 * 27 * 29],
            },
            false,
        )
        .unwrap();
        let err = FashionMnist::load(dir.path(), Split::Test, None).unwrap_err();
        assert!(
            matches!(err, DataError::Invalid { .. }) && err.to_string().contains("27x29"),
            "{err}"
        );
        assert_names(&err, &ip);
    }

    #[test]
    fn resize_constant_ramp_and_range() {
        for c in [0u8, 1, 128, 254, 255] {
            assert!(resize_28_to_32(&[c; 784]).unwrap().iter().all(|&v| v == c));
        }
        assert!(resize_28_to_32(&[0; 783]).is_none());
        // Ramp v = 9x along x. Output column 5: s = 5.5 * 28/32 - 0.5 = 4.3125, weights 0.6875 on
        // x=4 and 0.3125 on x=5: 9 * 4.3125 = 38.8125 -> 39. Edges copy the edge pixels.
        let ramp: Vec<u8> = (0..784).map(|i| (9 * (i % 28)) as u8).collect();
        let out = resize_28_to_32(&ramp).unwrap();
        for y in 0..32 {
            assert_eq!(
                (out[y * 32], out[y * 32 + 5], out[y * 32 + 31]),
                (0, 39, 243)
            );
        }
        assert!((normalize_pixel(39) - (39.0 * 2.0 / 255.0 - 1.0)).abs() < 1e-6);
        assert_eq!((normalize_pixel(0), normalize_pixel(255)), (-1.0, 1.0));
        assert!(
            (0..=255u8)
                .map(normalize_pixel)
                .all(|v| (-1.0..=1.0).contains(&v))
        );
    }

    #[derive(serde::Deserialize)]
    struct Fixture {
        cases: Vec<FixtureCase>,
    }
    #[derive(serde::Deserialize)]
    struct FixtureCase {
        name: String,
        input_hex: String,
        pil_hex: String,
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn resize_matches_pil_fixture() {
        let text = include_str!("../tests/fixtures/pil_resize.json");
        let fixture: Fixture = serde_json::from_str(text).unwrap();
        assert_eq!(fixture.cases.len(), 6);
        for case in fixture.cases {
            let out = resize_28_to_32(&unhex(&case.input_hex)).unwrap();
            assert_eq!(out.to_vec(), unhex(&case.pil_hex), "case {}", case.name);
        }
    }

    /// Measures agreement with Pillow on every image; needs the dumps made by
    /// `tests/fixtures/make_resize_fixture.py --full DIR` and `UNITMATCH_PIL_DUMP_DIR=DIR`.
    #[test]
    #[ignore]
    fn resize_matches_pil_on_all_images() {
        let dump = PathBuf::from(
            std::env::var("UNITMATCH_PIL_DUMP_DIR").expect("set UNITMATCH_PIL_DUMP_DIR"),
        );
        for prefix in ["train", "t10k"] {
            let imgs = read_idx_images(
                &Path::new(DEFAULT_DATA_DIR).join(format!("{prefix}-images-idx3-ubyte.gz")),
            );
            let imgs = imgs.unwrap();
            let pil = fs::read(dump.join(format!("{prefix}-pil32.u8"))).unwrap();
            assert_eq!(pil.len(), imgs.n * 1024);
            let (mut differ, mut max) = (0usize, 0u8);
            for (src, want) in imgs.pixels.chunks_exact(784).zip(pil.chunks_exact(1024)) {
                for (a, b) in resize_28_to_32(src).unwrap().iter().zip(want) {
                    differ += usize::from(a != b);
                    max = max.max(a.abs_diff(*b));
                }
            }
            println!(
                "{prefix}: {} images, {differ} of {} pixels differ, max |diff| {max}",
                imgs.n,
                pil.len()
            );
            assert_eq!(differ, 0);
        }
    }

    #[test]
    fn epoch_permutation_properties() {
        for n in [0usize, 1, 2, 10, 1000] {
            let mut p = epoch_permutation(n, 42, 3);
            assert_eq!(p, epoch_permutation(n, 42, 3));
            p.sort_unstable();
            assert_eq!(p, (0..n).collect::<Vec<_>>());
        }
        let e0 = epoch_permutation(1000, 42, 0);
        let e1 = epoch_permutation(1000, 42, 1);
        assert_ne!(e0, e1);
        assert_ne!(e0, epoch_permutation(1000, 43, 0));
        assert_ne!(e0, (0..1000).collect::<Vec<_>>());
        let distinct: HashSet<Vec<usize>> = (0..20).map(|e| epoch_permutation(50, 7, e)).collect();
        assert_eq!(distinct.len(), 20);
        // Pinned output: catches a change of shuffle (e.g. a rand upgrade) that would break resume.
        assert_eq!(epoch_permutation(10, 42, 0), [9, 7, 2, 5, 0, 1, 4, 3, 8, 6]);
        assert_eq!(epoch_permutation(10, 42, 1), [7, 1, 5, 3, 6, 4, 2, 0, 9, 8]);
    }

    #[test]
    fn data_dir_resolution() {
        assert_eq!(
            resolve_data_dir(Some(Path::new("/x/y"))),
            PathBuf::from("/x/y")
        );
        let expect = match std::env::var_os(DATA_DIR_ENV) {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => PathBuf::from(DEFAULT_DATA_DIR),
        };
        assert_eq!(resolve_data_dir(None), expect);
    }

    #[test]
    fn official_spec_matches_pins() {
        let spec = FetchSpec::official();
        assert_eq!(spec.files.len(), 4);
        for ((name, sha), pin) in spec.files.iter().zip(PINNED) {
            assert_eq!(
                (name.as_str(), sha.as_str()),
                (pin.name, pin.official_gz_sha256)
            );
            for h in [pin.official_gz_sha256, pin.debian_gz_sha256, pin.idx_sha256] {
                assert!(h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
        assert_eq!(Split::Test.file_names().1, "t10k-labels-idx1-ubyte");
    }

    #[test]
    fn real_fashion_mnist_files() {
        let dir = Path::new(DEFAULT_DATA_DIR);
        if !dir.is_dir() {
            println!(
                "SKIPPED: {DEFAULT_DATA_DIR} is absent (apt-get install -y dataset-fashion-mnist)"
            );
            return;
        }
        let train = FashionMnist::load(dir, Split::Train, Some(100)).unwrap();
        let test = FashionMnist::load(dir, Split::Test, None).unwrap();
        assert_eq!((train.len(), test.len()), (100, 10_000));
        assert_eq!(test.images().len(), 10_000 * 1024);
        assert_eq!(&train.labels()[..10], &[9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
        assert_eq!(&test.labels()[..10], &[9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
        let mut counts = [0usize; 10];
        test.labels()
            .iter()
            .for_each(|&l| counts[usize::from(l)] += 1);
        assert_eq!(counts, [1000; 10]);
        for ds in [&train, &test] {
            assert!(ds.images().iter().all(|v| (-1.0..=1.0).contains(v)));
            assert!(ds.images().contains(&-1.0) && ds.images().contains(&1.0));
            for ((name, file_sha), (_, idx_sha)) in ds.file_hashes().iter().zip(ds.content_hashes())
            {
                let pin = PINNED.iter().find(|p| p.name == name).unwrap();
                assert!(
                    [pin.debian_gz_sha256, pin.official_gz_sha256].contains(&file_sha.as_str()),
                    "{name}"
                );
                assert_eq!(idx_sha, pin.idx_sha256, "{name}");
            }
        }
    }
}
