//! API key material: generation, the bearer token format, and the keyed hash that is all we store.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::model::KeyId;
#[cfg(test)]
use crate::model::new_sortable_id;

const SECRET_CHARS: usize = 40; // ~238 bits
const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn random_base62(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

pub(crate) fn generate_secret() -> String {
    random_base62(SECRET_CHARS)
}

/// Splits a bearer token `<key id>.<secret>` into its halves. `None` for anything malformed.
pub fn parse_bearer_token(token: &str) -> Option<(KeyId, &str)> {
    let (id, secret) = token.split_once('.')?;
    let id = KeyId::parse(id)?;
    let secret_ok = !secret.is_empty() && secret.len() <= 128 && secret.bytes().all(|b| b.is_ascii_alphanumeric());
    secret_ok.then_some((id, secret))
}

/// Hashes key secrets with HMAC-SHA256 under the server secret: a leaked database alone does not allow offline
/// guessing, and the secrets are long random strings, so a slow password hash would only add latency per call.
#[derive(Clone)]
pub struct KeyHasher {
    mac: Hmac<Sha256>,
}

impl KeyHasher {
    pub fn new(server_secret: &[u8]) -> Self {
        let mac = Hmac::<Sha256>::new_from_slice(server_secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        KeyHasher { mac }
    }

    pub(crate) fn hash(&self, secret: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(secret.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Constant-time comparison of a presented secret with a stored hash.
    pub(crate) fn verify(&self, secret: &str, stored_hash: &str) -> bool {
        self.hash(secret).as_bytes().ct_eq(stored_hash.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_round_trip_and_reject_garbage() {
        let id = KeyId::parse(&new_sortable_id(KeyId::PREFIX)).expect("well-formed");
        let secret = generate_secret();
        let token = format!("{id}.{secret}");
        let (parsed_id, parsed_secret) = parse_bearer_token(&token).expect("valid token");
        assert_eq!(parsed_id, id);
        assert_eq!(parsed_secret, secret);
        for bad in ["", ".", "fpk_abc", "fpk_abc.", ".secret", "xyz_abc.secret", "fpk_a-b.secret", "fpk_ab.se cret"] {
            assert!(parse_bearer_token(bad).is_none(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn hashes_depend_on_the_server_secret() {
        let a = KeyHasher::new(b"server-secret-a");
        let b = KeyHasher::new(b"server-secret-b");
        let h = a.hash("s3cret");
        assert!(a.verify("s3cret", &h));
        assert!(!a.verify("s3cret!", &h));
        assert!(!b.verify("s3cret", &h));
    }
}
