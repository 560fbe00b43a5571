//! The token vault: reversible tokenization (`tokenize`) for the mask stage, and the way back
//! (`sluice detokenize`).
//!
//! A value gets a random token, `t:` + 32 hex digits (128 bits from the OS's generator), which
//! says nothing about the value, even to someone holding the policy's keys. The vault (the
//! state store's `vault_tokens` table, [`crate::state::vault`]) keeps the value sealed with
//! AES-256-GCM under the current key of the policy's `vault_key` ([`crate::keys`]), bound to
//! its token, and finds it again by `lookup`: the hex HMAC-SHA-256 of the value under a key
//! derived from the policy's `hash_key`. So the same value has the same token in every run and
//! every pipeline sharing the store and the hash key, and the store never holds a value in clear.
//!
//! A `tokenize` rule with a `subject` links each token to the person it is about: a row of
//! `vault_subjects` holds the subject's keyed hash ([`subject_hash`], under a third key derived
//! from `hash_key`) and the value's lookup, so `sluice purge --subject ID` finds every token of
//! that person without the store ever holding the id.
//!
//! Invariants:
//! - A token is handed out only once its row is committed (see [`crate::state::vault`]): every
//!   token a sink receives can be reversed.
//! - The in-memory cache maps lookups to tokens, never values.
//! - Errors never hold a value or a token's value: they name the token, the key id or the store.

use std::collections::HashMap;
use std::sync::Mutex;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::RunError;
use crate::findings;
use crate::keys::{self, KeyRing, OpenError};
use crate::secrets::Secret;
use crate::state::Store;
use crate::state::vault::SealedRow;

/// The key `lookup` hashes are made with: derived from the policy's hash key, so that the
/// vault's lookups are not the `hash` action's pseudonyms of the same values.
fn lookup_key(hash_key: &Secret) -> hmac::Key {
    let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, hash_key.expose()), b"sluice vault lookup key");
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

/// The key subject hashes are made with: derived like [`lookup_key`] under another label, so a
/// person's subject hash is neither the lookup of their id's token nor its `hash` pseudonym.
fn subject_key(hash_key: &Secret) -> hmac::Key {
    let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, hash_key.expose()), b"sluice vault subject key");
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

/// The subject hash of a person's id, as `vault_subjects` keeps it.
pub fn subject_hash(hash_key: &Secret, subject: &str) -> String {
    hex::encode(hmac::sign(&subject_key(hash_key), subject.trim().as_bytes()).as_ref())
}

/// The lookup hash of a value.
pub fn lookup(hash_key: &Secret, value: &str) -> String {
    hex::encode(hmac::sign(&lookup_key(hash_key), value.as_bytes()).as_ref())
}

/// Whether a text has the shape of a token.
pub fn is_token(text: &str) -> bool {
    text.strip_prefix("t:").is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A vault open for tokenizing (one per mask stage of a run).
pub struct Vault {
    store: Store,
    ring: KeyRing,
    lookup: hmac::Key,
    subject: hmac::Key,
    cache: Mutex<HashMap<String, String>>,
    /// (subject hash, lookup) links already written by this run.
    linked: Mutex<std::collections::HashSet<(String, String)>>,
    random: SystemRandom,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vault({})", self.store.shown())
    }
}

impl Vault {
    /// Opens the vault in `store` (an unlocked connection of its own: the mask stage runs
    /// beside the writer), creating its table if needed.
    pub fn open(store: Store, hash_key: &Secret, ring: KeyRing) -> Result<Vault, RunError> {
        store.vault_create()?;
        Ok(Vault {
            store,
            ring,
            lookup: lookup_key(hash_key),
            subject: subject_key(hash_key),
            cache: Mutex::new(HashMap::new()),
            linked: Mutex::new(std::collections::HashSet::new()),
            random: SystemRandom::new(),
        })
    }

    /// The token of `value`: the vault's, or a new one, committed before it is returned; with
    /// `subject` (the person's id), linked to that person, also before it is returned.
    pub fn token(&self, value: &str, subject: Option<&str>) -> Result<String, RunError> {
        let lookup = hex::encode(hmac::sign(&self.lookup, value.as_bytes()).as_ref());
        let token = self.token_of(value, &lookup)?;
        if let Some(subject) = subject.map(str::trim).filter(|s| !s.is_empty()) {
            let link = (hex::encode(hmac::sign(&self.subject, subject.as_bytes()).as_ref()), lookup);
            if !self.linked.lock().unwrap_or_else(|p| p.into_inner()).contains(&link) {
                self.store.vault_link(&link.0, &link.1)?;
                self.linked.lock().unwrap_or_else(|p| p.into_inner()).insert(link);
            }
        }
        Ok(token)
    }

    fn token_of(&self, value: &str, lookup: &str) -> Result<String, RunError> {
        if let Some(t) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(lookup) {
            return Ok(t.clone());
        }
        let token = match self.store.vault_token(lookup)? {
            Some(t) => t,
            None => {
                let mut bytes = [0u8; 16];
                self.random
                    .fill(&mut bytes)
                    .map_err(|_| RunError::new(findings::IO, "the system's random number generator failed"))?;
                let token = format!("t:{}", hex::encode(bytes));
                let (key_id, sealed) = self.ring.seal(token.as_bytes(), value.as_bytes())?;
                self.store.vault_insert(lookup, &SealedRow { token, key_id, sealed })?;
                // Another process may have inserted first: its token is the one.
                self.store.vault_token(lookup)?.ok_or_else(|| {
                    RunError::new(findings::STATE, format!("state store `{}`: a token vanished", self.store.shown()))
                })?
            }
        };
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(lookup.to_string(), token.clone());
        Ok(token)
    }
}

/// The value of a token read back from `store` with the keys of `rings` (each with the secret
/// reference it came from, for errors); `None` when the vault has no such token.
pub fn detokenize(store: &Store, rings: &[(String, KeyRing)], token: &str) -> Result<Option<Vec<u8>>, RunError> {
    let Some(row) = store.vault_row(token)? else { return Ok(None) };
    let Some((_, ring)) = rings.iter().find(|(_, r)| r.has(&row.key_id)) else {
        let references: Vec<&str> = rings.iter().map(|(r, _)| r.as_str()).collect();
        return Err(keys::missing_key_error(&row.key_id, &format!("token {token}"), &references.join("`, `")));
    };
    match ring.open(&row.key_id, token.as_bytes(), &row.sealed) {
        Ok(v) => Ok(Some(v)),
        Err(OpenError::Missing(id)) => Err(keys::missing_key_error(&id, &format!("token {token}"), "vault_key")),
        Err(OpenError::Corrupt) => Err(RunError::new(
            findings::VAULT_CORRUPT,
            format!("token {token}: its vault row does not decrypt under key {}: altered, or moved", row.key_id),
        )
        .with_help("restore the state store from a backup; the token cannot be reversed otherwise")),
    }
}

/// What a rotation did to one vault.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rotated {
    pub resealed: u64,
}

/// Re-seals every row of the vault not under the ring's current key (rotation), in batches of
/// one transaction each. A row whose key is not in the ring stops it with RT031.
pub fn rotate(store: &mut Store, ring: &KeyRing, reference: &str) -> Result<Rotated, RunError> {
    const BATCH: u32 = 500;
    let current = ring.current().id().to_string();
    let mut done = Rotated::default();
    loop {
        let rows = store.vault_rows_not_under(&current, BATCH)?;
        if rows.is_empty() {
            return Ok(done);
        }
        let mut resealed = Vec::with_capacity(rows.len());
        for row in rows {
            let value = ring.open(&row.key_id, row.token.as_bytes(), &row.sealed).map_err(|e| match e {
                OpenError::Missing(id) => keys::missing_key_error(&id, &format!("token {}", row.token), reference),
                OpenError::Corrupt => RunError::new(
                    findings::VAULT_CORRUPT,
                    format!("token {}: its vault row does not decrypt under key {}", row.token, row.key_id),
                ),
            })?;
            let (key_id, sealed) = ring.seal(row.token.as_bytes(), &value)?;
            resealed.push((SealedRow { token: row.token, key_id, sealed }, row.key_id));
        }
        store.vault_reseal(&resealed)?;
        done.resealed += resealed.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape() {
        assert!(is_token("t:0123456789abcdef0123456789abcdef"));
        assert!(!is_token("t:0123"));
        assert!(!is_token("h:0123456789abcdef0123456789abcdef"));
    }
}
