//! Gates over HTTP: a signed link to approve (with the API key), the page or
//! JSON behind the link, and approve/reject — with the link's token, or with
//! the API key (the CLI).
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde::Deserialize;

use super::auth::{has_api_key, require_api_key};
use super::gate_page::{escape, no_store_headers};
use super::json::JsonOrForm;
use super::json::{PathParams, QueryParams};
use super::{ApiError, AppState};
use crate::domain::{Gate, HitlDecision};
use crate::pipeline::{ApprovalLink, GateReview};

/// The link route needs the API key; the others check the token or the key
/// themselves. Every answer is kept out of caches, referrers and frames.
pub fn router(state: AppState) -> Router<AppState> {
    let keyed = Router::new()
        .route("/v1/hitl/link/{id}/{gate}", get(link))
        .route_layer(middleware::from_fn_with_state(state, require_api_key));
    Router::new()
        .route(
            "/v1/hitl/approve/{id}/{gate}",
            get(page).post(decide::<true>),
        )
        .route("/v1/hitl/reject/{id}/{gate}", post(decide::<false>))
        .merge(keyed)
        .layer(middleware::map_response(no_store_headers))
}

fn parse_gate(gate: &str) -> Result<Gate, ApiError> {
    gate.parse()
        .map_err(|e: crate::domain::ParseError| ApiError::bad_request(e.to_string()))
}

async fn link(
    State(state): State<AppState>,
    PathParams((id, gate)): PathParams<(String, String)>,
) -> Result<Json<ApprovalLink>, ApiError> {
    Ok(Json(
        state
            .pipeline
            .approval_link(&id, &parse_gate(&gate)?)
            .await?,
    ))
}

/// The approval link's query.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub(super) struct TokenQuery {
    /// The link's approval token (else the API key is needed).
    token: Option<String>,
}

/// A decision's optional details.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub(super) struct DecisionBody {
    /// With the API key, a label for who decided (`cli`, `dashboard`); with
    /// a link, a name kept apart as an unverified claim.
    #[serde(default)]
    #[schemars(length(max = 64))]
    by: Option<String>,
    /// Why (at most 2,000 characters).
    #[serde(default)]
    #[schemars(length(max = 2000))]
    comment: Option<String>,
}

/// A gate as its link shows it to a client: the run, what the gate asks to
/// approve, and the decision once taken.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(super) struct GatePage {
    run_id: crate::domain::RunId,
    job_code: crate::domain::JobCode,
    project: crate::domain::Project,
    status: crate::domain::RunStatus,
    /// The run's brief.
    brief: String,
    gate: Gate,
    review: GateReview,
    decision: Option<HitlDecision>,
    decided_by: Option<String>,
    comment: Option<String>,
    requested_at: chrono::DateTime<chrono::Utc>,
    decided_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// What a request's credential proves: a valid approval link for this gate,
/// or the API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    Link,
    ApiKey,
}

/// The token, or the API key, must allow acting on this gate. To a caller
/// without the API key, a run that does not exist and a token that is not
/// good for it get the same answer, so the link routes tell nobody which
/// runs and job codes exist.
async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    gate: &Gate,
    token: Option<&str>,
) -> Result<Credential, ApiError> {
    match token {
        Some(token) => match state.pipeline.check_link(id, gate, token).await {
            Ok(()) => Ok(Credential::Link),
            Err(
                crate::pipeline::PipelineError::NotFound(_)
                | crate::pipeline::PipelineError::Forbidden(_),
            ) => Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "this approval link is not valid (wrong, expired, or for another gate)",
            )),
            Err(other) => Err(other.into()),
        },
        None if has_api_key(state, headers) => Ok(Credential::ApiKey),
        None => Err(ApiError::unauthorized(
            "an approval token (?token=) or x-api-key is required",
        )),
    }
}

/// Who decided, as far as the credential proves it: `link`, or `api-key`
/// with the label the key's holder gives (`api-key:cli`). A name sent with a
/// link proves nothing: it is kept apart, as a claim (see `decide`).
fn decided_by(credential: Credential, label: Option<&str>) -> String {
    match (credential, label) {
        (Credential::Link, _) => "link".to_owned(),
        (Credential::ApiKey, Some(label)) => format!("api-key:{label}"),
        (Credential::ApiKey, None) => "api-key".to_owned(),
    }
}

/// A self-given name or label: printable, at most 64 characters.
fn label(text: Option<String>) -> Result<Option<String>, ApiError> {
    match text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) if t.chars().count() <= 64 && !t.chars().any(char::is_control) => Ok(Some(t)),
        Some(_) => Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "`by` must be at most 64 printable characters",
        )),
    }
}

async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    PathParams((id, gate)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<TokenQuery>,
) -> Result<Response, ApiError> {
    let gate = parse_gate(&gate)?;
    authorize(&state, &headers, &id, &gate, q.token.as_deref()).await?;
    let view = state.pipeline.gate_view(&id, &gate).await?;
    if wants_html(&headers) {
        let token = q.token.unwrap_or_default();
        let html = super::gate_page::page(&view, &gate, |verb| {
            let path = format!("/v1/hitl/{verb}/{}/{gate}", view.run.run_id);
            match token.as_str() {
                "" => path,
                token => format!("{path}?token={}", escape(token)),
            }
        });
        return Ok(Html(html).into_response());
    }
    let (run, request) = (view.run, view.request);
    Ok(Json(GatePage {
        run_id: run.run_id,
        job_code: run.job_code,
        project: run.project,
        status: run.status,
        brief: run.input["message"].as_str().unwrap_or_default().to_owned(),
        gate,
        review: view.review,
        decision: request.decision,
        decided_by: request.decided_by,
        comment: request.comment,
        requested_at: request.requested_at,
        decided_at: request.decided_at,
    })
    .into_response())
}

/// Approve (`APPROVE`) or reject a gate: one handler for both routes.
async fn decide<const APPROVE: bool>(
    State(state): State<AppState>,
    headers: HeaderMap,
    PathParams((id, gate)): PathParams<(String, String)>,
    QueryParams(TokenQuery { token }): QueryParams<TokenQuery>,
    JsonOrForm(body): JsonOrForm<DecisionBody>,
) -> Result<Response, ApiError> {
    let decision = if APPROVE {
        HitlDecision::Approved
    } else {
        HitlDecision::Rejected
    };
    let gate = parse_gate(&gate)?;
    let credential = authorize(&state, &headers, &id, &gate, token.as_deref()).await?;
    let name = label(body.by)?;
    let comment = crate::pipeline::limits::comment(body.comment)?;
    let (by, claimed) = match credential {
        Credential::Link => (decided_by(credential, None), name),
        Credential::ApiKey => (decided_by(credential, name.as_deref()), None),
    };
    let decided = state
        .pipeline
        .decide_gate(&id, &gate, decision, &by, claimed.as_deref(), comment)
        .await?;
    if wants_html(&headers) {
        let outcome = match (decided.decided_now, decided.request.decision) {
            (true, Some(d)) => format!(
                "Gate <code>{gate}</code> is now <strong>{d}</strong>. You can close this page."
            ),
            (false, Some(d)) if decided.resent => format!(
                "This gate was already <strong>{d}</strong>; the decision had not reached \
                 the run yet and was sent again."
            ),
            (false, Some(d)) => {
                format!("This gate was already <strong>{d}</strong>; nothing changed.")
            }
            _ => "Nothing changed.".to_owned(),
        };
        let comment = decided
            .request
            .comment
            .as_deref()
            .map(|c| format!("<p id=\"comment\">Comment: “{}”</p>", escape(c)))
            .unwrap_or_default();
        return Ok(Html(format!("<!doctype html><html><body style=\"font-family:system-ui;margin:3rem\"><p id=\"outcome\">{outcome}</p>{comment}</body></html>")).into_response());
    }
    Ok(Json(decided).into_response())
}
