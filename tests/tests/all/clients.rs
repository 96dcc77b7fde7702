//! Hostile clients: slow-header (slowloris) and idle connections are cut by the header
//! timeout, a connection flood cannot lock others out for long, a burst past the in-flight cap
//! gets quick 503s with JSON, and the API key never shows up in the logs.

use queuemgr_tests::{Server, server_bin};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(s: &Server) -> String {
    s.url.trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn slow_and_idle_connections_cannot_lock_others_out() {
    let s = Server::start(
        server_bin!(),
        &["--max-connections", "16", "--header-timeout-ms", "500"],
    )
    .await;
    // Fill every connection slot: half send a request head one byte at a time, half send nothing.
    let mut hogs = Vec::new();
    for i in 0..16 {
        let mut c = TcpStream::connect(addr(&s)).await.unwrap();
        hogs.push(tokio::spawn(async move {
            if i % 2 == 0 {
                for b in b"POST /api/v1/execute HTTP/1.1\r\nHost: x\r\nX-Slow: "
                    .iter()
                    .cycle()
                    .take(200)
                {
                    if c.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            // The server closes the connection: read returns 0 or an error.
            let mut buf = [0u8; 256];
            let t = Instant::now();
            let closed = matches!(
                tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await,
                Ok(Ok(0)) | Ok(Err(_))
            ) || matches!(
                tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await,
                Ok(Ok(0)) | Ok(Err(_))
            );
            (closed, t.elapsed())
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A normal client still gets its answer once the hogs are cut off.
    let v = tokio::time::timeout(
        Duration::from_secs(10),
        s.queue(json!({"action": "health"})),
    )
    .await
    .expect("served");
    assert_eq!(v["status"], "healthy");
    for h in hogs {
        let (closed, _) = h.await.unwrap();
        assert!(closed, "a slow or idle connection was never closed");
    }
}

#[tokio::test]
async fn a_burst_past_the_in_flight_cap_gets_quick_503s() {
    let s = Server::start(server_bin!(), &["--max-in-flight", "1"]).await;
    let batch: Vec<_> = (0..1000).map(|i| json!({"jsonrpc": "2.0", "method": "queue", "params": {"action": "list_jobs"}, "id": i})).collect();
    let body = serde_json::to_string(&batch).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (url, body) = (s.url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(format!("{url}/api/jsonrpc/batch"))
                .body(body)
                .header("content-type", "application/json")
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (200, v) => {
                assert_eq!(v.as_array().unwrap().len(), 1000);
                ok += 1;
            }
            (503, v) => {
                assert_eq!(
                    v,
                    json!({"detail": "Server busy: too many requests in flight"})
                );
                busy += 1;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok {ok}, busy {busy}");
    assert_eq!(
        s.queue(json!({"action": "health"})).await["status"],
        "healthy"
    );
}

#[tokio::test]
async fn the_api_key_never_appears_in_the_logs() {
    let token = "tok-5f0c1d9e-never-log-me";
    let mut s = Server::start(server_bin!(), &["--api-key", token]).await;
    let body = json!({"command": "queue", "params": {"action": "health"}}).to_string();
    assert_eq!(
        s.post_raw("/api/v1/execute", body.clone(), &[("x-api-key", token)])
            .await
            .0,
        200
    );
    assert_eq!(
        s.post_raw(
            "/api/v1/execute",
            body.clone(),
            &[("authorization", &format!("Bearer {token}"))]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        s.post_raw(
            "/api/v1/execute",
            body.clone(),
            &[("x-api-key", "tok-5f0c1d9e-wrong")]
        )
        .await
        .0,
        401
    );
    assert!(s.terminate());
    let log = s.log();
    assert!(log.contains("queuemgr listening"), "{log}");
    assert!(
        !log.contains(token) && !log.contains("tok-5f0c1d9e"),
        "the token leaked into the log"
    );
}

/// A store URL's password reaches neither `/health` (which needs no API key), nor the queue's
/// health answer, nor the log; a start-up error for a bad URL shows its scheme only.
#[tokio::test]
async fn a_store_password_never_appears_in_health_logs_or_errors() {
    let secret = "pw-7d3e91-never-show-me";
    let base = queuemgr_tests::postgres_url().await;
    // Trust auth ignores the password; the URL carries it the way the old redaction missed.
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}password={secret}");
    let schema = format!("qmt{}_redact", std::process::id());
    let mut s = Server::start(server_bin!(), &["--store", &url, "--store-schema", &schema]).await;
    let (status, health) = s.get("/health", &[]).await;
    assert_eq!(status, 200);
    let queue_health = s.queue(json!({"action": "health"})).await;
    assert!(s.terminate());
    let log = s.log();
    for (what, text) in [
        ("/health", health.to_string()),
        ("queue health", queue_health.to_string()),
        ("the log", log),
    ] {
        assert!(
            !text.contains(secret),
            "the password leaked into {what}: {text}"
        );
    }
    assert_eq!(
        health["components"]["queue"]["registry_path"],
        format!("postgres://127.0.0.1:5432/test (schema {schema})"),
        "the store's location is still shown: {health}"
    );
    queuemgr_tests::drop_schemas(&base, &schema, std::slice::from_ref(&schema)).await;

    let bad = format!("mysql://app:{secret}@127.0.0.1/db");
    let err = Server::try_start(server_bin!(), None, &["--store", &bad])
        .await
        .err()
        .expect("a mysql:// store is refused");
    assert!(err.contains("scheme 'mysql'"), "{err}");
    assert!(
        !err.contains(secret),
        "the password leaked into the error: {err}"
    );
}
