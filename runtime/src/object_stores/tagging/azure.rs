//! Azure blob index tags: Get Blob Tags and Set Blob Tags (`GET`/`PUT
//! {container}/{blob}?comp=tags`, body `<Tags><TagSet><Tag><Key>..`), which the `object_store`
//! crate does not offer. The container's URL, account and credential are read back from the
//! source's own `object_store` builder (the store's endpoint, or
//! `https://{account}.blob.core.windows.net`, and the `store` block's or the environment's
//! `AZURE_STORAGE_*` settings), so tags go where the listing and reads go.
//!
//! Authorization: the account key, as a Shared Key header ([`super::shared_key`]); or, without
//! a key, the SAS token the client was given (`AZURE_STORAGE_SAS_KEY`), which must carry the
//! tag permission (`t`). Other credentials (Entra ID) are not supported for tags: the run
//! refuses to start rather than fail every tag request.
//!
//! Invariants: the parent module's (merge, no request details in errors). The `x-ms-version`
//! is one that has blob tags (2019-12-12 and later).

use std::collections::BTreeMap;

use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::path::Path as ObjectPath;

use super::shared_key::SharedKey;
use super::transport_kind;

/// The Blob service version of the requests: one with Get and Set Blob Tags.
const VERSION: &str = "2021-08-06";

/// How the tag requests are authorized.
enum Credential {
    SharedKey(SharedKey),
    /// A SAS token's query pairs, added to each request's URL.
    Sas(Vec<(String, String)>),
}

/// Tags blobs of one container.
pub struct AzureTagger {
    /// `{endpoint}/{container}`.
    container: reqwest::Url,
    credential: Credential,
    http: reqwest::Client,
}

impl AzureTagger {
    /// A tagger of `container` with the configuration of `builder` (the source's client's);
    /// an error, saying what is missing and quoting no credential, when it cannot tag.
    pub fn new(builder: &MicrosoftAzureBuilder, container: &str) -> Result<AzureTagger, String> {
        let config = |key: AzureConfigKey| builder.get_config_value(&key).filter(|v| !v.is_empty());
        if config(AzureConfigKey::UseEmulator).is_some_and(|v| v == "true") {
            return Err("tagging does not support `AZURE_STORAGE_USE_EMULATOR`: give the store's `endpoint` \
                 (Azurite's is `http://127.0.0.1:10000/devstoreaccount1`), `account` and `access_key`"
                .into());
        }
        let Some(account) = config(AzureConfigKey::AccountName) else {
            return Err("tagging needs the storage account's name: set the store's `account`".into());
        };
        let endpoint =
            config(AzureConfigKey::Endpoint).unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
        let mut url = reqwest::Url::parse(&endpoint)
            .map_err(|_| "the store's endpoint is not a URL tags can be written to".to_string())?;
        url.path_segments_mut()
            .map_err(|_| "the store's endpoint is not a URL tags can be written to".to_string())?
            .pop_if_empty()
            .push(container);
        let credential = if let Some(key) = config(AzureConfigKey::AccessKey) {
            Credential::SharedKey(SharedKey::new(&account, &key)?)
        } else if let Some(sas) = config(AzureConfigKey::SasKey) {
            let sas = sas.trim_start_matches('?');
            Credential::Sas(form_urlencoded::parse(sas.as_bytes()).into_owned().collect())
        } else {
            return Err(
                "tagging Azure blobs needs the account key (the store's `access_key`) or a SAS token with the \
                 tag permission (`AZURE_STORAGE_SAS_KEY`)"
                    .into(),
            );
        };
        Ok(AzureTagger { container: url, credential, http: super::http_client()? })
    }

    /// The tags of the blob at `key`.
    pub(super) async fn get(&self, key: &ObjectPath) -> Result<BTreeMap<String, String>, String> {
        super::parse_tag_set(&self.send(reqwest::Method::GET, key, None).await?)
    }

    /// Writes `tags` as the whole tag set of the blob at `key`.
    pub(super) async fn put(&self, key: &ObjectPath, tags: &BTreeMap<String, String>) -> Result<(), String> {
        let body = format!(r#"<?xml version="1.0" encoding="utf-8"?><Tags>{}</Tags>"#, super::tag_set_xml(tags));
        self.send(reqwest::Method::PUT, key, Some(body)).await.map(drop)
    }

    /// The URL of `key`'s tags: the container's, the key's segments, `comp=tags`.
    fn url(&self, key: &ObjectPath) -> reqwest::Url {
        let mut url = self.container.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(key.parts());
        }
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("comp", "tags");
            if let Credential::Sas(pairs) = &self.credential {
                query.extend_pairs(pairs);
            }
        }
        url
    }

    /// One authorized request to `key?comp=tags`; the response body when the store answered
    /// 2xx.
    async fn send(&self, method: reqwest::Method, key: &ObjectPath, body: Option<String>) -> Result<String, String> {
        let verb = if method == reqwest::Method::GET { "read the blob's tags" } else { "write the blob's tags" };
        let url = self.url(key);
        let date = jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let length = body.as_ref().map_or(0, String::len).to_string();
        let mut headers: Vec<(&str, &str)> = vec![("x-ms-date", &date), ("x-ms-version", VERSION)];
        if body.is_some() {
            headers.extend([("content-type", "application/xml; charset=utf-8"), ("content-length", &length)]);
        }
        let mut request = self.http.request(method.clone(), url.as_str());
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        if let Credential::SharedKey(signer) = &self.credential {
            request = request.header("authorization", signer.authorization(method.as_str(), &url, &headers));
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.map_err(|e| format!("cannot {verb}: {}", transport_kind(&e)))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            // Azure's error code (`BlobNotFound`, `AuthenticationFailed`...) says why and holds
            // no request details; anything else in its place is left out.
            let code = response
                .headers()
                .get("x-ms-error-code")
                .and_then(|v| v.to_str().ok())
                .filter(|c| !c.is_empty() && c.len() <= 64 && c.chars().all(|c| c.is_ascii_alphanumeric()))
                .map(|c| format!(", {c}"))
                .unwrap_or_default();
            let problem = super::status_problem(status);
            return Err(match problem.strip_suffix(')') {
                Some(open) => format!("cannot {verb}: {open}{code})"),
                None => format!("cannot {verb}: {problem}"),
            });
        }
        response.text().await.map_err(|e| format!("cannot {verb}: {}", transport_kind(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn builder() -> MicrosoftAzureBuilder {
        MicrosoftAzureBuilder::new().with_container_name("inbound")
    }

    #[test]
    fn blob_urls_follow_the_endpoint_and_encode_the_key() {
        let b = builder()
            .with_account("devstoreaccount1")
            .with_access_key(KEY)
            .with_endpoint("http://127.0.0.1:10000/devstoreaccount1".into());
        let t = AzureTagger::new(&b, "inbound").unwrap();
        assert_eq!(
            t.url(&ObjectPath::from("adt/a b.hl7")).as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/inbound/adt/a%20b.hl7?comp=tags"
        );
        let b = builder().with_account("acct").with_access_key(KEY);
        let t = AzureTagger::new(&b, "inbound").unwrap();
        assert_eq!(
            t.url(&ObjectPath::from("k.hl7")).as_str(),
            "https://acct.blob.core.windows.net/inbound/k.hl7?comp=tags"
        );
    }

    #[test]
    fn a_sas_token_goes_into_the_url_and_no_credential_at_all_is_refused() {
        let b = builder().with_account("acct").with_config(AzureConfigKey::SasKey, "?sv=2021-08-06&sp=rt&sig=abc%2B");
        let t = AzureTagger::new(&b, "inbound").unwrap();
        assert_eq!(
            t.url(&ObjectPath::from("k")).as_str(),
            "https://acct.blob.core.windows.net/inbound/k?comp=tags&sv=2021-08-06&sp=rt&sig=abc%2B"
        );
        let Err(why) = AzureTagger::new(&builder().with_account("acct"), "inbound") else { panic!("accepted") };
        assert!(why.contains("access_key"), "{why}");
    }
}
