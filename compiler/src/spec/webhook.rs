//! `webhook` sources as written: the provider whose deliveries an endpoint of `sluice serve`
//! accepts, its URL path, how deliveries are verified, and the endpoint's limits.
//!
//! This module reads and checks what is written (SL285, SL286); the driver ([`crate::compile`])
//! checks the pipeline around it (SL287-SL289).
//!
//! Invariants:
//! - Every endpoint verifies its deliveries: a provider that signs with a shared secret
//!   (Stripe, QuickBooks, a FHIR subscription's header) has a `secret`, Plaid has the key
//!   endpoint and API credentials to fetch its signing keys. An unverified endpoint cannot be
//!   written.
//! - Secrets are only ever references (`${VAR}`, `${file:...}`): never in git or in a plan.

use super::reader::{self, Cx, Spanned};
use super::shape::{KeyType, Shape};
use crate::codes;
use crate::diagnostics::Diagnostic;

/// The providers an endpoint can verify.
pub const PROVIDERS: &[&str] = &["stripe", "quickbooks", "plaid", "fhir_subscription"];

/// Default `max_body`: 1 MiB (Stripe events are a few KiB; a QuickBooks notification lists ids).
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;
/// Default `tolerance`: 5 minutes (Stripe's libraries' default; Plaid's limit on `iat`).
pub const DEFAULT_TOLERANCE_MS: u64 = 300_000;
/// Default `rate_limit`: 100 deliveries a second per endpoint.
pub const DEFAULT_RATE: (u64, u64) = (100, 1);

const fn req(name: &'static str, ty: KeyType, doc: &'static str) -> super::shape::Key {
    super::shape::Key { name, required: true, ty, doc }
}

const fn opt(name: &'static str, ty: KeyType, doc: &'static str) -> super::shape::Key {
    super::shape::Key { name, required: false, ty, doc }
}

pub static SOURCE_WEBHOOK: Shape = Shape {
    name: "source.webhook",
    type_tag: Some("webhook"),
    doc: "An HTTP endpoint of `sluice serve` receiving a provider's webhook deliveries. Each delivery is verified on its raw bytes, made durable in the state store's queue, answered `200`, then processed into the pipeline; a redelivered event id is answered `200` and not processed twice. Records follow `canonical/webhook-event@1`.",
    keys: &[
        req("type", KeyType::Enum(&["webhook"]), "Source kind."),
        req(
            "provider",
            KeyType::Enum(PROVIDERS),
            "`stripe` (`Stripe-Signature`), `quickbooks` (`intuit-signature`), `plaid` (`Plaid-Verification` ES256 JWT) or `fhir_subscription` (the subscription's `Authorization` header).",
        ),
        req("path", KeyType::String, "URL path of the endpoint, e.g. `/hooks/stripe`."),
        opt(
            "secret",
            KeyType::Secret,
            "Secret reference: Stripe's endpoint signing secret (`whsec_...`), QuickBooks' verifier token, the exact `Authorization` header value a FHIR subscription sends, or Plaid's API secret (to fetch its keys).",
        ),
        opt("client_id", KeyType::Secret, "Plaid only: the API client id (a secret reference), to fetch its keys."),
        opt(
            "key_url",
            KeyType::String,
            "Plaid only: the `/webhook_verification_key/get` URL (`https://production.plaid.com/webhook_verification_key/get`).",
        ),
        opt(
            "tolerance",
            KeyType::Duration,
            "Largest difference, either way, between a delivery's signed time and now (default `5m`).",
        ),
        opt("max_body", KeyType::Integer, "Largest body accepted, in bytes (default 1048576); larger gets `413`."),
        opt("rate_limit", KeyType::Rate, "Deliveries accepted per unit of time (default `100/s`); more get `429`."),
        opt("description", KeyType::String, "Free text."),
    ],
};

/// A `webhook` source as written.
#[derive(Debug)]
pub struct WebhookSourceSpec {
    pub provider: String,
    pub path: Spanned,
    pub secret: Option<Spanned>,
    pub client_id: Option<Spanned>,
    pub key_url: Option<String>,
    pub tolerance_ms: u64,
    pub max_body: u64,
    /// (deliveries, per seconds).
    pub rate: (u64, u64),
}

/// Whether `path` can be an endpoint: `/` then segments of unreserved URL characters.
pub fn valid_path(path: &str) -> bool {
    path.len() > 1
        && path.len() <= 200
        && path.starts_with('/')
        && !path.ends_with('/')
        && path[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
        })
}

pub fn source(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<WebhookSourceSpec> {
    let provider = obj.get("provider").and_then(|n| reader::one_of(cx, n, PROVIDERS, "webhook provider"));
    let path = obj.get("path").and_then(|n| reader::string(cx, n, "`path`"));
    if let Some(p) = &path
        && !valid_path(&p.text)
    {
        cx.push(
            Diagnostic::error(codes::WEBHOOK_PATH, format!("`{}` is not a webhook endpoint path", p.text))
                .label(p.span, "expected `/` and path segments")
                .help("write a path such as `/hooks/stripe`: segments of letters, digits, `-`, `_`, `.` or `~`, no query, no trailing `/`"),
        );
    }
    let secret = obj.get("secret").and_then(|n| reader::secret(cx, n, "`secret`"));
    let client_id = obj.get("client_id").and_then(|n| reader::secret(cx, n, "`client_id`"));
    let key_url = obj.get("key_url").and_then(|n| reader::string(cx, n, "`key_url`"));
    let tolerance_ms =
        obj.get("tolerance").and_then(|n| reader::duration(cx, n, "`tolerance`")).unwrap_or(DEFAULT_TOLERANCE_MS);
    let max_body = obj.get("max_body").and_then(|n| reader::integer(cx, n, "`max_body`")).unwrap_or(DEFAULT_MAX_BODY);
    let rate = obj.get("rate_limit").and_then(|n| reader::rate(cx, n, "`rate_limit`")).unwrap_or(DEFAULT_RATE);
    let provider = provider?;
    let plaid = provider.text == "plaid";
    let mut problem = |message: String, at: Option<reader::Spanned>, label: &str, help: &str| {
        let span = at.map_or(provider.span, |s| s.span);
        cx.push(
            Diagnostic::error(codes::WEBHOOK_VERIFICATION, message)
                .label(span, label.to_string())
                .help(help.to_string()),
        );
    };
    if plaid {
        if secret.is_none() || client_id.is_none() || key_url.is_none() {
            problem(
                "a `plaid` webhook endpoint needs `key_url`, `client_id` and `secret` to fetch Plaid's signing keys"
                    .into(),
                None,
                "verifies Plaid-Verification JWTs",
                "write `key_url: https://production.plaid.com/webhook_verification_key/get`, `client_id: ${PLAID_CLIENT_ID}` and `secret: ${PLAID_SECRET}`",
            );
        }
        if let Some(u) = &key_url
            && !(u.text.starts_with("https://")
                || u.text.starts_with("http://127.0.0.1:")
                || u.text.starts_with("http://localhost:"))
        {
            problem(
                format!("`{}` is not an https URL", u.text),
                Some(u.clone()),
                "Plaid's keys are fetched over https",
                "write `https://production.plaid.com/webhook_verification_key/get` (plain http only to 127.0.0.1, for tests)",
            );
        }
    } else {
        if secret.is_none() {
            let what = match provider.text.as_str() {
                "stripe" => "the endpoint's signing secret (`whsec_...`)",
                "quickbooks" => "the app's verifier token",
                _ => "the `Authorization` header value the subscription sends",
            };
            problem(
                format!("a `{}` webhook endpoint needs `secret`: {what}", provider.text),
                None,
                "verifies deliveries with a shared secret",
                "write `secret: ${WEBHOOK_SECRET}` (a secret reference)",
            );
        }
        for (key, at) in [("client_id", &client_id), ("key_url", &key_url)] {
            if let Some(at) = at {
                problem(
                    format!("`{key}` is for `plaid` endpoints, not `{}`", provider.text),
                    Some(at.clone()),
                    "not used by this provider",
                    "remove it",
                );
            }
        }
    }
    if max_body == 0 {
        cx.push(
            Diagnostic::error(codes::INVALID_VALUE, "`max_body` is 0")
                .label(obj.key_span("max_body").unwrap_or(provider.span), "every delivery would be refused")
                .help("write the largest body to accept in bytes, e.g. `max_body: 1048576`"),
        );
    }
    Some(WebhookSourceSpec {
        provider: provider.text,
        path: path?,
        secret,
        client_id,
        key_url: key_url.map(|u| u.text),
        tolerance_ms,
        max_body,
        rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_paths() {
        for ok in ["/hooks/stripe", "/a", "/v1/plaid-hooks", "/x.y~z_1"] {
            assert!(valid_path(ok), "{ok}");
        }
        for bad in ["", "/", "hooks", "/hooks/", "/a//b", "/a/../b", "/a?x=1", "/a b", "/é"] {
            assert!(!valid_path(bad), "{bad}");
        }
    }
}
