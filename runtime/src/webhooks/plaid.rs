//! Plaid's webhook verification: the `Plaid-Verification` header is an ES256 JWT whose header
//! names the signing key (`kid`); the key (a P-256 JWK) is fetched from Plaid's
//! `/webhook_verification_key/get` with the API credentials, and cached by `kid`; the claims
//! carry `iat` and `request_body_sha256`, the hex SHA-256 of the exact body.
//!
//! Invariants:
//! - Only `alg: ES256` is accepted (never `none`, never an HMAC alg with the public key).
//! - A key whose `expired_at` has passed is refused, and fetched again rather than kept.
//! - The body's hash is compared in constant time; `iat` within the tolerance either way.
//! - Errors name what failed, never the token, the key, the credentials or the body.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use sha2::{Digest, Sha256};

use super::verify::{Refusal, UnixSeconds, check_time, constant_time_eq};

/// A verification key as Plaid returns it (a JWK, plus its lifetime).
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Jwk {
    pub kid: String,
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub y: String,
    #[serde(default)]
    pub expired_at: Option<i64>,
}

/// Fetches keys by `kid` and keeps them.
pub struct Keys {
    key_url: String,
    client_id: String,
    secret: String,
    agent: ureq::Agent,
    cache: Mutex<HashMap<String, Jwk>>,
}

fn b64url(text: &str) -> Result<Vec<u8>, Refusal> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| Refusal::new(400, "the Plaid-Verification JWT is not base64url"))
}

impl Keys {
    pub fn new(key_url: String, client_id: String, secret: String) -> Keys {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Keys { key_url, client_id, secret, agent, cache: Mutex::new(HashMap::new()) }
    }

    /// The key `kid`, from the cache or fetched (blocking: call from a blocking task).
    fn key(&self, kid: &str, now: UnixSeconds) -> Result<Jwk, Refusal> {
        let cached = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(kid).cloned();
        if let Some(k) = cached.filter(|k| k.expired_at.is_none_or(|e| e > now)) {
            return Ok(k);
        }
        let request = serde_json::json!({"client_id": self.client_id, "secret": self.secret, "key_id": kid});
        let mut resp = self
            .agent
            .post(&self.key_url)
            .header("Content-Type", "application/json")
            .send(request.to_string())
            .map_err(|_| Refusal::new(503, "Plaid's verification key could not be fetched"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 16)
            .read_to_vec()
            .map_err(|_| Refusal::new(503, "Plaid's verification key could not be read"))?;
        if status == 400 || status == 404 {
            return Err(Refusal::new(401, "Plaid knows no verification key with this kid"));
        }
        if status != 200 {
            return Err(Refusal::new(503, format!("Plaid's key endpoint answered {status}")));
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            key: Jwk,
        }
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|_| Refusal::new(503, "Plaid's key endpoint answered something that is not a key"))?;
        if answer.key.kid != kid {
            return Err(Refusal::new(503, "Plaid's key endpoint answered another key than asked"));
        }
        if answer.key.expired_at.is_some_and(|e| e <= now) {
            return Err(Refusal::new(401, "the Plaid verification key has expired"));
        }
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(kid.to_string(), answer.key.clone());
        Ok(answer.key)
    }

    /// Verifies a delivery: the JWT's signature by its key, `iat`, and the body's hash;
    /// returns `iat`.
    pub fn verify(
        &self,
        header: Option<&[u8]>,
        body: &[u8],
        now: UnixSeconds,
        tolerance_secs: i64,
    ) -> Result<UnixSeconds, Refusal> {
        let header = header.ok_or_else(|| Refusal::new(400, "no Plaid-Verification header"))?;
        let token = std::str::from_utf8(header)
            .map_err(|_| Refusal::new(400, "the Plaid-Verification header is not text"))?
            .trim();
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(Refusal::new(400, "the Plaid-Verification header is not a JWT"));
        };
        #[derive(serde::Deserialize)]
        struct Header {
            alg: String,
            kid: Option<String>,
        }
        let jwt_header: Header = serde_json::from_slice(&b64url(h)?)
            .map_err(|_| Refusal::new(400, "the Plaid-Verification JWT header is not JSON"))?;
        if jwt_header.alg != "ES256" {
            return Err(Refusal::unauthorized_alg());
        }
        let kid = jwt_header.kid.ok_or_else(|| Refusal::new(400, "the Plaid-Verification JWT names no key (kid)"))?;
        let key = self.key(&kid, now)?;
        if key.kty != "EC" || key.crv != "P-256" {
            return Err(Refusal::new(503, "Plaid's verification key is not a P-256 key"));
        }
        let mut point = vec![0x04];
        point.extend(b64url(&key.x).map_err(|_| Refusal::new(503, "Plaid's verification key is unreadable"))?);
        point.extend(b64url(&key.y).map_err(|_| Refusal::new(503, "Plaid's verification key is unreadable"))?);
        let signature = b64url(s)?;
        let signed = &token.as_bytes()[..h.len() + 1 + c.len()];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(signed, &signature)
            .map_err(|_| Refusal::new(401, "the Plaid-Verification signature does not verify"))?;
        #[derive(serde::Deserialize)]
        struct Claims {
            iat: Option<i64>,
            request_body_sha256: Option<String>,
        }
        let claims: Claims = serde_json::from_slice(&b64url(c)?)
            .map_err(|_| Refusal::new(400, "the Plaid-Verification JWT claims are not JSON"))?;
        let iat = claims.iat.ok_or_else(|| Refusal::new(400, "the Plaid-Verification JWT has no iat"))?;
        check_time(iat, now, tolerance_secs, "the Plaid-Verification iat")?;
        let claimed = claims
            .request_body_sha256
            .ok_or_else(|| Refusal::new(400, "the Plaid-Verification JWT has no request_body_sha256"))?;
        let actual = hex::encode(Sha256::digest(body));
        if !constant_time_eq(claimed.as_bytes(), actual.as_bytes()) {
            return Err(Refusal::new(401, "the body's SHA-256 differs from the one signed"));
        }
        Ok(iat)
    }
}

impl Refusal {
    fn unauthorized_alg() -> Refusal {
        Refusal::new(401, "the Plaid-Verification JWT is not signed with ES256")
    }
}
