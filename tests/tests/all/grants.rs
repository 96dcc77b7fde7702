//! Capability grants per job type (`jobs/<type>.toml`): what a job can reach with and without
//! them. Real components (`probe`, `process_data`, `fetch_url`, `hostile`, `my_job`), a real
//! server process, real files and a real local HTTP server that counts its connections.

use queuemgr_tests::{
    Server, broken, job_types, job_wasm, server_bin, type_info, wait_job_types as wait_types,
};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TERMINAL: [&str; 4] = ["COMPLETED", "ERROR", "STOPPED", "DELETED"];

/// Adds and starts a job, then waits for its end; returns the job as get_status shows it.
async fn run(s: &Server, job_type: &str, params: Value) -> Value {
    let id = format!("{job_type}-{}", queuemgr::job::new_id());
    s.queue(
        json!({"action": "add_job", "job_id": id, "job_type": job_type,
                   "params": params, "start": true}),
    )
    .await;
    wait_end(s, &id, Duration::from_secs(30)).await
}

async fn wait_end(s: &Server, id: &str, timeout: Duration) -> Value {
    let ended = |job: &Value| TERMINAL.iter().any(|t| job["status"] == *t);
    let job = s.wait_job(id, ended, timeout).await;
    assert!(ended(&job), "{id} did not end: {job}");
    job
}

fn error_code(job: &Value) -> &str {
    job["error"]["code"].as_str().unwrap_or_default()
}

/// Installs `job_type` (a copy of the example `stem`) with `manifest` beside it (written
/// first, so the type loads with it), and waits until it is loaded.
async fn install(s: &Server, job_type: &str, stem: &str, manifest: Option<&str>) -> Value {
    let dir = s.jobs_dir();
    if let Some(m) = manifest {
        std::fs::write(dir.join(format!("{job_type}.toml")), m).unwrap();
    }
    std::fs::copy(job_wasm(stem), dir.join(format!("{job_type}.wasm"))).unwrap();
    let v = wait_types(s, job_type, |v| {
        type_info(v, job_type).is_some() || broken(v, job_type).is_some()
    })
    .await;
    assert!(broken(&v, job_type).is_none(), "{job_type} broken: {v}");
    type_info(&v, job_type).unwrap().clone()
}

fn toml_path(p: &Path) -> String {
    p.display().to_string().replace('\\', "\\\\")
}

#[tokio::test]
async fn the_process_data_job_reads_a_granted_dir_and_writes_an_output_dir() {
    let s = Server::start(server_bin!(), &[]).await;
    let data = s.dir.path().join("data");
    std::fs::create_dir_all(data.join("in")).unwrap();
    std::fs::create_dir_all(data.join("out")).unwrap();
    let mut csv = String::from("region,units,price\n");
    for i in 0..5000 {
        csv.push_str(&format!("r{},{},{}.5\n", i % 7, i, i % 100));
    }
    std::fs::write(data.join("in/sales.csv"), &csv).unwrap();
    let manifest = format!(
        "[limits]\ntimeout_secs = 60\n\n[[dirs]]\nhost = \"{}\"\nguest = \"/data/in\"\n\n\
         [[dirs]]\nhost = \"{}\"\nguest = \"/data/out\"\nmode = \"rw\"\n",
        toml_path(&data.join("in")),
        toml_path(&data.join("out")),
    );
    let info = install(&s, "process_data", "process_data", Some(&manifest)).await;
    assert_eq!(info["grants"]["dirs"][0]["guest"], "/data/in", "{info}");
    assert_eq!(info["grants"]["dirs"][0]["mode"], "ro");
    assert_eq!(info["grants"]["dirs"][1]["mode"], "rw");

    let job = run(
        &s,
        "process_data",
        json!({"input": "/data/in/sales.csv", "output": "/data/out/summary.json", "chunk_rows": 500}),
    )
    .await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["progress"], 100, "{job}");
    let r = &job["result"];
    assert_eq!(r["rows"], 5000, "{r}");
    assert_eq!(r["columns"]["units"]["count"], 5000);
    assert_eq!(r["columns"]["units"]["max"], 4999.0);
    assert_eq!(r["columns"]["units"]["sum"], (0..5000).sum::<i64>() as f64);
    assert!(r["columns"].get("region").is_none(), "text column: {r}");
    let written: Value =
        serde_json::from_slice(&std::fs::read(data.join("out/summary.json")).unwrap()).unwrap();
    assert_eq!(
        written["rows"], 5000,
        "the summary file on the host: {written}"
    );

    // The same job without the grant sees no files at all.
    install(&s, "process_bare", "process_data", None).await;
    let job = run(
        &s,
        "process_bare",
        json!({"input": "/data/in/sales.csv", "output": "/data/out/x.json"}),
    )
    .await;
    assert_eq!(job["status"], "ERROR", "{job}");
    assert_eq!(error_code(&job), "IO_ERROR", "{job}");
}

#[tokio::test]
async fn paths_outside_the_grant_are_not_reachable() {
    let s = Server::start(server_bin!(), &[]).await;
    let root = s.dir.path();
    let granted = root.join("granted");
    std::fs::create_dir_all(granted.join("sub")).unwrap();
    std::fs::write(granted.join("ok.txt"), "inside").unwrap();
    std::fs::write(root.join("secret.txt"), "TOP-SECRET-OUTSIDE").unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), granted.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(root, granted.join("up")).unwrap();
    let manifest = format!(
        "[[dirs]]\nhost = \"{}\"\nguest = \"/data\"\n",
        toml_path(&granted)
    );
    install(&s, "probe", "probe", Some(&manifest)).await;

    let ok = run(&s, "probe", json!({"op": "read", "path": "/data/ok.txt"})).await;
    assert_eq!(ok["status"], "COMPLETED", "{ok}");
    assert_eq!(ok["result"]["content"], "inside");

    for path in [
        "/etc/passwd",
        "/data/../etc/passwd",
        "/data/../secret.txt",
        "/data/sub/../../secret.txt",
        "../secret.txt",
        "secret.txt",
        "/data/link.txt",
        "/data/up/secret.txt",
    ] {
        let job = run(&s, "probe", json!({"op": "read", "path": path})).await;
        assert_eq!(job["status"], "ERROR", "{path} must not be readable: {job}");
        assert!(
            !job.to_string().contains("TOP-SECRET") && !job.to_string().contains("root:"),
            "{path} leaked: {job}"
        );
    }
    let listed = run(&s, "probe", json!({"op": "list", "path": "/"})).await;
    assert!(
        listed["status"] == "ERROR" || !listed.to_string().contains("secret.txt"),
        "{listed}"
    );

    // Read-only: no write, no create, and nothing appears on the host.
    for path in ["/data/ok.txt", "/data/new.txt"] {
        let job = run(
            &s,
            "probe",
            json!({"op": "write", "path": path, "data": "x"}),
        )
        .await;
        assert_eq!(job["status"], "ERROR", "{path} must not be writable: {job}");
    }
    assert_eq!(
        std::fs::read_to_string(granted.join("ok.txt")).unwrap(),
        "inside"
    );
    assert!(!granted.join("new.txt").exists());
}

#[tokio::test]
async fn variables_are_given_only_when_granted_and_never_shown() {
    let s = Server::start(server_bin!(), &[]).await;
    install(
        &s,
        "probe",
        "probe",
        Some("[env]\nMODE = \"literal-value-123\"\nHOST_PATH = { from_host = \"PATH\" }\n"),
    )
    .await;
    install(&s, "probe_bare", "probe", None).await;

    let all = run(&s, "probe", json!({"op": "env_all"})).await;
    assert_eq!(
        all["result"]["names"],
        json!(["HOST_PATH", "MODE"]),
        "{all}"
    );
    let mode = run(&s, "probe", json!({"op": "env", "name": "MODE"})).await;
    assert_eq!(mode["result"]["value"], "literal-value-123");
    let path = run(&s, "probe", json!({"op": "env", "name": "HOST_PATH"})).await;
    assert_eq!(
        path["result"]["value"],
        std::env::var("PATH").unwrap(),
        "taken from the host's environment"
    );
    let bare = run(&s, "probe_bare", json!({"op": "env_all"})).await;
    assert_eq!(
        bare["result"]["names"],
        json!([]),
        "nothing granted: {bare}"
    );

    // Names, never values, in list_job_types, /health and the server's log.
    let types = job_types(&s).await;
    let shown = type_info(&types, "probe").unwrap()["grants"]["env"].clone();
    assert_eq!(
        shown,
        json!([{"name": "HOST_PATH", "source": "host", "host_name": "PATH"},
               {"name": "MODE", "source": "literal"}])
    );
    let (_, health) = s.get("/health", &[]).await;
    for text in [types.to_string(), health.to_string(), s.log()] {
        assert!(!text.contains("literal-value-123"), "a value was shown");
    }
}

/// A local HTTP server that counts the connections it accepts. Paths: `/ok`, `/big` (200 kB
/// with a length), `/stream` (200 kB, no length), `/slow` (never answers), `/to?<url>` (302).
struct TestHttp {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl TestHttp {
    async fn start() -> TestHttp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut n = 0;
                    while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf[n..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => n += k,
                        }
                    }
                    let head = String::from_utf8_lossy(&buf[..n]).to_string();
                    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                    let reply = match path {
                        "/ok" => {
                            "HTTP/1.1 200 OK\r\ncontent-length: 14\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nhello queuemgr".to_string().into_bytes()
                        }
                        "/big" => {
                            let mut r = b"HTTP/1.1 200 OK\r\ncontent-length: 200000\r\nconnection: close\r\n\r\n".to_vec();
                            r.extend(std::iter::repeat_n(b'x', 200_000));
                            r
                        }
                        "/stream" => {
                            let mut r = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec();
                            r.extend(std::iter::repeat_n(b'y', 200_000));
                            r
                        }
                        "/slow" => {
                            tokio::time::sleep(Duration::from_secs(120)).await;
                            return;
                        }
                        "/to" => format!(
                            "HTTP/1.1 302 Found\r\nlocation: {query}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .into_bytes(),
                        _ => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
                    };
                    let _ = sock.write_all(&reply).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        TestHttp { port, accepted }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn outbound_http_goes_only_where_the_allow_list_says() {
    let allowed = TestHttp::start().await;
    let denied = TestHttp::start().await;
    let s = Server::start(server_bin!(), &[]).await;
    let manifest = format!(
        "[http]\nallow = [\"http://127.0.0.1:{}\"]\nmax_requests = 20\ntimeout_secs = 2\nmax_response_bytes = 100000\n",
        allowed.port
    );
    let info = install(&s, "fetch", "fetch_url", Some(&manifest)).await;
    assert_eq!(
        info["grants"]["http"]["allow"],
        json!([format!("http://127.0.0.1:{}", allowed.port)])
    );

    // Allowed.
    let ok = run(&s, "fetch", json!({"url": allowed.url("/ok")})).await;
    assert_eq!(ok["status"], "COMPLETED", "{ok}");
    assert_eq!(ok["result"]["status"], 200);
    assert_eq!(ok["result"]["bytes"], 14);
    assert_eq!(
        ok["result"]["sha256"], "9c491f3d3d628619680e7ee75e8cb2051fe7190e69b6f6e24c87141eb12e0ec1",
        "sha256 of the body"
    );

    // A port, a host name and a scheme not on the list: refused before any connection.
    let before = allowed.accepted();
    for url in [
        denied.url("/ok"),
        format!("http://localhost:{}/ok", allowed.port),
        format!("https://127.0.0.1:{}/ok", allowed.port),
    ] {
        let job = run(&s, "fetch", json!({"url": url})).await;
        assert_eq!(job["status"], "ERROR", "{url}: {job}");
        assert_eq!(error_code(&job), "HTTP_DENIED", "{url}: {job}");
    }
    assert_eq!(denied.accepted(), 0, "the denied server saw a connection");
    assert_eq!(
        allowed.accepted(),
        before,
        "a refused request reached the server"
    );

    // A redirect to a denied destination: the first hop goes out, the second does not.
    let hop = run(
        &s,
        "fetch",
        json!({"url": allowed.url(&format!("/to?{}", denied.url("/ok")))}),
    )
    .await;
    assert_eq!(error_code(&hop), "HTTP_DENIED", "{hop}");
    assert_eq!(
        denied.accepted(),
        0,
        "the redirect reached the denied server"
    );
    // A redirect within the list is followed.
    let within = run(
        &s,
        "fetch",
        json!({"url": allowed.url(&format!("/to?{}", allowed.url("/ok")))}),
    )
    .await;
    assert_eq!(within["status"], "COMPLETED", "{within}");
    assert_eq!(within["result"]["redirects"], 1);

    // The job's logs say what was refused and why.
    let logs = s
        .queue(json!({"action": "get_logs", "job_id": hop["job_id"]}))
        .await;
    assert!(
        logs["entries"]
            .to_string()
            .contains("not in the allow-list"),
        "{logs}"
    );

    // Response size cap: with and without a content-length.
    for path in ["/big", "/stream"] {
        let job = run(&s, "fetch", json!({"url": allowed.url(path)})).await;
        assert_eq!(job["status"], "ERROR", "{path}: {job}");
        assert_eq!(error_code(&job), "HTTP_TOO_LARGE", "{path}: {job}");
    }

    // Time cap: a server that never answers is cut at timeout_secs (2 s).
    let t = Instant::now();
    let slow = run(&s, "fetch", json!({"url": allowed.url("/slow")})).await;
    assert_eq!(error_code(&slow), "HTTP_TIMEOUT", "{slow}");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

#[tokio::test]
async fn a_stop_interrupts_a_request_in_flight() {
    let web = TestHttp::start().await;
    let s = Server::start(server_bin!(), &[]).await;
    let manifest = "[http]\nallow = [\"http://127.0.0.1:*\"]\ntimeout_secs = 600\n";
    install(&s, "fetch", "fetch_url", Some(manifest)).await;
    s.queue(
        json!({"action": "add_job", "job_id": "slow", "job_type": "fetch",
                   "params": {"url": web.url("/slow")}, "start": true}),
    )
    .await;
    let end = Instant::now() + Duration::from_secs(20);
    while web.accepted() == 0 {
        assert!(Instant::now() < end, "the request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = Instant::now();
    let stopped = s
        .queue(json!({"action": "stop_job", "job_id": "slow"}))
        .await;
    let job = wait_end(&s, "slow", Duration::from_secs(10)).await;
    assert_eq!(job["status"], "STOPPED", "{stopped} {job}");
    eprintln!(
        "stop with a request in flight answered in {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn a_job_granted_nothing_still_loads_and_its_requests_are_refused() {
    let web = TestHttp::start().await;
    let s = Server::start(server_bin!(), &[]).await;
    let info = install(&s, "fetch", "fetch_url", None).await;
    assert_eq!(info["grants"], json!({"dirs": [], "env": [], "http": null}));
    assert_eq!(info["manifest"], Value::Null);
    let job = run(&s, "fetch", json!({"url": web.url("/ok")})).await;
    assert_eq!(error_code(&job), "HTTP_DENIED", "{job}");
    assert_eq!(web.accepted(), 0);
}

#[tokio::test]
async fn manifests_reload_with_grants_added_removed_and_broken() {
    let s = Server::start(server_bin!(), &[]).await;
    let dir = s.jobs_dir();
    install(&s, "probe", "probe", None).await;
    let names = |v: &Value| v["result"]["names"].clone();
    assert_eq!(
        names(&run(&s, "probe", json!({"op": "env_all"})).await),
        json!([])
    );

    // Added.
    std::fs::write(dir.join("probe.toml"), "[env]\nGREETING = \"hi\"\n").unwrap();
    wait_types(&s, "the grant", |v| {
        type_info(v, "probe").is_some_and(|t| t["grants"]["env"].as_array().unwrap().len() == 1)
    })
    .await;
    assert_eq!(
        names(&run(&s, "probe", json!({"op": "env_all"})).await),
        json!(["GREETING"])
    );

    // Broken: the type is listed as broken, the message names the key, and it does not run
    // with the grants of before.
    std::fs::write(
        dir.join("probe.toml"),
        "[env]\nGREETING = \"hi\"\n[limits]\nmemry_mib = 4\n",
    )
    .unwrap();
    let v = wait_types(&s, "broken", |v| broken(v, "probe").is_some()).await;
    let err = broken(&v, "probe").unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        err.contains("memry_mib") && err.contains("probe.toml"),
        "{err}"
    );
    assert!(type_info(&v, "probe").is_none());
    let refused = s
        .execute(json!({"command": "queue", "params": {"action": "add_job",
            "job_type": "probe", "params": {"op": "env_all"}}}))
        .await;
    assert!(
        refused["error"]["message"].to_string().contains("probe"),
        "a broken type takes no jobs: {refused}"
    );

    // Removed: the manifest gone, the type loads with nothing granted.
    std::fs::remove_file(dir.join("probe.toml")).unwrap();
    wait_types(&s, "reloaded", |v| {
        type_info(v, "probe").is_some_and(|t| t["manifest"].is_null())
    })
    .await;
    assert_eq!(
        names(&run(&s, "probe", json!({"op": "env_all"})).await),
        json!([])
    );
}

/// A fuel budget needs a host that counts fuel: on an epoch host the type is broken with a
/// message that says how to get one; on the default (fuel) host it runs out.
#[tokio::test]
async fn a_fuel_budget_needs_fuel_metering() {
    let manifest = "[limits]\nfuel = 50000000\n";
    let s = Server::start(server_bin!(), &["--metering", "epoch"]).await;
    std::fs::write(s.jobs_dir().join("counted.toml"), manifest).unwrap();
    std::fs::copy(job_wasm("hostile"), s.jobs_dir().join("counted.wasm")).unwrap();
    let v = wait_types(&s, "broken", |v| broken(v, "counted").is_some()).await;
    let err = broken(&v, "counted").unwrap()["error"].to_string();
    assert!(
        err.contains("limits.fuel") && err.contains("--metering fuel"),
        "{err}"
    );
    drop(s);

    let s = Server::start(server_bin!(), &[]).await;
    install(&s, "counted", "hostile", Some(manifest)).await;
    let spun = run(&s, "counted", json!({"mode": "spin"})).await;
    assert_eq!(spun["error"]["kind"], "out_of_fuel", "{spun}");
}

#[tokio::test]
async fn limits_per_job_type_memory_concurrency_and_defaults() {
    let s = Server::start(server_bin!(), &[]).await;
    // Memory: the same job and params complete under the host's cap and run out under 4 MiB.
    install(&s, "roomy", "hostile", None).await;
    install(&s, "tight", "hostile", Some("[limits]\nmemory_mib = 4\n")).await;
    let params = json!({"mode": "big_result", "mib": 6});
    let roomy = run(&s, "roomy", params.clone()).await;
    assert_eq!(roomy["status"], "COMPLETED", "{}", roomy["error"]);
    let tight = run(&s, "tight", params).await;
    assert_eq!(tight["status"], "ERROR", "{tight}");
    assert_eq!(tight["error"]["kind"], "out_of_memory", "{tight}");

    // Concurrency: at most one `solo` runs at a time, and all of them run.
    let info = install(
        &s,
        "solo",
        "my_job",
        Some("[limits]\nmax_concurrent = 1\nmax_attempts = 3\npriority = 7\n"),
    )
    .await;
    assert_eq!(info["limits"]["max_concurrent"], 1, "{info}");
    let ids: Vec<String> = (0..3).map(|i| format!("solo{i}")).collect();
    for id in &ids {
        s.queue(
            json!({"action": "add_job", "job_id": id, "job_type": "solo",
                       "params": {"task_name": id, "duration": 0.3}, "start": true}),
        )
        .await;
    }
    let end = Instant::now() + Duration::from_secs(30);
    let mut max_running = 0;
    loop {
        let mut running = 0;
        let mut done = 0;
        for id in &ids {
            let d = s.queue(json!({"action": "get_status", "job_id": id})).await;
            match d["status"]["status"].as_str().unwrap() {
                "RUNNING" => running += 1,
                "COMPLETED" => done += 1,
                _ => {}
            }
        }
        max_running = max_running.max(running);
        if done == ids.len() {
            break;
        }
        assert!(Instant::now() < end, "solo jobs did not all complete");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(max_running, 1, "max_concurrent = 1 was exceeded");

    // The type's defaults apply where the job sets nothing; a job's own value wins.
    let d = s
        .queue(json!({"action": "get_status", "job_id": "solo0"}))
        .await;
    assert_eq!(d["status"]["max_attempts"], 3, "{d}");
    assert_eq!(d["status"]["priority"], 7, "{d}");
    s.queue(
        json!({"action": "add_job", "job_id": "own", "job_type": "solo",
                   "params": {"duration": 0}, "priority": 1, "max_attempts": 1}),
    )
    .await;
    let d = s
        .queue(json!({"action": "get_status", "job_id": "own"}))
        .await;
    assert_eq!(d["status"]["priority"], 1, "{d}");
    assert!(
        d["status"].get("max_attempts").is_none_or(|m| m == 1),
        "{d}"
    );
}

#[tokio::test]
async fn a_job_cannot_leave_symbolic_links_in_its_mount() {
    let s = Server::start(server_bin!(), &[]).await;
    let root = s.dir.path();
    let out = root.join("mounts/out");
    let inside = root.join("mounts/in");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::write(inside.join("secret.txt"), "outside the job's rw mount").unwrap();
    let manifest = format!(
        "[[dirs]]\nhost = \"{}\"\nguest = \"/out\"\nmode = \"rw\"\n",
        toml_path(&out)
    );
    install(&s, "probe", "probe", Some(&manifest)).await;

    // Absolute, climbing, sideways into another mount, chained, and harmless-looking: every
    // link is refused, and nothing is created on the host.
    for (link, target) in [
        ("/out/abs", "/etc/passwd"),
        ("/out/up", "../../.."),
        ("/out/t", "../in"),
        ("/out/t2", "t/secret.txt"),
        ("/out/same", "a.txt"),
    ] {
        let job = run(
            &s,
            "probe",
            json!({"op": "symlink", "path": link, "data": target}),
        )
        .await;
        assert_eq!(job["status"], "ERROR", "{link} -> {target}: {job}");
        assert_eq!(error_code(&job), "DENIED", "{link} -> {target}: {job}");
        let logs = s
            .queue(json!({"action": "get_logs", "job_id": job["job_id"]}))
            .await;
        assert!(
            logs.to_string()
                .contains("refused to create the symbolic link"),
            "{logs}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert!(left.is_empty(), "links were created: {left:?}");

    // Files are still written as before.
    let w = run(
        &s,
        "probe",
        json!({"op": "write", "path": "/out/a.txt", "data": "ok"}),
    )
    .await;
    assert_eq!(w["status"], "COMPLETED", "{w}");
    assert_eq!(std::fs::read_to_string(out.join("a.txt")).unwrap(), "ok");
}
