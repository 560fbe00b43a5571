//! Connections whose tokens live in a PostgreSQL state store (`state: {url}`), against the real
//! server scripts/test starts (`SLUICE_TEST_PG_URL`) and the real authorization server
//! (oidc-provider, [`common::oidc`]): client credentials and the authorization code flow store
//! their rows there (nothing in clear), and refreshers on separate connections (as instances on
//! several machines would be) refresh once after a 401, keeping the newest rotating refresh
//! token. Without `SLUICE_TEST_PG_URL` it prints SKIPPED and passes.

mod common;

use common::oidc::{self, APP_SECRET, TOKEN_KEY};
use common::{pg_database, pg_rows, text};
use sluice_runtime::oauth::Connection;

#[test]
fn tokens_in_postgres_refresh_once_across_instances() {
    let Some(url) = pg_database("connect-pg") else { return };
    let auth = oidc::Server::start();
    let dir = oidc::workspace("connect-pg", &auth, "5m");
    std::fs::write(dir.join("pg.url"), &url).unwrap();
    let spec = std::fs::read_to_string(dir.join("pipeline.yaml")).unwrap();
    std::fs::write(dir.join("pipeline.yaml"), spec.replace("  path: out/state.db", "  url: ${file:pg.url}")).unwrap();

    // Client credentials: no refresh token, so no refresh expiry (a NULL in PostgreSQL).
    let machine = oidc::sluice(&dir, &["connect", "machine", "pipeline.yaml"]);
    assert!(machine.status.success(), "{}", text(&machine.stderr));
    let (out, _) = oidc::connect(&dir, "app");
    assert!(out.status.success(), "{}", text(&out.stderr));

    let plan = oidc::compile(&dir, "pipeline.yaml");
    let rejected = Connection::open(&plan, "app").unwrap().bearer().unwrap();
    let tokens: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (plan, rejected) = (&plan, &rejected);
                s.spawn(move || {
                    Connection::open(plan, "app").unwrap().unauthorized(rejected).unwrap().expose().to_vec()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(tokens.iter().all(|t| t == &tokens[0]));
    let rows = pg_rows(
        &url,
        "SELECT connection, generation, key_id, sealed, refresh_expires_at IS NULL FROM connection_tokens ORDER BY connection",
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][0].as_deref(), Some("app"));
    assert_eq!(rows[0][1].as_deref(), Some("2"), "one refresh");
    assert_eq!(rows[1][0].as_deref(), Some("machine"));
    assert_eq!(rows[1][4].as_deref(), Some("t"));
    let token = String::from_utf8(tokens[0].clone()).unwrap();
    for row in &rows {
        let sealed = row[3].as_deref().unwrap();
        assert!(!sealed.contains(&token) && !sealed.contains(APP_SECRET) && !sealed.contains(TOKEN_KEY));
    }
    // The refreshed token is good at the resource server, and the stored refresh token still
    // works (a second refresh with a stale one would have revoked the grant).
    let refreshed = oidc::sluice(&dir, &["connect", "app", "pipeline.yaml", "--refresh"]);
    assert!(refreshed.status.success(), "{}", text(&refreshed.stderr));
    for out in [&machine, &out, &refreshed] {
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains(&url) || !url.contains('@'), "the store URL is not shown");
        assert!(!all.contains(&token));
    }
}
