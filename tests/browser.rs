//! Headless Chromium for the dashboard tests, driven over the Chrome DevTools
//! Protocol: a websocket, JSON commands with ids, answers matched by id, and
//! events kept for the test to read. Only what the tests use: open a page,
//! evaluate JavaScript, click like a mouse, type, take a screenshot.
//!
//! The browser is the Debian package `chromium` (or `CHROME=/path/to/binary`).
//! [`find_chromium`] says whether there is one; the tests skip loudly without
//! it, except in CI.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use base64::Engine as _;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The Chromium binary: `$CHROME`, or the first of the usual names on `PATH`.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROME").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let names = [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ];
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A headless Chromium with its own profile; killed when dropped.
#[derive(Debug)]
pub struct Browser {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `binary` headless on a free debugging port; its output goes to
    /// `log`.
    pub async fn launch(binary: &Path, log: &Path) -> anyhow::Result<Browser> {
        let profile = tempfile::tempdir().context("profile dir")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let out = std::fs::File::create(log).context("browser log")?;
        let child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--mute-audio",
                "--window-size=1400,1100",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--remote-debugging-port={port}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            // Chromium's own temporary folders go with the profile.
            .env("TMPDIR", profile.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut browser = Browser {
            child,
            port,
            _profile: profile,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http
                .get(format!("http://127.0.0.1:{port}/json/version"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(browser);
            }
            if let Some(status) = browser.child.try_wait()? {
                bail!(
                    "chromium exited with {status} before it listened; see {}",
                    log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "chromium did not open its debugging port in 30 s; see {}",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new tab, connected.
    pub async fn new_page(&self) -> anyhow::Result<Page> {
        let target: Value = reqwest::Client::new()
            .put(format!(
                "http://127.0.0.1:{}/json/new?about:blank",
                self.port
            ))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let ws = target["webSocketDebuggerUrl"]
            .as_str()
            .ok_or_else(|| anyhow!("no webSocketDebuggerUrl in {target}"))?;
        Page::connect(ws).await
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;
type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

/// One tab over its DevTools websocket.
#[derive(Debug)]
pub struct Page {
    sink: tokio::sync::Mutex<Sink>,
    pending: Pending,
    events: Arc<Mutex<Vec<Value>>>,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

impl Page {
    async fn connect(url: &str) -> anyhow::Result<Page> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let (sink, mut stream) = ws.split();
        let pending: Pending = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let reader = tokio::spawn({
            let pending = Arc::clone(&pending);
            let events = Arc::clone(&events);
            async move {
                while let Some(Ok(message)) = stream.next().await {
                    let Ok(text) = message.to_text() else {
                        continue;
                    };
                    let Ok(value) = serde_json::from_str::<Value>(text) else {
                        continue;
                    };
                    match value.get("id").and_then(Value::as_u64) {
                        Some(id) => {
                            let answer = match value.get("error") {
                                Some(error) => Err(error.to_string()),
                                None => Ok(value.get("result").cloned().unwrap_or(Value::Null)),
                            };
                            if let Some(tx) = pending.lock().unwrap().remove(&id) {
                                let _ = tx.send(answer);
                            }
                        }
                        None => events.lock().unwrap().push(value),
                    }
                }
            }
        });
        let page = Page {
            sink: tokio::sync::Mutex::new(sink),
            pending,
            events,
            next_id: AtomicU64::new(1),
            reader,
        };
        page.call("Page.enable", json!({})).await?;
        page.call("Runtime.enable", json!({})).await?;
        Ok(page)
    }

    /// Sends one command and waits for its answer.
    pub async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.sink
            .lock()
            .await
            .send(Message::text(message))
            .await
            .with_context(|| format!("sending {method}"))?;
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(Ok(result))) => Ok(result),
            Ok(Ok(Err(error))) => bail!("{method} failed: {error}"),
            Ok(Err(_)) => bail!("{method}: the browser closed the connection"),
            Err(_) => bail!("{method}: no answer in 30 s"),
        }
    }

    /// Opens `url` and waits until the document has loaded.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        let navigated = self.call("Page.navigate", json!({ "url": url })).await?;
        if let Some(error) = navigated.get("errorText").and_then(Value::as_str) {
            bail!("navigating to {url}: {error}");
        }
        self.wait_for("document.readyState === 'complete'", 15, "the page to load")
            .await?;
        Ok(())
    }

    /// The value of a JavaScript expression (promises awaited).
    pub async fn eval(&self, expression: &str) -> anyhow::Result<Value> {
        let answer = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(details) = answer.get("exceptionDetails") {
            bail!("{expression} threw: {details}");
        }
        Ok(answer["result"]
            .get("value")
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// Evaluates `expression` every 100 ms until it is truthy; its value.
    pub async fn wait_for(&self, expression: &str, secs: u64, what: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let value = self.eval(expression).await?;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(value);
            }
            if Instant::now() > deadline {
                bail!("waited {secs} s for {what} ({expression})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the middle of the element `selector` names, as a mouse does.
    pub async fn click(&self, selector: &str) -> anyhow::Result<()> {
        let selector_js = serde_json::to_string(selector)?;
        let at = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({selector_js}); if (!e) return null; \
                 e.scrollIntoView({{ block: 'center' }}); const r = e.getBoundingClientRect(); \
                 return {{ x: r.x + r.width / 2, y: r.y + r.height / 2 }}; }})()"
            ))
            .await?;
        let (Some(x), Some(y)) = (at["x"].as_f64(), at["y"].as_f64()) else {
            bail!("nothing to click at {selector}");
        };
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            )
            .await?;
        }
        Ok(())
    }

    /// Focuses `selector` and types `text` into it.
    pub async fn type_into(&self, selector: &str, text: &str) -> anyhow::Result<()> {
        let selector_js = serde_json::to_string(selector)?;
        let found = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({selector_js}); if (!e) return false; e.focus(); return true; }})()"
            ))
            .await?;
        if found != Value::Bool(true) {
            bail!("nothing to type into at {selector}");
        }
        self.call("Input.insertText", json!({ "text": text }))
            .await?;
        Ok(())
    }

    /// A PNG of the whole page, written to `path`.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await?;
        let data = shot["data"]
            .as_str()
            .ok_or_else(|| anyhow!("no screenshot data"))?;
        let png = base64::engine::general_purpose::STANDARD.decode(data)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// Waits for the first event `method` not yet taken; takes it and
    /// returns its parameters.
    pub async fn next_event(&self, method: &str, secs: u64) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            {
                let mut events = self.events.lock().unwrap();
                if let Some(i) = events.iter().position(|e| e["method"] == method) {
                    return Ok(events.remove(i)["params"].take());
                }
            }
            if Instant::now() > deadline {
                bail!("no {method} event in {secs} s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks `selector`, which opens a `confirm()` dialog, and answers it
    /// (`accept`); returns the dialog's message.
    pub async fn click_and_confirm(&self, selector: &str, accept: bool) -> anyhow::Result<String> {
        let answer = async {
            let dialog = self.next_event("Page.javascriptDialogOpening", 10).await?;
            self.call("Page.handleJavaScriptDialog", json!({ "accept": accept }))
                .await?;
            anyhow::Ok(dialog["message"].as_str().unwrap_or_default().to_owned())
        };
        let (clicked, message) = tokio::join!(self.click(selector), answer);
        clicked?;
        message
    }

    /// Uncaught exceptions and `console.error` calls in the page so far.
    pub fn errors(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e["method"].as_str() {
                Some("Runtime.exceptionThrown") => {
                    Some(e["params"]["exceptionDetails"].to_string())
                }
                Some("Runtime.consoleAPICalled") if e["params"]["type"] == "error" => {
                    Some(e["params"]["args"].to_string())
                }
                _ => None,
            })
            .collect()
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
