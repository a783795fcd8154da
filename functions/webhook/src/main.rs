//! The `webhook` function: `POST /v1/webhooks/{provider}` behind API Gateway. Only wiring: config,
//! telemetry, then the router (the pipeline built once per cold start).
use lambda_http::Error;
use myloware::lambda::Function;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Function::Webhook.config().await?;
    myloware::telemetry::init("info", None);
    myloware::lambda::serve_http(config, myloware::api::webhooks_router).await
}
