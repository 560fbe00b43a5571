//! Azure Storage's Shared Key authorization (the `Authorization: SharedKey account:signature`
//! header of the Blob service, version 2009-09-19 and later), for the tag requests of
//! [`super::azure`]: the `object_store` crate signs its own requests with the account key but
//! offers no signer for other requests (its signed URLs are SAS for reads and writes, without
//! the tag permission).
//!
//! The signature is HMAC-SHA256, keyed with the base64-decoded account key, over the string
//! Microsoft's "Authorize with Shared Key" defines: the verb, eleven standard headers (an
//! empty line for each one absent; `Content-Length` empty when zero), the request's `x-ms-*`
//! headers (lower-case, sorted, `name:value`), and the canonicalized resource (`/account`, the
//! URL's encoded path, then each query parameter, decoded, as `name:value`, sorted by name).
//! With a path-style endpoint (Azurite's `http://127.0.0.1:port/devstoreaccount1`) the path
//! starts with the account again, and the resource names it twice, as the service expects.
//!
//! Invariants: the key never leaves this module (no `Debug`, no message quotes it); a key
//! that is not base64 is an error that does not quote it either.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The standard headers inside the string to sign, in its order.
const STANDARD_HEADERS: [&str; 11] = [
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
];

/// An account's name and decoded key.
pub struct SharedKey {
    account: String,
    key: Vec<u8>,
}

impl SharedKey {
    /// The signer of `account` with its base64 `key`; an error (not quoting the key) when the
    /// key is not base64.
    pub fn new(account: &str, key: &str) -> Result<SharedKey, String> {
        let key = BASE64
            .decode(key.trim())
            .map_err(|_| "the Azure account key is not base64 text (copy it whole from the portal)".to_string())?;
        Ok(SharedKey { account: account.to_string(), key })
    }

    /// The `Authorization` header's value for a request of `method` to `url` with `headers`
    /// (names in lower case; every `x-ms-*` header the request sends, `x-ms-date` among them).
    pub fn authorization(&self, method: &str, url: &reqwest::Url, headers: &[(&str, &str)]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(self.string_to_sign(method, url, headers).as_bytes());
        format!("SharedKey {}:{}", self.account, BASE64.encode(mac.finalize().into_bytes()))
    }

    fn string_to_sign(&self, method: &str, url: &reqwest::Url, headers: &[(&str, &str)]) -> String {
        let header = |name: &str| headers.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| *v);
        let mut text = format!("{method}\n");
        for name in STANDARD_HEADERS {
            let value = header(name);
            text.push_str(if name == "content-length" && value == "0" { "" } else { value });
            text.push('\n');
        }
        let mut ms: Vec<(&str, &str)> =
            headers.iter().filter(|(n, _)| n.starts_with("x-ms-")).map(|(n, v)| (*n, v.trim())).collect();
        ms.sort();
        for (name, value) in ms {
            text.push_str(&format!("{name}:{value}\n"));
        }
        text.push_str(&format!("/{}{}", self.account, url.path()));
        let mut params: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
        for (name, value) in url.query_pairs() {
            params.entry(name.to_lowercase()).or_default().push(value.into_owned());
        }
        for (name, mut values) in params {
            values.sort();
            text.push_str(&format!("\n{name}:{}", values.join(",")));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Azurite's development key, published by Microsoft.
    const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    // The expected signatures were computed apart from this code, with
    // `printf '<string to sign>' | openssl dgst -sha256 -mac HMAC -macopt hexkey:<key as hex> -binary | base64`.

    #[test]
    fn signs_the_documentations_example_request() {
        // The "Authorize with Shared Key" page's Get Container Metadata example, path-style.
        let signer = SharedKey::new("myaccount", KEY).unwrap();
        let url = reqwest::Url::parse(
            "http://127.0.0.1:10000/myaccount/mycontainer?restype=container&comp=metadata&timeout=20",
        )
        .unwrap();
        let headers = [("x-ms-version", "2009-09-19"), ("x-ms-date", "Sun, 11 Oct 2009 21:49:13 GMT")];
        assert_eq!(
            signer.string_to_sign("GET", &url, &headers),
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Sun, 11 Oct 2009 21:49:13 GMT\nx-ms-version:2009-09-19\n\
             /myaccount/myaccount/mycontainer\ncomp:metadata\nrestype:container\ntimeout:20"
        );
        assert_eq!(
            signer.authorization("GET", &url, &headers),
            "SharedKey myaccount:Su5rvibNeMxB7A4I87rOtEgCDtdICsL8v5H+yJs0W+M="
        );
    }

    #[test]
    fn signs_a_set_blob_tags_request_with_a_body_and_an_encoded_name() {
        let signer = SharedKey::new("devstoreaccount1", KEY).unwrap();
        let url =
            reqwest::Url::parse("http://127.0.0.1:10000/devstoreaccount1/inbound/adt/a%20b.hl7?comp=tags").unwrap();
        let headers = [
            ("content-length", "41"),
            ("content-type", "application/xml"),
            ("x-ms-date", "Sun, 22 Nov 2026 10:00:00 GMT"),
            ("x-ms-version", "2021-08-06"),
        ];
        assert_eq!(
            signer.authorization("PUT", &url, &headers),
            "SharedKey devstoreaccount1:Utf26cgiWQJCk3nQjxkDbKjaYW7XiWSRyMski+eFn5o="
        );
    }

    #[test]
    fn a_key_that_is_not_base64_is_refused_without_quoting_it() {
        let Err(why) = SharedKey::new("a", "not base64 ***") else { panic!("accepted") };
        assert!(!why.contains("***"), "{why}");
    }
}
