//! Probes what a job can reach, one operation per run (for the host's tests of capability
//! grants; not copied into a jobs directory by `scripts/build-jobs.sh`).
//!
//! | op | params | result |
//! |---|---|---|
//! | `read` | `path` | `{"content": <text of the first 64 KiB>, "bytes": <file size>}` |
//! | `write` | `path`, `data` | `{"written": <bytes>}` (creates or truncates) |
//! | `read_all` | `path` | `{"bytes": <file size>}` (`std::fs::read`, the whole file at once) |
//! | `fill` | `path`, `bytes` | `{"written": <bytes>}` (`std::fs::write` of that many bytes) |
//! | `symlink` | `path` (the link), `data` (its target) | `{"linked": true}` (`symlink-at` in the mount holding `path`) |
//! | `list` | `path` | `{"entries": [<names, sorted>]}` |
//! | `env` | `name` | `{"name": .., "value": <string or null>}` |
//! | `env_all` | | `{"names": [<every variable's name, sorted>]}` |
//! | `http` | `url` | `{"status": .., "body": <text>}` (GET with the SDK's client) |
//! | `flaky` | `path` (a counter file), `times` | the first `times` runs fail with a retryable `FLAKY` error, then `{"runs": <n>}` (the counter is in the file, so it holds across hosts that mount the same directory) |
//!
//! A failed file operation is a `JobError` with code `DENIED` (`PermissionDenied`),
//! `NOT_FOUND` (`NotFound`) or `IO_ERROR` (any other kind), and the message
//! `"<op> <path>: <OS error text> (kind <ErrorKind:?>)"`. A failed request has the SDK's
//! `HTTP_*` codes.

use queuemgr_guest::{Job, JobError, http};
use serde_json::{Value, json};
use std::io::{ErrorKind, Read};

const READ_MAX: usize = 64 * 1024;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    op: String,
    path: Option<String>,
    data: Option<String>,
    name: Option<String>,
    url: Option<String>,
    bytes: Option<u64>,
    times: Option<u32>,
}

fn io_error(op: &str, path: &str, e: std::io::Error) -> JobError {
    let code = match e.kind() {
        ErrorKind::PermissionDenied => "DENIED",
        ErrorKind::NotFound => "NOT_FOUND",
        _ => "IO_ERROR",
    };
    JobError::new(code, format!("{op} {path}: {e} (kind {:?})", e.kind()))
}

fn required<'a>(value: &'a Option<String>, op: &str, field: &str) -> Result<&'a str, JobError> {
    value
        .as_deref()
        .ok_or_else(|| JobError::new("INVALID_PARAMS", format!("op {op} needs `{field}`")))
}

fn read(path: &str) -> Result<Value, JobError> {
    let fail = |e| io_error("read", path, e);
    let mut file = std::fs::File::open(path).map_err(fail)?;
    let mut head = Vec::with_capacity(READ_MAX);
    (&mut file)
        .take(READ_MAX as u64)
        .read_to_end(&mut head)
        .map_err(fail)?;
    let rest = std::io::copy(&mut file, &mut std::io::sink()).map_err(fail)?;
    Ok(json!({
        "content": String::from_utf8_lossy(&head),
        "bytes": head.len() as u64 + rest,
    }))
}

fn write(path: &str, data: &str) -> Result<Value, JobError> {
    std::fs::write(path, data).map_err(|e| io_error("write", path, e))?;
    Ok(json!({ "written": data.len() }))
}

fn read_all(path: &str) -> Result<Value, JobError> {
    let data = std::fs::read(path).map_err(|e| io_error("read", path, e))?;
    Ok(json!({ "bytes": std::hint::black_box(data).len() }))
}

fn fill(path: &str, bytes: u64) -> Result<Value, JobError> {
    let data = vec![b'x'; bytes as usize];
    std::fs::write(path, &data).map_err(|e| io_error("write", path, e))?;
    Ok(json!({ "written": data.len() }))
}

/// Creates the symbolic link `link -> target` with WASI's `symlink-at`, relative to the
/// mounted directory that holds `link` (std has no stable symlink call for WASI).
fn symlink(link: &str, target: &str) -> Result<Value, JobError> {
    let fail = |e: wasi::filesystem::types::ErrorCode| {
        let kind = match e {
            wasi::filesystem::types::ErrorCode::NotPermitted
            | wasi::filesystem::types::ErrorCode::Access => ErrorKind::PermissionDenied,
            wasi::filesystem::types::ErrorCode::NoEntry => ErrorKind::NotFound,
            _ => ErrorKind::Other,
        };
        io_error("symlink", link, std::io::Error::new(kind, format!("{e:?}")))
    };
    for (dir, mount) in wasi::filesystem::preopens::get_directories() {
        let mount = mount.trim_end_matches('/');
        if let Some(rest) = link.strip_prefix(mount).and_then(|r| r.strip_prefix('/')) {
            dir.symlink_at(target, rest).map_err(fail)?;
            return Ok(json!({ "linked": true }));
        }
    }
    Err(io_error(
        "symlink",
        link,
        std::io::Error::new(ErrorKind::NotFound, "no mounted directory holds it"),
    ))
}

/// Counts this run in the file at `path`; the first `times` runs fail (retryable).
fn flaky(path: &str, times: u32) -> Result<Value, JobError> {
    let before: u32 = match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().unwrap_or(0),
        Err(e) if e.kind() == ErrorKind::NotFound => 0,
        Err(e) => return Err(io_error("flaky", path, e)),
    };
    let runs = before + 1;
    std::fs::write(path, runs.to_string()).map_err(|e| io_error("flaky", path, e))?;
    if runs <= times {
        queuemgr_guest::warn!("flaky: run {runs} of the first {times} fails");
        return Err(JobError::new("FLAKY", format!("run {runs} fails on purpose")).retryable());
    }
    queuemgr_guest::info!("flaky: run {runs} succeeds");
    Ok(json!({ "runs": runs }))
}

fn list(path: &str) -> Result<Value, JobError> {
    let fail = |e| io_error("list", path, e);
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(path).map_err(fail)? {
        entries.push(
            entry
                .map_err(fail)?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    entries.sort();
    Ok(json!({ "entries": entries }))
}

struct Probe;

impl Job for Probe {
    const NAME: &'static str = "probe";
    const DESCRIPTION: &'static str = "Tries one thing (read, write or list a path, read the environment, GET a URL) and reports what happened: for testing capability grants.";
    const PARAMS_SCHEMA: &'static str = r#"{
        "type": "object",
        "properties": {
            "op": {"type": "string", "enum": ["read", "write", "read_all", "fill", "symlink", "list", "env", "env_all", "http", "flaky"]},
            "path": {"type": "string", "description": "read, write, list: the path"},
            "data": {"type": "string", "description": "write: the text to write (default empty)"},
            "bytes": {"type": "integer", "minimum": 0, "maximum": 1073741824, "description": "fill: how many bytes to write"},
            "name": {"type": "string", "description": "env: the variable's name"},
            "url": {"type": "string", "description": "http: the URL to GET"},
            "times": {"type": "integer", "minimum": 0, "maximum": 1000, "description": "flaky: how many runs fail first"}
        },
        "required": ["op"],
        "additionalProperties": false
    }"#;
    type Params = Params;
    type Output = Value;

    fn run(p: Params) -> Result<Value, JobError> {
        let op = p.op.as_str();
        match op {
            "read" => read(required(&p.path, op, "path")?),
            "write" => write(
                required(&p.path, op, "path")?,
                p.data.as_deref().unwrap_or(""),
            ),
            "read_all" => read_all(required(&p.path, op, "path")?),
            "fill" => fill(required(&p.path, op, "path")?, p.bytes.unwrap_or(0)),
            "symlink" => symlink(
                required(&p.path, op, "path")?,
                required(&p.data, op, "data")?,
            ),
            "list" => list(required(&p.path, op, "path")?),
            "flaky" => flaky(required(&p.path, op, "path")?, p.times.unwrap_or(0)),
            "env" => {
                let name = required(&p.name, op, "name")?;
                let value = std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
                Ok(json!({ "name": name, "value": value }))
            }
            "env_all" => {
                let mut names: Vec<String> = std::env::vars_os()
                    .map(|(k, _)| k.to_string_lossy().into_owned())
                    .collect();
                names.sort();
                Ok(json!({ "names": names }))
            }
            "http" => {
                let response = http::get(required(&p.url, op, "url")?)?;
                Ok(json!({ "status": response.status, "body": response.text() }))
            }
            other => Err(JobError::new(
                "INVALID_PARAMS",
                format!("unknown op {other}"),
            )),
        }
    }
}

queuemgr_guest::export_job!(Probe);
