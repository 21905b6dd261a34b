//! Virtual key material: generation (`sk-` + 192 random bits), the stored form (hex SHA-256,
//! LiteLLM's `token_id`), the display form (`sk-...abcd`), and constant-time comparison.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new key: `sk-` and 48 hex digits (192 bits from the OS generator).
pub fn new_key() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("sk-{}", hex::encode(bytes))
}

/// The SHA-256 of a key's text.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The stored form of a key: hex SHA-256 of its text.
pub fn hash_key(key: &str) -> String {
    token_id_of(&digest(key))
}

/// The stored form of a key from its [`digest`]: 64 lowercase hex digits. Written by table
/// into an array, once per authenticated request (`hex::encode` builds its string a `char` at a
/// time).
pub fn token_id_of(digest: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 64];
    for (pair, byte) in text.chunks_exact_mut(2).zip(digest) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
    // Hex digits are ASCII: the check cannot fail.
    std::str::from_utf8(&text).unwrap_or_default().to_owned()
}

/// True when `text` is already a stored form (64 lowercase hex digits), as LiteLLM accepts a
/// hashed token wherever a key is expected.
pub fn is_hash(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The stored form of `text`, whether it is a key or already a hash.
pub fn token_id(text: &str) -> String {
    if is_hash(text) {
        text.to_owned()
    } else {
        hash_key(text)
    }
}

/// LiteLLM's display form: `sk-...` and the last four characters.
pub fn key_name(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("sk-...{tail}")
}

/// Compares two stored forms in constant time.
pub fn same_token(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_hash_to_token_ids() {
        let a = new_key();
        let b = new_key();
        assert_ne!(a, b);
        assert!(a.starts_with("sk-") && a.len() == 51);
        let id = hash_key(&a);
        assert_eq!(id, hex::encode(digest(&a)));
        assert!(is_hash(&id));
        assert_eq!(token_id(&a), id);
        assert_eq!(token_id(&id), id);
        // LiteLLM's token_id of its documented example key.
        assert_eq!(
            hash_key("sk-1234"),
            "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"
        );
        assert_eq!(key_name("sk-abcdef"), "sk-...cdef");
        assert!(same_token(&id, &id) && !same_token(&id, &hash_key(&b)));
    }
}
