//! The command-line grammar.
use clap::{Args, Parser, Subcommand};
use myloware::domain::{Project, RunStatus};

#[derive(Debug, Parser)]
#[command(
    name = "mw",
    version,
    about = "MyloWare: run, watch and debug AI video-production runs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The database: migrations.
    #[command(subcommand)]
    Db(DbCommand),
    /// Runs: list and inspect.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// State machines: validate definitions, run one on the local engine.
    #[command(subcommand)]
    Statemachine(StatemachineCommand),
    /// Start a run and follow it to the end (not built yet).
    LiveRun(LiveRunArgs),
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations to the store DATABASE_URL names (default: .myloware/mw.db).
    Migrate,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The newest runs first.
    List(ListArgs),
    /// One run with its artifacts, webhook events, provider jobs and gates.
    Show(ShowArgs),
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
    pub after: Option<myloware::domain::RunId>,
    /// JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A run id or a job code such as TVG-QXZ123.
    pub run: String,
    /// JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LiveRunArgs {
    pub project: String,
}

#[derive(Debug, Subcommand)]
pub enum StatemachineCommand {
    /// Check definition files; prints every problem and exits 1 if any.
    Validate {
        /// `*.asl.json` files (default: every file in statemachine/).
        files: Vec<std::path::PathBuf>,
    },
    /// Execute a definition on the durable local engine, answering its queue
    /// tasks with the built-in echo worker; prints the output JSON.
    Run(RunDefinitionArgs),
}

#[derive(Debug, Args)]
pub struct RunDefinitionArgs {
    /// The definition file.
    pub file: std::path::PathBuf,
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
