//! `after: {tag}`: an object's tags, merged with the source's, on the stores that have tags and
//! whose tag API the `object_store` crate does not offer: S3 object tagging ([`s3`]) and Azure
//! blob index tags ([`azure`], signed by [`shared_key`]).
//!
//! Invariants (both stores):
//! - Merge, never replace: both stores replace an object's whole tag set on a write, so the
//!   tags the object has are read first and the source's are added to them (a key the source
//!   names takes the source's value); tags other tools set (lifecycle, classification) stay.
//!   Nothing is written when the object already carries them. More than the stores' 10 tags in
//!   all is a failure, not a silent drop of someone's tag.
//! - The object's content and ETag do not change (tags are a subresource on both stores), so
//!   tagging never makes an object look new to the listing: it is neither read again nor
//!   skipped.
//! - Tags are the spec's literal text (checked by the compiler, SL248): no record content.
//! - Errors say what failed in words that hold no request details: a signed URL or an
//!   `Authorization` header holds a signature, and reqwest's error text quotes the URL, so
//!   neither is ever shown. Nor do they name the object (a key may hold a name): they are
//!   logged as `tag_error`, a field the CLI's log writes (src/logging.rs), beside the
//!   redacted `object`.

pub mod azure;
pub mod s3;
pub mod shared_key;

use std::collections::BTreeMap;

use object_store::path::Path as ObjectPath;
use serde::Deserialize;

/// The tagger of one bucket (or container).
pub enum Tagger {
    S3(s3::S3Tagger),
    Azure(azure::AzureTagger),
}

/// What tagging one object did.
#[derive(Debug, PartialEq, Eq)]
pub enum Tagged {
    /// The tags were added (a write of the merged set).
    Now,
    /// The object already carried every one of them: nothing written.
    Already,
}

impl Tagger {
    /// Merges `ours` into the tags of the object at `key`: what was done, and the object's
    /// whole tag set now. The error says why, without request details.
    pub async fn tag(
        &self,
        key: &ObjectPath,
        ours: &BTreeMap<String, String>,
    ) -> Result<(Tagged, BTreeMap<String, String>), String> {
        let existing = match self {
            Tagger::S3(t) => t.get(key).await?,
            Tagger::Azure(t) => t.get(key).await?,
        };
        let mut merged = existing.clone();
        merged.extend(ours.iter().map(|(k, v)| (k.clone(), v.clone())));
        if merged == existing {
            return Ok((Tagged::Already, merged));
        }
        let max = sluice_compiler::object_store::MAX_TAGS;
        if merged.len() > max {
            return Err(format!(
                "the object has {} tags already; with the source's it would have {}, more than {}'s limit of {max}",
                existing.len(),
                merged.len(),
                self.store_name()
            ));
        }
        self.put(key, &merged).await?;
        Ok((Tagged::Now, merged))
    }

    /// Writes `tags` as the whole tag set of the object at `key`.
    pub async fn put(&self, key: &ObjectPath, tags: &BTreeMap<String, String>) -> Result<(), String> {
        match self {
            Tagger::S3(t) => t.put(key, tags).await,
            Tagger::Azure(t) => t.put(key, tags).await,
        }
    }

    /// Whether the store's server-side copy (what a move is made of) keeps the source's tags:
    /// S3's does; Azure's Copy Blob does not, so a moved blob is tagged by Sluice.
    pub fn copy_keeps_tags(&self) -> bool {
        matches!(self, Tagger::S3(_))
    }

    fn store_name(&self) -> &'static str {
        match self {
            Tagger::S3(_) => "S3",
            Tagger::Azure(_) => "Azure Blob Storage",
        }
    }
}

/// A tag set as both stores write it: `<Root><TagSet><Tag><Key>..</Key><Value>..</Value>
/// </Tag>...</TagSet></Root>`, the root being S3's `Tagging` or Azure's `Tags`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagDocument {
    #[serde(default)]
    tag_set: TagSet,
}

#[derive(Default, Deserialize)]
struct TagSet {
    #[serde(rename = "Tag", default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    key: String,
    #[serde(default)]
    value: String,
}

/// The tags of a store's answer to a tag read.
fn parse_tag_set(xml: &str) -> Result<BTreeMap<String, String>, String> {
    let doc: TagDocument =
        quick_xml::de::from_str(xml).map_err(|_| "the store's answer to a tag request is not a tag set".to_string())?;
    Ok(doc.tag_set.tags.into_iter().map(|t| (t.key, t.value)).collect())
}

/// The `<TagSet>` element holding `tags`, escaped.
fn tag_set_xml(tags: &BTreeMap<String, String>) -> String {
    let mut xml = String::from("<TagSet>");
    for (k, v) in tags {
        let (k, v) = (quick_xml::escape::escape(k.as_str()), quick_xml::escape::escape(v.as_str()));
        xml.push_str(&format!("<Tag><Key>{k}</Key><Value>{v}</Value></Tag>"));
    }
    xml.push_str("</TagSet>");
    xml
}

/// What kind of transport failure `e` is, without its text (which quotes the URL).
fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "the store did not answer in time"
    } else if e.is_connect() {
        "the store could not be reached"
    } else if e.is_body() || e.is_decode() {
        "the store's answer was cut off"
    } else {
        "the request failed"
    }
}

/// Why a store answered a tag request with `status` (not 2xx), in words.
fn status_problem(status: u16) -> String {
    match status {
        401 | 403 => format!("access denied (HTTP {status})"),
        404 => "not found (HTTP 404)".into(),
        _ => format!("request failed (HTTP {status})"),
    }
}

/// The HTTP client of the taggers: bounded in time, like the stores' own clients.
fn http_client() -> Result<reqwest::Client, String> {
    super::install_tls_provider();
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|_| "cannot set up the HTTP client for tagging".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes_under_either_root_and_an_empty_tag_set() {
        let tags = BTreeMap::from([("a b".to_string(), "x&y<z".to_string()), ("empty".to_string(), String::new())]);
        for root in ["Tagging", "Tags"] {
            let xml = format!("<?xml version=\"1.0\"?><{root}>{}</{root}>", tag_set_xml(&tags));
            assert_eq!(parse_tag_set(&xml).unwrap(), tags);
        }
        let empty =
            r#"<?xml version="1.0"?><Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet/></Tagging>"#;
        assert!(parse_tag_set(empty).unwrap().is_empty());
        assert!(parse_tag_set(r#"<?xml version="1.0" encoding="utf-8"?><Tags><TagSet /></Tags>"#).unwrap().is_empty());
        assert!(parse_tag_set("not xml <").is_err());
    }
}
