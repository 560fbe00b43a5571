//! What a verified delivery holds: [`split`] cuts it into the events the queue keeps (one per
//! Stripe event, QuickBooks entity change or CloudEvent, Plaid webhook, FHIR notification),
//! each with the id redeliveries are deduplicated on; [`decode`] turns a queued event into its
//! `canonical/webhook-event@1` record for the pipeline.
//!
//! Invariants:
//! - Called only on bodies whose signature verified: parsing never sees unverified bytes.
//! - A record names the event and its object and carries Stripe's amount and currency; it
//!   never copies the payload (names, e-mail addresses, card details stay out of it).
//! - Errors name what is missing, never a value.

use sha2::{Digest, Sha256};
use sluice_compiler::plan::webhook::WebhookSourcePlan;

use crate::dlq::Rejection;
use crate::findings;
use crate::record::Doc;

use super::verify::Refusal;

/// One event as the queue keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Queued {
    pub event_id: String,
    pub event_type: String,
    /// The queued bytes: [`Envelope`] as JSON.
    pub bytes: Vec<u8>,
    /// Plaid and FHIR subscription events ask for a sync.
    pub sync: bool,
}

/// The queued form of one event: who sent it, when it was accepted, and the event itself.
#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    provider: String,
    event_id: String,
    event_type: String,
    received_at: String,
    sync: bool,
    event: serde_json::Value,
}

fn bad(what: &str) -> Refusal {
    Refusal::new(400, format!("the body is not a {what}"))
}

fn text<'a>(v: &'a serde_json::Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(|v| v.as_str())
}

fn short_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    hex::encode(&h.finalize()[..16])
}

/// Cuts a verified body into events. `signed_at` is the delivery's signed time where the
/// provider signs one (Plaid's `iat`), `received_at` when it was accepted.
pub fn split(
    plan: &WebhookSourcePlan,
    body: &[u8],
    signed_at: Option<i64>,
    received_at: &str,
) -> Result<Vec<Queued>, Refusal> {
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(body);
    let mut events: Vec<(String, String, bool, serde_json::Value)> = Vec::new();
    match plan.provider.as_str() {
        "stripe" => {
            let v = parsed.map_err(|_| bad("Stripe event (JSON)"))?;
            let id = text(&v, &["id"]).ok_or_else(|| bad("Stripe event (no `id`)"))?.to_string();
            let ty = text(&v, &["type"]).ok_or_else(|| bad("Stripe event (no `type`)"))?.to_string();
            events.push((id, ty, false, v));
        }
        "quickbooks" => match parsed.map_err(|_| bad("QuickBooks notification (JSON)"))? {
            // CloudEvents: an array of events, each with its own id.
            serde_json::Value::Array(items) => {
                for ce in items {
                    let id = text(&ce, &["id"]).ok_or_else(|| bad("CloudEvents batch (an event has no `id`)"))?;
                    let ty = text(&ce, &["type"]).ok_or_else(|| bad("CloudEvents batch (an event has no `type`)"))?;
                    events.push((id.to_string(), ty.to_string(), false, ce.clone()));
                }
            }
            // Legacy: eventNotifications[].dataChangeEvent.entities[], no ids of their own: the
            // id is a hash of the realm, entity, id, operation and time.
            v => {
                let notifications = v
                    .get("eventNotifications")
                    .and_then(|n| n.as_array())
                    .ok_or_else(|| bad("QuickBooks notification (no `eventNotifications`)"))?;
                for n in notifications {
                    let realm = text(n, &["realmId"]).unwrap_or_default();
                    let entities = n.pointer("/dataChangeEvent/entities").and_then(|e| e.as_array());
                    for e in entities.into_iter().flatten() {
                        let (name, id, op, at) = (
                            text(e, &["name"]).unwrap_or_default(),
                            text(e, &["id"]).unwrap_or_default(),
                            text(e, &["operation"]).unwrap_or_default(),
                            text(e, &["lastUpdated"]).unwrap_or_default(),
                        );
                        if name.is_empty() || id.is_empty() || op.is_empty() {
                            return Err(bad("QuickBooks notification (an entity lacks `name`, `id` or `operation`)"));
                        }
                        let key = format!(
                            "qbo-{}",
                            short_hash(&[
                                realm.as_bytes(),
                                name.as_bytes(),
                                id.as_bytes(),
                                op.as_bytes(),
                                at.as_bytes()
                            ])
                        );
                        let mut entity = e.clone();
                        if let Some(o) = entity.as_object_mut() {
                            o.insert("realmId".into(), realm.into());
                        }
                        events.push((key, format!("{name}.{op}"), false, entity));
                    }
                }
            }
        },
        "plaid" => {
            let v = parsed.map_err(|_| bad("Plaid webhook (JSON)"))?;
            let ty = text(&v, &["webhook_type"]).ok_or_else(|| bad("Plaid webhook (no `webhook_type`)"))?;
            let code = text(&v, &["webhook_code"]).ok_or_else(|| bad("Plaid webhook (no `webhook_code`)"))?;
            // Plaid gives no event id; a redelivery carries the same body and a new JWT, so the
            // body's hash with the signed time names one delivery attempt. A duplicate sync
            // trigger costs one idempotent sync; a lost one would miss transactions.
            let key = format!("plaid-{}", short_hash(&[body, signed_at.unwrap_or_default().to_string().as_bytes()]));
            events.push((key, format!("{ty}.{code}"), true, v));
        }
        _ => {
            // FHIR subscription: a notification Bundle (R4B/R5, or R4 with a payload), or an
            // empty body (R4 rest-hook without payload): either way, a sync of the subscription.
            let v = if body.iter().all(u8::is_ascii_whitespace) {
                serde_json::Value::Null
            } else {
                parsed.map_err(|_| bad("FHIR notification (JSON)"))?
            };
            if !v.is_null() && text(&v, &["resourceType"]) != Some("Bundle") {
                return Err(bad("FHIR notification Bundle"));
            }
            let key = match text(&v, &["id"]) {
                Some(id) => format!("fhir-{id}"),
                None => format!("fhir-{}", short_hash(&[body, received_at.as_bytes()])),
            };
            events.push((key, "subscription-notification".into(), true, v));
        }
    }
    events
        .into_iter()
        .map(|(event_id, event_type, sync, event)| {
            let envelope = Envelope {
                provider: plan.provider.clone(),
                event_id: event_id.clone(),
                event_type: event_type.clone(),
                received_at: received_at.to_string(),
                sync,
                event,
            };
            let bytes = serde_json::to_vec(&envelope).map_err(|_| Refusal::new(500, "the event cannot be queued"))?;
            Ok(Queued { event_id, event_type, bytes, sync })
        })
        .collect()
}

/// The record of a queued event, and its event id and type (the record's control id and
/// message type).
pub struct Decoded {
    pub event_id: String,
    pub event_type: String,
    pub doc: Doc,
}

fn rfc3339(text: &str) -> Option<String> {
    crate::time::normalize_rfc3339(text).or_else(|| {
        // QuickBooks writes offsets without a colon: `2015-10-05T14:42:19-0700`.
        let (head, tail) = text.split_at(text.len().checked_sub(5)?);
        let fixed = (tail.starts_with(['+', '-']) && tail[1..].bytes().all(|b| b.is_ascii_digit()))
            .then(|| format!("{head}{}:{}", &tail[..3], &tail[3..]))?;
        crate::time::normalize_rfc3339(&fixed)
    })
}

/// Reads a queued event into its `canonical/webhook-event@1` record.
pub fn decode(bytes: &[u8]) -> Result<Decoded, Rejection> {
    let e: Envelope = serde_json::from_slice(bytes).map_err(|_| {
        Rejection::single(findings::WEBHOOK_EVENT, None, "the queued webhook event is not as `sluice serve` queues it")
    })?;
    let v = &e.event;
    let s = |x: Option<&str>| x.map_or(Doc::Null, |t| Doc::Str(t.to_string()));
    let num = |x: Option<&serde_json::Value>| {
        x.filter(|n| n.is_i64() || n.is_u64()).map_or(Doc::Null, |n| Doc::Num(n.to_string()))
    };
    let string = |x: Option<&str>| x.map(str::to_string);
    let none = || (Doc::Null, Doc::Null, Doc::Null);
    let (occurred, account, object_type, object_id, (livemode, amount, currency)) = match e.provider.as_str() {
        "stripe" => (
            v.get("created").and_then(|c| c.as_i64()).map(crate::time::format_utc),
            string(text(v, &["account"])),
            string(text(v, &["data", "object", "object"])),
            string(text(v, &["data", "object", "id"])),
            (
                v.get("livemode").and_then(|b| b.as_bool()).map_or(Doc::Null, Doc::Bool),
                num(v.pointer("/data/object/amount")),
                s(text(v, &["data", "object", "currency"])),
            ),
        ),
        "quickbooks" if v.get("specversion").is_some() => (
            text(v, &["time"]).and_then(rfc3339),
            string(text(v, &["intuitaccountid"])),
            // `qbo.customer.created.v1` -> `customer`.
            e.event_type.split('.').nth(1).map(str::to_string),
            string(text(v, &["intuitentityid"])),
            none(),
        ),
        "quickbooks" => (
            text(v, &["lastUpdated"]).and_then(rfc3339),
            string(text(v, &["realmId"])),
            string(text(v, &["name"])),
            string(text(v, &["id"])),
            none(),
        ),
        "plaid" => (None, string(text(v, &["item_id"])), string(text(v, &["webhook_type"])), None, none()),
        _ => {
            // The subscription: R4B/R5 SubscriptionStatus, or R4 Backport Parameters.
            let status = v.pointer("/entry/0/resource");
            let subscription = status.and_then(|r| {
                string(text(r, &["subscription", "reference"])).or_else(|| {
                    r.get("parameter")?.as_array()?.iter().find_map(|p| {
                        (text(p, &["name"]) == Some("subscription"))
                            .then(|| string(text(p, &["valueReference", "reference"])))?
                    })
                })
            });
            (
                None,
                subscription,
                string(v.pointer("/entry/1/resource/resourceType").and_then(|t| t.as_str())),
                string(v.pointer("/entry/1/resource/id").and_then(|t| t.as_str())),
                none(),
            )
        }
    };
    let doc = Doc::Obj(vec![
        ("provider".into(), Doc::Str(e.provider.clone())),
        ("event_id".into(), Doc::Str(e.event_id.clone())),
        ("event_type".into(), Doc::Str(e.event_type.clone())),
        ("occurred_at".into(), s(occurred.as_deref())),
        ("received_at".into(), Doc::Str(e.received_at.clone())),
        ("account".into(), s(account.as_deref())),
        ("object_type".into(), s(object_type.as_deref())),
        ("object_id".into(), s(object_id.as_deref())),
        ("livemode".into(), livemode),
        ("amount".into(), amount),
        ("currency".into(), currency),
        ("sync_requested".into(), Doc::Bool(e.sync)),
    ]);
    Ok(Decoded { event_id: e.event_id, event_type: e.event_type, doc })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(provider: &str) -> WebhookSourcePlan {
        WebhookSourcePlan {
            provider: provider.into(),
            path: "/h".into(),
            secret: None,
            client_id: None,
            key_url: None,
            tolerance_ms: 300_000,
            max_body: 1 << 20,
            rate: 10,
            rate_per_secs: 1,
        }
    }

    #[test]
    fn quickbooks_legacy_entities_are_one_event_each() {
        let body = br#"{"eventNotifications":[{"realmId":"1185883450","dataChangeEvent":{"entities":[
            {"name":"Customer","id":"1","operation":"Create","lastUpdated":"2015-10-05T14:42:19-0700"},
            {"name":"Vendor","id":"1","operation":"Create","lastUpdated":"2015-10-05T14:42:19-0700"}]}}]}"#;
        let events = split(&plan("quickbooks"), body, None, "2024-01-01T00:00:00Z").unwrap();
        assert_eq!(events.len(), 2);
        assert_ne!(events[0].event_id, events[1].event_id);
        assert_eq!(events[0].event_type, "Customer.Create");
        let d = decode(&events[0].bytes).unwrap();
        let Doc::Obj(fields) = d.doc else { panic!() };
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("occurred_at"), Doc::Str("2015-10-05T21:42:19Z".into()));
        assert_eq!(get("account"), Doc::Str("1185883450".into()));
        // The same body again gives the same ids (a redelivery is recognised).
        let again = split(&plan("quickbooks"), body, None, "2024-01-02T00:00:00Z").unwrap();
        assert_eq!(again[0].event_id, events[0].event_id);
    }

    #[test]
    fn malformed_bodies_are_refused_without_values() {
        for (p, body) in [("stripe", "{}"), ("stripe", "nope"), ("quickbooks", "{}"), ("plaid", "{\"item_id\":\"x\"}")]
        {
            let r = split(&plan(p), body.as_bytes(), None, "2024-01-01T00:00:00Z").unwrap_err();
            assert_eq!(r.status, 400);
        }
    }
}
