//! Verification of a delivery on its raw bytes, before anything parses them: Stripe's
//! `Stripe-Signature`, QuickBooks' `intuit-signature`, a FHIR subscription's `Authorization`
//! header. (Plaid's JWTs: [`super::plaid`].)
//!
//! Invariants:
//! - Signatures are compared in constant time (`hmac`'s `verify_slice`, or a constant-time
//!   equality for header values).
//! - A signed time is checked in both directions: older or newer than `tolerance` is refused.
//! - A [`Refusal`] names what was wrong, never a header value, a signature or a byte of the body.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery was refused: the HTTP status and a reason without data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

impl Refusal {
    pub fn new(status: u16, reason: impl Into<String>) -> Refusal {
        Refusal { status, reason: reason.into() }
    }

    fn unauthorized(reason: impl Into<String>) -> Refusal {
        Refusal::new(401, reason)
    }
}

/// Seconds since the Unix epoch, as signed times are written.
pub type UnixSeconds = i64;

/// Refuses a signed time more than `tolerance_secs` away from `now`, either way.
pub fn check_time(signed: UnixSeconds, now: UnixSeconds, tolerance_secs: i64, what: &str) -> Result<(), Refusal> {
    if signed < now.saturating_sub(tolerance_secs) {
        return Err(Refusal::unauthorized(format!("{what} is older than the tolerance")));
    }
    if signed > now.saturating_add(tolerance_secs) {
        return Err(Refusal::unauthorized(format!("{what} is in the future beyond the tolerance")));
    }
    Ok(())
}

/// `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=...]`: one of the `v1`
/// values must be HMAC-SHA256(secret, `<t>.<body>`), and `t` within the tolerance. Other schemes
/// (`v0`) are ignored, as Stripe's libraries do.
pub fn stripe(
    header: Option<&[u8]>,
    body: &[u8],
    secret: &[u8],
    now: UnixSeconds,
    tolerance_secs: i64,
) -> Result<(), Refusal> {
    let header = header.ok_or_else(|| Refusal::new(400, "no Stripe-Signature header"))?;
    let header =
        std::str::from_utf8(header).map_err(|_| Refusal::new(400, "the Stripe-Signature header is not text"))?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else { continue };
        match key {
            "t" if timestamp.is_none() => {
                timestamp = Some(
                    value
                        .parse::<UnixSeconds>()
                        .map_err(|_| Refusal::new(400, "the Stripe-Signature timestamp is not a number"))?,
                );
            }
            "t" => return Err(Refusal::new(400, "the Stripe-Signature header has two timestamps")),
            "v1" => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| Refusal::new(400, "the Stripe-Signature header has no timestamp"))?;
    if signatures.is_empty() {
        return Err(Refusal::new(400, "the Stripe-Signature header has no v1 signature"));
    }
    let mut mac =
        HmacSha256::new_from_slice(secret).map_err(|_| Refusal::new(500, "the signing secret is unusable"))?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let matched =
        signatures.iter().filter_map(|s| hex::decode(s).ok()).any(|sig| mac.clone().verify_slice(&sig).is_ok());
    if !matched {
        return Err(Refusal::unauthorized("no v1 signature matches the body"));
    }
    check_time(timestamp, now, tolerance_secs, "the Stripe-Signature timestamp")
}

/// `intuit-signature: <base64>`: HMAC-SHA256(verifier token, body), base64 (standard alphabet).
pub fn quickbooks(header: Option<&[u8]>, body: &[u8], verifier_token: &[u8]) -> Result<(), Refusal> {
    let header = header.ok_or_else(|| Refusal::new(400, "no intuit-signature header"))?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(header.trim_ascii())
        .map_err(|_| Refusal::new(400, "the intuit-signature header is not base64"))?;
    let mut mac =
        HmacSha256::new_from_slice(verifier_token).map_err(|_| Refusal::new(500, "the verifier token is unusable"))?;
    mac.update(body);
    mac.verify_slice(&signature).map_err(|_| Refusal::unauthorized("the intuit-signature does not match the body"))
}

/// A FHIR R4 rest-hook subscription sends the headers of its `channel.header`: the
/// `Authorization` header must be exactly the configured value.
pub fn fhir_subscription(header: Option<&[u8]>, expected: &[u8]) -> Result<(), Refusal> {
    let header = header.ok_or_else(|| Refusal::unauthorized("no Authorization header"))?;
    if constant_time_eq(header, expected) {
        Ok(())
    } else {
        Err(Refusal::unauthorized("the Authorization header does not match"))
    }
}

/// Equality whose time depends on the lengths only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn stripe_signatures() {
        let (secret, body, now) = (b"whsec_test".as_slice(), br#"{"id":"evt_1"}"#.as_slice(), 1_700_000_000);
        let good = format!("t={now},v1={}", sign(secret, now, body));
        assert_eq!(stripe(Some(good.as_bytes()), body, secret, now, 300), Ok(()));
        // Several v1 values (a secret being rolled): one match is enough.
        let several = format!("t={now},v1={},v1={},v0=abc", "00".repeat(32), sign(secret, now, body));
        assert_eq!(stripe(Some(several.as_bytes()), body, secret, now, 300), Ok(()));
        let tampered = stripe(Some(good.as_bytes()), br#"{"id":"evt_2"}"#, secret, now, 300).unwrap_err();
        assert_eq!(tampered.status, 401);
        let old = format!("t={},v1={}", now - 301, sign(secret, now - 301, body));
        assert!(stripe(Some(old.as_bytes()), body, secret, now, 300).unwrap_err().reason.contains("older"));
        let future = format!("t={},v1={}", now + 301, sign(secret, now + 301, body));
        assert!(stripe(Some(future.as_bytes()), body, secret, now, 300).unwrap_err().reason.contains("future"));
        for bad in ["", "t=x,v1=00", "v1=00", "t=1", "t=1,t=2,v1=00"] {
            assert_eq!(stripe(Some(bad.as_bytes()), body, secret, now, 300).unwrap_err().status, 400, "{bad}");
        }
        assert_eq!(stripe(None, body, secret, now, 300).unwrap_err().status, 400);
    }

    #[test]
    fn quickbooks_signatures() {
        let mut mac = HmacSha256::new_from_slice(b"token").unwrap();
        mac.update(b"{}");
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(quickbooks(Some(sig.as_bytes()), b"{}", b"token"), Ok(()));
        assert_eq!(quickbooks(Some(sig.as_bytes()), b"{ }", b"token").unwrap_err().status, 401);
        assert_eq!(quickbooks(Some(b"%%%"), b"{}", b"token").unwrap_err().status, 400);
    }

    #[test]
    fn authorization_headers() {
        assert!(fhir_subscription(Some(b"Bearer abc"), b"Bearer abc").is_ok());
        assert!(fhir_subscription(Some(b"Bearer abd"), b"Bearer abc").is_err());
        assert!(fhir_subscription(Some(b"Bearer ab"), b"Bearer abc").is_err());
        assert!(fhir_subscription(None, b"Bearer abc").is_err());
    }
}
