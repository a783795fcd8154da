//! The `callbacks` function: verified provider callbacks from the callback
//! queue, an SQS batch at a time (its records at once), reporting partial
//! batch failures; on the reconciler's schedule, a sweep of the jobs whose
//! callback is overdue and of the runs whose start was throttled; and Step
//! Functions' execution status changes (a run whose execution timed out or
//! was aborted is recorded). Only wiring: config, telemetry, the pipeline
//! once per cold start, then the handler.
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use myloware::lambda::{BatchOptions, CALLBACK_CONCURRENCY};
use myloware::pipeline::callbacks::Callbacks;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = myloware::lambda::Function::Callbacks.config().await?;
    myloware::telemetry::init("info", None);
    let handler = Callbacks {
        pipeline: myloware::lambda::pipeline(&config).await?,
    };
    let sqs = myloware::queue::sqs::SqsQueue::new(&myloware::aws::sdk_config().await);
    let (handler, sqs) = (&handler, &sqs);
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let options =
                BatchOptions::for_invocation(event.context.deadline, CALLBACK_CONCURRENCY, sqs);
            myloware::lambda::callbacks_event(handler, &handler.pipeline, event.payload, options)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
