//! The durable local engine: runs ASL definitions with the interpreter core
//! (`asl::machine`) and persists every transition in the store before acting
//! on it.
//!
//! Each execution is a snapshot plus a version. An event (a task answer, a
//! due timer, a stop) is applied to a copy of the snapshot; the new snapshot,
//! its history and the messages it sends are committed
//! together (compare-and-set on the version, group-committed with other
//! executions); only then are messages delivered and timers armed. A process
//! killed at any point restarts from the last committed snapshot: running
//! executions are reloaded, their timers re-armed and their unacknowledged
//! queue messages delivered again, so each transition happens exactly once.
mod committer;
mod echo;
mod queue;
mod timers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::arn;
use super::asl::machine::{
    Effect, Event, EventError, ExecutionContext, HistoryEvent, Snapshot, Step,
};
use super::asl::model::StateMachine;
use super::port::{
    execution_name, validate_execution_name, Engine, EngineError, ExecutionDescription,
    StartedExecution,
};
use crate::store::engine::{
    Commit, CommitKind, CommitRefused, EngineStore, ExecutionRecord, ExecutionState, HistoryRecord,
    NewExecution, QueueMessage,
};
use committer::Committer;
pub use echo::spawn_echo_worker;
use queue::LocalQueues;
pub use queue::{consume, Deliver, LocalQueue};
use timers::{Due, Timers};

/// How often an event is retried when another process advanced the same
/// execution in between (each retry reloads it).
const CONFLICT_RETRIES: usize = 8;

/// The durable local engine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LocalEngine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn EngineStore>,
    machines: RwLock<HashMap<String, Arc<Machine>>>,
    parsed: Mutex<HashMap<String, Arc<StateMachine>>>,
    live: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Live>>>>,
    committer: Committer,
    timers: Timers,
    queues: LocalQueues,
    /// Who waits for which execution to end.
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
    /// Told of every execution that ends (`on_execution_end`).
    end_listener: RwLock<Option<EndListener>>,
}

/// The listener, shown by name only.
#[derive(Clone)]
struct EndListener(Arc<ExecutionEndListener>);

impl std::fmt::Debug for EndListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndListener")
    }
}

/// What `LocalEngine::on_execution_end` calls: on the thread that committed
/// the end, so it must only start its work (spawn it).
pub type ExecutionEndListener = dyn Fn(crate::engine::ExecutionEnded) + Send + Sync;

#[derive(Debug)]
struct Machine {
    arn: String,
    name: String,
    definition: String,
    parsed: Arc<StateMachine>,
}

/// A running execution as this process holds it.
#[derive(Debug)]
struct Live {
    arn: String,
    version: i64,
    snapshot: Snapshot,
    definition: Arc<StateMachine>,
    /// False once this copy is known to be stale or the execution ended.
    current: bool,
}

impl LocalEngine {
    /// Starts the engine on `store` and resumes every execution it left
    /// running and re-arms their timers.
    pub async fn start(store: Arc<dyn EngineStore>) -> Result<Self, EngineError> {
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let weak = weak.clone();
            let timers = Timers::spawn(move |due: Due| {
                if let Some(inner) = weak.upgrade() {
                    tokio::spawn(async move {
                        let event = Event::TimerFired {
                            timer_id: due.timer_id,
                        };
                        if let Err(err) = inner.dispatch(&due.execution_arn, event).await {
                            tracing::debug!(execution = %due.execution_arn, error = %err, "timer not applied");
                        }
                    });
                }
            });
            Inner {
                committer: Committer::start(Arc::clone(&store)),
                store,
                machines: RwLock::default(),
                parsed: Mutex::default(),
                live: Mutex::default(),
                timers,
                queues: LocalQueues::default(),
                waiters: Mutex::default(),
                end_listener: RwLock::default(),
            }
        });
        inner.recover().await?;
        Ok(Self { inner })
    }

    /// Calls `listener` with each execution that ends from now on (what
    /// Step Functions' "Execution Status Change" events are on AWS), so the
    /// pipeline can record a run whose execution timed out or was stopped
    /// outside its graph's `Catch`.
    pub fn on_execution_end(&self, listener: Arc<ExecutionEndListener>) {
        *self.inner.end_listener.write().expect("lock") = Some(EndListener(listener));
    }

    /// Registers (or replaces) a state machine from its definition text, with
    /// `${Name}` substitutions already resolved. Returns its ARN.
    pub fn register_state_machine(
        &self,
        name: &str,
        definition: &str,
    ) -> Result<String, EngineError> {
        validate_execution_name(name)
            .map_err(|_| EngineError::InvalidName(format!("state machine name {name:?}")))?;
        let parsed = Arc::new(parse_definition(definition)?);
        let machine = Arc::new(Machine {
            arn: arn::state_machine(name),
            name: name.to_owned(),
            definition: definition.to_owned(),
            parsed: Arc::clone(&parsed),
        });
        self.inner
            .parsed
            .lock()
            .expect("lock")
            .insert(definition.to_owned(), parsed);
        let arn = machine.arn.clone();
        self.inner
            .machines
            .write()
            .expect("lock")
            .insert(arn.clone(), machine);
        Ok(arn)
    }

    /// The consumer of the local queue `queue_url`: committed messages, and
    /// first every message left unacknowledged (after a restart, say).
    pub async fn subscribe(
        &self,
        queue_url: &str,
    ) -> Result<mpsc::UnboundedReceiver<QueueMessage>, EngineError> {
        let messages = self.inner.queues.subscribe(queue_url);
        self.deliver_stored(queue_url).await?;
        Ok(messages)
    }

    /// Makes `deliver` the consumer of the local queue `queue_url`: it is
    /// given every message left unacknowledged (after a restart, say), then
    /// each message as it is committed or handed over, on the caller's
    /// thread, so it must only start the handling (spawn it). The engine
    /// holds `deliver` weakly: the caller keeps it for as long as it
    /// consumes. The receiver completes once another consumer replaces it.
    pub async fn subscribe_function(
        &self,
        queue_url: &str,
        deliver: Weak<Deliver>,
    ) -> Result<oneshot::Receiver<()>, EngineError> {
        let replaced = self.inner.queues.subscribe_function(queue_url, deliver);
        self.deliver_stored(queue_url).await?;
        Ok(replaced)
    }

    /// Delivers the messages of `queue_url` waiting in the store.
    async fn deliver_stored(&self, queue_url: &str) -> Result<(), EngineError> {
        for message in self.inner.store.queued_messages(queue_url).await? {
            self.inner.queues.deliver(message);
        }
        Ok(())
    }

    /// Sends a message on the local queue `queue_url`: durable once this
    /// returns, then handed to the queue's consumer.
    pub async fn send_message(&self, queue_url: &str, body: String) -> Result<(), EngineError> {
        let message = new_message(queue_url, body, Utc::now());
        match self.inner.committer.send(message.clone()).await {
            Some(Ok(())) => {
                self.inner.queues.deliver(message);
                Ok(())
            }
            Some(Err(store)) => Err(EngineError::Store(store)),
            None => Err(EngineError::ShutDown),
        }
    }

    /// Hands `body` to the consumer of `queue_url` without storing it, for a
    /// sender that keeps its own record of what it owes and sends it again
    /// after a restart (see `queue`). With no consumer listening yet it is
    /// stored like any message, to wait for one.
    pub async fn hand_over(&self, queue_url: &str, body: String) -> Result<(), EngineError> {
        let message = new_message(queue_url, body, Utc::now());
        match self.inner.queues.deliver_unstored(message) {
            Ok(()) => Ok(()),
            Err(message) => self.send_message(queue_url, message.body).await,
        }
    }

    /// How many messages of `queue_url` are not acknowledged yet, stored or
    /// handed over.
    pub async fn queued_messages(&self, queue_url: &str) -> Result<usize, EngineError> {
        let stored = self.inner.store.queued_messages(queue_url).await?.len();
        Ok(stored + self.inner.queues.unstored_in_flight(queue_url))
    }

    /// Acknowledges a handled queue message, so it is not delivered again.
    pub async fn ack(&self, message_id: &str) -> Result<(), EngineError> {
        if self.inner.queues.forget_unstored(message_id) {
            return Ok(());
        }
        match self.inner.committer.ack(message_id.to_owned()).await {
            Some(Ok(())) => Ok(()),
            Some(Err(store)) => Err(EngineError::Store(store)),
            None => Err(EngineError::ShutDown),
        }
    }

    /// Waits until the execution ends (or `timeout` passes) and describes it.
    pub async fn wait_for(
        &self,
        execution_arn: &str,
        timeout: Duration,
    ) -> Result<ExecutionDescription, EngineError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (tx, ended) = oneshot::channel();
            {
                let mut waiters = self.inner.waiters.lock().expect("lock");
                let these = waiters.entry(execution_arn.to_owned()).or_default();
                these.retain(|w| !w.is_closed());
                these.push(tx);
            }
            // A live execution this process holds is running: no need to
            // read it back before waiting.
            let held_running = match self.inner.held(execution_arn) {
                Some(live) => live.try_lock().map(|l| l.current).unwrap_or(true),
                None => false,
            };
            if !held_running || tokio::time::Instant::now() >= deadline {
                let description = self.describe_execution(execution_arn).await?;
                if !description.is_running() || tokio::time::Instant::now() >= deadline {
                    return Ok(description);
                }
            }
            // Another process may end it too: look again at least every second.
            let recheck = (tokio::time::Instant::now() + Duration::from_secs(1)).min(deadline);
            let _ = tokio::time::timeout_at(recheck, ended).await;
        }
    }

    /// The names of the states an execution is in now (for watching).
    pub async fn current_states(&self, execution_arn: &str) -> Vec<String> {
        match self.inner.held(execution_arn) {
            Some(live) => live.lock().await.snapshot.current_states(),
            None => Vec::new(),
        }
    }
}

impl Inner {
    async fn recover(&self) -> Result<(), EngineError> {
        let running = self.store.running_executions().await?;
        let count = running.len();
        for record in running {
            let arn = record.execution_arn.clone();
            match self.live_from_record(record) {
                Ok(live) => {
                    self.arm_pending(&live);
                    self.live
                        .lock()
                        .expect("lock")
                        .insert(arn, Arc::new(tokio::sync::Mutex::new(live)));
                }
                Err(err) => {
                    tracing::error!(execution = %arn, error = %err, "cannot resume execution")
                }
            }
        }
        if count > 0 {
            tracing::info!(executions = count, "resumed running executions");
        }
        Ok(())
    }

    fn definition(&self, text: &str) -> Result<Arc<StateMachine>, EngineError> {
        if let Some(parsed) = self.parsed.lock().expect("lock").get(text) {
            return Ok(Arc::clone(parsed));
        }
        let parsed = Arc::new(parse_definition(text)?);
        self.parsed
            .lock()
            .expect("lock")
            .insert(text.to_owned(), Arc::clone(&parsed));
        Ok(parsed)
    }

    fn live_from_record(&self, record: ExecutionRecord) -> Result<Live, EngineError> {
        let snapshot: Snapshot = serde_json::from_str(&record.state.snapshot)
            .map_err(|e| EngineError::Store(Arc::new(crate::store::StoreError::CorruptJson(e))))?;
        Ok(Live {
            arn: record.execution_arn,
            version: record.version,
            definition: self.definition(&record.definition)?,
            snapshot,
            current: true,
        })
    }

    /// Re-arms the timers of a (re)loaded execution.
    fn arm_pending(&self, live: &Live) {
        for (timer_id, at) in live.snapshot.scheduled_timers() {
            self.timers.arm(Due {
                at,
                execution_arn: live.arn.clone(),
                timer_id,
            });
        }
    }

    /// The execution `arn` if this process holds it in memory.
    fn held(&self, arn: &str) -> Option<Arc<tokio::sync::Mutex<Live>>> {
        self.live.lock().expect("lock").get(arn).cloned()
    }

    /// The running execution `arn`, from memory or the store.
    async fn live(&self, arn: &str) -> Result<Arc<tokio::sync::Mutex<Live>>, EngineError> {
        if let Some(live) = self.held(arn) {
            return Ok(live);
        }
        let record = self
            .store
            .load_execution(arn)
            .await?
            .ok_or_else(|| EngineError::ExecutionDoesNotExist(arn.to_owned()))?;
        let mut live = self.live_from_record(record)?;
        live.current = live.snapshot.status().as_str() == "RUNNING";
        let live = Arc::new(tokio::sync::Mutex::new(live));
        let mut map = self.live.lock().expect("lock");
        Ok(Arc::clone(map.entry(arn.to_owned()).or_insert(live)))
    }

    fn forget(&self, arn: &str) {
        self.live.lock().expect("lock").remove(arn);
    }

    /// A task answer: a token naming an execution that does not exist is
    /// invalid, as Step Functions says.
    async fn dispatch_task(&self, arn: &str, event: Event) -> Result<(), EngineError> {
        match self.dispatch(arn, event).await {
            Err(EngineError::ExecutionDoesNotExist(_)) => Err(EngineError::InvalidToken),
            other => other,
        }
    }

    /// Applies `event` to execution `arn`, durably, exactly once.
    async fn dispatch(&self, arn: &str, event: Event) -> Result<(), EngineError> {
        for _ in 0..CONFLICT_RETRIES {
            let live = self.live(arn).await?;
            let mut live = live.lock().await;
            if !live.current {
                // Stale (another process advanced it) or ended: reload once.
                self.forget(arn);
                let fresh = self.live(arn).await?;
                drop(live);
                let fresh = fresh.lock().await;
                if !fresh.current {
                    return match event {
                        Event::TimerFired { .. } | Event::Stop { .. } => Ok(()),
                        _ => Err(EngineError::TaskDoesNotExist),
                    };
                }
                drop(fresh);
                continue;
            }
            let now = Utc::now();
            // The event is applied to the held snapshot itself (a refused
            // event changes nothing); if its commit does not hold, the copy
            // is marked stale below and reloaded from the store before the
            // next event, so nothing uncommitted is ever acted on.
            let definition = Arc::clone(&live.definition);
            let step = live
                .snapshot
                .handle(&definition, event.clone(), now)
                .map_err(event_error)?;
            if step.history.is_empty() && step.effects.is_empty() {
                // Nothing to record or do (a stale timer, say): nothing to persist.
                return Ok(());
            }
            let kind = CommitKind::Advance {
                expected_version: live.version,
            };
            let (commit, messages) = build_commit(
                &live.arn,
                kind,
                live.version + 1,
                &live.snapshot,
                &step,
                now,
            );
            let outcome = self.committer.commit(commit).await;
            if !matches!(outcome, Some(Ok(Ok(())))) {
                live.current = false;
            }
            match outcome {
                Some(Ok(Ok(()))) => {
                    live.version += 1;
                    self.act(&mut live, step, messages);
                    return Ok(());
                }
                Some(Ok(Err(CommitRefused::VersionConflict(_)))) => continue,
                Some(Ok(Err(CommitRefused::AlreadyExists(a)))) => {
                    return Err(EngineError::ExecutionAlreadyExists(a))
                }
                Some(Err(store)) => return Err(EngineError::Store(store)),
                None => return Err(EngineError::ShutDown),
            }
        }
        Err(EngineError::Store(Arc::new(crate::store::StoreError::Refused(format!(
            "execution {arn} kept changing under this process; gave up after {CONFLICT_RETRIES} attempts"
        )))))
    }

    /// Acts on a committed step: delivers messages, arms timers, reports ends.
    fn act(&self, live: &mut Live, step: Step, messages: Vec<QueueMessage>) {
        for message in messages {
            self.queues.deliver(message);
        }
        for effect in step.effects {
            match effect {
                Effect::ScheduleTimer { timer_id, at } => self.timers.arm(Due {
                    at,
                    execution_arn: live.arn.clone(),
                    timer_id,
                }),
                Effect::Finished(result) => {
                    let listener = self.end_listener.read().expect("lock").clone();
                    if let Some(listener) = listener {
                        let (machine, name) = live
                            .arn
                            .rsplit_once(':')
                            .unwrap_or((live.arn.as_str(), live.arn.as_str()));
                        let machine = machine
                            .rsplit_once(":execution:")
                            .map(|(prefix, m)| format!("{prefix}:stateMachine:{m}"));
                        (listener.0)(crate::engine::ExecutionEnded {
                            execution_arn: live.arn.clone(),
                            state_machine_arn: machine,
                            name: name.to_owned(),
                            status: result.status.as_str().to_owned(),
                            error: result.error,
                            cause: result.cause,
                        });
                    }
                    live.current = false;
                    self.forget(&live.arn);
                    let waiters = self.waiters.lock().expect("lock").remove(&live.arn);
                    for waiter in waiters.into_iter().flatten() {
                        let _ = waiter.send(());
                    }
                }
                Effect::SendMessage { .. } | Effect::CancelTimer { .. } => {}
            }
        }
    }
}

/// Task tokens start with the execution's ARN (URL-safe base64) and a dot,
/// so any process can route a token to its execution; the random part after
/// it is what makes the token unguessable.
fn token_prefix(execution_arn: &str) -> String {
    use base64::Engine as _;
    let arn = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(execution_arn);
    format!("{arn}.")
}

/// The execution a token belongs to, or `InvalidToken`.
fn execution_of_token(token: &str) -> Result<String, EngineError> {
    use base64::Engine as _;
    let (arn, _) = token.split_once('.').ok_or(EngineError::InvalidToken)?;
    let arn = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(arn)
        .map_err(|_| EngineError::InvalidToken)?;
    String::from_utf8(arn).map_err(|_| EngineError::InvalidToken)
}

fn parse_definition(text: &str) -> Result<StateMachine, EngineError> {
    StateMachine::from_json_str(text).map_err(|e| EngineError::InvalidDefinition(e.to_string()))
}

fn event_error(err: EventError) -> EngineError {
    match err {
        EventError::InvalidToken => EngineError::InvalidToken,
        EventError::TaskTimedOut => EngineError::TaskTimedOut,
        EventError::TaskDoesNotExist | EventError::ExecutionNotRunning => {
            EngineError::TaskDoesNotExist
        }
    }
}

/// The commit for one step, and the queue messages to deliver once it holds.
fn build_commit(
    arn: &str,
    kind: CommitKind,
    version: i64,
    snapshot: &Snapshot,
    step: &Step,
    now: DateTime<Utc>,
) -> (Commit, Vec<QueueMessage>) {
    let result = snapshot.result();
    let state = ExecutionState {
        status: snapshot.status().as_str().to_owned(),
        output: result.and_then(|r| r.output.as_ref()).map(json_text),
        error: result.and_then(|r| r.error.clone()),
        cause: result.and_then(|r| r.cause.clone()),
        stop_date: result.map(|_| now),
        snapshot: serde_json::to_string(snapshot).expect("a snapshot serializes"),
    };
    let history = step
        .history
        .iter()
        .map(|e| HistoryRecord {
            event_id: e.id,
            previous_event_id: e.previous_event_id,
            event_type: e.event_type.clone(),
            timestamp: e.timestamp,
            details: json_text(&e.details),
        })
        .collect();
    let mut messages = Vec::new();
    for effect in &step.effects {
        if let Effect::SendMessage {
            queue_url,
            message_body,
            ..
        } = effect
        {
            messages.push(new_message(queue_url, message_body.clone(), now));
        }
    }
    let commit = Commit {
        execution_arn: arn.to_owned(),
        kind,
        version,
        state,
        history,
        messages: messages.clone(),
    };
    (commit, messages)
}

/// JSON text of a value (straight into a buffer, not through `Display`).
fn json_text(value: &Value) -> String {
    serde_json::to_string(value).expect("a JSON value serializes")
}

fn description(record: ExecutionRecord) -> ExecutionDescription {
    let json = |text: &str| serde_json::from_str(text).unwrap_or(Value::String(text.to_owned()));
    ExecutionDescription {
        input: json(&record.input),
        output: record.state.output.as_deref().map(json),
        execution_arn: record.execution_arn,
        state_machine_arn: record.state_machine_arn,
        name: record.name,
        status: record.state.status,
        error: record.state.error,
        cause: record.state.cause,
        start_date: record.start_date,
        stop_date: record.state.stop_date,
    }
}

// Each method's signature repeats the `Engine` trait's, as every adapter's must.
#[async_trait]
impl Engine for LocalEngine {
    async fn start_execution(
        &self,
        state_machine_arn: &str,
        name: Option<&str>,
        input: &Value,
    ) -> Result<StartedExecution, EngineError> {
        let inner = &self.inner;
        let machine = inner
            .machines
            .read()
            .expect("lock")
            .get(state_machine_arn)
            .cloned()
            .ok_or_else(|| EngineError::StateMachineDoesNotExist(state_machine_arn.to_owned()))?;
        let name = execution_name(name)?;
        let execution_arn = arn::execution(&machine.name, &name);
        let now = Utc::now();
        let context = ExecutionContext {
            execution_id: execution_arn.clone(),
            name: name.clone(),
            state_machine_id: machine.arn.clone(),
            state_machine_name: machine.name.clone(),
            input: input.clone(),
            start_time: now,
            token_prefix: token_prefix(&execution_arn),
        };
        let (snapshot, step) = Snapshot::start(&machine.parsed, context, now);
        let live = Arc::new(tokio::sync::Mutex::new(Live {
            arn: execution_arn.clone(),
            version: 1,
            snapshot,
            definition: Arc::clone(&machine.parsed),
            current: true,
        }));
        let mut guard = live.lock().await;
        {
            let mut map = inner.live.lock().expect("lock");
            if map.contains_key(&execution_arn) {
                return Err(EngineError::ExecutionAlreadyExists(execution_arn));
            }
            map.insert(execution_arn.clone(), Arc::clone(&live));
        }
        let kind = CommitKind::Start(NewExecution {
            execution_arn: execution_arn.clone(),
            state_machine_arn: machine.arn.clone(),
            name,
            definition: machine.definition.clone(),
            input: input.to_string(),
            start_date: now,
        });
        let (commit, messages) = build_commit(&execution_arn, kind, 1, &guard.snapshot, &step, now);
        let outcome = inner.committer.commit(commit).await;
        match outcome {
            Some(Ok(Ok(()))) => {
                inner.act(&mut guard, step, messages);
                Ok(StartedExecution {
                    execution_arn,
                    start_date: now,
                })
            }
            other => {
                guard.current = false;
                inner.forget(&execution_arn);
                Err(match other {
                    Some(Ok(Err(_))) => EngineError::ExecutionAlreadyExists(execution_arn),
                    Some(Err(store)) => EngineError::Store(store),
                    _ => EngineError::ShutDown,
                })
            }
        }
    }

    async fn send_task_success(&self, token: &str, output: &Value) -> Result<(), EngineError> {
        let arn = execution_of_token(token)?;
        let event = Event::TaskSucceeded {
            token: token.to_owned(),
            output: output.clone(),
        };
        self.inner.dispatch_task(&arn, event).await
    }

    async fn send_task_failure(
        &self,
        token: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<(), EngineError> {
        let arn = execution_of_token(token)?;
        let event = Event::TaskFailed {
            token: token.to_owned(),
            error: error.map(str::to_owned),
            cause: cause.map(str::to_owned),
        };
        self.inner.dispatch_task(&arn, event).await
    }

    async fn send_task_heartbeat(&self, token: &str) -> Result<(), EngineError> {
        let arn = execution_of_token(token)?;
        self.inner
            .dispatch_task(
                &arn,
                Event::TaskHeartbeat {
                    token: token.to_owned(),
                },
            )
            .await
    }

    async fn stop_execution(
        &self,
        execution_arn: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<(), EngineError> {
        let event = Event::Stop {
            error: error.map(str::to_owned),
            cause: cause.map(str::to_owned),
        };
        self.inner.dispatch(execution_arn, event).await
    }

    async fn describe_execution(
        &self,
        execution_arn: &str,
    ) -> Result<ExecutionDescription, EngineError> {
        let record = self
            .inner
            .store
            .describe_execution(execution_arn)
            .await?
            .ok_or_else(|| EngineError::ExecutionDoesNotExist(execution_arn.to_owned()))?;
        Ok(description(record))
    }

    async fn get_execution_history(
        &self,
        execution_arn: &str,
    ) -> Result<Vec<HistoryEvent>, EngineError> {
        let records = self.inner.store.history(execution_arn).await?;
        if records.is_empty()
            && self
                .inner
                .store
                .load_execution(execution_arn)
                .await?
                .is_none()
        {
            return Err(EngineError::ExecutionDoesNotExist(execution_arn.to_owned()));
        }
        Ok(records
            .into_iter()
            .map(|r| HistoryEvent {
                id: r.event_id,
                previous_event_id: r.previous_event_id,
                timestamp: r.timestamp,
                event_type: r.event_type,
                details: serde_json::from_str(&r.details).unwrap_or(Value::Null),
            })
            .collect())
    }
}

/// A message not delivered yet, under a new id.
fn new_message(queue_url: &str, body: String, at: DateTime<Utc>) -> QueueMessage {
    QueueMessage {
        id: uuid::Uuid::new_v4().to_string(),
        queue_url: queue_url.to_owned(),
        body,
        created_at: at,
        receive_count: 0,
    }
}
