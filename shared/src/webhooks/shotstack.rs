//! Shotstack's callbacks are unsigned (its webhook guide documents no
//! signature), so every well-formed one is `unsigned` and its URL is only a
//! hint: the consumer confirms with `GET /edit/v1/render/{id}`. A render
//! sends two: `edit`/`render` when rendering ends, then `serve`/`copy` when
//! the file reached the CDN; both map to the render id as the job.
use serde::Deserialize;
use serde_json::Value;

use super::{
    accepted, parse_json, CallbackKind, MalformedCallback, OutcomeHint, ProviderCallback, Received,
};
use crate::domain::{Provider, SignatureStatus};
use crate::providers::shotstack::is_valid_id;
use crate::providers::shotstack::wire::Callback;

pub(super) fn receive(body: &[u8]) -> Result<Received, MalformedCallback> {
    let payload: Value = parse_json(Provider::Shotstack, body)?;
    let (key, callback) = parse(&payload)?;
    Ok(accepted(SignatureStatus::Unsigned, key, callback, payload))
}

/// Shotstack signs nothing, so the callback URL a run gives it carries a
/// token only this service can make (`?run=<run id>&token=<HMAC>`, see
/// `HitlSigner::callback_token`); `checked` is what the route found of it.
/// With a good token the callback is `verified`; without one (or with a bad
/// one) it is kept as evidence under a key of its own and never acted on, so
/// a forged callback never takes the genuine one's key.
pub fn authenticate(
    received: Received,
    checked: Result<(), (SignatureStatus, String)>,
    body: &[u8],
) -> Received {
    match checked {
        Ok(()) => Received {
            signature_status: SignatureStatus::Verified,
            ..received
        },
        Err((status, error)) => super::not_accepted(
            status,
            received.idempotency_key,
            received.provider_job_id,
            received.payload,
            body,
            error,
        ),
    }
}

/// What a Shotstack callback body says: the idempotency key and the callback.
pub(super) fn parse(payload: &Value) -> Result<(String, ProviderCallback), MalformedCallback> {
    let callback = Callback::deserialize(payload)
        .map_err(|e| MalformedCallback::new(Provider::Shotstack, e.to_string()))?;
    let malformed = |reason: &str| MalformedCallback::new(Provider::Shotstack, reason);
    if callback.status.is_empty() {
        return Err(malformed("empty status"));
    }
    // Ids go into requests to Shotstack's API: only the documented form.
    if !is_valid_id(&callback.id) || callback.render.as_deref().is_some_and(|r| !is_valid_id(r)) {
        return Err(malformed("an id that is not a Shotstack id (a UUID)"));
    }
    let (kind, job_id, success) = match (callback.kind.as_str(), callback.action.as_str()) {
        ("edit", "render") => (CallbackKind::ShotstackRender, callback.id.clone(), "done"),
        ("serve", "copy") => {
            let render = callback
                .render
                .clone()
                .filter(|r| !r.is_empty())
                .ok_or_else(|| malformed("serve callback without render id"))?;
            (CallbackKind::ShotstackCdnCopy, render, "ready")
        }
        (kind, action) => return Err(malformed(&format!("unknown callback {kind}/{action}"))),
    };
    let outcome_hint = match callback.status.as_str() {
        status if status == success => match callback.url.clone().filter(|u| !u.is_empty()) {
            Some(url) => OutcomeHint::Succeeded { urls: vec![url] },
            None => return Err(malformed("success without url")),
        },
        "failed" => OutcomeHint::Failed {
            message: callback
                .error
                .clone()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "render failed".to_owned()),
        },
        _ => OutcomeHint::Progress,
    };
    let key = format!(
        "shotstack:{}:{}:{}",
        callback.id, callback.kind, callback.status
    );
    let callback = ProviderCallback {
        provider: Provider::Shotstack,
        job_id,
        kind,
        outcome_hint,
        signature_covers_body: false,
    };
    Ok((key, callback))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::{receive as receive_any, WebhookSecrets};
    use axum::http::HeaderMap;
    use chrono::Utc;
    use secrecy::SecretString;

    const RENDER_ID: &str = "6d7acbe6-e7c1-4cf8-b8ea-94e7522878cc";

    fn render_done(id: &str) -> String {
        format!(
            r#"{{"type":"edit","action":"render","id":"{id}","owner":"o1","status":"done","url":"https://out.example/{id}.mp4","error":null,"completed":"2020-02-24T11:52:20.810Z"}}"#
        )
    }

    fn cdn_ready(render: &str) -> String {
        format!(
            r#"{{"type":"serve","action":"copy","id":"e4433cbf-e501-76a2-ac8b-715d26997540","render":"{render}","owner":"o1","status":"ready","url":"https://cdn.example/{render}.mp4","error":null,"completed":"2021-07-12T11:04:44.574Z"}}"#
        )
    }

    fn run(body: &str) -> Result<Received, MalformedCallback> {
        let secrets = WebhookSecrets {
            kieai: SecretString::from("a"),
            upload_post: SecretString::from("b"),
        };
        receive_any(
            Provider::Shotstack,
            &HeaderMap::new(),
            body.as_bytes(),
            &secrets,
            Utc::now(),
        )
    }

    #[test]
    fn render_and_cdn_copy_are_two_unsigned_callbacks_of_one_job() {
        let render = run(&render_done(RENDER_ID)).unwrap();
        let copy = run(&cdn_ready(RENDER_ID)).unwrap();
        for received in [&render, &copy] {
            assert_eq!(received.signature_status, SignatureStatus::Unsigned);
            assert_eq!(received.provider_job_id.as_deref(), Some(RENDER_ID));
            assert!(!received.callback.as_ref().unwrap().signature_covers_body);
        }
        assert_eq!(render.callback.unwrap().kind, CallbackKind::ShotstackRender);
        let copy_callback = copy.callback.clone().unwrap();
        assert_eq!(copy_callback.kind, CallbackKind::ShotstackCdnCopy);
        assert_eq!(
            copy_callback.outcome_hint,
            OutcomeHint::Succeeded {
                urls: vec![format!("https://cdn.example/{RENDER_ID}.mp4")]
            }
        );
        assert_ne!(render.idempotency_key, copy.idempotency_key);
    }

    #[test]
    fn redelivery_is_a_duplicate_and_other_jobs_are_not() {
        let first = run(&render_done(RENDER_ID)).unwrap();
        let again = run(&render_done(RENDER_ID)).unwrap();
        let other = run(&render_done("d2b46ed6-998a-4d6b-9d91-b8cf0193a655")).unwrap();
        assert_eq!(first.idempotency_key, again.idempotency_key);
        assert_ne!(first.idempotency_key, other.idempotency_key);
        assert_eq!(
            first.idempotency_key,
            format!("shotstack:{RENDER_ID}:edit:done")
        );
    }

    #[test]
    fn a_failed_render_carries_shotstack_error() {
        let body = format!(
            r#"{{"type":"edit","action":"render","id":"{RENDER_ID}","owner":"o1","status":"failed","url":null,"error":"Invalid asset URL"}}"#
        );
        let received = run(&body).unwrap();
        assert_eq!(
            received.callback.unwrap().outcome_hint,
            OutcomeHint::Failed {
                message: "Invalid asset URL".into()
            }
        );
        assert!(received.idempotency_key.ends_with(":edit:failed"));
    }

    #[test]
    fn malformed_or_unknown_bodies_are_errors() {
        let bodies = [
            "".to_owned(),
            "{".to_owned(),
            r#"{"type":"edit"}"#.to_owned(),
            r#"{"type":"other","action":"x","id":"1","status":"done"}"#.to_owned(),
            render_done(RENDER_ID).replace(r#""url":"https://out.example/"#, r#""nourl":"#),
            cdn_ready(RENDER_ID).replace(r#""render":"#, r#""not_render":"#),
            // Ids that would steer a request to Shotstack's API elsewhere.
            render_done("../../../v1/templates"),
            render_done(&format!("{RENDER_ID}?x=1")),
            cdn_ready("../v1/templates"),
        ];
        for body in bodies {
            assert!(run(&body).is_err(), "{body}");
        }
    }
}
