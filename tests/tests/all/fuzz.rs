//! Property-based fuzzing (proptest) of what outside input reaches: request framing and params
//! validation through the real router, and registry replay of arbitrary files. Bounded for CI
//! (`QUEUEMGR_FUZZ_CASES`, default 256 per target); the corpus of real requests
//! (`corpus/requests.txt`, every request of the reference transcripts) runs first, and
//! proptest keeps any failing case under `proptest-regressions/` to replay forever after.

use proptest::prelude::*;
use queuemgr::api::validate;
use queuemgr::job::{Event, JobRecord, Status};
use queuemgr::store::local::journal::Journal;
use queuemgr::store::local::jsonl::JsonlJournal;
use queuemgr_tests::InProcess;
use queuemgr_tests::conformance::record;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::OnceLock;

fn cases() -> u32 {
    std::env::var("QUEUEMGR_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z_]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("queue"),
            Just("add_job"),
            Just("start_job"),
            Just("get_status"),
            Just("list_jobs"),
            Just("delete_job"),
            Just("stop_job"),
            Just("health"),
            Just("noop"),
            Just("my_job"),
            Just("2.0"),
            Just("queue_add_job"),
            Just("queue_list_jobs"),
            Just("help"),
            Just("PENDING"),
            Just("\u{0}\u{fffd}")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("jsonrpc"),
                        Just("method"),
                        Just("command"),
                        Just("params"),
                        Just("id"),
                        Just("action"),
                        Just("job_id"),
                        Just("job_type"),
                        Just("force"),
                        Just("status_filter"),
                        Just("cmdname"),
                        Just("limit"),
                        Just("x")
                    ]
                    .prop_map(str::to_string),
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A request-shaped value: usually an object with a command and params.
fn request() -> impl Strategy<Value = Value> {
    let command = prop_oneof![
        Just("queue"),
        Just("queue_add_job"),
        Just("queue_start_job"),
        Just("queue_stop_job"),
        Just("queue_delete_job"),
        Just("queue_get_job_status"),
        Just("queue_get_job_logs"),
        Just("queue_list_jobs"),
        Just("queue_health"),
        Just("help"),
        Just("nosuch")
    ];
    prop_oneof![
        (command, json_value(), any::<bool>()).prop_map(|(c, p, rpc)| if rpc {
            json!({"jsonrpc": "2.0", "method": c, "params": p, "id": 7})
        } else {
            json!({"command": c, "params": p})
        }),
        json_value(),
    ]
}

struct Host {
    rt: tokio::runtime::Runtime,
    host: InProcess,
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let host = rt.block_on(InProcess::start(&[
            "--max-concurrent-jobs",
            "4",
            "--job-timeout-secs",
            "2",
        ]));
        Host { rt, host }
    })
}

/// What every answer must look like, whatever the input.
fn check_answer(input: &str, status: u16, body: &Value) {
    assert!(
        matches!(status, 200 | 400 | 413 | 422),
        "status {status} for {input}: {body}"
    );
    if status != 200 {
        assert!(body["detail"].is_string(), "{input}: {body}");
        return;
    }
    let envelopes: Vec<&Value> = match body {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    for env in envelopes {
        assert_eq!(env["jsonrpc"], "2.0", "{input}: {env}");
        let has_result = env.get("result").is_some();
        let has_error = env.get("error").is_some();
        assert!(has_result ^ has_error, "{input}: {env}");
        if has_error {
            let code = env["error"]["code"].as_i64().unwrap();
            assert!((-32602..=-32600).contains(&code), "{input}: {env}");
            assert!(!env["error"]["message"].as_str().unwrap().is_empty());
        } else {
            let ok = env["result"]["success"].as_bool().unwrap();
            if !ok {
                assert_eq!(env["result"]["error"]["code"], -32000, "{input}: {env}");
            }
        }
    }
}

fn send(path: &str, body: &str) -> (u16, Value) {
    let h = host();
    h.rt.block_on(h.host.request("POST", path, body, &[]))
}

#[test]
fn the_corpus_of_real_requests_gets_well_formed_answers() {
    let corpus = include_str!("../../corpus/requests.txt");
    for line in corpus.lines() {
        let path = if line.starts_with('[') {
            "/api/jsonrpc/batch"
        } else {
            "/api/v1/execute"
        };
        let (status, body) = send(path, line);
        check_answer(line, status, &body);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
            concat!(env!("CARGO_MANIFEST_DIR"), "/proptest-regressions/fuzz.txt"),
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_request_gets_a_well_formed_answer(req in request()) {
        let text = req.to_string();
        let (status, body) = send("/api/v1/execute", &text);
        check_answer(&text, status, &body);
    }

    #[test]
    fn any_batch_gets_a_well_formed_answer(reqs in prop::collection::vec(request(), 0..8)) {
        let text = Value::Array(reqs).to_string();
        let (status, body) = send("/api/jsonrpc/batch", &text);
        check_answer(&text, status, &body);
    }

    #[test]
    fn any_bytes_get_a_well_formed_answer(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let (status, body) = send("/api/v1/execute", &text);
        check_answer(&text, status, &body);
    }

    #[test]
    fn validation_never_panics_and_names_the_problem(params in json_value()) {
        for spec in queuemgr::api::commands::specs() {
            if let Err(e) = validate::validate(spec.name, &spec.schema, &params) {
                prop_assert_eq!(e.code, -32602);
                prop_assert!(!e.message.is_empty());
            }
        }
    }

    #[test]
    fn replay_of_any_file_keeps_exactly_its_valid_records(
        lines in prop::collection::vec(
            prop_oneof![
                (0u8..6, 0i64..50).prop_map(|(job, t)| {
                    let statuses = [Status::Pending, Status::Running, Status::Completed];
                    serde_json::to_string(&record(&format!("r{job}"), Event::Progress, statuses[(t % 3) as usize], t)).unwrap()
                }),
                prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| String::from_utf8_lossy(&b).replace('\n', " ")),
                (0u8..6, 1usize..60).prop_map(|(job, cut)| {
                    let s = serde_json::to_string(&record(&format!("r{job}"), Event::Created, Status::Pending, 1)).unwrap();
                    s[..cut.min(s.len() - 1)].to_string()
                }),
            ],
            0..20,
        ),
        trailing_newline in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reg.jsonl");
        let mut text = lines.join("\n");
        if trailing_newline && !text.is_empty() {
            text.push('\n');
        }
        std::fs::write(&path, &text).unwrap();
        // The model: valid records fold, last wins, in first-seen order.
        let mut order: Vec<String> = Vec::new();
        let mut last: HashMap<String, JobRecord> = HashMap::new();
        for l in &lines {
            if let Ok(r) = serde_json::from_str::<JobRecord>(l) {
                if !last.contains_key(&r.job_id) {
                    order.push(r.job_id.clone());
                }
                last.insert(r.job_id.clone(), r);
            }
        }
        let replay = JsonlJournal::open(&path).unwrap().replay().unwrap();
        let want: Vec<&JobRecord> = order.iter().map(|id| &last[id]).collect();
        let got: Vec<&JobRecord> = replay.jobs.iter().map(|j| &**j).collect();
        prop_assert_eq!(got, want);
    }
}
