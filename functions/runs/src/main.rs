//! The `runs` function: `/v1/runs…`, `/health`, `/openapi.json` and the
//! dashboard at `/ui` behind API Gateway. Only wiring: config,
//! telemetry, then the routers (the pipeline built once per cold start).
use lambda_http::Error;
use myloware::lambda::Function;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Function::Runs.config().await?;
    myloware::telemetry::init("info", None);
    myloware::lambda::serve_http(config, |state| {
        myloware::api::runs_router(state.clone())
            .merge(myloware::api::system_router(state.clone()))
            .merge(myloware::api::ui_router(state))
    })
    .await
}
