//! A registry on a full or read-only filesystem (a small tmpfs made by the test): the API
//! answers a clear error, acknowledges nothing it has not made durable, and recovers when
//! space returns. Needs root (to mount); set QUEUEMGR_SKIP_MOUNT_TESTS=1 where there is none.

use queuemgr_tests::{Server, server_bin};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        if std::env::var("QUEUEMGR_SKIP_MOUNT_TESTS").is_ok_and(|v| v == "1") {
            eprintln!("QUEUEMGR_SKIP_MOUNT_TESTS=1: skipping a test that mounts a tmpfs");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "mounting a tmpfs needs root (or set QUEUEMGR_SKIP_MOUNT_TESTS=1)"
        );
        Some(Tmpfs(dir.to_path_buf()))
    }

    fn remount(&self, opts: &str) -> bool {
        Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn add(s: &Server, id: &str) -> Value {
    s.execute(
        json!({"command": "queue", "params": {"action": "add_job", "job_id": id, "job_type": "noop",
        "params": {"sleep_ms": 1}}}),
    )
    .await
}

async fn exists(s: &Server, id: &str) -> bool {
    s.execute(json!({"command": "queue", "params": {"action": "get_status", "job_id": id}}))
        .await["result"]["success"]
        == true
}

#[tokio::test]
async fn a_full_disk_gets_a_clear_error_and_recovery_when_space_returns() {
    let base = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&base.path().join("mnt"), "256k") else {
        return;
    };
    let registry = fs.0.join("registry.jsonl");
    // One slot: a refused start must give its slot back, or nothing would run afterwards.
    let mut s = Server::try_start(
        server_bin!(),
        Some(registry.clone()),
        &["--max-concurrent-jobs", "1"],
    )
    .await
    .unwrap();
    // Leave almost no room.
    let filler = fs.0.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 240 * 1024]);
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..500 {
        let id = format!("j{i}");
        let v = add(&s, &id).await;
        if v["result"]["success"] == true {
            acked.push(id);
        } else {
            refused = Some((id, v));
            break;
        }
    }
    let (refused_id, v) = refused.expect("the disk filled up");
    let err = &v["result"]["error"];
    assert_eq!(err["message"], "Registry unavailable", "{v}");
    assert_eq!(err["data"]["domain_code"], "REGISTRY_UNAVAILABLE");
    assert_eq!(err["data"]["retryable"], true);
    assert!(
        err["data"]["detail"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{v}"
    );
    assert!(
        !exists(&s, &refused_id).await,
        "a refused add must change nothing"
    );
    let (_, health) = s.get("/health", &[]).await;
    assert_eq!(health["status"], "degraded");
    // A start that cannot be recorded is refused and the job stays PENDING: whatever its run
    // did is never stored nor shown.
    if let Some(first) = acked.first() {
        let v = s
            .execute(
                json!({"command": "queue", "params": {"action": "start_job", "job_id": first}}),
            )
            .await;
        assert_eq!(
            v["result"]["error"]["data"]["domain_code"], "REGISTRY_UNAVAILABLE",
            "{v}"
        );
        let st = s
            .queue(json!({"action": "get_status", "job_id": first}))
            .await;
        assert_eq!(st["status"]["status"], "PENDING");
    }
    // Space returns: everything works again.
    std::fs::remove_file(&filler).unwrap();
    let v = add(&s, &refused_id).await;
    assert_eq!(v["result"]["success"], true, "{v}");
    s.queue(json!({"action": "start_job", "job_id": refused_id}))
        .await;
    assert_eq!(
        s.wait_status(&refused_id, "COMPLETED", Duration::from_secs(5))
            .await["status"],
        "COMPLETED"
    );
    assert_eq!(s.get("/health", &[]).await.1["status"], "ok");
    // The job whose start was refused can be started again, and its one stored run is this one.
    if let Some(first) = acked.first() {
        s.queue(json!({"action": "start_job", "job_id": first}))
            .await;
        let st = s
            .wait_status(first, "COMPLETED", Duration::from_secs(5))
            .await;
        assert_eq!(st["status"], "COMPLETED", "{st}");
        let first_lines: Vec<Value> = std::fs::read_to_string(&registry)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["job_id"] == *first)
            .collect();
        let events: Vec<&str> = first_lines
            .iter()
            .filter_map(|v| v["event"].as_str())
            .collect();
        assert_eq!(
            events,
            ["created", "started", "completed"],
            "{first_lines:?}"
        );
    }
    // After a crash, every acknowledged job is there, and the file is whole lines.
    s.restart().await;
    for id in acked.iter().chain([&refused_id]) {
        assert!(exists(&s, id).await, "{id} lost");
    }
    for line in std::fs::read_to_string(&registry).unwrap().lines() {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "torn line: {line}"
        );
    }
    s.kill9();
}

#[tokio::test]
async fn a_read_only_registry_is_a_clear_start_up_error() {
    let base = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&base.path().join("mnt"), "1m") else {
        return;
    };
    let registry = fs.0.join("registry.jsonl");
    std::fs::write(&registry, "").unwrap();
    assert!(fs.remount("ro"), "remount read-only");
    let log = match Server::try_start(server_bin!(), Some(registry), &[]).await {
        Ok(_) => panic!("the host must not serve on a registry it cannot write"),
        Err(log) => log,
    };
    assert!(
        log.contains("Read-only file system"),
        "the reason is named: {log}"
    );
    assert!(fs.remount("rw"));
}
