//! S3 object tagging (`GetObjectTagging`, `PutObjectTagging`: `GET`/`PUT /key?tagging`), which
//! the `object_store` crate does not offer (tags only on a put; a copy carries none; rewriting
//! an object changes its ETag). Requests are signed by the source's own `object_store` client
//! ([`Signer::signed_url_opts`]: SigV4 with the same credentials, endpoint, region and
//! addressing style as its listing and reads, the `tagging` subresource inside the signature),
//! and sent with reqwest, the client under `object_store`. The merge and the messages' rules
//! are the parent module's.

use std::collections::BTreeMap;
use std::time::Duration;

use super::transport_kind;
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::signer::{Method, SignedUrlOptions, Signer};

/// How long a signed tagging request stays valid: it is sent at once.
const SIGNED_FOR: Duration = Duration::from_secs(300);

/// Tags objects of one S3 bucket through the bucket's `object_store` client.
pub struct S3Tagger {
    s3: AmazonS3,
    http: reqwest::Client,
}

impl S3Tagger {
    /// A tagger over `s3`'s configuration; an error when the HTTP client cannot be built.
    pub fn new(s3: AmazonS3) -> Result<S3Tagger, String> {
        Ok(S3Tagger { s3, http: super::http_client()? })
    }

    /// The tags of the object at `key`.
    pub(super) async fn get(&self, key: &ObjectPath) -> Result<BTreeMap<String, String>, String> {
        super::parse_tag_set(&self.send(Method::GET, key, None).await?)
    }

    /// Writes `tags` as the whole tag set of the object at `key`.
    pub(super) async fn put(&self, key: &ObjectPath, tags: &BTreeMap<String, String>) -> Result<(), String> {
        self.send(Method::PUT, key, Some(tagging_xml(tags))).await.map(drop)
    }

    /// One signed request to `key?tagging`; the response body when the store answered 2xx.
    async fn send(&self, method: Method, key: &ObjectPath, body: Option<String>) -> Result<String, String> {
        let verb = if method == Method::GET { "read the object's tags" } else { "write the object's tags" };
        let options = SignedUrlOptions::new().with_query([("tagging", "")]);
        let url = self
            .s3
            .signed_url_opts(method.clone(), key, SIGNED_FOR, &options)
            .await
            .map_err(|e| format!("cannot sign the request to {verb}: {}", super::super::kind_of(&e)))?;
        let mut request = self.http.request(method, url.as_str());
        if let Some(body) = body {
            request = request.header("content-type", "application/xml").body(body);
        }
        let response = request.send().await.map_err(|e| format!("cannot {verb}: {}", transport_kind(&e)))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(format!("cannot {verb}: {}", super::status_problem(status)));
        }
        response.text().await.map_err(|e| format!("cannot {verb}: {}", transport_kind(&e)))
    }
}

/// The body of a `PutObjectTagging` request.
fn tagging_xml(tags: &BTreeMap<String, String>) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{}</Tagging>"#,
        super::tag_set_xml(tags)
    )
}
