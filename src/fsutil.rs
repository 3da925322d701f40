//! Small file helpers that keep runs whole: every output is written to a temporary file in the
//! same folder and renamed into place, so a crash or a bad input never leaves a partial file.
//!
//! `atomic_write(path, bytes)` for whole files; `temp_path_for(path)` when another library
//! writes the file (then rename it yourself); `sha256_file(path)` for run provenance.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A sibling path `.<name>.tmp-<pid>` in the same folder, so that the final rename is atomic.
pub fn temp_path_for(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically: temporary sibling file, fsync, rename.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path_for(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Versions recorded in every run folder.
pub fn versions() -> serde_json::Value {
    serde_json::json!({
        "unitmatch": env!("CARGO_PKG_VERSION"),
        "burn": "0.22.1",
        "backend": "flex",
    })
}
