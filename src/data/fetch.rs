//! Verified download of the Fashion-MNIST `.gz` files: pinned SHA-256 sums and atomic writes.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{DataError, hex, io_err};

/// Official download location documented in the Zalando Research fashion-mnist README.
pub const OFFICIAL_MIRROR: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";

/// Largest body `fetch` accepts for one file (the biggest real file is about 26 MB).
const MAX_DOWNLOAD_BYTES: u64 = 256 << 20;

/// SHA-256 sums (hex) of one Fashion-MNIST file, in its three known byte forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinnedFile {
    /// File name as published, e.g. `train-images-idx3-ubyte.gz`.
    pub name: &'static str,
    /// SHA-256 of the `.gz` file served by [`OFFICIAL_MIRROR`].
    pub official_gz_sha256: &'static str,
    /// SHA-256 of the `.gz` file shipped by Debian's `dataset-fashion-mnist` (0.0~git20200523).
    pub debian_gz_sha256: &'static str,
    /// SHA-256 of the decompressed IDX bytes (identical for both sources).
    pub idx_sha256: &'static str,
}

/// Pinned checksums of the four files. How they were obtained: `md5sum` of the Debian files does
/// NOT match the README's MD5s, because Debian's copies lack the gzip FNAME header field (each is
/// exactly `len(name) + 1` bytes shorter); the deflate stream, CRC32 and size are byte-identical.
/// Re-inserting FNAME with mtime 1504176606 (train) / 1504176627 (t10k), XFL 0, OS 3 reproduces
/// the README MD5s (8d4fb7e6.., 25c81989.., bef4ecab.., bb300cfd..) exactly; `sha256sum` of those
/// reconstructions gives `official_gz_sha256`, `sha256sum` of the Debian files gives
/// `debian_gz_sha256`, and `zcat FILE | sha256sum` gives `idx_sha256`.
pub const PINNED: [PinnedFile; 4] = [
    PinnedFile {
        name: "train-images-idx3-ubyte.gz",
        official_gz_sha256: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        debian_gz_sha256: "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        idx_sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    },
    PinnedFile {
        name: "train-labels-idx1-ubyte.gz",
        official_gz_sha256: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        debian_gz_sha256: "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        idx_sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
    PinnedFile {
        name: "t10k-images-idx3-ubyte.gz",
        official_gz_sha256: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        debian_gz_sha256: "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        idx_sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    },
    PinnedFile {
        name: "t10k-labels-idx1-ubyte.gz",
        official_gz_sha256: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        debian_gz_sha256: "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        idx_sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
];

/// Files to download and their pinned SHA-256 sums (hex) of the bytes as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSpec {
    /// (file name relative to the base URL and the directory, SHA-256 hex).
    pub files: Vec<(String, String)>,
}

impl FetchSpec {
    /// The four official `.gz` files with their [`PinnedFile::official_gz_sha256`] sums.
    pub fn official() -> FetchSpec {
        let files = PINNED
            .iter()
            .map(|p| (p.name.into(), p.official_gz_sha256.into()));
        FetchSpec {
            files: files.collect(),
        }
    }
}

/// Downloads the four official `.gz` files from `base_url` (e.g. [`OFFICIAL_MIRROR`]) into `dir`,
/// verified against [`PINNED`]; see [`fetch_with`].
pub fn fetch(
    dir: &Path,
    base_url: &str,
    progress: &mut dyn FnMut(&str, u64, Option<u64>),
) -> Result<Vec<PathBuf>, DataError> {
    fetch_with(dir, base_url, &FetchSpec::official(), progress)
}

fn sha256_file(path: &Path) -> Result<String, DataError> {
    let mut file = fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(io_err(path))?;
    Ok(hex(&hasher.finalize()))
}

/// Downloads each file of `spec` from `base_url` + name into `dir` (created if needed) and returns
/// the final paths. A file already present with the pinned hash is skipped (one `progress` call);
/// one with another hash is replaced. Each download goes to a temporary file in `dir`, is
/// verified, then renamed into place; on any error (including a checksum mismatch) no partial or
/// temporary file is left. `progress(name, bytes_done, total)` is called as bytes arrive
/// (`total` from Content-Length, if sent). Stops at the first failing file.
pub fn fetch_with(
    dir: &Path,
    base_url: &str,
    spec: &FetchSpec,
    progress: &mut dyn FnMut(&str, u64, Option<u64>),
) -> Result<Vec<PathBuf>, DataError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut done = Vec::with_capacity(spec.files.len());
    for (name, expected) in &spec.files {
        let target = dir.join(name);
        if target.is_file() && sha256_file(&target)?.eq_ignore_ascii_case(expected) {
            let len = fs::metadata(&target).map_err(io_err(&target))?.len();
            progress(name, len, Some(len));
            done.push(target);
            continue;
        }
        let url = format!("{}/{name}", base_url.trim_end_matches('/'));
        let http = |message: String| DataError::Http {
            url: url.clone(),
            message,
        };
        let response = agent.get(&url).call().map_err(|e| match e {
            ureq::Error::StatusCode(code) => http(format!("server answered HTTP status {code}")),
            e => http(e.to_string()),
        })?;
        let total = response.body().content_length();
        let mut body = response
            .into_body()
            .into_with_config()
            .limit(MAX_DOWNLOAD_BYTES)
            .reader();
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".part")
            .tempfile_in(dir)
            .map_err(io_err(dir))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut bytes = 0u64;
        loop {
            let k = body.read(&mut buf).map_err(|e| http(e.to_string()))?;
            if k == 0 {
                break;
            }
            tmp.write_all(&buf[..k]).map_err(io_err(tmp.path()))?;
            hasher.update(&buf[..k]);
            bytes += k as u64;
            progress(name, bytes, total);
        }
        let found = hex(&hasher.finalize());
        if !found.eq_ignore_ascii_case(expected) {
            // `tmp` is deleted when dropped here.
            return Err(DataError::Checksum {
                path: target,
                expected: expected.clone(),
                found,
            });
        }
        tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
        let persisted = tmp.persist(&target);
        persisted.map_err(|e| DataError::Io {
            path: target.clone(),
            source: e.error,
        })?;
        done.push(target);
    }
    Ok(done)
}
