//! Downloads MovieLens zips from GroupLens (or any URL): streamed to disk with
//! a progress bar, checked (size against Content-Length, MD5 against the
//! published `.md5` file or a given digest) and unzipped safely. Nothing is
//! extracted until both checks pass, so a bad download never leaves a
//! plausible-looking dataset behind.

use crate::movielens::Layout;
use crate::{DatasetError, io_error, write_error};
use md5::{Digest, Md5};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetInfo {
    /// What users type (`ml-10m`) and the folder the dataset ends up in.
    pub name: &'static str,
    /// The zip's top folder, which is not always the name (`ml-10M100K`).
    pub folder: &'static str,
    /// Sizes the progress bar when the server sends no Content-Length.
    pub approx_bytes: u64,
}

impl DatasetInfo {
    pub fn url(&self) -> String {
        format!("{BASE_URL}/{}.zip", self.name)
    }
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
    /// Overrides the GroupLens URL (a mirror, or a local server in tests).
    pub url: Option<String>,
    /// Expected MD5 in hex; overrides the `<url>.md5` sidecar.
    pub md5: Option<String>,
    /// Download again even when the dataset is already there.
    pub force: bool,
    /// Draw a progress bar on stderr.
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

/// A stalled connection should fail rather than hang the CLI forever; the
/// body itself may take long on a slow link, so only connecting is bounded.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .build()
        .into()
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

fn is_md5_hex(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The expected digest: given, or from `<url>.md5`. GroupLens publishes the
/// sidecars but mirrors may not, so an absent one (404) is a warning only.
fn expected_md5(
    agent: &ureq::Agent,
    url: &str,
    given: Option<&str>,
) -> Result<Option<String>, DatasetError> {
    if let Some(md5) = given {
        let md5 = md5.trim().to_lowercase();
        if !is_md5_hex(&md5) {
            return Err(DatasetError::Invalid(format!(
                "--md5 `{md5}` is not an MD5 digest: expected 32 hex digits"
            )));
        }
        return Ok(Some(md5));
    }
    let sidecar = format!("{url}.md5");
    match agent.get(&sidecar).call() {
        Ok(mut response) => {
            let text = response
                .body_mut()
                .read_to_string()
                .map_err(|e| DatasetError::Download(format!("GET {sidecar} failed: {e}")))?;
            // `<digest>  <file>` (md5sum) or `MD5 (<file>) = <digest>` (BSD).
            match text.split_whitespace().find(|w| is_md5_hex(w)) {
                Some(d) => Ok(Some(d.to_lowercase())),
                None => Err(DatasetError::Download(format!(
                    "{sidecar} holds no MD5 digest; pass the expected one with --md5"
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

/// Downloads dataset `name` into `dest_dir/<name>` and returns that folder.
/// A folder already holding a ratings file is reused unless `opts.force`,
/// so re-running the command costs no bandwidth.
pub fn download(
    name: &str,
    dest_dir: &Path,
    opts: &DownloadOptions,
) -> Result<PathBuf, DatasetError> {
    let info = info(name)?;
    let target = dest_dir.join(info.name);
    let has_data = [Layout::Csv, Layout::Dat, Layout::Ml100k]
        .iter()
        .any(|layout| target.join(layout.ratings_file()).is_file());
    if has_data && !opts.force {
        tracing::info!(
            "{} is already there: use --force to download again",
            target.display()
        );
        return Ok(target);
    }
    std::fs::create_dir_all(dest_dir).map_err(write_error(dest_dir))?;
    let url = opts.url.clone().unwrap_or_else(|| info.url());
    let agent = agent();
    let expected = expected_md5(&agent, &url, opts.md5.as_deref())?;

    // A hidden name in the destination: same filesystem for the final
    // rename, and never mistaken for a dataset.
    let zip_path = dest_dir.join(format!(".{}.zip.partial", info.name));
    let fetched = fetch(&agent, &url, &zip_path, info, opts.progress);
    let result = fetched.and_then(|actual| {
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(DatasetError::Download(format!(
                "GET {url}: MD5 mismatch: expected {expected}, got {actual}; nothing was extracted"
            )));
        }
        extract(&zip_path, dest_dir, info, &target).map_err(|error| match error {
            DatasetError::Download(message) => DatasetError::Download(format!("{url}: {message}")),
            other => other,
        })
    });
    let _ = std::fs::remove_file(&zip_path);
    result.map(|()| target)
}

/// Streams `url` into `zip_path`, checking the size against Content-Length,
/// and returns the body's MD5 in hex.
fn fetch(
    agent: &ureq::Agent,
    url: &str,
    zip_path: &Path,
    info: &DatasetInfo,
    progress: bool,
) -> Result<String, DatasetError> {
    let mut response = agent.get(url).call().map_err(|e| fetch_error(url, e))?;
    let length: Option<u64> = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let bar = indicatif::ProgressBar::new(length.unwrap_or(info.approx_bytes));
    if progress {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("valid template"),
        );
        bar.set_message(format!("downloading {}", info.name));
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut file = File::create(zip_path).map_err(write_error(zip_path))?;
    // ureq caps bodies at 10 MB by default; MovieLens zips are far larger.
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut hasher = Md5::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.abandon();
                let expected = length.map_or(String::new(), |l| format!(" of {l}"));
                return Err(DatasetError::Download(format!(
                    "GET {url}: the transfer broke off after {received}{expected} bytes: {e}"
                )));
            }
        };
        hasher.update(&buffer[..n]);
        file.write_all(&buffer[..n])
            .map_err(write_error(zip_path))?;
        received += n as u64;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    file.sync_all().map_err(write_error(zip_path))?;
    if let Some(length) = length
        && length != received
    {
        return Err(DatasetError::Download(format!(
            "GET {url}: received {received} bytes but Content-Length said {length}"
        )));
    }
    Ok(hex(&hasher.finalize()))
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
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| DatasetError::Download(format!("the download is not a valid zip: {e}")))?;
    let scratch = dest_dir.join(format!(".{}.extracting", info.name));
    let _ = std::fs::remove_dir_all(&scratch);
    let unpacked = unpack(&mut archive, &scratch).and_then(|()| {
        let source = dataset_root(&scratch, info)?;
        if crate::movielens::detect_layout(&source).is_err() {
            return Err(DatasetError::Download(format!(
                "the zip holds no MovieLens ratings file (ratings.csv, ratings.dat or u.data) \
                 in `{}/` or at its root: is it a MovieLens dataset?",
                info.folder
            )));
        }
        if target.exists() {
            std::fs::remove_dir_all(target).map_err(write_error(target))?;
        }
        std::fs::rename(&source, target).map_err(write_error(target))
    });
    let _ = std::fs::remove_dir_all(&scratch);
    unpacked
}

fn unpack(archive: &mut zip::ZipArchive<File>, scratch: &Path) -> Result<(), DatasetError> {
    std::fs::create_dir_all(scratch).map_err(write_error(scratch))?;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| DatasetError::Download(format!("corrupt zip entry {index}: {e}")))?;
        // `enclosed_name` refuses absolute paths and `..`: a zip must not
        // write outside the destination (zip slip).
        let Some(relative) = entry.enclosed_name() else {
            return Err(DatasetError::Download(format!(
                "zip entry `{}` escapes the destination folder: refusing to extract",
                entry.name().unwrap_or_default()
            )));
        };
        let out = scratch.join(relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&out).map_err(write_error(&out))?;
            continue;
        }
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(write_error(parent))?;
        }
        let mut writer = File::create(&out).map_err(write_error(&out))?;
        std::io::copy(&mut entry, &mut writer).map_err(|e| {
            DatasetError::Download(format!(
                "cannot extract zip entry `{}` to {}: {e}",
                entry.name().unwrap_or_default(),
                out.display()
            ))
        })?;
    }
    Ok(())
}

/// The folder holding the dataset's files: the zip's known top folder, else
/// its only top folder (a mirror may name it differently), else the root.
fn dataset_root(scratch: &Path, info: &DatasetInfo) -> Result<PathBuf, DatasetError> {
    let known = scratch.join(info.folder);
    if known.is_dir() {
        return Ok(known);
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(scratch)
        .map_err(io_error(scratch))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_none_or(|n| n != "__MACOSX"))
        .collect();
    match entries.as_slice() {
        [only] if only.is_dir() => Ok(only.clone()),
        _ => Ok(scratch.to_path_buf()),
    }
}
