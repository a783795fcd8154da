//! Where the state lives (`DATABASE_URL`, parsed by `config`), the one
//! value `store::open` picks its adapter from.
use std::fmt;
use std::path::PathBuf;

/// Where the state lives.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    /// The embedded default, a file created on first use.
    Sqlite { path: PathBuf },
    /// A Postgres server; the URL may carry a password, so `Debug` hides it.
    Postgres { url: String },
    /// One DynamoDB table (`STORE=dynamodb`, `DYNAMODB_TABLE` or its alias
    /// `TABLE_NAME`), reached
    /// through the AWS SDK's configuration (`AWS_ENDPOINT_URL`, region,
    /// credentials).
    DynamoDb { table: String },
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite { path } => write!(f, "Sqlite({})", path.display()),
            Self::Postgres { url } => write!(f, "Postgres({})", redact_url(url)),
            Self::DynamoDb { table } => write!(f, "DynamoDb({table})"),
        }
    }
}

impl DatabaseConfig {
    /// The store as `Display` names it, a SQLite file by its absolute path
    /// when it exists: the same store reads the same from any folder, so two
    /// processes can tell whether they share one.
    pub fn location(&self) -> String {
        match self {
            Self::Sqlite { path } => match std::fs::canonicalize(path) {
                Ok(path) => format!("sqlite:{}", path.display()),
                Err(_) => self.to_string(),
            },
            _ => self.to_string(),
        }
    }
}

impl fmt::Display for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite { path } => write!(f, "sqlite:{}", path.display()),
            Self::Postgres { url } => f.write_str(&redact_url(url)),
            Self::DynamoDb { table } => write!(f, "dynamodb:{table}"),
        }
    }
}

/// The URL with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}
