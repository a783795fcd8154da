//! The `worker` function: the task queue's persona and gate tasks, an SQS batch at a time, reporting
//! partial batch failures. Only wiring: config, telemetry, the pipeline once
//! per cold start, then the handler.
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use myloware::pipeline::worker::Worker;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = myloware::lambda::Function::Worker.config().await?;
    myloware::telemetry::init("info", None);
    let handler = Worker {
        pipeline: myloware::lambda::pipeline(&config).await?,
    };
    let handler = &handler;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(
            myloware::lambda::sqs_event(handler, &handler.pipeline, event.payload).await,
        )
    }))
    .await
}
