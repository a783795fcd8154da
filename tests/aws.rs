//! The local AWS emulator (moto's server, started by `scripts/test` through
//! `scripts/moto.sh`) for the AWS-path tests: SDK clients configured for it
//! explicitly (never through the process environment, which the tests
//! share), and queues made for one test.
//!
//! The endpoint: `MW_TEST_AWS_ENDPOINT`, else `http://127.0.0.1:$MOTO_PORT`
//! (5123). When nothing answers there (or with `MW_SKIP_MOTO=1`) the tests
//! return early and say so, except in CI (`CI=true`) or with
//! `MW_REQUIRE_MOTO=1`, where they fail.
use aws_config::{Region, SdkConfig};
use aws_sdk_sqs::config::Credentials;

/// The emulator, with an SDK configuration that talks to it.
#[derive(Debug, Clone)]
pub struct Emulator {
    pub endpoint: String,
    pub sdk: SdkConfig,
}

/// The account moto answers for.
pub const ACCOUNT: &str = "123456789012";

pub fn endpoint() -> String {
    std::env::var("MW_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        let port = std::env::var("MOTO_PORT").unwrap_or_else(|_| "5123".into());
        format!("http://127.0.0.1:{port}")
    })
}

/// The emulator, or `None` (with a message) when the AWS-path tests are
/// skipped; panics when it must be there and is not.
pub async fn emulator() -> Option<Emulator> {
    let endpoint = endpoint();
    let skip = std::env::var("MW_SKIP_MOTO").as_deref() == Ok("1");
    let required = std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("MW_REQUIRE_MOTO").as_deref() == Ok("1");
    if skip && !required {
        eprintln!("SKIPPED: MW_SKIP_MOTO=1: no AWS emulator for the AWS-path tests");
        return None;
    }
    match Emulator::at(&endpoint).await {
        Ok(emulator) => Some(emulator),
        Err(e) => {
            assert!(!required, "{e}");
            eprintln!("SKIPPED: no AWS emulator at {endpoint} (scripts/moto.sh start)");
            None
        }
    }
}

/// An SDK configuration for `endpoint` with the emulator's test credentials.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    myloware::aws::loader()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await
}

/// The variables that point a child process (`mw serve`, `mw worker`) at
/// the emulator.
pub fn env_for(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
    ]
}

impl Emulator {
    /// The emulator at `endpoint`, or an error saying how to start it.
    pub async fn at(endpoint: &str) -> anyhow::Result<Emulator> {
        let up = reqwest::get(format!("{endpoint}/moto-api/"))
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if !up {
            anyhow::bail!(
                "no AWS emulator answers at {endpoint}: start it with `scripts/moto.sh start` \
                 (MOTO_PORT sets its port)"
            );
        }
        Ok(Emulator {
            sdk: sdk_config(endpoint).await,
            endpoint: endpoint.to_owned(),
        })
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    /// A queue named `<name>-<unique>` with a dead-letter queue that gets a
    /// message after `max_receives` failed deliveries; answers
    /// `(queue URL, dead-letter queue URL)`.
    pub async fn queue_with_dlq(&self, name: &str, max_receives: u32) -> (String, String) {
        let unique = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let sqs = self.sqs();
        let dlq = sqs
            .create_queue()
            .queue_name(format!("{name}-{unique}-dlq"))
            .send()
            .await
            .expect("create the dead-letter queue")
            .queue_url()
            .expect("queue url")
            .to_owned();
        let dlq_arn = format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}-{unique}-dlq");
        let policy = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receives.to_string(),
        });
        let queue = sqs
            .create_queue()
            .queue_name(format!("{name}-{unique}"))
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                policy.to_string(),
            )
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                "30",
            )
            .send()
            .await
            .expect("create the queue")
            .queue_url()
            .expect("queue url")
            .to_owned();
        (queue, dlq)
    }

    /// The bodies of up to `max` messages received from `queue_url` within
    /// `secs` seconds, deleted as they are received.
    pub async fn drain(&self, queue_url: &str, max: usize, secs: u64) -> Vec<String> {
        let sqs = self.sqs();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let mut bodies = Vec::new();
        while bodies.len() < max && std::time::Instant::now() < deadline {
            let out = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive");
            for m in out.messages() {
                bodies.push(m.body().unwrap_or_default().to_owned());
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
        bodies
    }
}

/// The role the state machines are created with (the emulator does not
/// check it).
pub fn states_role() -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/mw-states")
}

/// What `template.yaml` deploys, made on the emulator: the task and
/// callback queues (each with a dead-letter queue), the DynamoDB table
/// (created by the store's migration) and the embedded state machines.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub table: String,
    pub task_queue_url: String,
    pub callback_queue_url: String,
    /// Project name → state machine ARN.
    pub state_machines: std::collections::BTreeMap<String, String>,
}

impl Deployment {
    /// The variables `template.yaml` gives the functions, pointed at
    /// `endpoint` (the emulator's, or a proxy's in front of it).
    pub fn env(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        let arns = self
            .state_machines
            .iter()
            .map(|(project, arn)| format!("{project}={arn}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut env = vec![
            ("ENGINE", "stepfunctions".to_owned()),
            ("STORE", "dynamodb".to_owned()),
            ("DYNAMODB_TABLE", self.table.clone()),
            ("TASK_QUEUE_URL", self.task_queue_url.clone()),
            ("CALLBACK_QUEUE_URL", self.callback_queue_url.clone()),
            ("STATE_MACHINE_ARNS", arns),
        ];
        env.extend(env_for(endpoint));
        env
    }
}

impl Emulator {
    /// The embedded state machines, created as `<prefix><project>` with
    /// their tasks sent to `task_queue_url`; answers project → ARN.
    pub async fn deploy_state_machines(
        &self,
        prefix: &str,
        task_queue_url: &str,
    ) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
        use anyhow::Context as _;
        let sfn = myloware::engine::StepFunctionsEngine::new(&self.sdk);
        let role = states_role();
        let mut arns = std::collections::BTreeMap::new();
        let definitions = myloware::engine::definitions::embedded(
            &myloware::engine::definitions::substitutions(task_queue_url),
        )?;
        for (project, text) in definitions {
            let arn = sfn
                .deploy(&format!("{prefix}{project}"), &text, &role)
                .await
                .with_context(|| format!("deploying the state machine {prefix}{project}"))?;
            arns.insert(project, arn);
        }
        Ok(arns)
    }

    /// A fresh deployment named `<name>-<unique>`.
    pub async fn deploy(&self, name: &str) -> anyhow::Result<Deployment> {
        let unique = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let (task_queue_url, _) = self.queue_with_dlq(&format!("{name}-tasks"), 5).await;
        let (callback_queue_url, _) = self.queue_with_dlq(&format!("{name}-callbacks"), 5).await;
        let table = format!("{name}-{unique}");
        let store = myloware::store::DynamoDbStore::new(&self.sdk, &table);
        myloware::store::Maintenance::migrate(&store).await?;
        let state_machines = self
            .deploy_state_machines(&format!("{name}-{unique}-"), &task_queue_url)
            .await?;
        Ok(Deployment {
            table,
            task_queue_url,
            callback_queue_url,
            state_machines,
        })
    }
}
