//! The Stripe client (`sluice_runtime::finance::stripe`) against a local Stripe API
//! (`tests/servers/stripe/server.py`: Stripe's list endpoints, error objects and headers,
//! serving objects made from Stripe's published example objects), through a connection of a
//! compiled pipeline (`auth: api_key`, the key in a file).
//!
//! Checked: a full sync of every object type pages through `starting_after`/`has_more`
//! (requests counted at the server); amounts stay integers in minor units; a re-run with the
//! cursor delivers nothing again; late arrivals inside the lookback window are delivered once;
//! 429 (with `Retry-After`) and 5xx are retried; `Stripe-Should-Retry: false` is not; a wrong
//! key fails without showing it; an OAuth (Connect) access token that the API refuses (401:
//! expired early at the authorization server, a real oidc-provider) is refreshed once and the
//! sync goes on.

mod common;

use std::path::Path;

use common::stripe::Server;
use common::{root, scratch};
use sluice_runtime::finance::stripe::{self, Stripe};
use sluice_runtime::oauth::Connection;

const KEY: &str = "sk_test_51LocalOnlyKey0000000000aBcD";
const COUNT: usize = 250;
const BASE_CREATED: i64 = 1_700_000_000;

/// The local Stripe API with this test's key and objects, and `env` settings.
fn start_server(env: &[(&str, String)]) -> Server {
    Server::start(KEY, COUNT as u64, BASE_CREATED, env)
}

fn connection(dir: &Path, key: &str) -> Connection {
    for f in ["mapping.yaml", "policy.yaml"] {
        std::fs::copy(root().join("tests/ui/SL207-state-store-choice").join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("stripe.key"), key).unwrap();
    let pipeline = "kind: pipeline
name: finance
sources:
  adt_feed:
    type: mllp
    listen: 127.0.0.1:2575
stages:
  to_event:
    type: map
    inputs: [adt_feed]
    mapping: mapping.yaml
  mask:
    type: mask
    inputs: [to_event]
    policy: policy.yaml
sinks:
  events:
    type: jsonl
    inputs: [mask]
    path: out/events.jsonl
dlq:
  path: out/dlq.jsonl
  plaintext_reason: synthetic test fixture
connections:
  stripe_us:
    provider: stripe
    auth: api_key
    api_key: ${file:stripe.key}
";
    std::fs::write(dir.join("pipeline.yaml"), pipeline).unwrap();
    let mut c = sluice_compiler::compile::Compiler::default();
    let plan = c.plan(&dir.join("pipeline.yaml")).unwrap().expect("compiles");
    Connection::open(&plan, "stripe_us").unwrap()
}

#[test]
fn full_then_incremental_sync_pages_and_delivers_each_object_once() {
    let server = start_server(&[]);
    let dir = scratch("stripe-sync");
    let conn = connection(&dir, KEY);
    // Stripe's published test-mode rate for an `sk_test_` key.
    assert_eq!(stripe::default_rate(&conn.bearer().unwrap()), (25, 1));
    let mut client = Stripe::new(&server.base(), &conn, Some((1000, 1)), None).unwrap();
    let mut cursors = Vec::new();
    for (object, path) in stripe::OBJECTS {
        let synced = client.sync(object, None, 3600).unwrap();
        assert_eq!(synced.objects.len(), COUNT, "{object}");
        assert!(synced.warnings.is_empty(), "{:?}", synced.warnings);
        // 250 objects, 100 a page: 3 requests.
        assert_eq!(synced.requests, 3, "{object}");
        let ids: std::collections::BTreeSet<&str> = synced.objects.iter().map(|o| o["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), COUNT, "no object twice");
        let created: Vec<i64> = synced.objects.iter().map(|o| o["created"].as_i64().unwrap()).collect();
        assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first");
        if synced.objects[0].get("amount").is_some() {
            assert!(synced.objects.iter().all(|o| o["amount"].is_i64()), "amounts in minor units");
        }
        assert_eq!(synced.cursor.created, BASE_CREATED + (COUNT as i64 - 1) * 60);
        assert_eq!(server.control("/_stats")["requests"][*path], 3);
        cursors.push(synced.cursor);
    }
    // A re-run from the cursors: the lookback (1 h: 60 objects) is read again, nothing is new.
    for ((object, _), cursor) in stripe::OBJECTS.iter().zip(&cursors) {
        let again = client.sync(object, Some(cursor), 3600).unwrap();
        assert_eq!(again.objects.len(), 0, "{object}");
        assert_eq!(again.skipped, 61, "{object}: the window's objects are recognised");
    }
    // Late arrivals: 3 charges created 10 minutes before the cursor (inside the window), and
    // 2 newer ones.
    let newest = cursors[1].created;
    server.control(&format!("/_add?object=charges&count=3&created={}", newest - 600));
    server.control(&format!("/_add?object=charges&count=2&created={}", newest + 60));
    let late = client.sync("charges", Some(&cursors[1]), 3600).unwrap();
    assert_eq!(late.objects.len(), 5);
    assert_eq!(late.cursor.created, newest + 61);
    let again = client.sync("charges", Some(&late.cursor), 3600).unwrap();
    assert_eq!(again.objects.len(), 0, "nothing twice after the late arrivals");
}

#[test]
fn rate_limits_and_server_errors_are_retried_as_stripe_says() {
    let server = start_server(&[]);
    let dir = scratch("stripe-retry");
    let conn = connection(&dir, KEY);
    let mut client = Stripe::new(&server.base(), &conn, Some((1000, 1)), None).unwrap();
    server.control("/_inject?status=429&count=2&retry_after=1");
    server.control("/_inject?status=500&count=1&should_retry=true");
    let synced = client.sync("payouts", None, 0).unwrap();
    assert_eq!(synced.objects.len(), COUNT);
    assert_eq!(synced.retries, 3);
    assert_eq!(synced.requests, 6);
    assert_eq!(server.control("/_stats")["injected"], 3);
    // `Stripe-Should-Retry: false` on a 503: not retried, RT150 with status and error type.
    server.control("/_inject?status=503&count=1&should_retry=false");
    let err = client.sync("refunds", None, 0).unwrap_err();
    assert_eq!(err.code, "RT150");
    assert!(err.message.contains("HTTP 503") && err.message.contains("`api_error`"), "{}", err.message);
}

#[test]
fn a_wrong_key_fails_without_showing_it() {
    let server = start_server(&[]);
    let dir = scratch("stripe-key");
    let wrong = "sk_test_51WrongKeyWrongKey00000zZzZ";
    let conn = connection(&dir, wrong);
    let mut client = Stripe::new(&server.base(), &conn, None, None).unwrap();
    let err = client.sync("charges", None, 0).unwrap_err();
    // The API key cannot be renewed: the 401 ends the sync (RT038 from the connection).
    assert_eq!(err.code, "RT038", "{err}");
    let shown = err.to_string();
    assert!(!shown.contains(wrong) && !shown.contains("zZzZ") && !shown.contains(KEY), "{shown}");
}

#[test]
fn an_oauth_token_refused_with_401_is_refreshed_and_the_sync_goes_on() {
    use common::oidc;
    let auth = oidc::Server::start();
    let dir = oidc::workspace("stripe-oauth", &auth, "5m");
    let extra = format!(
        "  stripe_connect:
    provider: stripe
    client_id: sluice-app
    client_secret: ${{file:app.secret}}
    authorize_url: {0}/auth
    token_url: {0}/token
    scopes: [openid]
    redirect_port: {1}
    token_key: ${{file:token.key}}
",
        auth.url(""),
        auth.redirect_port
    );
    oidc::write_pipeline(&dir, "pipeline.yaml", &auth, "5m", &extra);
    let (out, _) = oidc::connect(&dir, "stripe_connect");
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    let server = start_server(&[
        ("INTROSPECT_URL", auth.url("/token/introspection")),
        ("INTROSPECT_CLIENT", format!("sluice-app:{}", oidc::APP_SECRET)),
    ]);
    let plan = oidc::compile(&dir, "pipeline.yaml");
    let conn = Connection::open(&plan, "stripe_connect").unwrap();
    let mut client = Stripe::new(&server.base(), &conn, Some((1000, 1)), None).unwrap();
    assert_eq!(client.sync("charges", None, 0).unwrap().objects.len(), COUNT);
    let first = conn.bearer().unwrap();
    // The access token expires early at the authorization server: Stripe answers 401.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let token = String::from_utf8(first.expose().to_vec()).unwrap();
    let expire = auth.url(&format!("/test/expire-access-token?token={token}"));
    assert_eq!(agent.get(&expire).call().unwrap().status().as_u16(), 204);
    let synced = client.sync("payouts", None, 0).unwrap();
    assert_eq!(synced.objects.len(), COUNT);
    assert_eq!(server.control("/_stats")["unauthorized"], 1, "one 401, then the refreshed token");
    let second = conn.bearer().unwrap();
    assert_ne!(second.expose(), first.expose());
    assert_eq!(conn.status().unwrap().generation, Some(2));
}
