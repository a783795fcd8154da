//! The dashboard in a real browser: headless Chromium opens `/ui` on a test
//! stack, signs in with the API key, finds a new aismr run in the list, follows
//! it while it runs, approves both gates with the page's buttons and sees it
//! published; rejects a gate in another run; redrives a failed one.
//! Screenshots land in `target/ui-browser/`.
//!
//! Without Chromium the test says SKIPPED and passes, except in CI
//! (`CI=true`), where it fails: `.ci/run` installs the Debian package.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use myloware::domain::RunStatus;
use myloware_tests::browser::{find_chromium, Browser, Page};
use myloware_tests::TestStack;
use serde_json::Value;

const KEY: &str = "test-api-key-0123456789";

/// Where the screenshots go: `<target>/ui-browser/`, beside `debug/`.
fn shots_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // <target>/debug/deps/it-<hash>
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("ui-browser"))
        .unwrap_or_else(|| std::env::temp_dir().join("myloware-ui-browser"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_follows_a_run_and_approves_its_gates() {
    // Slow enough mocks that the page, polling each second, sees the run
    // between its gates.
    in_browser("approve", "700", async |t: &TestStack, page: &Page| {
        drive(t, page).await
    })
    .await;
}

/// Chromium, or `None` after saying why the test is skipped (a failure in
/// CI).
fn chromium_or_skip() -> Option<PathBuf> {
    let found = find_chromium();
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI needs Chromium for the dashboard test: apt-get install -y chromium");
        }
        eprintln!(
            "SKIPPED: the dashboard browser test: no Chromium found \
             (apt-get install -y chromium, or set CHROME=/path/to/chrome)"
        );
    }
    found
}

/// A test stack, Chromium and a tab; runs `test`, and on failure saves a
/// screenshot and shows what the page logged.
async fn in_browser<F>(name: &str, mock_latency_ms: &str, test: F)
where
    F: for<'a> AsyncFnOnce(&'a TestStack, &'a Page) -> anyhow::Result<()>,
{
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let t = TestStack::start(&[("MOCK_LATENCY_MS", mock_latency_ms)]).await;
    let log = t.dir.path().join("chromium.log");
    let browser = Browser::launch(&chromium, &log)
        .await
        .expect("chromium starts");
    let page = browser.new_page().await.expect("a tab");
    let outcome = test(&t, &page).await;
    let errors = page.errors();
    if let Err(e) = &outcome {
        let shot = shots_dir().join(format!("{name}-failure.png"));
        if page.screenshot(&shot).await.is_ok() {
            eprintln!("screenshot of the failure: {}", shot.display());
        }
        panic!(
            "{e:#}\npage errors: {errors:?}\nbrowser log: {}",
            log.display()
        );
    }
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    drop(page);
    drop(browser);
    t.stack.shutdown().await;
}

/// Opens `/ui` and signs in with the API key.
async fn sign_in(t: &TestStack, page: &Page) -> anyhow::Result<()> {
    page.goto(&format!("{}/ui", t.stack.base_url)).await?;
    page.wait_for(
        "document.body.dataset.view === 'login-view'",
        10,
        "the sign-in form",
    )
    .await?;
    page.type_into("#api-key", KEY).await?;
    page.click("#login-submit").await?;
    page.wait_for(
        "document.body.dataset.view === 'runs-view'",
        10,
        "the runs list",
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_redrives_a_failed_run() {
    in_browser("redrive", "0", async |t: &TestStack, page: &Page| {
        sign_in(t, page).await?;
        // Shotstack fails every render while the run gets to Alex, and is
        // fixed once the run has failed there.
        let shotstack = &t.stack.mocks.as_ref().context("mocks")?.shotstack;
        shotstack.fail_every_job(true);
        let run = t.start_run("test-video-gen").await;
        let id = run["run_id"].as_str().context("run_id")?.to_owned();
        t.wait_for_status(&id, RunStatus::Failed).await;
        shotstack.fail_every_job(false);
        page.goto(&format!("{}/ui#/runs/{id}", t.stack.base_url))
            .await?;
        page.wait_for(
            "document.getElementById('run-status').textContent === 'failed' \
             && !document.getElementById('run-redrive').hidden \
             && document.getElementById('run-cancel').hidden",
            10,
            "the Redrive button on the failed run",
        )
        .await?;
        page.click("#run-redrive").await?;
        page.wait_for(
            "document.getElementById('run-status').textContent === 'published'",
            30,
            "the redriven run to publish",
        )
        .await?;
        page.wait_for(
            "document.getElementById('run-redrive').hidden \
             && document.getElementById('run-lineage').textContent.includes('redriven from Alex')",
            10,
            "the button gone and the redrive shown",
        )
        .await?;
        let e = t.evidence(&id).await;
        assert_eq!(e.run.status, RunStatus::Published);
        assert_eq!(e.lineage.redrives.len(), 1);

        // Replayed from Quinn: the replay's page names its origin, with a
        // link back, and the origin's names the replay.
        let (status, replay) = t
            .client
            .post(&format!("/v1/runs/{id}/replay"), serde_json::json!({ "from": "Quinn" }))
            .await;
        anyhow::ensure!(status == 201, "replay: {status} {replay}");
        let replay_id = replay["run_id"].as_str().context("run_id")?.to_owned();
        let code = e.run.job_code.to_string();
        page.goto(&format!("{}/ui#/runs/{replay_id}", t.stack.base_url)).await?;
        page.wait_for(
            &format!(
                "document.getElementById('run-lineage').textContent === 'replay of {code} from Quinn' \
                 && !!document.querySelector('#run-lineage a[href=\"#/runs/{id}\"]')"
            ),
            10,
            "the replay's origin",
        )
        .await?;
        page.click("#run-lineage a").await?;
        page.wait_for(
            &format!(
                "document.getElementById('run-lineage').textContent.includes('replayed as {} from Quinn')",
                replay["job_code"].as_str().context("job_code")?
            ),
            10,
            "the origin's replay",
        )
        .await?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_rejects_a_gate_after_asking() {
    in_browser("reject", "0", async |t: &TestStack, page: &Page| {
        sign_in(t, page).await?;
        let run = t.start_run("aismr").await;
        let id = run["run_id"].as_str().context("run_id")?.to_owned();
        page.goto(&format!("{}/ui#/runs/{id}", t.stack.base_url)).await?;
        page.wait_for("!!document.getElementById('reject-ideate')", 30, "Reject for ideate")
            .await?;
        // Declined: nothing happens.
        let asked = page.click_and_confirm("#reject-ideate", false).await?;
        assert!(asked.contains("ideate"), "{asked}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(t.evidence(&id).await.run.status, RunStatus::AwaitingApproval);
        // Accepted: the run ends rejected, through the catch path.
        page.click_and_confirm("#reject-ideate", true).await?;
        page.wait_for(
            "document.getElementById('run-status').textContent === 'rejected'",
            30,
            "the run to be rejected",
        )
        .await?;
        page.wait_for(
            // The gate failed; the end state `Rejected` succeeded (an outcome).
            "!!document.querySelector('#graph g.node.failed[data-state=\"GateIdeate\"]') \
             && !!document.querySelector('#graph g.node.succeeded[data-state=\"Rejected\"]') \
             && !!document.querySelector('#graph path.edge.catch.taken[data-from=\"GateIdeate\"][data-to=\"RecordRejection\"]')",
            10,
            "the graph to show the rejection path",
        )
        .await?;
        assert!(
            page.eval("document.getElementById('reject-ideate') === null").await? == true,
            "no buttons once decided"
        );
        let decided = t.evidence(&id).await;
        assert_eq!(decided.run.status, RunStatus::Rejected);
        assert_eq!(
            decided.hitl_requests[0].decided_by.as_deref(),
            Some("api-key:dashboard")
        );
        Ok(())
    })
    .await;
}

/// A run started in chat links to its chat turn, whose tree opens by its
/// trace id and links back to the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_opens_the_chat_turn_that_started_a_run() {
    in_browser("chat", "0", async |t: &TestStack, page: &Page| {
        sign_in(t, page).await?;
        let (status, answer) = t
            .client
            .post(
                "/v1/chat/brendan",
                serde_json::json!({ "user_id": "dev", "message": "Start a test video gen run" }),
            )
            .await;
        anyhow::ensure!(status == 200, "{answer}");
        let id = answer["run_ids"][0].as_str().context("run id")?.to_owned();
        let trace = answer["trace_id"].as_str().context("trace id")?.to_owned();
        page.goto(&format!("{}/ui#/runs/{id}", t.stack.base_url))
            .await?;
        page.wait_for(
            "!!document.getElementById('chat-link')",
            10,
            "the chat link",
        )
        .await?;
        page.click("#chat-link").await?;
        page.wait_for(
            &format!(
                "document.body.dataset.view === 'trace-view' \
                 && document.getElementById('trace-title').textContent === '{trace}' \
                 && !!document.querySelector('#trace-tree li[data-span=\"brendan-chat\"]') \
                 && !!document.querySelector('#trace-runs li[data-run-id=\"{id}\"] a')"
            ),
            10,
            "the chat turn's tree and its run",
        )
        .await?;
        page.click(&format!("#trace-runs li[data-run-id=\"{id}\"] a"))
            .await?;
        page.wait_for(
            "document.body.dataset.view === 'run-view'",
            10,
            "back on the run",
        )
        .await?;
        Ok(())
    })
    .await;
}

async fn drive(t: &TestStack, page: &Page) -> anyhow::Result<()> {
    let base = &t.stack.base_url;

    // Sign in: the page asks for the key and keeps it out of the URL.
    page.goto(&format!("{base}/ui")).await?;
    page.wait_for(
        "document.body.dataset.view === 'login-view'",
        10,
        "the sign-in form",
    )
    .await?;
    page.type_into("#api-key", "wrong-key").await?;
    page.click("#login-submit").await?;
    page.wait_for(
        "document.getElementById('login-error').textContent.includes('refused')",
        10,
        "a wrong key to be refused",
    )
    .await?;
    page.type_into("#api-key", KEY).await?;
    page.click("#login-submit").await?;
    page.wait_for(
        "document.body.dataset.view === 'runs-view'",
        10,
        "the runs list",
    )
    .await?;
    let url = page.eval("location.href").await?;
    assert!(
        !url.as_str().unwrap_or_default().contains(KEY),
        "the key is not in the URL: {url}"
    );

    // The list refreshes by itself: a run started now shows up.
    let run = t.start_run("aismr").await;
    let id = run["run_id"].as_str().context("run_id")?.to_owned();
    let job_code = run["job_code"].as_str().context("job_code")?.to_owned();
    let row = format!("#runs-table tr[data-run-id=\"{id}\"]");
    page.wait_for(
        &format!("!!document.querySelector('{row}')"),
        10,
        "the new run in the list",
    )
    .await?;
    let listed = page
        .eval(&format!("document.querySelector('{row}').textContent"))
        .await?;
    assert!(
        listed.as_str().unwrap_or_default().contains(&job_code),
        "{listed}"
    );
    // The status filter asks the API for those runs only.
    let filter = |status: &str| {
        format!(
            "(() => {{ const s = document.getElementById('status-filter'); s.value = '{status}'; \
             s.dispatchEvent(new Event('change')); return true; }})()"
        )
    };
    page.eval(&filter("published")).await?;
    page.wait_for(
        &format!(
            "!document.querySelector('{row}') && !document.getElementById('runs-empty').hidden"
        ),
        10,
        "the run to be filtered out",
    )
    .await?;
    page.eval(&filter("")).await?;
    page.wait_for(
        &format!("!!document.querySelector('{row}')"),
        10,
        "the run back in the list",
    )
    .await?;
    let shot = shots_dir().join("runs.png");
    page.screenshot(&shot).await?;
    println!("screenshot: {}", shot.display());
    page.click(&format!("{row} a")).await?;
    page.wait_for(
        &format!(
            "document.body.dataset.view === 'run-view' && document.getElementById('run-title').textContent === '{job_code}'"
        ),
        10,
        "the run's page",
    )
    .await?;

    // The run reaches the ideate gate: the graph marks it, the timeline has
    // Iggy done, the gate offers Approve.
    page.wait_for(
        "!!document.querySelector('#graph g.node.current[data-state=\"GateIdeate\"]')",
        30,
        "GateIdeate highlighted in the graph",
    )
    .await?;
    page.wait_for(
        "!!document.getElementById('approve-ideate')",
        10,
        "the Approve button",
    )
    .await?;
    assert_eq!(text(page, "#run-status").await?, "awaiting_approval");
    assert_eq!(
        page.eval("document.querySelector('#gantt .row.step[data-state=\"Iggy\"]').dataset.status")
            .await?,
        "succeeded"
    );
    // The gate shows what it asks to approve: Iggy's title and ideas.
    page.wait_for(
        "document.querySelectorAll('#review-ideate ol.ideas li').length >= 3 \
         && document.querySelector('#review-ideate .title').textContent.length > 0",
        10,
        "the ideas in the gate",
    )
    .await?;
    let shot = shots_dir().join("gate-ideate.png");
    page.screenshot(&shot).await?;
    println!("screenshot: {}", shot.display());

    // Approve in the page with a comment; watch the run move on to the next gate.
    page.type_into("#comment-ideate", "more crunch, less glitter")
        .await?;
    page.click("#approve-ideate").await?;
    let seen = watch_until_gate(page, "GatePrepublish", 60).await?;
    assert!(
        seen.iter().any(|s| s == "Riley" || s == "Alex"),
        "the page showed the run at Riley or Alex on the way: {seen:?}"
    );
    for state in ["Riley", "Alex"] {
        let status = page
            .eval(&format!(
                "document.querySelector('#gantt .row.step[data-state=\"{state}\"]')?.dataset.status"
            ))
            .await?;
        assert_eq!(status, "succeeded", "{state} in the timeline");
    }
    let decided = t.evidence(&id).await;
    let ideate = decided
        .hitl_requests
        .iter()
        .find(|r| r.gate.as_str() == "ideate")
        .context("ideate request")?;
    assert_eq!(ideate.decided_by.as_deref(), Some("api-key:dashboard"));
    assert_eq!(ideate.comment.as_deref(), Some("more crunch, less glitter"));
    page.wait_for(
        "Array.from(document.querySelectorAll('#gates [data-gate=\"ideate\"]')).some(p => p.textContent.includes('more crunch'))",
        10,
        "the decided gate's comment",
    )
    .await?;
    page.wait_for(
        "document.querySelectorAll('#gantt .row.job').length >= 12",
        10,
        "the provider jobs in the timeline",
    )
    .await?;
    page.wait_for(
        "document.querySelectorAll('#webhooks tr[data-signature=\"verified\"]').length >= 12",
        10,
        "the verified kie.ai callbacks",
    )
    .await?;

    page.wait_for(
        "!!document.getElementById('approve-prepublish')",
        10,
        "Approve for prepublish",
    )
    .await?;
    // The prepublish gate shows the rendered video, playable, and its clips.
    page.wait_for(
        "(document.querySelector('#review-prepublish video.render')?.src || '').startsWith('http') \
         && document.querySelector('#review-prepublish details summary').textContent === '12 clips' \
         && !document.querySelector('#review-prepublish').textContent.includes('null')",
        10,
        "the video and clips in the gate",
    )
    .await?;
    let shot = shots_dir().join("gate-prepublish.png");
    page.screenshot(&shot).await?;
    println!("screenshot: {}", shot.display());
    page.click("#approve-prepublish").await?;
    page.wait_for(
        "document.getElementById('run-status').textContent === 'published'",
        60,
        "the run to be published",
    )
    .await?;
    page.wait_for(
        "!!document.querySelector('#graph g.node.succeeded[data-state=\"RecordPublished\"]') \
         && !document.querySelector('#graph g.node.current')",
        10,
        "the graph to show the finished run",
    )
    .await?;
    page.wait_for(
        "!!document.querySelector('#artifacts tr[data-type=\"publish.url\"] a')",
        10,
        "the publish URLs among the artifacts",
    )
    .await?;
    page.wait_for(
        "(document.querySelector('#cost tr[data-kind=\"kieai\"]') || {}).textContent \
         .includes('12 clips of 12 jobs') \
         && document.getElementById('cost-total').textContent.startsWith('$')",
        10,
        "the cost panel with the 12 clips and a total",
    )
    .await?;
    assert_eq!(
        t.evidence(&id).await.run.status,
        RunStatus::Published,
        "the API agrees with the page"
    );
    // The run tree: the graph span with a child per persona.
    page.wait_for(
        "!!document.querySelector('#run-tree li[data-span=\"aismr-graph\"] li[data-span=\"aismr:quinn\"]') \
         && !!document.querySelector('#run-tree li[data-span=\"aismr:gate:ideate\"]')",
        10,
        "the run tree",
    )
    .await?;
    let shot = shots_dir().join("published.png");
    page.screenshot(&shot).await?;
    println!("screenshot: {}", shot.display());
    Ok(())
}

async fn text(page: &Page, selector: &str) -> anyhow::Result<String> {
    let value = page
        .eval(&format!(
            "document.querySelector({}).textContent",
            serde_json::to_string(selector)?
        ))
        .await?;
    Ok(value.as_str().unwrap_or_default().to_owned())
}

/// The current states the page shows, in order, until `gate` is current.
async fn watch_until_gate(page: &Page, gate: &str, secs: u64) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen: Vec<String> = Vec::new();
    loop {
        let current = page
            .eval("Array.from(document.querySelectorAll('#graph g.node.current')).map(n => n.dataset.state)")
            .await?;
        for state in current
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if seen.last().map(String::as_str) != Some(state) {
                seen.push(state.to_owned());
            }
        }
        if seen.last().map(String::as_str) == Some(gate) {
            return Ok(seen);
        }
        if Instant::now() > deadline {
            bail!("the page never showed {gate} as current; it showed {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
