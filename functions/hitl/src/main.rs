//! The `hitl` function: `/v1/hitl/…` (links, approve, reject) behind API Gateway. Only wiring: config,
//! telemetry, then the router (the pipeline built once per cold start).
use lambda_http::Error;
use myloware::lambda::Function;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Function::Hitl.config().await?;
    myloware::telemetry::init("info", None);
    myloware::lambda::serve_http(config, myloware::api::hitl_router).await
}
