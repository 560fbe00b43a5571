//! `${aws-sm:NAME}` and `${aws-sm:NAME#key}`: a secret read from AWS Secrets Manager with
//! `GetSecretValue` (its current version), signed with SigV4 ([`super::sigv4`]). `NAME` is the
//! secret's name or ARN; `#key` takes one member of a secret whose value is a JSON object.
//!
//! Where: the region is `AWS_REGION` (else `AWS_DEFAULT_REGION`, else the profile's `region`);
//! the endpoint is `https://secretsmanager.<region>.amazonaws.com`, or
//! `AWS_ENDPOINT_URL_SECRETSMANAGER`, else `AWS_ENDPOINT_URL` when set (an emulator, a VPC
//! endpoint). Who: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, for temporary
//! credentials, `AWS_SESSION_TOKEN`; without them, the keys of the profile `AWS_PROFILE` (else
//! `default`) in the shared credentials and config files ([`super::aws_profile`]).
//!
//! Invariants:
//! - A secret's value, the secret access key and the session token never reach a message:
//!   errors name the secret, the endpoint (scheme, host, port) and AWS's error type only
//!   (AWS's own message is not repeated: it is not ours to vouch for).
//! - Each secret is fetched once per process (one `sluice run`), however many references
//!   name it: the cache is keyed by endpoint and secret name, the `#key` taken afterwards.
//! - The request is signed with the system time (AWS refuses a signature more than 5 minutes
//!   off), never the run's fixed clock.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;

use super::sigv4::{self, Credentials, Scope};
use super::{Secret, aws_profile};
use crate::error::RunError;
use crate::findings;

/// Everything a request needs from the environment.
struct Target {
    region: String,
    /// `scheme://host[:port]`, no trailing `/`.
    endpoint: String,
    credentials: Credentials,
}

fn cache() -> &'static Mutex<HashMap<(String, String), Secret>> {
    static CACHE: OnceLock<Mutex<HashMap<(String, String), Secret>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn setting(env: &impl Fn(&str) -> Option<std::ffi::OsString>, name: &str) -> Option<String> {
    env(name).and_then(|v| v.into_string().ok()).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn target(env: &impl Fn(&str) -> Option<std::ffi::OsString>, what: &str) -> Result<Target, RunError> {
    let missing = |which: &str, help: &str| {
        RunError::new(findings::AWS_SETTINGS_MISSING, format!("{what}: {which} for AWS Secrets Manager is not set"))
            .with_help(help.to_string())
    };
    let var = |name: &str| setting(env, name);
    let env_region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"));
    let env_keys = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            Some(Credentials { access_key_id: id, secret_access_key: secret, session_token: var("AWS_SESSION_TOKEN") })
        }
        _ => None,
    };
    // The environment wins; the shared files are read only for what it lacks.
    let profile = if env_region.is_none() || env_keys.is_none() { aws_profile::load(&var, what)? } else { None };
    let (profile_name, _) = aws_profile::selected(&var);
    let from_profile = profile.is_some();
    let profile = profile.unwrap_or_default();
    let region = env_region.or(profile.region).ok_or_else(|| {
        missing(
            "the region",
            &format!(
                "set `AWS_REGION` (e.g. `us-east-1`) in the environment of `sluice run`, or `region` in profile \
                 `{profile_name}` of `~/.aws/config` (`AWS_CONFIG_FILE`)"
            ),
        )
    })?;
    let credentials = match (env_keys, profile.access_key_id, profile.secret_access_key) {
        (Some(keys), _, _) => keys,
        (None, Some(access_key_id), Some(secret_access_key)) => {
            Credentials { access_key_id, secret_access_key, session_token: profile.session_token }
        }
        _ if from_profile => {
            return Err(missing(
                &format!(
                    "the credentials (profile `{profile_name}` has no `aws_access_key_id` and `aws_secret_access_key`)"
                ),
                "give the profile its access keys (`aws configure`); profiles that assume a role, use SSO or a \
                 `credential_process` are not supported: set `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and \
                 `AWS_SESSION_TOKEN` from them instead",
            ));
        }
        _ => {
            return Err(missing(
                "the credentials",
                "set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN` for temporary \
                 credentials), or `AWS_PROFILE` to a profile of `~/.aws/credentials` (`AWS_SHARED_CREDENTIALS_FILE`)",
            ));
        }
    };
    let endpoint = setting(env, "AWS_ENDPOINT_URL_SECRETSMANAGER")
        .or_else(|| setting(env, "AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| format!("https://secretsmanager.{region}.amazonaws.com"));
    let endpoint = endpoint.trim_end_matches('/').to_string();
    if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) || endpoint.contains('@') {
        return Err(RunError::new(
            findings::AWS_SETTINGS_MISSING,
            format!("{what}: the Secrets Manager endpoint is not an http(s) URL without credentials"),
        )
        .with_help("write `AWS_ENDPOINT_URL_SECRETSMANAGER` like `https://secretsmanager.us-east-1.amazonaws.com`"));
    }
    Ok(Target { region, endpoint, credentials })
}

/// `https://host:port` -> `host:port`: the `Host` header (and what messages show).
fn host_of(endpoint: &str) -> &str {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// `YYYYMMDDTHHMMSSZ` now.
fn amz_date_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    crate::time::format_utc(secs).chars().filter(|c| *c != '-' && *c != ':').collect()
}

/// Resolves `inner` (what follows `aws-sm:`): the secret, or a member of its JSON value.
pub fn resolve(inner: &str, what: &str, env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Secret, RunError> {
    let (name, key) = match inner.rsplit_once('#') {
        Some((name, key)) => (name.trim(), Some(key.trim())),
        None => (inner.trim(), None),
    };
    if name.is_empty() || key.is_some_and(str::is_empty) {
        return Err(RunError::new(findings::AWS_SECRET_FAILED, format!("{what}: `${{aws-sm:...}}` names no secret"))
            .with_help("write `${aws-sm:NAME}` or `${aws-sm:NAME#json_key}`"));
    }
    let target = target(&env, what)?;
    let cache_key = (target.endpoint.clone(), name.to_string());
    let cached = cache().lock().unwrap_or_else(|e| e.into_inner()).get(&cache_key).cloned();
    let secret = match cached {
        Some(s) => s,
        None => {
            let s = fetch(&target, name, what)?;
            cache().lock().unwrap_or_else(|e| e.into_inner()).insert(cache_key, s.clone());
            s
        }
    };
    match key {
        None => Ok(secret),
        Some(key) => member(&secret, name, key, what),
    }
}

/// One member of a JSON object secret; a string member as is, another value as JSON text.
fn member(secret: &Secret, name: &str, key: &str, what: &str) -> Result<Secret, RunError> {
    let no_member = |why: &str| {
        RunError::new(findings::AWS_SECRET_KEY_MISSING, format!("{what}: secret `{name}` {why}"))
            .with_help(format!("check the key after `#`, or reference the whole secret: `${{aws-sm:{name}}}`"))
    };
    let value: serde_json::Value =
        serde_json::from_slice(secret.expose()).map_err(|_| no_member("is not a JSON object"))?;
    let serde_json::Value::Object(members) = value else {
        return Err(no_member("is not a JSON object"));
    };
    match members.get(key) {
        Some(serde_json::Value::String(s)) => Ok(Secret(s.as_bytes().to_vec())),
        Some(serde_json::Value::Null) | None => Err(no_member(&format!("has no key `{key}`"))),
        Some(other) => Ok(Secret(other.to_string().into_bytes())),
    }
}

fn fetch(target: &Target, name: &str, what: &str) -> Result<Secret, RunError> {
    let host = host_of(&target.endpoint);
    let body = serde_json::json!({ "SecretId": name }).to_string();
    let amz_date = amz_date_now();
    let mut headers: Vec<(&str, &str)> = vec![
        ("host", host),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-date", &amz_date),
        ("x-amz-target", "secretsmanager.GetSecretValue"),
    ];
    if let Some(token) = &target.credentials.session_token {
        headers.push(("x-amz-security-token", token));
    }
    let scope = Scope { region: &target.region, service: "secretsmanager", amz_date: &amz_date };
    let request = sigv4::Request { method: "POST", path: "/", query: &[], headers: &headers, payload: body.as_bytes() };
    let authorization = sigv4::authorization(&request, &target.credentials, &scope);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut req = agent.post(format!("{}/", target.endpoint)).header("authorization", &authorization);
    // `host` is set by the client from the URL, with the same text.
    for (k, v) in headers.iter().filter(|(k, _)| *k != "host") {
        req = req.header(*k, *v);
    }
    let unreachable = |why: String| {
        RunError::new(
            findings::AWS_SECRET_FAILED,
            format!("{what}: AWS Secrets Manager at `{host}` could not be asked for secret `{name}`: {why}"),
        )
        .with_help("check the network, `AWS_REGION` and `AWS_ENDPOINT_URL_SECRETSMANAGER`; the run did not start")
    };
    let mut resp = req.send(body.as_bytes()).map_err(|e| unreachable(transport_error(&e)))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
        .map_err(|e| unreachable(format!("reading the answer: {}", transport_error(&e))))?;
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    if status == 200 {
        if let Some(s) = answer.get("SecretString").and_then(|v| v.as_str()) {
            return Ok(Secret(s.as_bytes().to_vec()));
        }
        if let Some(b) = answer.get("SecretBinary").and_then(|v| v.as_str())
            && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b)
        {
            return Ok(Secret(bytes));
        }
        return Err(unreachable("the answer holds neither `SecretString` nor `SecretBinary`".into()));
    }
    let kind = error_type(&answer, &bytes);
    let denied = status == 403
        || matches!(
            kind.as_str(),
            "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "IncompleteSignature"
                | "ExpiredTokenException"
                | "SignatureDoesNotMatch"
                | "InvalidClientTokenId"
        );
    let shown_kind = if kind.is_empty() { String::new() } else { format!(", {kind}") };
    Err(if kind == "ResourceNotFoundException" {
        RunError::new(
            findings::AWS_SECRET_NOT_FOUND,
            format!("{what}: AWS Secrets Manager at `{host}` has no secret `{name}` (region `{}`)", target.region),
        )
        .with_help(
            "check the secret's name or ARN and `AWS_REGION`; a secret scheduled for deletion cannot be read either",
        )
    } else if denied {
        RunError::new(
            findings::AWS_SECRET_DENIED,
            format!(
                "{what}: AWS Secrets Manager at `{host}` refused to give secret `{name}` (HTTP {status}{shown_kind})"
            ),
        )
        .with_help(
            "check `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` and that their identity may \
             `secretsmanager:GetSecretValue` on this secret (and `kms:Decrypt` on its key)",
        )
    } else {
        unreachable(format!("HTTP {status}{shown_kind}"))
    })
}

/// AWS's error type: JSON `__type` (`ResourceNotFoundException`, or with a
/// `com.amazonaws...#` prefix), else an XML `<Code>` (the query protocol's auth errors). Letters
/// and digits only, so nothing else of the answer reaches a message.
fn error_type(answer: &serde_json::Value, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let raw = match answer.get("__type").and_then(|v| v.as_str()) {
        Some(t) => t.rsplit('#').next().unwrap_or("").to_string(),
        None => text
            .split_once("<Code>")
            .and_then(|(_, rest)| rest.split_once("</Code>"))
            .map_or(String::new(), |(code, _)| code.to_string()),
    };
    raw.chars().filter(|c| c.is_ascii_alphanumeric()).take(80).collect()
}

/// A transport error in words, without the URL's details.
fn transport_error(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => format!("connection error: {}", io.kind()),
        ureq::Error::Timeout(_) => "no answer within 20 s".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::BadUri(_) => "the endpoint URL is not valid".into(),
        _ => "HTTP client error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<std::ffi::OsString> {
        move |n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.into())
    }

    #[test]
    fn settings_come_from_the_standard_variables() {
        let env = env_of(&[
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "sekrit-key"),
        ]);
        let t = target(&env, "x").unwrap();
        assert_eq!(
            (t.region.as_str(), t.endpoint.as_str()),
            ("eu-west-1", "https://secretsmanager.eu-west-1.amazonaws.com")
        );
        assert_eq!(host_of(&t.endpoint), "secretsmanager.eu-west-1.amazonaws.com");
        let env = env_of(&[
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "sekrit-key"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1/"),
            ("AWS_ENDPOINT_URL_SECRETSMANAGER", "http://127.0.0.1:5000/"),
        ]);
        assert_eq!(target(&env, "x").unwrap().endpoint, "http://127.0.0.1:5000");
    }

    #[test]
    fn missing_settings_are_named_without_values() {
        let err = target(&env_of(&[("AWS_ACCESS_KEY_ID", "AKID")]), "hash_key of mask `m`").err().unwrap();
        assert_eq!(err.code, findings::AWS_SETTINGS_MISSING);
        assert!(err.message.contains("region"), "{err}");
        let err = target(&env_of(&[("AWS_REGION", "r"), ("AWS_SECRET_ACCESS_KEY", "sekrit-key")]), "x").err().unwrap();
        assert!(err.message.contains("credentials") && !err.to_string().contains("sekrit"), "{err}");
        let err = resolve("#key", "x", env_of(&[])).unwrap_err();
        assert_eq!(err.code, findings::AWS_SECRET_FAILED);
    }

    #[test]
    fn members_of_a_json_secret() {
        let secret = Secret(br#"{"user":"svc","password":"pa55","port":5432,"none":null}"#.to_vec());
        assert_eq!(member(&secret, "db", "password", "x").unwrap().expose(), b"pa55");
        assert_eq!(member(&secret, "db", "port", "x").unwrap().expose(), b"5432");
        for key in ["nope", "none"] {
            let err = member(&secret, "db", key, "x").unwrap_err();
            assert_eq!(err.code, findings::AWS_SECRET_KEY_MISSING);
            assert!(!err.to_string().contains("pa55"));
        }
        let err = member(&Secret(b"pa55 plain".to_vec()), "db", "password", "x").unwrap_err();
        assert!(err.message.contains("not a JSON object") && !err.to_string().contains("pa55"));
    }

    #[test]
    fn an_unreachable_endpoint_is_a_coded_error() {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let endpoint: &'static str = Box::leak(endpoint.into_boxed_str());
        let pairs: &'static [(&str, &str)] = Box::leak(Box::new([
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "sekrit-key"),
            ("AWS_ENDPOINT_URL_SECRETSMANAGER", endpoint),
        ]));
        let err = resolve("db", "hash_key of mask `m`", env_of(pairs)).unwrap_err();
        assert_eq!(err.code, findings::AWS_SECRET_FAILED);
        assert!(err.message.contains(&format!("127.0.0.1:{port}")) && err.message.contains("`db`"), "{err}");
        assert!(!err.to_string().contains("sekrit"));
    }

    #[test]
    fn error_types_of_json_and_xml_answers() {
        let json = serde_json::json!({"__type": "com.amazonaws.secretsmanager#ResourceNotFoundException"});
        assert_eq!(error_type(&json, b""), "ResourceNotFoundException");
        let xml =
            b"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>x</Message></Error></ErrorResponse>";
        assert_eq!(error_type(&serde_json::Value::Null, xml), "SignatureDoesNotMatch");
        assert_eq!(error_type(&serde_json::Value::Null, b"<Code>a b\"c</Code>"), "abc");
        assert_eq!(error_type(&serde_json::Value::Null, b"oops"), "");
    }

    #[test]
    fn amz_dates_are_compact_utc() {
        let d = amz_date_now();
        assert_eq!(d.len(), 16, "{d}");
        assert!(d.ends_with('Z') && d.as_bytes()[8] == b'T');
    }
}
