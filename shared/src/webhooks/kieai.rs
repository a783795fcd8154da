//! kie.ai's webhook scheme (docs.kie.ai, common-api/webhook-verification):
//! `X-Webhook-Signature` = base64(HMAC-SHA256(webhookHmacKey,
//! `taskId + "." + X-Webhook-Timestamp`)). The signature binds the task id
//! and the time only; the body is not covered.
use axum::http::HeaderMap;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

use super::{
    accepted, not_accepted, parse_json, signed, CallbackKind, MalformedCallback, OutcomeHint,
    ProviderCallback, Received,
};
use crate::domain::{Provider, SignatureStatus};
use crate::providers::kieai::wire::{self, Callback};

pub use crate::providers::kieai::wire::sign;

/// What a kie.ai callback body says, its signature aside: the idempotency
/// key and the callback.
pub(super) fn parse(payload: &Value) -> Result<(String, ProviderCallback), MalformedCallback> {
    let callback = Callback::deserialize(payload)
        .map_err(|e| MalformedCallback::new(Provider::KieAi, e.to_string()))?;
    let data = callback
        .data
        .ok_or_else(|| MalformedCallback::new(Provider::KieAi, "no data"))?;
    if !super::is_plain_id(&data.task_id) {
        return Err(MalformedCallback::new(
            Provider::KieAi,
            "taskId is not a kie.ai task id",
        ));
    }
    let key = format!("kieai:{}:{}", data.task_id, callback.code);
    let outcome_hint = if callback.code == 200 {
        OutcomeHint::Succeeded {
            urls: data.info.map(|i| i.result_urls).unwrap_or_default(),
        }
    } else {
        OutcomeHint::Failed {
            message: if callback.msg.is_empty() {
                format!("kie.ai error {}", callback.code)
            } else {
                callback.msg
            },
        }
    };
    let callback = ProviderCallback {
        provider: Provider::KieAi,
        job_id: data.task_id,
        kind: CallbackKind::KieAiResult,
        outcome_hint,
        signature_covers_body: false,
    };
    Ok((key, callback))
}

// The signature every signed scheme's `receive` shares, for `super::receive`
// to dispatch to.
pub(super) fn receive(
    headers: &HeaderMap,
    body: &[u8],
    secret: &SecretString,
    now: DateTime<Utc>,
) -> Result<Received, MalformedCallback> {
    let payload = parse_json(Provider::KieAi, body)?;
    let (key, callback) = parse(&payload)?;
    let job = Some(callback.job_id.clone());

    let (timestamp, signature) =
        match signed(headers, wire::TIMESTAMP_HEADER, wire::SIGNATURE_HEADER, now) {
            Ok(found) => found,
            Err((status, error)) => {
                return Ok(not_accepted(status, key, job, payload, body, error))
            }
        };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .ok();
    let mac = wire::signature_mac(secret, &callback.job_id, timestamp);
    if let Some(error) = super::refused(decoded, "signature is not base64", mac) {
        return Ok(not_accepted(
            SignatureStatus::Rejected,
            key,
            job,
            payload,
            body,
            error.to_owned(),
        ));
    }
    Ok(accepted(SignatureStatus::Verified, key, callback, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::receive as receive_any;
    use crate::webhooks::tests::{now, secrets};
    use axum::http::HeaderValue;

    const SUCCESS: &str = r#"{"code":200,"msg":"Veo3.1 video generated successfully.","data":{"taskId":"task-1","info":{"resultUrls":["https://cdn.example/v1.mp4"],"originUrls":[],"resolution":"1080p"},"fallbackFlag":false}}"#;
    const FAILURE: &str = r#"{"code":400,"msg":"Your prompt was flagged by Website as violating content policies","data":{"taskId":"task-1","fallbackFlag":false}}"#;

    fn signed(task_id: &str, timestamp: i64, secret: &SecretString) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let sig = sign(secret, task_id, timestamp);
        headers.insert(wire::TIMESTAMP_HEADER, HeaderValue::from(timestamp));
        headers.insert(wire::SIGNATURE_HEADER, HeaderValue::from_str(&sig).unwrap());
        headers
    }

    fn run(headers: &HeaderMap, body: &str) -> Received {
        receive_any(Provider::KieAi, headers, body.as_bytes(), &secrets(), now()).unwrap()
    }

    #[test]
    fn a_signed_success_is_verified_with_its_urls() {
        let headers = signed("task-1", now().timestamp() - 10, &secrets().kieai);
        let received = run(&headers, SUCCESS);
        assert_eq!(received.signature_status, SignatureStatus::Verified);
        assert_eq!(received.idempotency_key, "kieai:task-1:200");
        assert_eq!(received.provider_job_id.as_deref(), Some("task-1"));
        let callback = received.callback.unwrap();
        assert_eq!(callback.kind, CallbackKind::KieAiResult);
        assert!(!callback.signature_covers_body);
        assert_eq!(
            callback.outcome_hint,
            OutcomeHint::Succeeded {
                urls: vec!["https://cdn.example/v1.mp4".into()]
            }
        );
    }

    #[test]
    fn a_signed_failure_carries_the_message_and_its_own_key() {
        let headers = signed("task-1", now().timestamp(), &secrets().kieai);
        let received = run(&headers, FAILURE);
        assert_eq!(received.signature_status, SignatureStatus::Verified);
        assert_eq!(received.idempotency_key, "kieai:task-1:400");
        assert!(matches!(
            received.callback.unwrap().outcome_hint,
            OutcomeHint::Failed { ref message } if message.contains("content policies")
        ));
    }

    #[test]
    fn a_signature_made_with_another_key_is_rejected() {
        let forged = signed("task-1", now().timestamp(), &SecretString::from("guess"));
        let received = run(&forged, SUCCESS);
        assert_eq!(received.signature_status, SignatureStatus::Rejected);
        assert!(received.callback.is_none());
        assert_ne!(received.idempotency_key, "kieai:task-1:200");
        assert!(received
            .idempotency_key
            .starts_with("kieai:task-1:200#rejected:"));
    }

    #[test]
    fn old_and_future_timestamps_are_rejected_as_replays() {
        for skew in [-301, 301] {
            let headers = signed("task-1", now().timestamp() + skew, &secrets().kieai);
            let received = run(&headers, SUCCESS);
            assert_eq!(
                received.signature_status,
                SignatureStatus::Rejected,
                "{skew}"
            );
            assert!(received.error.unwrap().contains("timestamp"));
        }
        let edge = signed("task-1", now().timestamp() - 300, &secrets().kieai);
        assert_eq!(
            run(&edge, SUCCESS).signature_status,
            SignatureStatus::Verified
        );
    }

    #[test]
    fn missing_headers_are_missing_and_not_acted_on() {
        let full = signed("task-1", now().timestamp(), &secrets().kieai);
        for drop in [wire::TIMESTAMP_HEADER, wire::SIGNATURE_HEADER] {
            let mut headers = full.clone();
            headers.remove(drop);
            let received = run(&headers, SUCCESS);
            assert_eq!(received.signature_status, SignatureStatus::Missing);
            assert!(received.callback.is_none());
            assert!(received.idempotency_key.contains("#missing:"));
        }
    }

    #[test]
    fn a_body_for_another_task_is_rejected() {
        let headers = signed("task-1", now().timestamp(), &secrets().kieai);
        let tampered = SUCCESS.replace("task-1", "task-2");
        assert_eq!(
            run(&headers, &tampered).signature_status,
            SignatureStatus::Rejected
        );
    }

    #[test]
    fn tampered_urls_still_verify_because_the_body_is_not_covered() {
        let headers = signed("task-1", now().timestamp(), &secrets().kieai);
        let tampered = SUCCESS.replace("cdn.example", "evil.example");
        let received = run(&headers, &tampered);
        assert_eq!(received.signature_status, SignatureStatus::Verified);
        assert!(!received.callback.unwrap().signature_covers_body);
    }

    #[test]
    fn garbage_signatures_and_timestamps_are_rejected_not_panics() {
        let mut headers = signed("task-1", now().timestamp(), &secrets().kieai);
        let garbage = [
            (wire::SIGNATURE_HEADER, "%%%"),
            (wire::TIMESTAMP_HEADER, "yesterday"),
            (wire::TIMESTAMP_HEADER, "99999999999999999"),
        ];
        for (name, value) in garbage {
            headers.insert(name, HeaderValue::from_static(value));
            assert_eq!(
                run(&headers, SUCCESS).signature_status,
                SignatureStatus::Rejected,
                "{name}: {value}"
            );
        }
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let headers = signed("task-1", now().timestamp(), &secrets().kieai);
        for body in [
            "",
            "not json",
            "{}",
            r#"{"code":200,"msg":"x","data":{}}"#,
            "[1]",
        ] {
            let result = receive_any(
                Provider::KieAi,
                &headers,
                body.as_bytes(),
                &secrets(),
                now(),
            );
            assert!(result.is_err(), "{body:?}");
        }
    }
}
