//! The seed's "Process Data", made real: reads a CSV file from a granted directory in chunks
//! of `chunk_rows` rows, reporting progress (by bytes read) and checking for a stop after each
//! chunk; sums up every numeric column (count, sum, min, max, mean); writes that summary as
//! JSON to `output` and returns it.
//!
//! The files are reached through WASI preopens: the job type's manifest must mount the input's
//! directory (read-only is enough) and the output's directory read-write, e.g.
//!
//! ```toml
//! [[dirs]]
//! host = "data/in"
//! guest = "/data/in"
//!
//! [[dirs]]
//! host = "data/out"
//! guest = "/data/out"
//! mode = "rw"
//! ```
//!
//! The CSV rules and the summary are `csv-summary`'s (the same code runs natively in the
//! benchmark): the first line is the header; fields are separated by commas, trimmed, and lose
//! one pair of surrounding double quotes (quoted commas are not supported). Empty lines are
//! skipped; a missing field counts as empty, an extra one is ignored. A column is numeric when
//! it has at least one non-empty value and every non-empty value parses as a finite number.
//!
//! The input is read through the SDK's [`queuemgr_guest::fs::reader`] (64 KiB a call, the most
//! the host moves at once), so a 1 GiB file is read at close to native speed.

use csv_summary::{Ended, Flow};
use queuemgr_guest::{Job, JobError, fs, info, progress, should_stop};
use serde_json::{Map, Value, json};
use std::path::Path;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    input: String,
    output: String,
    #[serde(default = "default_chunk_rows")]
    chunk_rows: u64,
}

fn default_chunk_rows() -> u64 {
    1000
}

/// `IO_ERROR`, naming what was done to which path and the OS's error text.
fn io_error(what: &str, path: &str, e: std::io::Error) -> JobError {
    JobError::new("IO_ERROR", format!("{what} {path}: {e}"))
}

struct ProcessData;

impl Job for ProcessData {
    const NAME: &'static str = "process-data";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str = "Summarises a CSV file (row count; count, sum, min, max and mean of each numeric column) into a JSON file, in chunks of `chunk_rows` rows with progress.";
    const PARAMS_SCHEMA: &'static str = r#"{
        "type": "object",
        "properties": {
            "input": {"type": "string", "minLength": 1, "description": "CSV file to read, in a directory the job type mounts, e.g. /data/in/sales.csv"},
            "output": {"type": "string", "minLength": 1, "description": "JSON file to write, in a directory mounted read-write, e.g. /data/out/summary.json"},
            "chunk_rows": {"type": "integer", "minimum": 1, "maximum": 10000000, "default": 1000, "description": "Rows per chunk: progress and the stop check come after each chunk"}
        },
        "required": ["input", "output"],
        "additionalProperties": false
    }"#;
    type Params = Params;
    type Output = Value;

    fn run(p: Params) -> Result<Value, JobError> {
        let chunk_rows = p.chunk_rows.max(1);
        let mut reader = fs::reader(&p.input).map_err(|e| io_error("opening", &p.input, e))?;
        let size = reader
            .get_ref()
            .metadata()
            .map_err(|e| io_error("reading the size of", &p.input, e))?
            .len();
        info!("{}: {size} bytes, {chunk_rows} rows a chunk", p.input);
        let ended = csv_summary::summarize(&mut reader, chunk_rows, |at| {
            // An empty file is all read.
            let percent = (at.bytes.min(size) * 100).checked_div(size).unwrap_or(100) as u8;
            progress(percent, format!("rows {}", at.rows));
            if should_stop() {
                Flow::Stop
            } else {
                Flow::Continue
            }
        })
        .map_err(|e| io_error("reading", &p.input, e))?;
        let summary = match ended {
            Ended::Done(s) => s,
            Ended::Stopped(at) => {
                info!("stop requested after {} rows", at.rows);
                return Err(JobError::new(
                    "STOPPED",
                    format!("stop requested after {} rows", at.rows),
                ));
            }
        };
        let (rows, bytes) = (summary.rows, summary.bytes);

        let mut summaries = Map::new();
        for c in summary.columns.iter().filter(|c| c.has_summary()) {
            summaries.insert(
                c.name.clone(),
                json!({"count": c.count, "sum": c.sum, "min": c.min, "max": c.max, "mean": c.mean()}),
            );
        }
        let result = json!({
            "input": p.input,
            "output": p.output,
            "rows": rows,
            "columns": summaries,
            "bytes": bytes,
        });

        if let Some(dir) = Path::new(&p.output).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| io_error("creating the directory", &dir.display().to_string(), e))?;
        }
        let mut text = serde_json::to_string_pretty(&result)
            .map_err(|e| JobError::new("INVALID_RESULT", e.to_string()))?;
        text.push('\n');
        std::fs::write(&p.output, text).map_err(|e| io_error("writing", &p.output, e))?;
        info!(
            "{rows} rows, {} columns summarised into {}",
            summary.columns.len(),
            p.output
        );
        Ok(result)
    }
}

queuemgr_guest::export_job!(ProcessData);
