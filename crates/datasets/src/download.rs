//! Downloads MovieLens zips from GroupLens (or any URL): streamed to disk with
//! a progress bar, checked (size against Content-Length, MD5 against the
//! published `.md5` file or a given digest) and unzipped safely.

use crate::{DatasetError, io_error};
use md5::{Digest, Md5};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy)]
pub struct DatasetInfo {
    pub name: &'static str,
    /// The folder the zip holds.
    pub folder: &'static str,
    pub approx_bytes: u64,
}

pub const BASE_URL: &str = "https://files.grouplens.org/datasets/movielens";

pub const DATASETS: &[DatasetInfo] = &[
    DatasetInfo {
        name: "ml-latest-small",
        folder: "ml-latest-small",
        approx_bytes: 978_202,
    },
    DatasetInfo {
        name: "ml-100k",
        folder: "ml-100k",
        approx_bytes: 4_924_029,
    },
    DatasetInfo {
        name: "ml-1m",
        folder: "ml-1m",
        approx_bytes: 5_917_549,
    },
    DatasetInfo {
        name: "ml-10m",
        folder: "ml-10M100K",
        approx_bytes: 65_566_137,
    },
    DatasetInfo {
        name: "ml-25m",
        folder: "ml-25m",
        approx_bytes: 261_978_986,
    },
    DatasetInfo {
        name: "ml-32m",
        folder: "ml-32m",
        approx_bytes: 238_950_008,
    },
];

#[derive(Debug, Clone, Default)]
pub struct DownloadOptions {
    pub url: Option<String>,
    pub md5: Option<String>,
    pub force: bool,
    pub progress: bool,
}

pub fn info(name: &str) -> Result<&'static DatasetInfo, DatasetError> {
    DATASETS.iter().find(|d| d.name == name).ok_or_else(|| {
        DatasetError::Invalid(format!(
            "unknown dataset `{name}`: expected one of {}",
            DATASETS
                .iter()
                .map(|d| d.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

fn fetch_error(url: &str, error: ureq::Error) -> DatasetError {
    match error {
        ureq::Error::StatusCode(code) => {
            DatasetError::Download(format!("GET {url} answered HTTP {code}"))
        }
        other => DatasetError::Download(format!("GET {url} failed: {other}")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The expected digest: given, or from `<url>.md5` (absent is a warning).
fn expected_md5(url: &str, given: Option<&str>) -> Result<Option<String>, DatasetError> {
    if let Some(md5) = given {
        return Ok(Some(md5.trim().to_lowercase()));
    }
    let sidecar = format!("{url}.md5");
    match ureq::get(&sidecar).call() {
        Ok(mut response) => {
            let text = response
                .body_mut()
                .read_to_string()
                .map_err(|e| DatasetError::Download(format!("GET {sidecar} failed: {e}")))?;
            let digest = text
                .split_whitespace()
                .find(|w| w.len() == 32 && w.bytes().all(|b| b.is_ascii_hexdigit()));
            match digest {
                Some(d) => Ok(Some(d.to_lowercase())),
                None => Err(DatasetError::Download(format!(
                    "{sidecar} holds no MD5 digest"
                ))),
            }
        }
        Err(ureq::Error::StatusCode(404)) => {
            tracing::warn!("{sidecar} not found: the download's checksum is not verified");
            Ok(None)
        }
        Err(error) => Err(fetch_error(&sidecar, error)),
    }
}

pub fn download(
    name: &str,
    dest_dir: &Path,
    opts: &DownloadOptions,
) -> Result<PathBuf, DatasetError> {
    let info = info(name)?;
    let target = dest_dir.join(info.name);
    let has_data = ["ratings.csv", "ratings.dat", "u.data"]
        .iter()
        .any(|f| target.join(f).is_file());
    if has_data && !opts.force {
        tracing::info!(
            "{} is already there: use --force to download again",
            target.display()
        );
        return Ok(target);
    }
    std::fs::create_dir_all(dest_dir).map_err(io_error(dest_dir))?;
    let url = opts
        .url
        .clone()
        .unwrap_or_else(|| format!("{BASE_URL}/{}.zip", info.name));
    let expected = expected_md5(&url, opts.md5.as_deref())?;

    let mut response = ureq::get(&url).call().map_err(|e| fetch_error(&url, e))?;
    let length: Option<u64> = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bar = indicatif::ProgressBar::new(length.unwrap_or(info.approx_bytes));
    if !opts.progress {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let zip_path = dest_dir.join(format!(".{}.zip.partial", info.name));
    let mut file = File::create(&zip_path).map_err(io_error(&zip_path))?;
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut hasher = Md5::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = reader.read(&mut buffer).map_err(|e| {
            DatasetError::Download(format!(
                "GET {url}: the transfer broke off after {received} bytes: {e}"
            ))
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        file.write_all(&buffer[..n]).map_err(io_error(&zip_path))?;
        received += n as u64;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    drop(file);
    let cleanup = |error: DatasetError| {
        let _ = std::fs::remove_file(&zip_path);
        error
    };
    if let Some(length) = length
        && length != received
    {
        return Err(cleanup(DatasetError::Download(format!(
            "GET {url}: received {received} bytes but Content-Length said {length}"
        ))));
    }
    let actual = hex(&hasher.finalize());
    if let Some(expected) = expected
        && expected != actual
    {
        return Err(cleanup(DatasetError::Download(format!(
            "GET {url}: MD5 mismatch: expected {expected}, got {actual}; nothing was extracted"
        ))));
    }
    let result = extract(&zip_path, dest_dir, info, &target);
    let _ = std::fs::remove_file(&zip_path);
    result?;
    Ok(target)
}

/// Unzips into a scratch folder beside the target, then moves the dataset
/// folder into place, so a failed extraction leaves nothing half-written.
fn extract(
    zip_path: &Path,
    dest_dir: &Path,
    info: &DatasetInfo,
    target: &Path,
) -> Result<(), DatasetError> {
    let file = File::open(zip_path).map_err(io_error(zip_path))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| {
        DatasetError::Download(format!("{} is not a valid zip: {e}", zip_path.display()))
    })?;
    let scratch = dest_dir.join(format!(".{}.extracting", info.name));
    let _ = std::fs::remove_dir_all(&scratch);
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| DatasetError::Download(format!("corrupt zip entry {index}: {e}")))?;
        let Some(relative) = entry.enclosed_name() else {
            return Err(DatasetError::Download(format!(
                "zip entry `{}` escapes the destination folder",
                entry.name().unwrap_or_default()
            )));
        };
        let out = scratch.join(relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&out).map_err(io_error(&out))?;
            continue;
        }
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        let mut writer = File::create(&out).map_err(io_error(&out))?;
        std::io::copy(&mut entry, &mut writer).map_err(io_error(&out))?;
    }
    let inner = scratch.join(info.folder);
    let source = if inner.is_dir() {
        inner
    } else {
        scratch.clone()
    };
    if target.exists() {
        std::fs::remove_dir_all(target).map_err(io_error(target))?;
    }
    std::fs::rename(&source, target).map_err(io_error(target))?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
