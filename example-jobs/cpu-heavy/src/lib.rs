//! A CPU-heavy job with a real workload: SHA-256 over N MiB, or a prime sieve. The workload
//! lives in `cpu-core` so that the benchmark runs the same code natively.

use queuemgr_guest::{Job, JobError, progress, should_stop};

#[derive(serde::Deserialize)]
#[serde(tag = "workload", rename_all = "snake_case")]
enum Params {
    Sha256 { mib: u32 },
    Primes { below: u32 },
}

struct CpuHeavy;

impl Job for CpuHeavy {
    const NAME: &'static str = "cpu-heavy";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str =
        "SHA-256 over `mib` MiB of data, or counts the primes below `below`.";
    const PARAMS_SCHEMA: &'static str = r#"{
        "type": "object",
        "properties": {
            "workload": {"type": "string", "enum": ["sha256", "primes"]},
            "mib": {"type": "integer", "minimum": 1, "maximum": 65536},
            "below": {"type": "integer", "minimum": 0, "maximum": 1000000000}
        },
        "required": ["workload"],
        "additionalProperties": false
    }"#;
    type Params = Params;
    type Output = serde_json::Value;

    fn run(p: Params) -> Result<Self::Output, JobError> {
        match p {
            Params::Sha256 { mib } => {
                let digest = cpu_core::sha256_mib(mib, |done| {
                    progress(
                        (u64::from(done) * 100 / u64::from(mib)) as u8,
                        format!("{done}/{mib} MiB"),
                    );
                    !should_stop()
                })
                .ok_or_else(|| JobError::new("STOPPED", "stop requested"))?;
                Ok(
                    serde_json::json!({"workload": "sha256", "mib": mib, "sha256": cpu_core::hex(&digest)}),
                )
            }
            Params::Primes { below } => {
                let count = cpu_core::count_primes(below);
                progress(100, "sieve done");
                Ok(serde_json::json!({"workload": "primes", "below": below, "count": count}))
            }
        }
    }
}

queuemgr_guest::export_job!(CpuHeavy);
