//! The CLI's HTTP client for a running stack (`--api-base`, `MW_API_BASE`, a
//! local `mw serve`, or the stack the CLI boots in-process). Error answers
//! (`{error: {code, message}}`) become errors with that message; a 404 is a
//! user error (exit 2).
use std::time::Duration;

use anyhow::Context;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::commands::UserError;

#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    key: SecretString,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: &str, key: SecretString) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            key,
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> anyhow::Result<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .header("x-api-key", self.key.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}: is the stack running there?"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str(&text)
                .with_context(|| format!("{method} {url}: unexpected answer"));
        }
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| text.chars().take(300).collect());
        match status {
            StatusCode::NOT_FOUND
            | StatusCode::UNPROCESSABLE_ENTITY
            | StatusCode::BAD_REQUEST
            | StatusCode::CONFLICT => Err(UserError(message).into()),
            StatusCode::UNAUTHORIZED => Err(UserError(format!(
                "{message} (set API_KEY to the key of the stack at {})",
                self.base
            ))
            .into()),
            _ => Err(anyhow::anyhow!("{method} {url}: {status}: {message}")),
        }
    }
}
