//! `after: {tag}` of `s3://` sources: S3 object tagging, which the `object_store` crate does
//! not offer (tags only on a put; a copy carries none; rewriting an object changes its ETag).
//!
//! Requests are `GetObjectTagging` and `PutObjectTagging` (`GET`/`PUT /key?tagging`), signed
//! by the source's own `object_store` client ([`Signer::signed_url_opts`]: SigV4 with the same
//! credentials, endpoint, region and addressing style as its listing and reads, the `tagging`
//! subresource inside the signature), and sent with reqwest, the client under `object_store`.
//!
//! Invariants:
//! - Merge, never replace: S3 replaces an object's whole tag set on `PutObjectTagging`, so the
//!   tags the object has are read first and the source's are added to them (a key the source
//!   names takes the source's value); tags other tools set (lifecycle, classification) stay.
//!   Nothing is written when the object already carries them. More than S3's 10 tags in all is
//!   a failure, not a silent drop of someone's tag.
//! - The object's content and ETag do not change (tagging is a subresource), so tagging never
//!   makes an object look new to the listing: it is neither read again nor skipped.
//! - Tags are the spec's literal text (checked by the compiler, SL248): no record content.
//! - Errors say what failed in words that hold no request details: a presigned URL holds a
//!   signature, so neither it nor reqwest's error text (which quotes the URL) is ever shown.
//!   Nor do they name the object (a key may hold a name): they are logged as `tag_error`,
//!   a field the CLI's log writes (src/logging.rs), beside the redacted `object`.

use std::collections::BTreeMap;
use std::time::Duration;

use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use serde::Deserialize;

/// How long a signed tagging request stays valid: it is sent at once.
const SIGNED_FOR: Duration = Duration::from_secs(300);

/// Tags objects of one S3 bucket through the bucket's `object_store` client.
pub struct S3Tagger {
    s3: AmazonS3,
    http: reqwest::Client,
}

/// What tagging one object did.
#[derive(Debug, PartialEq, Eq)]
pub enum Tagged {
    /// The tags were added (a `PutObjectTagging`).
    Now,
    /// The object already carried every one of them: nothing written.
    Already,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tagging {
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

impl S3Tagger {
    /// A tagger over `s3`'s configuration; an error when the HTTP client cannot be built.
    pub fn new(s3: AmazonS3) -> Result<S3Tagger, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|_| "cannot set up the HTTP client for tagging".to_string())?;
        Ok(S3Tagger { s3, http })
    }

    /// Merges `ours` into the tags of the object at `key`. The error says why, without
    /// request details.
    pub async fn tag(&self, key: &ObjectPath, ours: &BTreeMap<String, String>) -> Result<Tagged, String> {
        let body = self.send(Method::GET, key, None).await?;
        let existing = parse_tag_set(&body)?;
        let mut merged = existing.clone();
        merged.extend(ours.iter().map(|(k, v)| (k.clone(), v.clone())));
        if merged == existing {
            return Ok(Tagged::Already);
        }
        let max = sluice_compiler::object_store::MAX_TAGS;
        if merged.len() > max {
            return Err(format!(
                "the object has {} tags already; with the source's it would have {}, more than S3's limit of {max}",
                existing.len(),
                merged.len()
            ));
        }
        self.send(Method::PUT, key, Some(tagging_xml(&merged))).await?;
        Ok(Tagged::Now)
    }

    /// One signed request to `key?tagging`; the response body when the store answered 2xx.
    async fn send(&self, method: Method, key: &ObjectPath, body: Option<String>) -> Result<String, String> {
        let verb = if method == Method::GET { "read the object's tags" } else { "write the object's tags" };
        let options = SignedUrlOptions::new().with_query([("tagging", "")]);
        let url = self
            .s3
            .signed_url_opts(method.clone(), key, SIGNED_FOR, &options)
            .await
            .map_err(|e| format!("cannot sign the request to {verb}: {}", super::kind_of(&e)))?;
        let mut request = self.http.request(method, url.as_str());
        if let Some(body) = body {
            request = request.header("content-type", "application/xml").body(body);
        }
        let response = request.send().await.map_err(|e| format!("cannot {verb}: {}", transport_kind(&e)))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let why = match status {
                401 | 403 => format!("access denied (HTTP {status})"),
                404 => "not found (HTTP 404)".into(),
                _ => format!("request failed (HTTP {status})"),
            };
            return Err(format!("cannot {verb}: {why}"));
        }
        response.text().await.map_err(|e| format!("cannot {verb}: {}", transport_kind(&e)))
    }
}

/// What kind of transport failure `e` is, without its text (which quotes the signed URL).
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

/// The tags of a `GetObjectTagging` answer (`<Tagging><TagSet><Tag><Key>..`).
fn parse_tag_set(xml: &str) -> Result<BTreeMap<String, String>, String> {
    let tagging: Tagging = quick_xml::de::from_str(xml)
        .map_err(|_| "the store's answer to a tag request is not an S3 tag set".to_string())?;
    Ok(tagging.tag_set.tags.into_iter().map(|t| (t.key, t.value)).collect())
}

/// The body of a `PutObjectTagging` request.
fn tagging_xml(tags: &BTreeMap<String, String>) -> String {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>"#,
    );
    for (k, v) in tags {
        let (k, v) = (quick_xml::escape::escape(k.as_str()), quick_xml::escape::escape(v.as_str()));
        xml.push_str(&format!("<Tag><Key>{k}</Key><Value>{v}</Value></Tag>"));
    }
    xml.push_str("</TagSet></Tagging>");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes_and_an_empty_tag_set() {
        let tags = BTreeMap::from([("a b".to_string(), "x&y<z".to_string()), ("empty".to_string(), String::new())]);
        assert_eq!(parse_tag_set(&tagging_xml(&tags)).unwrap(), tags);
        let empty =
            r#"<?xml version="1.0"?><Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet/></Tagging>"#;
        assert!(parse_tag_set(empty).unwrap().is_empty());
        assert!(parse_tag_set("not xml <").is_err());
    }
}
