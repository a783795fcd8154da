//! The `runs` function: `/v1/runs…`, `/health`, `/openapi.json` and the
//! dashboard at `/ui` behind API Gateway. Only wiring: config,
//! telemetry, the pipeline once per cold start, then the router.
use lambda_http::{run, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = myloware::Config::load()?;
    myloware::telemetry::init("info", None);
    let state = myloware::lambda::app_state(&config).await?;
    let tracer = state.pipeline.tracer.clone();
    let router = myloware::api::json_errors(
        myloware::api::runs_router(state.clone())
            .merge(myloware::api::system_router(state.clone()))
            .merge(myloware::api::ui_router(state)),
    );
    run(myloware::lambda::flushing_telemetry(router, tracer)).await
}
