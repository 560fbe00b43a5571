//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`) for one HTTP request: the canonical request,
//! the string to sign, the derived signing key and the `Authorization` header, as AWS's
//! "Create a signed AWS API request" describes them. Checked against AWS's published test
//! vectors (the SigV4 test suite's `get-vanilla` and `post-vanilla`, and the S3
//! documentation's GET Object example).
//!
//! Invariants:
//! - The secret access key only enters the HMAC key derivation; it is never formatted.
//! - The request's path is signed as given (already normalised, segments URI-encoded once, as
//!   the S3 and JSON APIs use it: Secrets Manager's is always `/`); query names and values are
//!   URI-encoded with RFC 3986's unreserved set and sorted by name, then value.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Credentials to sign with. `Debug` does not show the secret key or the token.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// A temporary credential's session token, sent as `x-amz-security-token` (and signed).
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.access_key_id)
    }
}

/// The parts of a request that SigV4 signs.
pub struct Request<'a> {
    pub method: &'a str,
    /// `/`, or a path whose segments are already URI-encoded.
    pub path: &'a str,
    /// Decoded names and values, in any order.
    pub query: &'a [(&'a str, &'a str)],
    /// Every header to sign, `host` included, names in any case (`x-amz-date` is added).
    pub headers: &'a [(&'a str, &'a str)],
    pub payload: &'a [u8],
}

/// Where and when: `amz_date` is `YYYYMMDDTHHMMSSZ` (UTC).
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
    pub amz_date: &'a str,
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// RFC 3986 percent-encoding of everything but `A-Z a-z 0-9 - _ . ~`.
pub fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A header value as signed: trimmed, runs of spaces made one.
fn trim_header(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical request and the signed header names (`host;x-amz-date`).
fn canonical_request(req: &Request<'_>, amz_date: &str) -> (String, String) {
    let mut query: Vec<(String, String)> = req.query.iter().map(|(k, v)| (uri_encode(k), uri_encode(v))).collect();
    query.sort();
    let query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let mut headers: Vec<(String, String)> =
        req.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), trim_header(v))).collect();
    if !headers.iter().any(|(k, _)| k == "x-amz-date") {
        headers.push(("x-amz-date".into(), amz_date.into()));
    }
    headers.sort();
    // Repeated headers are signed as one, their values joined by commas.
    let mut merged: Vec<(String, String)> = Vec::new();
    for (k, v) in headers {
        match merged.last_mut() {
            Some((last, value)) if *last == k => {
                value.push(',');
                value.push_str(&v);
            }
            _ => merged.push((k, v)),
        }
    }
    let canonical_headers: String = merged.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed = merged.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    let text =
        format!("{}\n{}\n{query}\n{canonical_headers}\n{signed}\n{}", req.method, req.path, sha256_hex(req.payload));
    (text, signed)
}

/// The `Authorization` header value for `req` (which must carry the `x-amz-date` header with
/// `scope.amz_date`, or gets it signed as if it did; the caller sends it).
pub fn authorization(req: &Request<'_>, creds: &Credentials, scope: &Scope<'_>) -> String {
    let (canonical, signed) = canonical_request(req, scope.amz_date);
    let date = &scope.amz_date[..scope.amz_date.len().min(8)];
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{}\n{credential_scope}\n{}", scope.amz_date, sha256_hex(canonical.as_bytes()));
    let mut key = hmac(format!("AWS4{}", creds.secret_access_key).as_bytes(), date.as_bytes());
    for part in [scope.region, scope.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{credential_scope}, SignedHeaders={signed}, Signature={signature}",
        creds.access_key_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The credentials and scope of AWS's SigV4 test suite.
    fn suite() -> (Credentials, Scope<'static>) {
        (
            Credentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                session_token: None,
            },
            Scope { region: "us-east-1", service: "service", amz_date: "20150830T123600Z" },
        )
    }

    fn suite_sign(method: &str, query: &[(&str, &str)], extra: &[(&str, &str)], payload: &[u8]) -> String {
        let (creds, scope) = suite();
        let mut headers = vec![("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")];
        headers.extend_from_slice(extra);
        authorization(&Request { method, path: "/", query, headers: &headers, payload }, &creds, &scope)
    }

    const SUITE_CREDENTIAL: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";

    #[test]
    fn get_vanilla() {
        assert_eq!(
            suite_sign("GET", &[], &[], b""),
            format!(
                "{SUITE_CREDENTIAL}, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
    }

    #[test]
    fn post_vanilla() {
        assert_eq!(
            suite_sign("POST", &[], &[], b""),
            format!(
                "{SUITE_CREDENTIAL}, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            )
        );
    }

    #[test]
    fn the_canonical_request_of_get_vanilla() {
        let headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")];
        let req = Request { method: "GET", path: "/", query: &[], headers: &headers, payload: b"" };
        let (canonical, _) = canonical_request(&req, "20150830T123600Z");
        assert_eq!(
            canonical,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            "the suite's hash of the canonical request"
        );
    }

    /// The S3 documentation's worked example (GET Object with a Range header).
    #[test]
    fn s3_get_object_example() {
        let creds = Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let scope = Scope { region: "us-east-1", service: "s3", amz_date: "20130524T000000Z" };
        let headers = [
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("x-amz-date", "20130524T000000Z"),
        ];
        let req = Request { method: "GET", path: "/test.txt", query: &[], headers: &headers, payload: b"" };
        assert_eq!(
            authorization(&req, &creds, &scope),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn query_parameters_are_encoded_and_sorted() {
        let headers = [("Host", "h")];
        let req = Request {
            method: "GET",
            path: "/",
            query: &[("b", "2 3"), ("a", "z"), ("a", "y/~")],
            headers: &headers,
            payload: b"",
        };
        let (canonical, signed) = canonical_request(&req, "20150830T123600Z");
        assert_eq!(canonical.lines().nth(2), Some("a=y%2F~&a=z&b=2%203"));
        assert_eq!(signed, "host;x-amz-date");
    }

    #[test]
    fn the_secret_key_is_not_in_the_debug_text() {
        let (creds, _) = suite();
        assert!(!format!("{creds:?}").contains("EXAMPLEKEY"));
    }
}
