//! The DynamoDB adapter: the whole store in one table (`DYNAMODB_TABLE`),
//! the distributed default in AWS. It passes the same conformance suite as
//! the SQL adapters, against moto's DynamoDB server in the tests.
//!
//! # Table
//! `pk` (S) / `sk` (S), global secondary indexes `gsi1` (`gsi1pk`/`gsi1sk`)
//! and `gsi2` (`gsi2pk`/`gsi2sk`) projecting ALL, on-demand billing, TTL on
//! `expires_at` — the table `template.yaml` declares, and the one `migrate`
//! creates when it is absent.
//!
//! # Items
//! | item | pk | sk | gsi1pk / gsi1sk | gsi2pk / gsi2sk |
//! |---|---|---|---|---|
//! | run | `RUN#<run_id>` | `RUN` | `ALLRUNS#<run shard>` / `<created_at>#<run_id>` | `RUNS#<status>#<run shard>` / `<created_at>#<run_id>` |
//! | job code | `JOBCODE#<code>` | `JOBCODE` | | |
//! | artifact | `RUN#<run_id>` | `ART#<created_at>#<id>` | | |
//! | provider job | `RUN#<run_id>` | `JOB#<provider>#<job_id>` | | |
//! | provider job lookup | `JOB#<provider>#<job_id>` | `JOB` | | while pending: `DUEJOBS#<shard>` / `<next_check_at>#<provider>#<job_id>` |
//! | hitl request | `RUN#<run_id>` | `GATE#<gate>` | | |
//! | webhook event | `EVENT#<id>` | `EVENT` | `EVENTS#<run_id>` or `EVENTS#ORPHAN` / `<created_at>#<id>` | with a provider job id: `JOBEVENTS#<provider>#<job_id>` / `<created_at>#<id>` |
//! | idempotency key | `WHKEY#<provider>#<key>` | `WHKEY` | | |
//! | conversation message | `CONV#<user_id>` | `MSG#<seq, 20 digits>` | | `MESSAGES` / `<created_at>#<user_id>#<seq>` |
//! | conversation counter | `CONV#<user_id>` | `SEQ` | | |
//! | span | `RUN#<trace id as a UUID>` | `SPAN#<span_id>` | | |
//!
//! Each item also has `entity` (what it is) and its fields under their SQL
//! column names; JSON is kept as text, times as RFC 3339 with microseconds.
//! A job's lookup item repeats the job's `next_check_at`, `checks` and
//! `settled_by`, and both items change together, in one transaction.
//! `<shard>` is `0..8`, a stable hash of the provider and job id, and
//! `<run shard>` `0..8`, a stable hash of the run id, so that no one index
//! partition takes every job's or every run's writes (a run's index entries
//! are rewritten at each of its changes, with ever-increasing sort keys).
//! A run's partition holds its artifacts, jobs and gates, so reading them is
//! one strongly consistent query and pruning a run empties one partition.
//!
//! # How the SQL guarantees are kept
//! - Uniqueness (run id, job code, `(provider, job_id)`, `(provider,
//!   idempotency_key)`) is an item whose key is the unique value, put with
//!   `attribute_not_exists(pk)` in the same `TransactWriteItems` as the row it
//!   guards. Foreign keys are `ConditionCheck`s on the run item.
//! - Items that change in place (runs, jobs, gates) carry a `version`: a
//!   change reads the item, computes the new one and puts it on condition
//!   that the version is unchanged (compare-and-set); a lost race re-reads.
//!   The value returned is exactly the one written.
//! - Changes with a companion (status + artifact, settlement + artifact,
//!   event + idempotency key) are one transaction; cancellation reasons map
//!   to the SQL adapter's errors (`Conflict`, `Duplicate`, `NotFound`, …).
//!   Transactions cancelled by a conflicting transaction are retried.
//!
//! # Where DynamoDB differs, and what is done instead
//! - Global secondary indexes are eventually consistent: run listings and a
//!   run's webhook events (both read through an index) may lag a write by a
//!   moment in AWS. Everything read by key is strongly consistent.
//! - Due provider jobs are found through `gsi2` (sparse: only a pending
//!   job's lookup item is in it): each shard is queried for the jobs due by
//!   now and the answers merged by due time. As the index may lag, each job
//!   is read again by key and claimed with a transaction on condition that
//!   its version is the one read (so it is still pending and still due as
//!   read); of racing claims one wins, the others skip the job. Jobs
//!   registered before their items carried a due time are never due (the
//!   SQL migration backfills theirs).
//! - A job's callbacks are found through `gsi2` too (events recorded with a
//!   provider job id, since events carry that key); adopting its orphans
//!   moves each on condition that the event item itself is still
//!   `orphaned`, since the index's copy of the status may lag.
//! - Listing runs reads the newest runs below the cursor from each shard of
//!   the all-runs index (or of the status's partitions in the status index)
//!   and merges them, newest first; filtered by project, each shard's query
//!   filters, so cost grows with the runs skipped. Runs written before the
//!   indexes were sharded sit in one partition (`RUNS`, `RUNS#<status>`)
//!   until they change: reads query it as one more shard.
//! - `prune` is not one transaction: it deletes a run's dependents, then the
//!   run on condition it did not change, then sweeps the partition once more
//!   for anything written meanwhile; run again, it finishes what a crash left.
//! - A conversation reserves its sequence numbers with an atomic counter,
//!   then writes the messages in one transaction (up to 100 per transaction).
//! - `prune` deletes explicitly so it can report what it deleted. Only the
//!   spans of a chat turn that started no run carry `expires_at` (30 days):
//!   their partition belongs to no run, so no run's pruning removes them.
//! - Spans are ordered by start time in code: the sort key is the span id, so
//!   closing a span needs only the ids every process can derive.
//! - The local engine cannot keep executions here: DynamoDB runs with Step
//!   Functions (`Backend.engine` is `None`).
mod items;
mod store;
mod table;
mod tx;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;

/// The store, on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
}

impl DynamoDbStore {
    const BACKEND: &'static str = "dynamodb";

    /// The store on `table`, with the SDK configured from the environment
    /// (`AWS_REGION`, `AWS_ENDPOINT_URL`, the usual credential chain).
    pub async fn connect(table: &str) -> Self {
        Self::new(&crate::aws::sdk_config().await, table)
    }

    /// The store on `table`, with a given SDK configuration.
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self {
            client: Client::new(config),
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}
