//! The data lake: one API over local files (`file://`, the embedded default
//! under `data/lake/`) and S3 (`s3://BUCKET[/PREFIX]`, any endpoint), so the
//! bronze writer and the batch read and write the same layout in both modes
//! (SPEC §4). Built on object_store: its local backend writes through a
//! temporary file and a rename, and S3 PUTs are atomic, so a reader never
//! sees half an object and rewriting a key replaces it whole.

mod compact;
mod dataset;

pub use compact::{
    COMPACTED, CompactOptions, CompactReport, CompactionManifest, JsonLines, LiveRead, Merger,
    concat_lines,
};
pub use dataset::{MANIFEST, Manifest};

use bytes::Bytes;
use futures_util::TryStreamExt;
use movierec_config::AwsConfig;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error(
        "`{0}` is not a lake location: expected file:///ABSOLUTE/PATH, a local folder, or s3://BUCKET[/PREFIX]"
    )]
    BadUrl(String),
    #[error("{op} {url}/{key}: {source}")]
    Store {
        op: &'static str,
        url: String,
        key: String,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("{url}/{key} is damaged: {reason}")]
    Corrupt {
        url: String,
        key: String,
        reason: String,
    },
    #[error("cannot create the lake folder {path}: {source}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = LakeError> = std::result::Result<T, E>;

/// An object in the lake: its key relative to the lake's root, and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    /// Last modified, epoch milliseconds.
    pub modified_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    /// Keys are stored under this prefix (the path part of an s3:// URL).
    root: String,
    url: String,
}

impl Lake {
    /// Opens `location`: `s3://bucket[/prefix]` (region, endpoint and
    /// path-style addressing from `aws.*`, credentials from the standard AWS
    /// environment variables), `file:///path` or a plain folder (created).
    pub fn open(location: &str, aws: &AwsConfig) -> Result<Self> {
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(LakeError::BadUrl(location.into()));
            }
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(&aws.region);
            if let Some(endpoint) = &aws.endpoint_url {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
            }
            let store = builder.build().map_err(|source| LakeError::Store {
                op: "open",
                url: location.into(),
                key: String::new(),
                source: Box::new(source),
            })?;
            return Ok(Self {
                store: Arc::new(store),
                root: prefix.trim_matches('/').to_string(),
                url: location.trim_end_matches('/').to_string(),
            });
        }
        let path = match location.strip_prefix("file://") {
            Some(path) => path,
            None if location.contains("://") => return Err(LakeError::BadUrl(location.into())),
            None => location,
        };
        if path.is_empty() {
            return Err(LakeError::BadUrl(location.into()));
        }
        std::fs::create_dir_all(path).map_err(|source| LakeError::Folder {
            path: path.into(),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(path).map_err(|source| LakeError::Store {
            op: "open",
            url: location.into(),
            key: String::new(),
            source: Box::new(source),
        })?;
        Ok(Self {
            store: Arc::new(store),
            root: String::new(),
            url: format!("file://{}", std::path::Path::new(path).display()),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where another program (Spark) finds `key`: a local path, or an
    /// `s3a://` URL (Hadoop's S3 connector).
    pub fn location(&self, key: &str) -> String {
        let key = key.trim_start_matches('/');
        if let Some(path) = self.url.strip_prefix("file://") {
            format!("{}/{key}", path.trim_end_matches('/'))
        } else {
            format!(
                "s3a://{}/{key}",
                self.url.trim_start_matches("s3://").trim_end_matches('/')
            )
        }
    }

    fn path(&self, key: &str) -> ObjectPath {
        let key = key.trim_start_matches('/');
        if self.root.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.root))
        }
    }

    fn error(&self, op: &'static str, key: &str) -> impl FnOnce(object_store::Error) -> LakeError {
        let (url, key) = (self.url.clone(), key.to_string());
        move |source| LakeError::Store {
            op,
            url,
            key,
            source: Box::new(source),
        }
    }

    /// Writes an object whole; an existing one is replaced.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.store
            .put(&self.path(key), PutPayload::from(bytes))
            .await
            .map_err(self.error("cannot write", key))?;
        Ok(())
    }

    /// Reads an object; `None` if there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match self.store.get(&self.path(key)).await {
            Ok(result) => Ok(Some(
                result
                    .bytes()
                    .await
                    .map_err(self.error("cannot read", key))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(self.error("cannot read", key)(error)),
        }
    }

    /// The objects under `prefix`, sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Entry>> {
        let base = self.path(prefix.trim_end_matches('/'));
        let strip = if self.root.is_empty() {
            String::new()
        } else {
            format!("{}/", self.root)
        };
        let mut entries: Vec<Entry> = self
            .store
            .list(Some(&base))
            .map_ok(|meta| Entry {
                key: meta
                    .location
                    .as_ref()
                    .strip_prefix(strip.as_str())
                    .unwrap_or(meta.location.as_ref())
                    .to_string(),
                size: meta.size,
                modified_ms: meta.last_modified.timestamp_millis(),
            })
            .try_collect()
            .await
            .map_err(self.error("cannot list", prefix))?;
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(self.error("cannot delete", key)(error)),
        }
    }
}
