//! Encryption keys with ids, for data Sluice keeps encrypted at rest (the token vault,
//! [`crate::vault`]): a [`KeyRing`] is read from one secret reference holding one key or
//! several (separated by commas or line breaks); the first is current and encrypts, the others
//! are previous keys that only decrypt, until `sluice keys rotate` has re-encrypted everything
//! under the current one.
//!
//! A key's id is a fingerprint of it (`k` + 16 hex digits of a SHA-256 over a fixed label and
//! the key), so ids need no naming and never reveal the key; every sealed blob is stored with
//! the id of the key that sealed it, and opening a blob whose key is not in the ring fails with
//! [`crate::findings::KEY_MISSING`] naming that id.
//!
//! Invariants:
//! - A key, or anything derived from it but its id, is never printed, logged or put in an
//!   error: errors name the secret reference and the key's position in it only.
//! - AES-256-GCM with a random 96-bit nonce per seal (from the OS's generator) and the caller's
//!   associated data (what the blob belongs to: a token), so a blob moved to another row does
//!   not open. A blob is `base64(nonce || ciphertext || tag)`.

use base64::Engine;
use ring::aead;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use crate::error::RunError;
use crate::findings;

/// Parses one key: 64 hex digits, or base64 of 32 bytes. The error never holds the key.
pub fn key_bytes(text: &[u8]) -> Result<Vec<u8>, &'static str> {
    let text = std::str::from_utf8(text).map_err(|_| "the key is not text")?.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|_| "the key is not valid hex")?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| "the key is neither 64 hex digits nor base64")?
    };
    if bytes.len() != 32 {
        return Err("the key is not 32 bytes long");
    }
    Ok(bytes)
}

/// The id of a key: a fingerprint that does not reveal it.
pub fn key_id(bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"sluice key id\0");
    h.update(bytes);
    format!("k{}", hex::encode(&h.finalize()[..8]))
}

/// One AES-256-GCM key and its id.
pub struct SealKey {
    id: String,
    aead: aead::LessSafeKey,
}

impl SealKey {
    pub fn new(bytes: &[u8]) -> Result<SealKey, &'static str> {
        let key = aead::UnboundKey::new(&aead::AES_256_GCM, bytes).map_err(|_| "the key is unusable")?;
        Ok(SealKey { id: key_id(bytes), aead: aead::LessSafeKey::new(key) })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey({})", self.id)
    }
}

/// Why a blob did not open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// No key of the ring has this id.
    Missing(String),
    /// The key is there, but the blob is not what it sealed (altered, or moved to another row).
    Corrupt,
}

/// The current key and the previous ones.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<SealKey>,
}

impl KeyRing {
    /// The keys of a secret's text: one key, or several separated by commas or line breaks
    /// (the first current). Errors say which key (1-based) and why, never the key.
    pub fn parse(text: &[u8]) -> Result<KeyRing, String> {
        let text = std::str::from_utf8(text).map_err(|_| "the secret is not text".to_string())?;
        let mut keys: Vec<SealKey> = Vec::new();
        for (i, part) in text.split([',', '\n', '\r']).map(str::trim).filter(|p| !p.is_empty()).enumerate() {
            let key = key_bytes(part.as_bytes())
                .and_then(|b| SealKey::new(&b))
                .map_err(|why| format!("key {}: {why}", i + 1))?;
            if keys.iter().any(|k| k.id == key.id) {
                return Err(format!("key {} is listed twice", i + 1));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err("the secret holds no key".to_string());
        }
        Ok(KeyRing { keys })
    }

    /// Resolves `reference` (a secret reference) and parses its keys; `what` names the spec
    /// key for the error.
    pub fn resolve(reference: &str, what: &str) -> Result<KeyRing, RunError> {
        let secret = crate::secrets::resolve(reference, what)?;
        KeyRing::parse(secret.expose()).map_err(|why| {
            RunError::new(findings::KEY_INVALID, format!("{what} ({reference}): {why}")).with_help(
                "use 32 random bytes as 64 hex digits (`openssl rand -hex 32`); to rotate, put the new key first and \
                 the old ones after it, separated by commas",
            )
        })
    }

    /// The key that seals.
    pub fn current(&self) -> &SealKey {
        &self.keys[0]
    }

    /// Every key's id, the current one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    pub fn has(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    /// Seals `plain` under the current key, bound to `aad`: the key id and the blob.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<(String, String), RunError> {
        let key = self.current();
        let mut nonce = [0u8; aead::NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| RunError::new(findings::IO, "the system's random number generator failed"))?;
        let mut buf = plain.to_vec();
        key.aead
            .seal_in_place_append_tag(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(aad), &mut buf)
            .map_err(|_| RunError::new(findings::IO, "encryption failed"))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&buf);
        Ok((key.id.clone(), base64::engine::general_purpose::STANDARD.encode(blob)))
    }

    /// Opens a blob sealed under key `id`, bound to `aad`.
    pub fn open(&self, id: &str, aad: &[u8], blob: &str) -> Result<Vec<u8>, OpenError> {
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| OpenError::Missing(id.to_string()))?;
        let mut bytes = base64::engine::general_purpose::STANDARD.decode(blob).map_err(|_| OpenError::Corrupt)?;
        if bytes.len() < aead::NONCE_LEN + aead::AES_256_GCM.tag_len() {
            return Err(OpenError::Corrupt);
        }
        let nonce =
            aead::Nonce::try_assume_unique_for_key(&bytes[..aead::NONCE_LEN]).map_err(|_| OpenError::Corrupt)?;
        let plain = key
            .aead
            .open_in_place(nonce, aead::Aad::from(aad), &mut bytes[aead::NONCE_LEN..])
            .map_err(|_| OpenError::Corrupt)?;
        Ok(plain.to_vec())
    }
}

/// The run error for a blob whose key is not configured: names the key id and where to add it.
pub fn missing_key_error(id: &str, what: &str, reference: &str) -> RunError {
    RunError::new(findings::KEY_MISSING, format!("{what} was encrypted with key {id}, which `{reference}` does not hold"))
        .with_help(format!(
            "add that key to `{reference}` after the current one (comma-separated); `sluice keys list` shows the ids of the configured keys"
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const B: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old = KeyRing::parse(A.as_bytes()).unwrap();
        let (old_id, blob) = old.seal(b"t:1", b"Jane Doe").unwrap();
        let ring = KeyRing::parse(format!("{B},\n{A}").as_bytes()).unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), [key_id(&hex::decode(B).unwrap()), old_id.clone()]);
        assert_eq!(ring.open(&old_id, b"t:1", &blob).unwrap(), b"Jane Doe");
        assert_eq!(ring.open(&old_id, b"t:2", &blob), Err(OpenError::Corrupt), "bound to its aad");
        let (new_id, new_blob) = ring.seal(b"t:1", b"Jane Doe").unwrap();
        assert_ne!(new_id, old_id);
        assert_ne!(ring.seal(b"t:1", b"Jane Doe").unwrap().1, new_blob, "random nonces");
        assert_eq!(old.open(&new_id, b"t:1", &new_blob), Err(OpenError::Missing(new_id)));
    }

    #[test]
    fn errors_name_the_key_position_never_the_key() {
        for (text, want) in [
            (format!("{A},0001"), "key 2: "),
            (format!("{A},{A}"), "key 2 is listed twice"),
            (" , ".to_string(), "no key"),
        ] {
            let e = KeyRing::parse(text.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("0001") && !e.contains(A), "{e}");
        }
        assert!(!format!("{:?}", KeyRing::parse(A.as_bytes()).unwrap()).contains(A));
    }
}
