//! Shared helpers of the end-to-end tests and benchmarks: where the built example jobs are,
//! and a sink that records what a running job reports.

pub mod conformance;
pub mod faults;
pub mod pg_cluster;
pub mod store_conformance;

use queuemgr::runtime::{JobEvents, LogLine};
use std::path::PathBuf;
use std::sync::Mutex;

/// The example jobs, as their `.wasm` files' stems.
pub const EXAMPLE_JOBS: &[&str] = &["my_job", "cpu_heavy", "failing", "hostile", "noop"];

/// The directory the build script put the example jobs' `.wasm` files in.
pub fn example_jobs_dir() -> PathBuf {
    PathBuf::from(env!("QUEUEMGR_EXAMPLE_JOBS"))
}

/// The path of one example job's component, e.g. `job_wasm("noop")`.
pub fn job_wasm(stem: &str) -> PathBuf {
    example_jobs_dir().join(format!("{stem}.wasm"))
}

/// Copies the example jobs into `dir` (a fresh jobs directory for a server under test).
pub fn copy_example_jobs(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for stem in EXAMPLE_JOBS {
        std::fs::copy(job_wasm(stem), dir.join(format!("{stem}.wasm")))?;
    }
    Ok(())
}

/// Records every progress report and log line of a run, in order.
#[derive(Default)]
pub struct Recorder {
    /// `(percent, description)` in the order reported.
    pub progress: Mutex<Vec<(u8, String)>>,
    /// Log lines in the order written.
    pub logs: Mutex<Vec<LogLine>>,
}

impl JobEvents for Recorder {
    fn progress(&self, percent: u8, description: &str) {
        self.progress
            .lock()
            .unwrap()
            .push((percent, description.to_string()));
    }
    fn log(&self, line: LogLine) {
        self.logs.lock().unwrap().push(line);
    }
}

/// A real `queuemgr serve` process on an ephemeral loopback port, with its own jobs
/// directory (the example jobs) and registry in a temporary directory. Killed on drop.
pub struct Server {
    bin: PathBuf,
    child: Option<std::process::Child>,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The temporary directory holding `jobs/`, the registry and the server's log.
    pub dir: tempfile::TempDir,
    extra: Vec<String>,
    registry: Option<PathBuf>,
    http: reqwest::Client,
}

/// The path of the test server binary (`queuemgr serve` built in this package).
#[macro_export]
macro_rules! server_bin {
    () => {
        env!("CARGO_BIN_EXE_queuemgr-e2e-server")
    };
}

impl Server {
    /// Starts a server with the example jobs, `my_job` as default job type, and `extra` flags.
    pub async fn start(bin: &str, extra: &[&str]) -> Server {
        Self::try_start(bin, None, extra)
            .await
            .unwrap_or_else(|log| panic!("queuemgr did not start; its log:\n{log}"))
    }

    /// Like [`Server::start`] with the registry at `registry` (default: in the temporary
    /// directory); returns the server's log if it does not start.
    pub async fn try_start(
        bin: &str,
        registry: Option<PathBuf>,
        extra: &[&str],
    ) -> Result<Server, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_example_jobs(&dir.path().join("jobs")).expect("copy example jobs");
        let mut s = Server {
            bin: PathBuf::from(bin),
            child: None,
            url: String::new(),
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            registry,
            http: reqwest::Client::new(),
        };
        s.spawn().await?;
        Ok(s)
    }

    /// The jobs directory.
    pub fn jobs_dir(&self) -> PathBuf {
        self.dir.path().join("jobs")
    }

    /// The registry file.
    pub fn registry(&self) -> PathBuf {
        self.registry
            .clone()
            .unwrap_or_else(|| self.dir.path().join("registry.jsonl"))
    }

    async fn spawn(&mut self) -> Result<(), String> {
        use std::io::BufRead;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log file");
        // Compiled job code is shared between test servers: it only depends on the bytes.
        let cache = example_jobs_dir().join("../e2e-code-cache");
        let mut cmd = std::process::Command::new(&self.bin);
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--jobs-dir")
            .arg(self.jobs_dir())
            .arg("--registry")
            .arg(self.registry())
            .arg("--cache-dir")
            .arg(cache)
            .arg("--default-job-type")
            .arg("my_job")
            .args(&self.extra)
            .env("QUEUEMGR_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(log);
        let mut child = cmd.spawn().expect("spawn queuemgr");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(url) = line.strip_prefix("queuemgr listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = tokio::task::spawn_blocking(move || {
            rx.recv_timeout(std::time::Duration::from_secs(120))
        })
        .await
        .expect("join");
        match url {
            Ok(url) => self.url = url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(
                    std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
                );
            }
        }
        self.child = Some(child);
        Ok(())
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `kill -9` the server.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM the server and wait for it to exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// Starts the server again on the same directory (after [`Server::kill9`]).
    pub async fn restart(&mut self) {
        self.kill9();
        if let Err(log) = self.spawn().await {
            panic!("queuemgr did not restart; its log:\n{log}");
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// POSTs raw bytes to `path`; returns the status and the JSON body (`Null` if not JSON).
    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let req = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body);
        Self::send(req, headers).await
    }

    async fn send(
        mut req: reqwest::RequestBuilder,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// GETs `path`; returns the status and JSON body.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
        Self::send(self.http.get(format!("{}{path}", self.url)), headers).await
    }

    /// Calls `method` as JSON-RPC 2.0 on `/api/jsonrpc`; returns the (HTTP 200) envelope.
    pub async fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let body =
            serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let (status, v) = self.post_raw("/api/jsonrpc", body.to_string(), &[]).await;
        assert_eq!(status, 200, "HTTP status for {body}: {v}");
        v
    }

    /// POSTs a JSON body to `/api/v1/execute` and returns the (HTTP 200) JSON answer.
    pub async fn execute(&self, body: serde_json::Value) -> serde_json::Value {
        let (status, v) = self
            .post_raw("/api/v1/execute", body.to_string(), &[])
            .await;
        assert_eq!(status, 200, "HTTP status for {body}: {v}");
        v
    }

    /// `{"command":"queue","params":{…}}` → the `data` of a successful answer (panics on error).
    pub async fn queue(&self, params: serde_json::Value) -> serde_json::Value {
        let v = self
            .execute(serde_json::json!({"command": "queue", "params": params}))
            .await;
        assert_eq!(v["result"]["success"], true, "queue {params}: {v}");
        v["result"]["data"].clone()
    }

    /// Waits until the job reads `status` or the timeout passes; returns the job object as last
    /// read (null if it never existed). Waits on the host's event stream, not by polling: it subscribes first, then reads
    /// the job once (so a change between the two is not lost), then follows the job's `job`
    /// events. A `lagged` or `resync` event (the stream could not keep up) makes it read the
    /// job again.
    pub async fn wait_status(
        &self,
        job_id: &str,
        status: &str,
        timeout: std::time::Duration,
    ) -> serde_json::Value {
        self.wait_job(job_id, |job| job["status"] == status, timeout)
            .await
    }

    /// Waits until the job (its seed-shaped object, as `get_status` answers) satisfies `done`,
    /// or the timeout passes; returns the job as last read. See [`Server::wait_status`].
    pub async fn wait_job(
        &self,
        job_id: &str,
        done: impl Fn(&serde_json::Value) -> bool,
        timeout: std::time::Duration,
    ) -> serde_json::Value {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + timeout;
        // The job as it is now (null while it does not exist yet).
        let read = || async {
            self.execute(serde_json::json!({"command": "queue", "params": {"action": "get_status", "job_id": job_id}}))
                .await["result"]["data"]["status"]
                .clone()
        };
        let events = self
            .http
            .get(format!("{}/api/v1/events", self.url))
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("the event stream answers");
        let body = http::Response::<reqwest::Body>::from(events).into_body();
        let mut events = sse_stream::SseStream::new(body);
        let mut job = read().await;
        while !done(&job) {
            let next = match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(Some(Ok(ev))) => ev,
                // The stream ended or failed, or the time is up: the job as it is now.
                Ok(Some(Err(_))) | Ok(None) | Err(_) => return read().await,
            };
            match next.event.as_deref() {
                Some("job") => {
                    let data: serde_json::Value = next
                        .data
                        .as_deref()
                        .and_then(|d| serde_json::from_str(d).ok())
                        .unwrap_or_default();
                    if data["job_id"] == job_id {
                        job = data;
                    }
                }
                Some("lagged") | Some("resync") => job = read().await,
                _ => {}
            }
        }
        job
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An in-process host (no socket) on a temporary directory: for `tower::ServiceExt::oneshot`
/// tests of the router. `extra` are `queuemgr serve` flags.
pub struct InProcess {
    /// The host (router, queue).
    pub host: queuemgr::server::Host,
    /// Its directory (`jobs/`, registry).
    pub dir: tempfile::TempDir,
}

impl InProcess {
    /// Builds the host with the example jobs and `my_job` as default job type.
    pub async fn start(extra: &[&str]) -> InProcess {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            args: queuemgr::server::ServeArgs,
        }
        let dir = tempfile::tempdir().expect("tempdir");
        copy_example_jobs(&dir.path().join("jobs")).expect("copy example jobs");
        let cache = example_jobs_dir().join("../e2e-code-cache");
        let mut argv: Vec<String> = vec!["queuemgr".into()];
        for (k, v) in [
            ("--jobs-dir", dir.path().join("jobs")),
            ("--registry", dir.path().join("registry.jsonl")),
            ("--cache-dir", cache),
        ] {
            argv.push(k.into());
            argv.push(v.display().to_string());
        }
        argv.extend(["--default-job-type".to_string(), "my_job".to_string()]);
        argv.extend(extra.iter().map(|s| s.to_string()));
        let args = Wrap::parse_from(argv).args;
        let host = queuemgr::server::build(&args).await.expect("host starts");
        InProcess { host, dir }
    }

    /// Sends one request through the router; returns the status and the body's bytes.
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (u16, axum::body::Bytes) {
        use tower::ServiceExt;
        let mut req = axum::http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(axum::body::Body::from(body.to_string()))
            .expect("request");
        let resp = self
            .host
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("infallible");
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, bytes)
    }

    /// Sends one request through the router; returns the status and the JSON body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let (status, bytes) = self.send(method, path, body, headers).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Sends one request through the router; returns the body as text.
    pub async fn text(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
        let (_, bytes) = self.send(method, path, "", headers).await;
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// POSTs to `/api/v1/execute`.
    pub async fn execute(&self, body: &str) -> (u16, serde_json::Value) {
        self.request("POST", "/api/v1/execute", body, &[]).await
    }

    /// Calls `method` as JSON-RPC 2.0 on `/api/jsonrpc`; returns the (HTTP 200) envelope.
    pub async fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let body =
            serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let (status, v) = self
            .request("POST", "/api/jsonrpc", &body.to_string(), &[])
            .await;
        assert_eq!(status, 200, "HTTP status for {body}: {v}");
        v
    }
}

/// A component of another world (a WASI command), which the host must refuse.
pub fn other_world_wasm() -> PathBuf {
    example_jobs_dir().join("other-world.wasm")
}

/// The PostgreSQL these tests use (`QUEUEMGR_TEST_PG`, default the machine's own on
/// 127.0.0.1:5432, database `test`); started if it is down.
pub async fn postgres_url() -> String {
    let url = std::env::var("QUEUEMGR_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    for attempt in 0..2 {
        if tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .is_ok()
        {
            return url;
        }
        if attempt == 0 {
            eprintln!("PostgreSQL is down: starting it");
            let _ = std::process::Command::new("service")
                .args(["postgresql", "start"])
                .status();
            for _ in 0..50 {
                if tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .is_ok()
                {
                    return url;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    panic!("PostgreSQL at {url} is not reachable and could not be started");
}

/// Drops `names` and every schema whose name starts with `prefix`.
pub async fn drop_schemas(url: &str, prefix: &str, names: &[String]) {
    let Ok((client, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        return;
    };
    let driver = tokio::spawn(conn);
    let mut all: Vec<String> = names.to_vec();
    if let Ok(rows) = client
        .query(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1",
            &[&format!("{prefix}%")],
        )
        .await
    {
        all.extend(rows.iter().map(|r| r.get::<_, String>(0)));
    }
    all.sort();
    all.dedup();
    for s in all {
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE"))
            .await;
    }
    driver.abort();
}

/// `list_job_types`' answer.
pub async fn job_types(s: &Server) -> serde_json::Value {
    s.queue(serde_json::json!({"action": "list_job_types"}))
        .await
}

/// Waits (at most 20 s) until `list_job_types` satisfies `f`, then returns it; panics naming
/// `what` after. The jobs directory has no event stream, so this looks every 50 ms.
pub async fn wait_job_types(
    s: &Server,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let v = job_types(s).await;
        if f(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The loaded job type `name` in a `list_job_types` answer.
pub fn type_info<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    v["job_types"]
        .as_array()?
        .iter()
        .find(|t| t["job_type"] == name)
}

/// The broken file of job type `name` in a `list_job_types` answer.
pub fn broken<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    v["broken"].as_array()?.iter().find(|b| b["name"] == name)
}

/// An exclusive lock on `target/test-locks/<name>.lock`, held until the file is dropped: what
/// tests running in separate processes (cargo-nextest) make once and share — a venv, a built
/// Python job — is made by one of them at a time.
pub fn exclusive(name: &str) -> std::fs::File {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-locks");
    std::fs::create_dir_all(&dir).expect("target/test-locks");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{name}.lock")))
        .expect("a lock file");
    file.lock().expect("lock");
    file
}

/// A Python venv at `target/<name>` with `package==version` from PyPI, made once (kept while
/// the installed version matches); returns its `python`.
pub fn python_venv(name: &str, package: &str, version: &str) -> PathBuf {
    use std::process::Command;
    // Tests run in processes of their own, several at once: one maker per venv at a time.
    let _one = exclusive(&format!("venv-{name}"));
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(name);
    let python = venv.join("bin/python");
    let check = format!("import importlib.metadata as m; print(m.version('{package}'))");
    let installed = Command::new(&python)
        .args(["-c", &check])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == version);
    if !installed {
        let st = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 is needed");
        assert!(st.success(), "python3 -m venv failed");
        let st = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", &format!("{package}=={version}")])
            .status()
            .expect("pip");
        assert!(st.success(), "pip install {package}=={version} failed");
    }
    python
}

/// Builds `example-jobs/python/<stem>.py` into `target/python-jobs/<stem>_py.wasm` with
/// `scripts/build-python-job.sh` (componentize-py from PyPI into a venv, once per checkout; an
/// unchanged source is not rebuilt); returns the component's path.
pub fn python_job(stem: &str) -> PathBuf {
    // Tests run in processes of their own, several at once: one build at a time (they share
    // the build venv and the output directory), so that two never write one file.
    let _one = exclusive("python-build");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = root.join(format!("target/python-jobs/{stem}_py.wasm"));
    let st = std::process::Command::new(root.join("scripts/build-python-job.sh"))
        .arg(root.join(format!("example-jobs/python/{stem}.py")))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("run scripts/build-python-job.sh");
    assert!(st.success(), "building {stem}.py failed");
    out
}

/// A TCP proxy on loopback in front of `target` (e.g. PostgreSQL) that a test can cut: once
/// cut, it keeps every connection open but forwards nothing either way, and accepts new ones
/// that go nowhere, as a network partition does (no reset, no refusal: the peer just hears
/// nothing).
pub struct CutProxy {
    /// The address to connect to instead of `target`.
    pub addr: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    pipes: std::sync::Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CutProxy {
    /// Listens on 127.0.0.1 (an ephemeral port) and forwards to `target`.
    pub async fn start(target: std::net::SocketAddr) -> CutProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = cut.clone();
        let pipes = std::sync::Arc::new(Mutex::new(Vec::new()));
        let held_pipes = pipes.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((client, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    held.push(client);
                    continue;
                }
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let mut p = held_pipes.lock().unwrap_or_else(|e| e.into_inner());
                p.push(tokio::spawn(pipe(cr, sw, flag.clone())).abort_handle());
                p.push(tokio::spawn(pipe(sr, cw, flag.clone())).abort_handle());
            }
        });
        CutProxy {
            addr,
            cut,
            task,
            pipes,
        }
    }

    /// From now on nothing passes.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        // Every connection closes: the database ends the sessions it held open.
        self.task.abort();
        for p in self
            .pipes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            p.abort();
        }
    }
}

/// Copies `from` to `to` until either closes; once `cut` is set, reads and drops.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                if !cut.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                // Cut: hold the other side open, silent, as a partition would.
                std::future::pending::<()>().await;
                return;
            }
            Ok(n) => n,
        };
        if cut.load(std::sync::atomic::Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The stored records of the jobs whose id matches `like` (SQL `LIKE`), straight from the
/// table.
pub async fn stored_records(url: &str, schema: &str, like: &str) -> Vec<serde_json::Value> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    let rows = client
        .query(
            &format!("SELECT record FROM \"{schema}\".jobs WHERE job_id LIKE $1"),
            &[&like],
        )
        .await
        .unwrap();
    driver.abort();
    rows.iter()
        .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
        .collect()
}

/// A local HTTP/1.1 server on 127.0.0.1 that keeps connections alive and counts the
/// connections it accepts and the requests it answers (every request: 200, `text/plain`,
/// `from web`). For the tests of kept-alive outbound HTTP, from Rust and Python jobs.
pub struct KeepAliveHttp {
    /// Its port.
    pub port: u16,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl KeepAliveHttp {
    /// Starts it on the current tokio runtime.
    pub async fn start() -> KeepAliveHttp {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (c, r) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        buf.drain(..end);
                        r.fetch_add(1, Ordering::SeqCst);
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 8\r\n\r\nfrom web";
                        if sock.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        KeepAliveHttp {
            port,
            connections,
            requests,
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// (connections accepted, requests answered) so far.
    pub fn counts(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering;
        (
            self.connections.load(Ordering::SeqCst),
            self.requests.load(Ordering::SeqCst),
        )
    }
}
