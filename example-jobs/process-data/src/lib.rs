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
//! CSV: the first line is the header; fields are separated by commas, trimmed, and lose one
//! pair of surrounding double quotes (quoted commas are not supported). Empty lines are
//! skipped; a missing field counts as empty, an extra one is ignored. A column is numeric when
//! it has at least one non-empty value and every non-empty value parses as a finite number.

use queuemgr_guest::{Job, JobError, info, progress, should_stop};
use serde_json::{Map, Value, json};
use std::fs::File;
use std::io::{BufRead, BufReader};
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

/// One column's running statistics.
struct Column {
    name: String,
    numeric: bool,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Column {
    fn new(name: String) -> Column {
        Column {
            name,
            numeric: true,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    fn add(&mut self, field: &str) {
        if !self.numeric || field.is_empty() {
            return;
        }
        match field.parse::<f64>() {
            Ok(x) if x.is_finite() => {
                self.count += 1;
                self.sum += x;
                self.min = self.min.min(x);
                self.max = self.max.max(x);
            }
            _ => self.numeric = false,
        }
    }

    fn summary(&self) -> Option<Value> {
        (self.numeric && self.count > 0).then(|| {
            json!({
                "count": self.count,
                "sum": self.sum,
                "min": self.min,
                "max": self.max,
                "mean": self.sum / self.count as f64,
            })
        })
    }
}

/// Splits one CSV line: trimmed fields, one pair of surrounding quotes removed.
fn fields(line: &str) -> impl Iterator<Item = &str> {
    line.split(',').map(|f| {
        let f = f.trim();
        f.strip_prefix('"')
            .and_then(|f| f.strip_suffix('"'))
            .unwrap_or(f)
    })
}

/// The next line without its line ending (`None` at the end of the file), and its size in
/// bytes as read.
fn next_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<(String, usize)>> {
    buf.clear();
    let n = reader.read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(buf);
    let text = text.trim_end_matches(['\n', '\r']).to_string();
    Ok(Some((text, n)))
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
        let file = File::open(&p.input).map_err(|e| io_error("opening", &p.input, e))?;
        let size = file
            .metadata()
            .map_err(|e| io_error("reading the size of", &p.input, e))?
            .len();
        let mut reader = BufReader::with_capacity(64 * 1024, file);
        let mut buf = Vec::new();
        let read = |reader: &mut BufReader<File>, buf: &mut Vec<u8>| {
            next_line(reader, buf).map_err(|e| io_error("reading", &p.input, e))
        };

        let mut bytes = 0u64;
        let mut columns: Vec<Column> = Vec::new();
        while let Some((line, n)) = read(&mut reader, &mut buf)? {
            bytes += n as u64;
            if !line.trim().is_empty() {
                columns = fields(&line).map(|f| Column::new(f.to_string())).collect();
                break;
            }
        }
        info!(
            "{}: {} columns, {size} bytes, {chunk_rows} rows a chunk",
            p.input,
            columns.len()
        );

        let mut rows = 0u64;
        let mut at_end = false;
        let mut reported_at = None;
        while !at_end {
            let mut in_chunk = 0;
            while in_chunk < chunk_rows {
                let Some((line, n)) = read(&mut reader, &mut buf)? else {
                    at_end = true;
                    break;
                };
                bytes += n as u64;
                if line.trim().is_empty() {
                    continue;
                }
                let mut values = fields(&line);
                for column in &mut columns {
                    column.add(values.next().unwrap_or(""));
                }
                rows += 1;
                in_chunk += 1;
            }
            if reported_at == Some(bytes) {
                // The end, right after a full chunk: already reported.
                break;
            }
            reported_at = Some(bytes);
            // An empty file is all read.
            let percent = (bytes.min(size) * 100).checked_div(size).unwrap_or(100) as u8;
            progress(percent, format!("rows {rows}"));
            if should_stop() {
                info!("stop requested after {rows} rows");
                return Err(JobError::new(
                    "STOPPED",
                    format!("stop requested after {rows} rows"),
                ));
            }
        }

        let mut summaries = Map::new();
        for column in &columns {
            if let Some(s) = column.summary() {
                summaries.insert(column.name.clone(), s);
            }
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
        info!("{rows} rows summarised into {}", p.output);
        Ok(result)
    }
}

queuemgr_guest::export_job!(ProcessData);
