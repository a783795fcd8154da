//! Signed approval links for human-in-the-loop gates. A link carries an
//! approval token — an HMAC over the run, the gate and an expiry — never the
//! engine's task token, so it can be pasted into chat or email safely. A
//! link is good once: the store decides a gate once, and a second use finds it
//! decided.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::domain::{Gate, RunId};

/// How long a link stays good unless asked otherwise.
pub const DEFAULT_LINK_TTL: Duration = Duration::hours(24);

/// Why a link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the approval token is malformed")]
    Malformed,
    #[error("the approval token's signature does not match")]
    BadSignature,
    #[error("the approval link expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("the approval token is for another run or gate")]
    WrongTarget,
}

/// Signs and checks approval tokens with `HITL_SECRET`.
#[derive(Debug, Clone)]
pub struct HitlSigner {
    secret: SecretString,
}

impl HitlSigner {
    pub fn new(secret: SecretString) -> Self {
        Self { secret }
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(payload.as_bytes());
        mac
    }

    /// The token in the callback URL a run gives a provider that signs
    /// nothing (Shotstack): an HMAC over `callback:<provider>:<run id>`, a
    /// message no approval token signs. Only this service can make one, so a
    /// callback carrying it came to the URL the run gave out.
    pub fn callback_token(&self, provider: &str, run_id: RunId) -> String {
        let signature = self
            .mac(&format!("callback:{provider}:{run_id}"))
            .finalize()
            .into_bytes();
        URL_SAFE_NO_PAD.encode(signature)
    }

    /// Whether `token` is the callback token of `provider` for `run_id`
    /// (compared in constant time).
    pub fn verify_callback_token(&self, provider: &str, run_id: RunId, token: &str) -> bool {
        URL_SAFE_NO_PAD.decode(token).is_ok_and(|signature| {
            self.mac(&format!("callback:{provider}:{run_id}"))
                .verify_slice(&signature)
                .is_ok()
        })
    }

    /// A token approving `gate` of `run_id` until `expires_at`.
    pub fn sign(&self, run_id: RunId, gate: &Gate, expires_at: DateTime<Utc>) -> String {
        let payload = format!("{run_id}:{gate}:{}", expires_at.timestamp());
        let signature = self.mac(&payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    /// Checks `token` for `gate` of `run_id` at `now`: signature first (in
    /// constant time), then target and expiry.
    pub fn verify(
        &self,
        token: &str,
        run_id: RunId,
        gate: &Gate,
        now: DateTime<Utc>,
    ) -> Result<(), LinkError> {
        let (payload, signature) = token.split_once('.').ok_or(LinkError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| LinkError::Malformed)?;
        let payload = String::from_utf8(payload).map_err(|_| LinkError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| LinkError::Malformed)?;
        self.mac(&payload)
            .verify_slice(&signature)
            .map_err(|_| LinkError::BadSignature)?;
        let mut parts = payload.rsplitn(3, ':');
        let expires = parts
            .next()
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or(LinkError::Malformed)?;
        let signed_gate = parts.next().ok_or(LinkError::Malformed)?;
        let signed_run = parts.next().ok_or(LinkError::Malformed)?;
        if signed_run != run_id.to_string() || signed_gate != gate.as_str() {
            return Err(LinkError::WrongTarget);
        }
        let expires_at = DateTime::from_timestamp(expires, 0).ok_or(LinkError::Malformed)?;
        if now > expires_at {
            return Err(LinkError::Expired(expires_at));
        }
        Ok(())
    }

    /// The approval link under `public_base_url` (no trailing slash needed).
    pub fn link(
        &self,
        public_base_url: &str,
        run_id: RunId,
        gate: &Gate,
        expires_at: DateTime<Utc>,
    ) -> String {
        format!(
            "{}/v1/hitl/approve/{run_id}/{gate}?token={}",
            public_base_url.trim_end_matches('/'),
            self.sign(run_id, gate, expires_at)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secret: &str) -> HitlSigner {
        HitlSigner::new(SecretString::from(secret.to_owned()))
    }

    #[test]
    fn a_signed_token_verifies_for_its_target_until_it_expires() {
        let s = signer("0123456789abcdef0123");
        let run = RunId::new();
        let gate: Gate = "ideate".parse().unwrap();
        let now = Utc::now();
        let token = s.sign(run, &gate, now + Duration::minutes(5));
        assert_eq!(s.verify(&token, run, &gate, now), Ok(()));
        let later = now + Duration::minutes(6);
        assert!(matches!(
            s.verify(&token, run, &gate, later),
            Err(LinkError::Expired(_))
        ));
        let other: Gate = "prepublish".parse().unwrap();
        assert_eq!(
            s.verify(&token, run, &other, now),
            Err(LinkError::WrongTarget)
        );
        assert_eq!(
            s.verify(&token, RunId::new(), &gate, now),
            Err(LinkError::WrongTarget)
        );
    }

    #[test]
    fn forged_and_tampered_tokens_are_refused() {
        let run = RunId::new();
        let gate: Gate = "ideate".parse().unwrap();
        let now = Utc::now();
        let token = signer("0123456789abcdef0123").sign(run, &gate, now + Duration::hours(1));
        assert_eq!(
            signer("another-secret-0000000").verify(&token, run, &gate, now),
            Err(LinkError::BadSignature)
        );
        let (payload, sig) = token.split_once('.').unwrap();
        let longer = URL_SAFE_NO_PAD.encode(format!(
            "{run}:{gate}:{}",
            (now + Duration::days(365)).timestamp()
        ));
        assert_eq!(
            signer("0123456789abcdef0123").verify(&format!("{longer}.{sig}"), run, &gate, now),
            Err(LinkError::BadSignature),
            "a changed expiry breaks the signature"
        );
        for bad in ["", "nodot", "!!!.???", &format!("{payload}.")] {
            assert!(
                signer("0123456789abcdef0123")
                    .verify(bad, run, &gate, now)
                    .is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn links_point_at_the_approve_route() {
        let run = RunId::new();
        let gate: Gate = "prepublish".parse().unwrap();
        let link =
            signer("0123456789abcdef0123").link("http://127.0.0.1:8080/", run, &gate, Utc::now());
        assert!(
            link.starts_with(&format!(
                "http://127.0.0.1:8080/v1/hitl/approve/{run}/prepublish?token="
            )),
            "{link}"
        );
    }
}
