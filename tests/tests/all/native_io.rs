//! Jobs at native I/O speed: file I/O on the job's own thread where the filesystem is local,
//! and outbound HTTP on kept-alive connections that belong to one job type. Real components
//! (`probe`, `fetch_url`), a real server process, real files (a sparse 64 GiB one) and a real
//! local HTTP/1.1 server that counts its connections and requests.

use queuemgr_tests::{
    KeepAliveHttp, Server, broken, job_wasm, server_bin, type_info, wait_job_types as wait_types,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TERMINAL: [&str; 4] = ["COMPLETED", "ERROR", "STOPPED", "DELETED"];

async fn run(s: &Server, job_type: &str, params: Value) -> Value {
    let id = format!("{job_type}-{}", queuemgr::job::new_id());
    s.queue(
        json!({"action": "add_job", "job_id": id, "job_type": job_type,
                   "params": params, "start": true}),
    )
    .await;
    let ended = |job: &Value| TERMINAL.iter().any(|t| job["status"] == *t);
    let job = s.wait_job(&id, ended, Duration::from_secs(60)).await;
    assert!(ended(&job), "{id} did not end: {job}");
    job
}

/// Installs `job_type` (a copy of the example `stem`) with `manifest`; returns its
/// `list_job_types` entry, or the broken entry's error.
async fn install(s: &Server, job_type: &str, stem: &str, manifest: &str) -> Result<Value, String> {
    let dir = s.jobs_dir();
    std::fs::write(dir.join(format!("{job_type}.toml")), manifest).unwrap();
    std::fs::copy(job_wasm(stem), dir.join(format!("{job_type}.wasm"))).unwrap();
    let v = wait_types(s, job_type, |v| {
        type_info(v, job_type).is_some() || broken(v, job_type).is_some()
    })
    .await;
    match broken(&v, job_type) {
        Some(b) => Err(b["error"].as_str().unwrap_or_default().to_string()),
        None => Ok(type_info(&v, job_type).unwrap().clone()),
    }
}

fn dir_manifest(host: &std::path::Path, extra: &str) -> String {
    format!(
        "[limits]\nmemory_mib = 256\n\n[[dirs]]\nhost = \"{}\"\nguest = \"/data\"\nmode = \"rw\"\n{extra}",
        host.display()
    )
}

#[tokio::test]
async fn files_are_read_and_written_inline_and_a_stop_ends_a_huge_read() {
    let s = Server::start(server_bin!(), &[]).await;
    let data = s.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let content: Vec<u8> = (0..(5 << 20) + 123).map(|i| (i % 251) as u8).collect();
    std::fs::write(data.join("five.bin"), &content).unwrap();
    // A sparse 64 GiB file: reading its holes goes on for minutes.
    std::fs::File::create(data.join("huge.bin"))
        .and_then(|f| f.set_len(64 << 30))
        .unwrap();

    // A local disk (these machines' ext4): inline by default; `io = "pool"` keeps the hand-off.
    let inline = install(&s, "files", "probe", &dir_manifest(&data, ""))
        .await
        .unwrap();
    assert_eq!(inline["grants"]["dirs"][0]["io"], "inline", "{inline}");
    let pool = install(
        &s,
        "files_pool",
        "probe",
        &dir_manifest(&data, "io = \"pool\"\n"),
    )
    .await
    .unwrap();
    assert_eq!(pool["grants"]["dirs"][0]["io"], "pool", "{pool}");
    let err = install(
        &s,
        "files_bad",
        "probe",
        &dir_manifest(&data, "io = \"fast\"\n"),
    )
    .await
    .unwrap_err();
    assert!(err.contains("io") && err.contains("fast"), "{err}");

    for t in ["files", "files_pool"] {
        let read = run(&s, t, json!({"op": "read_all", "path": "/data/five.bin"})).await;
        assert_eq!(read["status"], "COMPLETED", "{t}: {read}");
        assert_eq!(read["result"]["bytes"], content.len(), "{t}");
        let copy = run(&s, t, json!({"op": "read", "path": "/data/five.bin"})).await;
        assert_eq!(copy["result"]["bytes"], content.len(), "{t}");
        let out = format!("{t}.out");
        let fill = run(
            &s,
            t,
            json!({"op": "fill", "path": format!("/data/{out}"), "bytes": 3_000_000}),
        )
        .await;
        assert_eq!(fill["result"]["written"], 3_000_000, "{t}: {fill}");
        let written = std::fs::read(data.join(&out)).unwrap();
        assert_eq!(
            written.len(),
            3_000_000,
            "{t}: the host sees what the job wrote"
        );
        assert!(written.iter().all(|&b| b == b'x'), "{t}");
    }

    // A stop while the job reads 64 GiB, inline: it ends within the stop target (a
    // millisecond or so; the bound here only says it was not left to read on).
    s.queue(
        json!({"action": "add_job", "job_id": "huge", "job_type": "files",
                   "params": {"op": "read", "path": "/data/huge.bin"}, "start": true}),
    )
    .await;
    let running = s
        .wait_status("huge", "RUNNING", Duration::from_secs(20))
        .await;
    assert_eq!(running["status"], "RUNNING", "{running}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    s.queue(json!({"action": "stop_job", "job_id": "huge"}))
        .await;
    let job = s
        .wait_status("huge", "STOPPED", Duration::from_secs(10))
        .await;
    assert_eq!(job["status"], "STOPPED", "{job}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    eprintln!(
        "a stop in the middle of a 64 GiB inline read ended it in {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn connections_are_kept_per_job_type_and_every_request_is_still_counted() {
    let web = KeepAliveHttp::start().await;
    let s = Server::start(server_bin!(), &[]).await;
    let http = "[http]\nallow = [\"http://127.0.0.1:*\"]\n";
    let a = install(&s, "fetch_a", "fetch_url", http).await.unwrap();
    assert_eq!(a["grants"]["http"]["keep_alive"], true, "{a}");
    install(&s, "fetch_b", "fetch_url", http).await.unwrap();
    let fresh = format!("{http}keep_alive = false\n");
    let c = install(&s, "fetch_fresh", "fetch_url", &fresh)
        .await
        .unwrap();
    assert_eq!(c["grants"]["http"]["keep_alive"], false, "{c}");
    let capped = format!("{http}max_requests = 3\n");
    install(&s, "fetch_capped", "fetch_url", &capped)
        .await
        .unwrap();

    let fetch = |t: &'static str, repeat: u32| {
        let s = &s;
        let url = web.url("/x");
        async move { run(s, t, json!({"url": url, "repeat": repeat})).await }
    };
    // One type's runs, one after the other, share one kept-alive connection.
    for _ in 0..3 {
        let job = fetch("fetch_a", 5).await;
        assert_eq!(job["status"], "COMPLETED", "{job}");
        assert_eq!(job["result"]["requests"], 5, "{job}");
    }
    assert_eq!(web.counts(), (1, 15), "15 requests on one connection");

    // Another type with the same grant does not get that connection.
    let job = fetch("fetch_b", 4).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(web.counts(), (2, 19), "a connection of its own");

    // keep_alive = false: a new connection for every request, as wasi:http's own sender.
    let job = fetch("fetch_fresh", 4).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(web.counts(), (6, 23));

    // max_requests counts requests, not connections: the fourth is refused, never sent.
    let job = fetch("fetch_capped", 5).await;
    assert_eq!(job["status"], "ERROR", "{job}");
    assert_eq!(job["error"]["code"], "HTTP_DENIED", "{job}");
    assert_eq!(
        web.counts(),
        (7, 26),
        "three requests went out on one connection"
    );
    let logs = s
        .queue(json!({"action": "get_logs", "job_id": job["job_id"]}))
        .await;
    assert!(logs.to_string().contains("http.max_requests"), "{logs}");

    // The pooled connection is still good for the next run of its type.
    let job = fetch("fetch_a", 2).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(web.counts(), (7, 28));
}
