//! How the providers that sign their callbacks (kie.ai, upload-post) compute
//! the signature: HMAC-SHA256 over two parts joined by a dot. Each provider's
//! `wire::sign` encodes it its way; the mock providers sign with it and
//! `webhooks` checks a received signature against it.
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// HMAC-SHA256 under `secret` over `first.second`.
pub fn dotted_hmac(secret: &SecretString, first: &[u8], second: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(first);
    mac.update(b".");
    mac.update(second);
    mac
}
