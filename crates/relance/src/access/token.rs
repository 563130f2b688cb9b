//! Random secrets Relance hands out (API keys, session ids, CSRF tokens) and how they
//! are kept: only a SHA-256 digest is stored. They are 192 bits drawn from the OS, so a
//! fast hash is enough (a KDF would only slow every request down).

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Every API key starts with this, so that a leaked key is recognisable (secret scanners,
/// logs) and a key is never mistaken for the admin token.
pub const KEY_PREFIX: &str = "rlk_";
/// Characters of a key shown in listings and the audit log (the prefix and 8 more).
const VISIBLE: usize = KEY_PREFIX.len() + 8;

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// The stored form of a secret: lower-case hex SHA-256.
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new API key: the key (shown once), its visible prefix and its digest.
pub struct NewKeySecret {
    pub key: String,
    pub prefix: String,
    pub hash: String,
}

pub fn new_api_key() -> NewKeySecret {
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(random_bytes::<24>()));
    NewKeySecret { prefix: key[..VISIBLE].to_owned(), hash: digest(&key), key }
}

/// Whether a presented bearer token has the shape of an API key.
pub fn looks_like_key(token: &str) -> bool {
    token.starts_with(KEY_PREFIX) && token.len() > VISIBLE
}

/// A new session: the cookie value, its digest (the row's key) and its CSRF token.
pub struct NewSessionSecret {
    pub cookie: String,
    pub hash: String,
    pub csrf: String,
}

pub fn new_session() -> NewSessionSecret {
    let cookie = URL_SAFE_NO_PAD.encode(random_bytes::<24>());
    NewSessionSecret { hash: digest(&cookie), csrf: URL_SAFE_NO_PAD.encode(random_bytes::<24>()), cookie }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_a_prefix_and_only_their_digest_is_kept() {
        let k = new_api_key();
        assert!(k.key.starts_with("rlk_") && k.key.len() == 4 + 32, "{}", k.key);
        assert!(k.key.starts_with(&k.prefix) && k.prefix.len() == 12);
        assert_eq!(k.hash, digest(&k.key));
        assert_eq!(k.hash.len(), 64);
        assert!(!k.hash.contains(&k.key[4..]));
        assert!(looks_like_key(&k.key));
        assert!(!looks_like_key("the-admin-token"));
        assert_ne!(new_api_key().key, k.key);
        let s = new_session();
        assert_eq!(s.hash, digest(&s.cookie));
        assert_ne!(s.cookie, s.csrf);
    }
}
