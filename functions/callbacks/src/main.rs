//! The `callbacks` function: verified provider callbacks from the callback
//! queue, an SQS batch at a time, reporting partial batch failures; and, on
//! the reconciler's schedule, a sweep of the jobs whose callback is overdue.
//! Only wiring: config, telemetry, the pipeline once per cold start, then
//! the handler.
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use myloware::pipeline::callbacks::Callbacks;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = myloware::lambda::Function::Callbacks.config().await?;
    myloware::telemetry::init("info", None);
    let handler = Callbacks {
        pipeline: myloware::lambda::pipeline(&config).await?,
    };
    let handler = &handler;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            myloware::lambda::callbacks_event(handler, &handler.pipeline, event.payload)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
