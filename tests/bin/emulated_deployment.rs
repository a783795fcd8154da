//! Makes on the local AWS emulator what `template.yaml` deploys (the task and
//! callback queues with their dead-letter queues, the DynamoDB table, the
//! state machines) and prints the variables the template gives the
//! functions, as `export NAME='value'` lines for a shell to `eval`:
//!
//! ```text
//! eval "$(target/debug/emulated-deployment [--endpoint URL] [--name NAME])"
//! ```
//! The endpoint: `--endpoint`, else `MW_TEST_AWS_ENDPOINT`, else
//! `http://127.0.0.1:$MOTO_PORT` (5123). `scripts/lambda-smoke.sh` runs the
//! functions on it.
use anyhow::{bail, Context, Result};
use myloware_tests::aws;

#[tokio::main]
async fn main() -> Result<()> {
    let mut endpoint = aws::endpoint();
    let mut name = "mw-local".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--endpoint" => endpoint = args.next().context("--endpoint URL")?,
            "--name" => name = args.next().context("--name NAME")?,
            "-h" | "--help" => {
                println!("emulated-deployment [--endpoint URL] [--name NAME]");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    let emulator = aws::Emulator::at(&endpoint).await?;
    let deployment = emulator.deploy(&name).await?;
    for (key, value) in deployment.env(&endpoint) {
        println!("export {key}='{}'", value.replace('\'', r"'\''"));
    }
    Ok(())
}
