//! The command-line grammar.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use myloware::domain::{Project, RunId, RunStatus};

#[derive(Debug, Parser)]
#[command(
    name = "mw",
    version,
    about = "MyloWare: run, watch and debug AI video-production runs"
)]
pub struct Cli {
    /// A running stack to talk to (otherwise: a local `mw serve` if one runs,
    /// else the store DATABASE_URL names, booting the stack in-process when a
    /// command needs it).
    #[arg(long, global = true, env = "MW_API_BASE")]
    pub api_base: Option<String>,
    /// Say first (on stderr) which stack or store the command talks to.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole stack in one process: API, engine, queues, mock providers.
    Serve(ServeArgs),
    /// Start a run and follow it to the end, approving gates unless --manual-hitl.
    LiveRun(LiveRunArgs),
    /// Talk to Brendan.
    Chat(ChatArgs),
    /// Runs: list, show, watch, cancel, redrive, replay.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Everything recorded about a run: artifacts, webhook events, jobs, gates.
    Evidence(EvidenceArgs),
    /// What is wrong with a run, and what to run next (exit 1 when something is).
    Doctor(RunArgs),
    /// The run tree: graph, persona steps, gates, LLM and tool calls, with
    /// durations, status and errors; open spans marked. Also takes a chat
    /// turn's trace id (the `trace_id` the chat answers).
    Trace(RunArgs),
    /// The local log file, filtered: by run, persona, level; --follow to tail it.
    Logs(LogsArgs),
    /// Human-in-the-loop gates: a signed link, approve, reject.
    #[command(subcommand)]
    Hitl(HitlCommand),
    /// The database: migrations.
    #[command(subcommand)]
    Db(DbCommand),
    /// State machines: validate definitions, run one on the local engine,
    /// deploy them to Step Functions.
    #[command(subcommand)]
    Statemachine(StatemachineCommand),
    /// Consume the SQS task and callback queues with the handlers the worker
    /// and callbacks functions run (ENGINE=stepfunctions), until Ctrl-C.
    Worker(WorkerArgs),
    /// Dead-letter queues of the SQS queues: list what landed, replay it.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The providers: check keys, webhook secrets and callback URLs before
    /// going live.
    #[command(subcommand)]
    Providers(ProvidersCommand),
}

impl Command {
    /// Whether the command only reads what is stored (and so must create
    /// nothing where nothing is).
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            Command::Runs(RunsCommand::List(_) | RunsCommand::Show(_) | RunsCommand::Watch(_))
                | Command::Evidence(_)
                | Command::Doctor(_)
                | Command::Trace(_)
                | Command::Logs(_)
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum ProvidersCommand {
    /// Try each key with a call that changes nothing, look at the webhook
    /// secrets, register upload-post's webhook, and say whether the callback
    /// URLs can be reached from outside (exit 1 when something must be fixed).
    Check(ProvidersCheckArgs),
}

#[derive(Debug, Args)]
pub struct ProvidersCheckArgs {
    /// Leave upload-post's webhook settings as they are.
    #[arg(long)]
    pub no_register: bool,
    /// JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Which SQS queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueChoice {
    /// Persona and gate tasks (TASK_QUEUE_URL).
    Tasks,
    /// Provider callbacks (CALLBACK_QUEUE_URL).
    Callbacks,
    /// Both.
    All,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Which queues to consume.
    #[arg(long, value_enum, default_value = "all")]
    pub queue: QueueChoice,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// The messages in the dead-letter queues, left in place.
    List(DlqArgs),
    /// Send the dead-letter queues' messages back to their queues.
    Replay(DlqArgs),
}

#[derive(Debug, Args)]
pub struct DlqArgs {
    /// Which queues' dead-letter queues.
    #[arg(long, value_enum, default_value = "all")]
    pub queue: QueueChoice,
    /// At most this many messages per queue.
    #[arg(long, default_value_t = 100)]
    pub max: usize,
    /// JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
}

#[derive(Debug, Args)]
pub struct LiveRunArgs {
    /// The project: test-video-gen or aismr.
    pub project: Project,
    /// Seconds to wait for the end.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Wait for a human at each gate (prints the link and the command).
    #[arg(long)]
    pub manual_hitl: bool,
    /// The creative prompt (default: the project's).
    #[arg(long)]
    pub message: Option<String>,
    /// The summary as JSON on stdout, and no progress lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// What to say.
    pub message: String,
    /// Who is talking (Brendan remembers the conversation per user).
    #[arg(long, default_value = "dev", env = "MW_USER")]
    pub user: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations to the store DATABASE_URL names (default: .myloware/mw.db).
    Migrate,
    /// Remove the finished runs (published, failed, rejected, cancelled,
    /// timed out) last changed before a cutoff, with their artifacts,
    /// webhook events and spans; runs still going are never touched.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// How old a finished run must be: a number and a unit, s, m, h or d
    /// (`30d`, `12h`).
    #[arg(long = "older-than")]
    pub older_than: String,
    /// Count what would go, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The newest runs first.
    List(ListArgs),
    /// One run with its artifacts, webhook events, provider jobs and gates.
    Show(RunArgs),
    /// Follow a run until it ends: exit 0 published, 1 failed or timed out, 2 no such run.
    Watch(WatchArgs),
    /// Cancel a live run.
    Cancel(RunArgs),
    /// Continue a failed run from the state that failed, reusing its settled work.
    Redrive(RunArgs),
    /// Start a new run at a state of this one, with the context it recorded there.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A run id or a job code.
    pub run: String,
    /// The state to start at: Iggy, Riley, Alex, Quinn, a gate, … (one the run entered).
    #[arg(long)]
    pub from: String,
    /// A JSON object merged over the recorded context, e.g. '{"message": "…"}'.
    #[arg(long)]
    pub input: Option<String>,
    /// JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only runs with this status.
    #[arg(long)]
    pub status: Option<RunStatus>,
    /// Only runs of this project.
    #[arg(long)]
    pub project: Option<Project>,
    /// How many runs (1-500).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: u32,
    /// The page after this run id (the `next` of a previous page).
    #[arg(long)]
    pub after: Option<RunId>,
    /// Add each run's cost (reads each run's record).
    #[arg(long)]
    pub cost: bool,
    /// JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A run id or a job code such as TVG-QXZ123.
    pub run: String,
    /// JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// A run id or a job code.
    pub run: String,
    /// Seconds to wait for the end.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct EvidenceArgs {
    /// A run id or a job code.
    #[arg(required_unless_present = "run_id", conflicts_with = "run_id")]
    pub run: Option<String>,
    /// The same, as the runbook spells it.
    #[arg(long = "run-id")]
    pub run_id: Option<String>,
    #[arg(long)]
    pub json: bool,
    /// Write a bug-report bundle here: evidence.json and summary.md, with
    /// secrets redacted.
    #[arg(long)]
    pub bundle: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum HitlCommand {
    /// A signed approval link for a waiting gate.
    Link(GateArgs),
    /// Approve a waiting gate.
    Approve(GateArgs),
    /// Reject a waiting gate: the run ends rejected.
    Reject(GateArgs),
}

#[derive(Debug, Args)]
pub struct GateArgs {
    /// A run id or a job code.
    pub run: String,
    /// The gate, e.g. ideate or prepublish.
    pub gate: String,
    /// A note kept with the decision.
    #[arg(long)]
    pub comment: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum StatemachineCommand {
    /// Check definition files; prints every problem and exits 1 if any.
    Validate {
        /// `*.asl.json` files (default: every file in statemachine/).
        files: Vec<PathBuf>,
    },
    /// Execute a definition on the durable local engine, answering its queue
    /// tasks with the built-in echo worker; prints the output JSON.
    Run(RunDefinitionArgs),
    /// Create or update the persona graphs on Step Functions (the endpoint
    /// AWS_ENDPOINT_URL names, e.g. an emulator), named
    /// `<STATE_MACHINE_PREFIX><project>`; prints their ARNs. On AWS,
    /// `sam deploy` does this.
    Deploy(DeployArgs),
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The role Step Functions assumes to send the task messages.
    #[arg(long, env = "STATE_MACHINE_ROLE_ARN")]
    pub role_arn: String,
}

#[derive(Debug, Args)]
pub struct RunDefinitionArgs {
    /// The definition file.
    pub file: PathBuf,
    /// The execution input (JSON).
    #[arg(long, default_value = "{}")]
    pub input: String,
    /// The execution name; running again with the name of an execution that
    /// was interrupted resumes it.
    #[arg(long)]
    pub name: Option<String>,
    /// Seconds to wait for the end.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only lines about this run: its id or its job code (looked up in the
    /// store, which must exist already).
    #[arg(long = "run-id")]
    pub run_id: Option<String>,
    /// Only lines about this persona.
    #[arg(long)]
    pub persona: Option<String>,
    /// Only lines about this provider (kieai, shotstack, upload-post).
    #[arg(long)]
    pub provider: Option<String>,
    /// Only the lines of inbound webhooks: received, refused, duplicated,
    /// and their callbacks handed over.
    #[arg(long)]
    pub webhooks: bool,
    /// Only lines at this level or above (error, warn, info, debug).
    #[arg(long, default_value = "info")]
    pub level: String,
    /// Keep reading as lines are added.
    #[arg(long, short)]
    pub follow: bool,
    /// The JSON lines as they are.
    #[arg(long)]
    pub json: bool,
}
