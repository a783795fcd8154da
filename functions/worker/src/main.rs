//! The `worker` function: the task queue's persona and gate tasks, an SQS batch at a time, reporting
//! partial batch failures (which come back after a short delay); and the task queue's dead-letter
//! queue, whose messages' tasks it fails with the reason. Only wiring: config, telemetry, the
//! pipeline once per cold start, then the handler.
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use myloware::lambda::BatchOptions;
use myloware::pipeline::worker::{DeadLetters, Worker};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = myloware::lambda::Function::Worker.config().await?;
    myloware::telemetry::init("info", None);
    let pipeline = myloware::lambda::pipeline(&config).await?;
    let sqs = myloware::queue::sqs::SqsQueue::new(&myloware::aws::sdk_config().await);
    let handler = Worker {
        pipeline: pipeline.clone(),
    };
    let dead_letters = DeadLetters { pipeline };
    // Records from any queue but the task queue come from its dead-letter
    // queue; a task queue that is not SQS (the local one) has none.
    let sqs_tasks = config.task_queue_url.starts_with("https://")
        || config.task_queue_url.starts_with("http://");
    let task_queue = myloware::lambda::queue_name(&config.task_queue_url).to_owned();
    let (handler, dead_letters, sqs, task_queue) = (&handler, &dead_letters, &sqs, &task_queue);
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let options = BatchOptions {
            dead_letters: sqs_tasks.then_some((task_queue.as_str(), dead_letters as _)),
            ..BatchOptions::for_invocation(event.context.deadline, 1, sqs)
        };
        Ok::<SqsBatchResponse, Error>(
            myloware::lambda::sqs_event(handler, &handler.pipeline, event.payload, options).await,
        )
    }))
    .await
}
