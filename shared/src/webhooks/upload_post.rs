//! upload-post's webhook scheme: `X-Upload-Post-Signature: sha256=<hex>` of
//! HMAC-SHA256(key, `<X-Upload-Post-Timestamp>.<raw body>`). The signature
//! covers the body, so a verified callback's result can be trusted as sent.
//!
//! Where it comes from: the stored copies of the webhooks page (to mid-2026)
//! show the payload and no signature; integrators quoting the newer page
//! (2026-09/10) describe this scheme, with the secret (`whsec_…`) returned
//! by the notifications settings and "deliveries before the secret exists
//! are unsigned". An unsigned delivery is therefore normal on an account
//! without a secret: it is recorded (`missing`) and not acted on, and the
//! reconciler settles the upload from the status endpoint instead.
//!
//! An `upload_completed` event is one platform's result for a `job_id`;
//! one without a `job_id` (the docs allow it) and other events (account
//! connections) are verified but are not job callbacks.
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    accepted, header, not_accepted, parse_json, signed, CallbackKind, MalformedCallback,
    OutcomeHint, ProviderCallback, Received,
};
use crate::domain::{Provider, SignatureStatus};
use crate::providers::upload_post::wire::{self, UploadCompleted};
use crate::providers::upload_post::{state_of, PublishState};

pub use crate::providers::upload_post::wire::sign;

/// What an upload-post body says, its signature aside: one platform's
/// result for a job (its idempotency key and callback), or another event.
pub(super) enum Parsed {
    Upload {
        key: String,
        callback: ProviderCallback,
    },
    Other {
        event: String,
        job_id: Option<String>,
    },
}

pub(super) fn parse(payload: &Value) -> Result<Parsed, MalformedCallback> {
    let malformed = |reason: String| MalformedCallback::new(Provider::UploadPost, reason);
    let event = UploadCompleted::deserialize(payload).map_err(|e| malformed(e.to_string()))?;
    let job_id = event.job_id.filter(|id| !id.is_empty());
    if job_id.as_deref().is_some_and(|id| !super::is_plain_id(id)) {
        return Err(malformed("job_id is not an upload-post id".into()));
    }
    let platform = event.platform.filter(|p| !p.is_empty());
    // The docs: `job_id` is "only present when the upload was triggered via
    // the API with a job_id". Without it the result names no job of ours:
    // kept as a verified event, not acted on (the reconciler asks the status
    // endpoint about every upload still owed).
    let (true, Some(job_id), Some(platform)) =
        (event.event == "upload_completed", job_id.clone(), platform)
    else {
        return Ok(Parsed::Other {
            event: event.event,
            job_id,
        });
    };
    let result = event.result.unwrap_or_default();
    let outcome_hint = match state_of(&result, true) {
        PublishState::Published { url } => OutcomeHint::Succeeded {
            urls: url.into_iter().collect(),
        },
        PublishState::Failed { error } => OutcomeHint::Failed { message: error },
        PublishState::Pending => OutcomeHint::Progress,
    };
    Ok(Parsed::Upload {
        key: format!("upload-post:{job_id}:{platform}"),
        callback: ProviderCallback {
            provider: Provider::UploadPost,
            job_id,
            kind: CallbackKind::UploadPostResult { platform },
            outcome_hint,
            signature_covers_body: true,
        },
    })
}

// The signature every signed scheme's `receive` shares, for `super::receive`
// to dispatch to.
pub(super) fn receive(
    headers: &HeaderMap,
    body: &[u8],
    secret: &SecretString,
    now: DateTime<Utc>,
) -> Result<Received, MalformedCallback> {
    let payload = parse_json(Provider::UploadPost, body)?;
    let parsed = parse(&payload)?;
    let (key, job_id) = match &parsed {
        Parsed::Upload { key, callback } => (key.clone(), Some(callback.job_id.clone())),
        Parsed::Other { event, job_id } => {
            let delivery = header(headers, wire::DELIVERY_HEADER)
                .map_or_else(|| hex::encode(&Sha256::digest(body)[..8]), str::to_owned);
            (
                format!("upload-post:event:{event}:{delivery}"),
                job_id.clone(),
            )
        }
    };

    let (timestamp, signature) =
        match signed(headers, wire::TIMESTAMP_HEADER, wire::SIGNATURE_HEADER, now) {
            Ok(found) => found,
            Err((status, error)) => {
                return Ok(not_accepted(status, key, job_id, payload, body, error))
            }
        };
    let hex_part = signature.strip_prefix("sha256=").unwrap_or(signature);
    let mac = wire::signature_mac(secret, timestamp, body);
    let refused = super::refused(
        hex::decode(hex_part).ok(),
        "signature is not sha256=<hex>",
        mac,
    );
    if let Some(error) = refused {
        return Ok(not_accepted(
            SignatureStatus::Rejected,
            key,
            job_id,
            payload,
            body,
            error.to_owned(),
        ));
    }

    match parsed {
        Parsed::Upload { key, callback } => {
            Ok(accepted(SignatureStatus::Verified, key, callback, payload))
        }
        Parsed::Other { event, job_id } => Ok(super::Received {
            signature_status: SignatureStatus::Verified,
            callback: None,
            idempotency_key: key,
            provider_job_id: job_id,
            payload,
            error: Some(if event == "upload_completed" {
                "an upload result without a job_id or platform: not matched to a job".into()
            } else {
                format!("event {event} is not a job callback")
            }),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::receive as receive_any;
    use crate::webhooks::tests::{now, secrets};
    use axum::http::HeaderValue;

    fn completed(job: &str, platform: &str, success: bool) -> String {
        let result = if success {
            format!(
                r#"{{"success":true,"url":"https://www.{platform}.com/p/{job}","publish_id":"1","post_id":"1","error":null}}"#
            )
        } else {
            r#"{"success":false,"url":null,"error":"Token expired"}"#.to_owned()
        };
        format!(
            r#"{{"event":"upload_completed","job_id":"{job}","user_email":"a@b.c","profile_username":"brand","platform":"{platform}","media_type":"video","title":"T","caption":"C","result":{result},"created_at":"2024-03-15T14:30:00.000000"}}"#
        )
    }

    fn signed(body: &str, timestamp: i64, secret: &SecretString) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let sig = sign(secret, timestamp, body.as_bytes());
        headers.insert(wire::TIMESTAMP_HEADER, HeaderValue::from(timestamp));
        headers.insert(wire::SIGNATURE_HEADER, HeaderValue::from_str(&sig).unwrap());
        headers.insert(
            wire::EVENT_HEADER,
            HeaderValue::from_static("upload_completed"),
        );
        headers
    }

    fn run(headers: &HeaderMap, body: &str) -> Received {
        receive_any(
            Provider::UploadPost,
            headers,
            body.as_bytes(),
            &secrets(),
            now(),
        )
        .unwrap()
    }

    #[test]
    fn a_signed_result_is_verified_and_covers_the_body() {
        let body = completed("job-1", "tiktok", true);
        let received = run(
            &signed(&body, now().timestamp(), &secrets().upload_post),
            &body,
        );
        assert_eq!(received.signature_status, SignatureStatus::Verified);
        assert_eq!(received.idempotency_key, "upload-post:job-1:tiktok");
        let callback = received.callback.unwrap();
        assert!(callback.signature_covers_body);
        assert_eq!(
            callback.kind,
            CallbackKind::UploadPostResult {
                platform: "tiktok".into()
            }
        );
        assert_eq!(
            callback.outcome_hint,
            OutcomeHint::Succeeded {
                urls: vec!["https://www.tiktok.com/p/job-1".into()]
            }
        );
    }

    #[test]
    fn each_platform_is_its_own_callback() {
        let a = completed("job-1", "tiktok", true);
        let b = completed("job-1", "instagram", false);
        let ra = run(&signed(&a, now().timestamp(), &secrets().upload_post), &a);
        let rb = run(&signed(&b, now().timestamp(), &secrets().upload_post), &b);
        assert_ne!(ra.idempotency_key, rb.idempotency_key);
        assert!(matches!(
            rb.callback.unwrap().outcome_hint,
            OutcomeHint::Failed { .. }
        ));
    }

    #[test]
    fn forged_tampered_replayed_and_missing_are_not_acted_on() {
        let body = completed("job-1", "tiktok", true);
        let forged = signed(&body, now().timestamp(), &SecretString::from("guess"));
        assert_eq!(
            run(&forged, &body).signature_status,
            SignatureStatus::Rejected
        );

        let good = signed(&body, now().timestamp(), &secrets().upload_post);
        let tampered = body.replace("tiktok.com", "evil.com");
        let received = run(&good, &tampered);
        assert_eq!(received.signature_status, SignatureStatus::Rejected);
        assert!(received.callback.is_none());

        let old = signed(&body, now().timestamp() - 301, &secrets().upload_post);
        assert_eq!(run(&old, &body).signature_status, SignatureStatus::Rejected);
        let future = signed(&body, now().timestamp() + 301, &secrets().upload_post);
        assert_eq!(
            run(&future, &body).signature_status,
            SignatureStatus::Rejected
        );

        for drop in [wire::TIMESTAMP_HEADER, wire::SIGNATURE_HEADER] {
            let mut headers = good.clone();
            headers.remove(drop);
            let received = run(&headers, &body);
            assert_eq!(received.signature_status, SignatureStatus::Missing);
            assert!(received.callback.is_none());
            assert_ne!(received.idempotency_key, "upload-post:job-1:tiktok");
        }
    }

    #[test]
    fn a_signature_over_a_shifted_timestamp_is_rejected() {
        let body = completed("job-1", "tiktok", true);
        let mut headers = signed(&body, now().timestamp(), &secrets().upload_post);
        headers.insert(
            wire::TIMESTAMP_HEADER,
            HeaderValue::from(now().timestamp() - 1),
        );
        assert_eq!(
            run(&headers, &body).signature_status,
            SignatureStatus::Rejected
        );
        headers.insert(
            wire::SIGNATURE_HEADER,
            HeaderValue::from_static("sha256=zz"),
        );
        assert_eq!(
            run(&headers, &body).signature_status,
            SignatureStatus::Rejected
        );
    }

    #[test]
    fn account_events_are_verified_but_not_job_callbacks() {
        let body = r#"{"event":"social_account_connected","profile_username":"brand","platform":"tiktok"}"#;
        let received = run(
            &signed(body, now().timestamp(), &secrets().upload_post),
            body,
        );
        assert_eq!(received.signature_status, SignatureStatus::Verified);
        assert!(received.callback.is_none());
        assert!(received.error.unwrap().contains("not a job callback"));
    }

    #[test]
    fn a_result_without_a_job_id_is_verified_but_matched_to_no_job() {
        // The docs: `job_id` is "only present when the upload was triggered
        // via the API with a job_id".
        let body = r#"{"event":"upload_completed","platform":"tiktok","result":{"success":true}}"#;
        let headers = signed(body, now().timestamp(), &secrets().upload_post);
        let received = receive_any(
            Provider::UploadPost,
            &headers,
            body.as_bytes(),
            &secrets(),
            now(),
        )
        .unwrap();
        assert_eq!(received.signature_status, SignatureStatus::Verified);
        assert!(received.callback.is_none());
        assert!(received.error.unwrap().contains("without a job_id"));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let headers = signed("{}", now().timestamp(), &secrets().upload_post);
        for body in ["", "nope", "{}", "[]"] {
            let result = receive_any(
                Provider::UploadPost,
                &headers,
                body.as_bytes(),
                &secrets(),
                now(),
            );
            assert!(result.is_err(), "{body:?}");
        }
    }
}
