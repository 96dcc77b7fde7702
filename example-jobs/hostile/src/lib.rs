//! Hostile guests, one per `mode`: what a buggy or malicious job does. The host must stop,
//! cap or survive each of them and report a truthful outcome.
//!
//! | mode | what it does |
//! |---|---|
//! | `spin` | a tight infinite loop that never calls the host |
//! | `host_calls` | calls the host (`should-stop`) as fast as it can, ignoring the answer |
//! | `alloc` | allocates and touches 1 MiB blocks without bound |
//! | `table_grow` | creates host resources (WASI pollables) without bound, never dropping them |
//! | `recurse` | recurses without bound |
//! | `trap` | executes `unreachable` |
//! | `panic` | panics (message on stderr, then a trap) |
//! | `sleep_forever` | sleeps in the host forever, ignoring stop requests |
//! | `std_sleep` | `std::thread::sleep(ms)` through WASI, then returns |
//! | `big_result` | returns a result of `mib` MiB |
//! | `stdout_flood` | prints `count` lines to stdout (forever when 0) |
//! | `progress_flood` | reports progress `count` times (forever when 0) |
//! | `log_flood` | writes `count` log lines (forever when 0) |
//! | `bad_output` | prints invalid UTF-8 and control characters, then returns |

use queuemgr_guest::{Job, JobError, LogLevel, log, progress, should_stop, sleep};
use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

#[derive(serde::Deserialize)]
struct Params {
    mode: String,
    #[serde(default)]
    count: u64,
    #[serde(default)]
    ms: u64,
    #[serde(default = "one")]
    mib: u64,
}

fn one() -> u64 {
    1
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    if n % 1_000_000_007 == 1_000_000_006 {
        return n;
    }
    recurse(n + 1).wrapping_mul(3).wrapping_add(n ^ 0x5a)
}

fn forever_or(count: u64) -> impl Iterator<Item = u64> {
    (0..).take_while(move |i| count == 0 || *i < count)
}

struct Hostile;

impl Job for Hostile {
    const NAME: &'static str = "hostile";
    const DESCRIPTION: &'static str =
        "Misbehaves on purpose, as `mode` says: the host must survive it.";
    const PARAMS_SCHEMA: &'static str = r#"{
        "type": "object",
        "properties": {
            "mode": {"type": "string", "enum": ["spin", "host_calls", "alloc", "table_grow", "recurse", "trap", "panic",
                "sleep_forever", "std_sleep", "big_result", "stdout_flood", "progress_flood", "log_flood", "bad_output"]},
            "count": {"type": "integer", "minimum": 0},
            "ms": {"type": "integer", "minimum": 0},
            "mib": {"type": "integer", "minimum": 0, "maximum": 4096}
        },
        "required": ["mode"],
        "additionalProperties": false
    }"#;
    type Params = Params;
    type Output = serde_json::Value;

    fn run(p: Params) -> Result<Self::Output, JobError> {
        match p.mode.as_str() {
            "spin" => {
                let mut x = 0u64;
                loop {
                    x = black_box(x.wrapping_add(1));
                }
            }
            "host_calls" => loop {
                black_box(should_stop());
            },
            "alloc" => {
                let mut blocks: Vec<Vec<u8>> = Vec::new();
                loop {
                    blocks.push(vec![0xa5; 1 << 20]);
                    black_box(&blocks);
                }
            }
            "table_grow" => loop {
                let p = wasi::clocks::monotonic_clock::subscribe_duration(1_000_000_000);
                std::mem::forget(p);
            },
            "recurse" => Ok(serde_json::json!(recurse(black_box(0)))),
            "trap" => core::arch::wasm32::unreachable(),
            "panic" => panic!("hostile job panicked on purpose"),
            "sleep_forever" => loop {
                sleep(Duration::from_secs(3600));
            },
            "std_sleep" => {
                std::thread::sleep(Duration::from_millis(p.ms));
                Ok(serde_json::json!({"slept_ms": p.ms}))
            }
            "big_result" => Ok(serde_json::Value::String(
                "x".repeat((p.mib as usize) << 20),
            )),
            "stdout_flood" => {
                for i in forever_or(p.count) {
                    println!("flood line {i}");
                }
                Ok(serde_json::json!({"lines": p.count}))
            }
            "progress_flood" => {
                for i in forever_or(p.count) {
                    progress((i % 101) as u8, "flood");
                }
                Ok(serde_json::json!({"reports": p.count}))
            }
            "log_flood" => {
                for i in forever_or(p.count) {
                    log(LogLevel::Info, format!("log flood {i}"));
                }
                Ok(serde_json::json!({"lines": p.count}))
            }
            "bad_output" => {
                let mut out = std::io::stdout();
                let _ = out.write_all(b"bad \xff\xfe bytes \x1b[31mred\x1b[0m nul\x00 bell\x07\n");
                let _ = out.flush();
                log(
                    LogLevel::Warn,
                    "control \u{1b}[2J chars \u{0} in a log line",
                );
                Ok(serde_json::json!({"written": true}))
            }
            other => Err(JobError::new(
                "INVALID_INPUT",
                format!("unknown mode {other}"),
            )),
        }
    }
}

queuemgr_guest::export_job!(Hostile);
