//! Object-store locations in plans: `s3://bucket/key`, `az://container/key` and
//! `gs://bucket/key` paths of `files` sources and `jsonl`/`csv` sinks, and the `store:` block
//! that says where the store is and how to sign in to it.
//!
//! Invariants:
//! - Pure: parsing and checking only, no I/O (the runtime's `object_store` module talks to
//!   the stores).
//! - A [`StorePlan`] holds credentials only as secret references (`${VAR}`, `${file:...}`,
//!   `${aws-sm:...}`), checked by the spec reader; plan output shows the references, never a
//!   value.

use serde::{Deserialize, Serialize};

/// The schemes Sluice reads and writes, and what each names.
pub const SCHEMES: &[(&str, &str)] =
    &[("s3", "Amazon S3 (or an S3-compatible store)"), ("az", "Azure Blob Storage"), ("gs", "Google Cloud Storage")];

/// A parsed object URL: `scheme://bucket/key` (the key may hold glob characters in a source).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectUrl {
    /// `s3`, `az` or `gs`.
    pub scheme: String,
    /// The bucket (S3, GCS) or container (Azure).
    pub bucket: String,
    /// The key (or key pattern) inside the bucket, without a leading `/`; may be empty.
    pub key: String,
}

/// Why text is not an object URL Sluice can use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlProblem {
    /// `scheme://` with a scheme Sluice does not know (`s4://`, `https://`).
    UnknownScheme(String),
    /// No bucket (or container) after the scheme.
    MissingBucket,
    /// A bucket name with characters no store allows (or a glob in it).
    BadBucket,
}

impl UrlProblem {
    /// One line for a diagnostic.
    pub fn describe(&self) -> String {
        match self {
            UrlProblem::UnknownScheme(s) => format!("`{s}://` is not an object store Sluice reads"),
            UrlProblem::MissingBucket => "the URL names no bucket or container".into(),
            UrlProblem::BadBucket => "the bucket or container name is not valid".into(),
        }
    }
}

/// `true` when `text` looks like a URL (`word://...`) rather than a local path.
pub fn is_url(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

impl ObjectUrl {
    /// Parses `scheme://bucket/key`; `None` for text that is not a URL (a local path).
    pub fn parse(text: &str) -> Option<Result<ObjectUrl, UrlProblem>> {
        if !is_url(text) {
            return None;
        }
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if !SCHEMES.iter().any(|(s, _)| *s == scheme) {
            return Some(Err(UrlProblem::UnknownScheme(scheme)));
        }
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Some(Err(UrlProblem::MissingBucket));
        }
        let bucket_ok = bucket.len() <= 255
            && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'));
        if !bucket_ok {
            return Some(Err(UrlProblem::BadBucket));
        }
        Some(Ok(ObjectUrl { scheme, bucket: bucket.to_string(), key: key.trim_start_matches('/').to_string() }))
    }

    /// `scheme://bucket`.
    pub fn store_url(&self) -> String {
        format!("{}://{}", self.scheme, self.bucket)
    }
}

/// Where an object store is and how to sign in (`store:` of a source or sink with an object
/// URL). Every credential is a secret reference.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorePlan {
    /// `s3`, `az` or `gs`.
    pub scheme: String,
    /// Bucket or container.
    pub bucket: String,
    /// AWS region (S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// An S3-compatible or emulator endpoint (`http://127.0.0.1:9000`), or Azure's blob
    /// endpoint; `http://` endpoints are allowed (local emulators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// S3: access key id and secret access key (references).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// Azure: storage account and its access key (reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    /// GCS: a service account key (JSON), as a reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_key: Option<String>,
    /// Sources: the key prefix (ending in `/`) each object is moved under once the run that
    /// read it has completed (`after: {move_to}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_to: Option<String>,
    /// Sources (S3 and Azure): tags merged into each object's tags once the run that read it
    /// has completed (`after: {tag}`), literal text checked against the store's rules.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
}

/// A `jsonl` or `csv` sink that writes to an object store: the sink writes its local staging
/// file (the plan's `path`) and the run uploads it to `url` when it completes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectSinkPlan {
    /// `scheme://bucket/key`.
    pub url: String,
    pub store: StorePlan,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_tells_local_paths_apart() {
        let u = ObjectUrl::parse("s3://inbound/adt/**/*.hl7").unwrap().unwrap();
        assert_eq!((u.scheme.as_str(), u.bucket.as_str(), u.key.as_str()), ("s3", "inbound", "adt/**/*.hl7"));
        assert_eq!(ObjectUrl::parse("az://c").unwrap().unwrap().key, "");
        assert!(ObjectUrl::parse("data/*.hl7").is_none());
        assert!(ObjectUrl::parse("/abs/x.hl7").is_none());
        assert_eq!(ObjectUrl::parse("s3:///x").unwrap(), Err(UrlProblem::MissingBucket));
        assert_eq!(ObjectUrl::parse("ftp://h/x").unwrap(), Err(UrlProblem::UnknownScheme("ftp".into())));
        assert_eq!(ObjectUrl::parse("s3://Bad*/x").unwrap(), Err(UrlProblem::BadBucket));
    }
}
