//! The CSV summary behind the `process_data` example job, in a crate of its own so that the
//! same code runs natively (the benchmark's baseline) and in the job.
//!
//! CSV: the first non-blank line is the header; fields are separated by commas, trimmed, and
//! lose one pair of surrounding double quotes (quoted commas are not supported). Blank lines
//! are skipped; a missing field counts as empty, an extra one is ignored. A column is numeric
//! when it has at least one non-empty value and every non-empty value parses as a finite
//! number.
//!
//! Lines are read as bytes into one reused buffer and fields are parsed in place: no
//! allocation per line or per field.

use std::io::{self, BufRead};

/// Where a summary stands after a chunk of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Rows summed so far (blank lines and the header are not rows).
    pub rows: u64,
    /// Bytes read so far, line endings included.
    pub bytes: u64,
}

/// What the caller answers after each chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read on.
    Continue,
    /// Stop here.
    Stop,
}

/// One column's statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Its name, from the header.
    pub name: String,
    /// Whether every non-empty value so far is a finite number.
    pub numeric: bool,
    /// Numeric values seen.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// Their minimum.
    pub min: f64,
    /// Their maximum.
    pub max: f64,
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

    fn add(&mut self, field: &[u8]) {
        if !self.numeric || field.is_empty() {
            return;
        }
        match std::str::from_utf8(field)
            .ok()
            .and_then(|f| f.parse::<f64>().ok())
        {
            Some(x) if x.is_finite() => {
                self.count += 1;
                self.sum += x;
                self.min = self.min.min(x);
                self.max = self.max.max(x);
            }
            _ => self.numeric = false,
        }
    }

    /// Whether it is a numeric column with at least one value.
    pub fn has_summary(&self) -> bool {
        self.numeric && self.count > 0
    }

    /// The mean of its values.
    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// A finished summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Rows summed.
    pub rows: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Every column of the header, in order.
    pub columns: Vec<Column>,
}

/// How a summary ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// The whole input was read.
    Done(Summary),
    /// The caller said stop after a chunk.
    Stopped(Progress),
}

/// One field: trimmed, one pair of surrounding quotes removed.
fn clean(field: &[u8]) -> &[u8] {
    let f = trim(field);
    match f {
        [b'"', inner @ .., b'"'] => inner,
        _ => f,
    }
}

/// Trims whitespace as `str::trim` does for ASCII; a field with other whitespace (rare) is
/// trimmed through `str::trim`.
fn trim(b: &[u8]) -> &[u8] {
    let t = b.trim_ascii();
    if t.is_ascii() {
        return t;
    }
    match std::str::from_utf8(t) {
        Ok(s) => s.trim().as_bytes(),
        Err(_) => t,
    }
}

/// Whether a line holds nothing but whitespace.
fn blank(line: &[u8]) -> bool {
    trim(line).is_empty()
}

/// The line without its ending.
fn content(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &line[..end]
}

/// Reads `input` to its end and summarises it; `after_chunk` is called after every
/// `chunk_rows` rows and once at the end (not twice when the end falls on a chunk), and may
/// stop it.
pub fn summarize(
    input: &mut impl BufRead,
    chunk_rows: u64,
    mut after_chunk: impl FnMut(Progress) -> Flow,
) -> io::Result<Ended> {
    let chunk_rows = chunk_rows.max(1);
    let mut buf = Vec::with_capacity(256);
    let mut bytes = 0u64;
    let mut columns: Vec<Column> = Vec::new();
    loop {
        buf.clear();
        let n = input.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        let line = content(&buf);
        if !blank(line) {
            columns = line
                .split(|&b| b == b',')
                .map(|f| Column::new(String::from_utf8_lossy(clean(f)).into_owned()))
                .collect();
            break;
        }
    }
    let mut rows = 0u64;
    let mut reported_at = None;
    let mut at_end = false;
    while !at_end {
        let mut in_chunk = 0;
        while in_chunk < chunk_rows {
            buf.clear();
            let n = input.read_until(b'\n', &mut buf)?;
            if n == 0 {
                at_end = true;
                break;
            }
            bytes += n as u64;
            let line = content(&buf);
            if blank(line) {
                continue;
            }
            let mut values = line.split(|&b| b == b',');
            for column in &mut columns {
                column.add(values.next().map_or(&[][..], clean));
            }
            rows += 1;
            in_chunk += 1;
        }
        if reported_at == Some(bytes) {
            // The end, right after a full chunk: already reported.
            break;
        }
        reported_at = Some(bytes);
        if after_chunk(Progress { rows, bytes }) == Flow::Stop {
            return Ok(Ended::Stopped(Progress { rows, bytes }));
        }
    }
    Ok(Ended::Done(Summary {
        rows,
        bytes,
        columns,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, chunk: u64) -> (Summary, Vec<Progress>) {
        let mut seen = Vec::new();
        let ended = summarize(&mut text.as_bytes(), chunk, |p| {
            seen.push(p);
            Flow::Continue
        })
        .unwrap();
        let Ended::Done(s) = ended else {
            panic!("stopped")
        };
        (s, seen)
    }

    #[test]
    fn sums_numeric_columns_and_skips_text_ones() {
        let (s, seen) = run(
            "\n region , \"units\",price\r\nnorth,3,1.5\n\n\"south\", \"5\" ,x\nwest,,2\n",
            2,
        );
        assert_eq!(s.rows, 3);
        let names: Vec<&str> = s.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["region", "units", "price"]);
        assert!(!s.columns[0].has_summary());
        let units = &s.columns[1];
        assert_eq!(
            (units.count, units.sum, units.min, units.max),
            (2, 8.0, 3.0, 5.0)
        );
        assert!(!s.columns[2].numeric, "x is not a number");
        assert_eq!(seen.last().unwrap().rows, 3);
        assert_eq!(seen.len(), 2, "after 2 rows, then at the end");
        assert_eq!(
            s.bytes as usize,
            "\n region , \"units\",price\r\nnorth,3,1.5\n\n\"south\", \"5\" ,x\nwest,,2\n".len()
        );
    }

    #[test]
    fn the_end_on_a_chunk_boundary_is_reported_once() {
        let (_, seen) = run("a\n1\n2\n", 2);
        assert_eq!(seen, [Progress { rows: 2, bytes: 6 }]);
        let (s, seen) = run("", 5);
        assert_eq!((s.rows, s.columns.len()), (0, 0));
        assert_eq!(seen, [Progress { rows: 0, bytes: 0 }]);
    }

    #[test]
    fn lines_that_straddle_the_reader_buffer_are_read_whole() {
        let mut text = String::from("a,b,c\n");
        for i in 0..500 {
            text.push_str(&format!("{i},{}.25,x{i}\n", i * 3));
            if i % 50 == 0 {
                text.push_str("  \r\n");
            }
        }
        text.push_str("7,7,7"); // no line end at the end
        let (whole, seen_whole) = run(&text, 64);
        for cap in [1, 2, 7, 64, 1000] {
            let mut seen = Vec::new();
            let mut r = std::io::BufReader::with_capacity(cap, text.as_bytes());
            let Ended::Done(s) = summarize(&mut r, 64, |p| {
                seen.push(p);
                Flow::Continue
            })
            .unwrap() else {
                panic!("stopped")
            };
            assert_eq!(s, whole, "buffer of {cap}");
            assert_eq!(seen, seen_whole, "buffer of {cap}");
        }
        assert_eq!(whole.rows, 501);
        assert_eq!(whole.bytes, text.len() as u64);
    }

    #[test]
    fn infinities_and_missing_fields() {
        let (s, _) = run("a,b\ninf,1\n2\n", 10);
        assert!(!s.columns[0].numeric, "inf is not finite");
        assert_eq!(s.columns[1].count, 1, "a missing field is empty");
    }

    #[test]
    fn a_stop_ends_after_the_chunk() {
        let ended = summarize(&mut "a\n1\n2\n3\n".as_bytes(), 1, |p| {
            if p.rows == 2 {
                Flow::Stop
            } else {
                Flow::Continue
            }
        })
        .unwrap();
        assert_eq!(ended, Ended::Stopped(Progress { rows: 2, bytes: 6 }));
    }
}
