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
        let parsed = plain_decimal(field).or_else(|| {
            std::str::from_utf8(field)
                .ok()
                .and_then(|f| f.parse::<f64>().ok())
        });
        match parsed {
            Some(x) if x.is_finite() => {
                self.count += 1;
                self.sum += x;
                // Comparisons rather than `f64::min`/`max`: x is finite here, and in wasm
                // those are calls into libm (NaN rules), a tenth of the job's time.
                if x < self.min {
                    self.min = x;
                }
                if x > self.max {
                    self.max = x;
                }
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

/// Exact powers of ten up to 10^15 (every one is a double exactly).
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The value of a plain decimal (`[+-]digits[.digits]`, at most 15 digits in all), or `None`
/// for anything else, which `str::parse` then decides. Exact: the digits make an integer below
/// 2^53 and the divisor is an exact power of ten, so one IEEE division rounds the quotient
/// correctly, as `str::parse` does (Clinger's fast path). Most CSV numbers take it, without a
/// UTF-8 check or the general parser.
fn plain_decimal(b: &[u8]) -> Option<f64> {
    let (negative, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, b),
    };
    if digits.len() > 16 {
        return None;
    }
    let mut mantissa = 0u64;
    let mut count = 0usize;
    let mut point: Option<usize> = None;
    for (i, &c) in digits.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(c - b'0');
                count += 1;
            }
            b'.' if point.is_none() => point = Some(i),
            _ => return None,
        }
    }
    if count == 0 || count > 15 {
        return None;
    }
    let decimals = point.map_or(0, |p| digits.len() - p - 1);
    let value = mantissa as f64 / POW10[decimals];
    Some(if negative { -value } else { value })
}

/// One field: trimmed, one pair of surrounding quotes removed.
fn clean(field: &[u8]) -> &[u8] {
    let f = trim(field);
    match f {
        [b'"', inner @ .., b'"'] => inner,
        _ => f,
    }
}

/// Trims whitespace as `str::trim` does. ASCII whitespace is trimmed in place; only a field
/// that starts or ends with a non-ASCII byte (which may be Unicode whitespace) goes through
/// `str::trim`, so the common case never scans the field's middle.
fn trim(b: &[u8]) -> &[u8] {
    let t = b.trim_ascii();
    match (t.first(), t.last()) {
        (Some(&first), Some(&last)) if first >= 0x80 || last >= 0x80 => {
            match std::str::from_utf8(t) {
                Ok(s) => s.trim().as_bytes(),
                Err(_) => t,
            }
        }
        _ => t,
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

/// The summary being built, line by line.
struct State<F> {
    chunk_rows: u64,
    after_chunk: F,
    /// `None` until the header (the first non-blank line) is read.
    columns: Option<Vec<Column>>,
    rows: u64,
    bytes: u64,
    in_chunk: u64,
    /// The `bytes` of the last progress reported.
    reported_at: Option<u64>,
}

impl<F: FnMut(Progress) -> Flow> State<F> {
    /// Takes one line (with its ending, if it has one); `Flow::Stop` when the caller said so
    /// after the chunk this line completed.
    fn line(&mut self, raw: &[u8]) -> Flow {
        self.bytes += raw.len() as u64;
        let line = content(raw);
        if blank(line) {
            return Flow::Continue;
        }
        let Some(columns) = &mut self.columns else {
            self.columns = Some(
                line.split(|&b| b == b',')
                    .map(|f| Column::new(String::from_utf8_lossy(clean(f)).into_owned()))
                    .collect(),
            );
            return Flow::Continue;
        };
        // One pass over the line: each field is found, and only a column still numeric looks
        // at its bytes. A missing field is empty; an extra one is ignored.
        let mut rest = Some(line);
        for column in columns.iter_mut() {
            let field = match rest {
                Some(r) => match memchr::memchr(b',', r) {
                    Some(i) => {
                        rest = Some(&r[i + 1..]);
                        &r[..i]
                    }
                    None => {
                        rest = None;
                        r
                    }
                },
                None => &[][..],
            };
            if column.numeric {
                column.add(clean(field));
            }
        }
        self.rows += 1;
        self.in_chunk += 1;
        if self.in_chunk >= self.chunk_rows {
            self.in_chunk = 0;
            return self.report();
        }
        Flow::Continue
    }

    /// Takes whole lines once the header is read: `region` ends with a line end. One scan
    /// finds both commas and line ends (`memchr2`, SIMD where the target has it), and each
    /// field is handed to its column as it is found: the same rows, fields and progress as
    /// [`State::line`] line by line, with a fraction of the passes over the bytes.
    fn lines(&mut self, region: &[u8]) -> Flow {
        let Some(columns) = self.columns.as_mut() else {
            return Flow::Continue;
        };
        let mut line_start = 0;
        let mut field_start = 0;
        let mut field = 0;
        for at in memchr::memchr2_iter(b',', b'\n', region) {
            let value = &region[field_start..at];
            if region[at] == b',' {
                if let Some(column) = columns.get_mut(field)
                    && column.numeric
                {
                    column.add(clean(value));
                }
                field += 1;
                field_start = at + 1;
                continue;
            }
            self.bytes += (at + 1 - line_start) as u64;
            // A line with a comma is a row; one without is a row unless it is blank.
            if field > 0 || !blank(content(value)) {
                if let Some(column) = columns.get_mut(field)
                    && column.numeric
                {
                    column.add(clean(value));
                }
                self.rows += 1;
                self.in_chunk += 1;
                if self.in_chunk >= self.chunk_rows {
                    self.in_chunk = 0;
                    self.reported_at = Some(self.bytes);
                    let at = Progress {
                        rows: self.rows,
                        bytes: self.bytes,
                    };
                    if (self.after_chunk)(at) == Flow::Stop {
                        return Flow::Stop;
                    }
                }
            }
            line_start = at + 1;
            field_start = at + 1;
            field = 0;
        }
        Flow::Continue
    }

    fn report(&mut self) -> Flow {
        self.reported_at = Some(self.bytes);
        let at = self.progress();
        (self.after_chunk)(at)
    }

    fn progress(&self) -> Progress {
        Progress {
            rows: self.rows,
            bytes: self.bytes,
        }
    }
}

/// Reads `input` to its end and summarises it; `after_chunk` is called after every
/// `chunk_rows` rows and once at the end (not twice when the end falls on a chunk), and may
/// stop it.
///
/// Lines are found in the reader's own buffer and parsed where they lie; only a line that
/// straddles two fills of the buffer is copied (and read by [`State::line`]).
pub fn summarize(
    input: &mut impl BufRead,
    chunk_rows: u64,
    after_chunk: impl FnMut(Progress) -> Flow,
) -> io::Result<Ended> {
    let mut st = State {
        chunk_rows: chunk_rows.max(1),
        after_chunk,
        columns: None,
        rows: 0,
        bytes: 0,
        in_chunk: 0,
        reported_at: None,
    };
    // The start of a line that the buffer's end cut.
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let len = buf.len();
        let mut start = 0;
        if !partial.is_empty() {
            match memchr::memchr(b'\n', buf) {
                Some(i) => {
                    partial.extend_from_slice(&buf[..=i]);
                    start = i + 1;
                    let flow = st.line(&partial);
                    partial.clear();
                    if flow == Flow::Stop {
                        return Ok(Ended::Stopped(st.progress()));
                    }
                }
                None => {
                    partial.extend_from_slice(buf);
                    input.consume(len);
                    continue;
                }
            }
        }
        // Until the header is read, line by line; then whole lines at once.
        while st.columns.is_none() {
            let Some(i) = memchr::memchr(b'\n', &buf[start..]) else {
                break;
            };
            let end = start + i + 1;
            if st.line(&buf[start..end]) == Flow::Stop {
                return Ok(Ended::Stopped(st.progress()));
            }
            start = end;
        }
        if st.columns.is_some()
            && let Some(i) = memchr::memrchr(b'\n', &buf[start..])
        {
            let end = start + i + 1;
            if st.lines(&buf[start..end]) == Flow::Stop {
                return Ok(Ended::Stopped(st.progress()));
            }
            start = end;
        }
        partial.extend_from_slice(&buf[start..]);
        input.consume(len);
    }
    if !partial.is_empty() && st.line(&partial) == Flow::Stop {
        return Ok(Ended::Stopped(st.progress()));
    }
    if st.reported_at != Some(st.bytes) && st.report() == Flow::Stop {
        return Ok(Ended::Stopped(st.progress()));
    }
    Ok(Ended::Done(Summary {
        rows: st.rows,
        bytes: st.bytes,
        columns: st.columns.unwrap_or_default(),
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

    /// The fast path answers exactly what `str::parse` answers, bit for bit, or leaves it to it.
    #[test]
    fn plain_decimals_parse_as_str_parse_does() {
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "+0",
            "1.",
            ".5",
            ".",
            "-",
            "+",
            "",
            "1.2.3",
            "1e5",
            "0.1",
            "0.3",
            "123456789012345",
            "1234567890123456",
            "999999999999999.",
            ".000000000000001",
            "-12.34",
            "+7",
            "00000000000000012",
            "9007199254740993",
            "1_0",
            " 1",
            "1 ",
            "١",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut seed = 12345u64;
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let digits = (seed % 17) as usize;
            let mut t = String::new();
            if seed & (1 << 20) != 0 {
                t.push('-');
            }
            let mut r = seed >> 24;
            for d in 0..digits {
                if d == (seed >> 8) as usize % 18 {
                    t.push('.');
                }
                t.push(char::from(b'0' + (r % 10) as u8));
                r = r / 10 + (seed >> (d % 40));
            }
            cases.push(t);
        }
        for c in &cases {
            let std = c.parse::<f64>().ok();
            match plain_decimal(c.as_bytes()) {
                Some(v) => assert_eq!(
                    Some(v.to_bits()),
                    std.map(f64::to_bits),
                    "{c:?}: {v} against {std:?}"
                ),
                None => assert!(
                    c.chars().filter(char::is_ascii_digit).count() > 15
                        || !c
                            .bytes()
                            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+')
                        || c.bytes().filter(|&b| b == b'.').count() > 1
                        || !c.bytes().any(|b| b.is_ascii_digit())
                        || c.len() > 17,
                    "{c:?} should take the fast path"
                ),
            }
        }
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

    /// The first implementation (a copy of each line, `split`, a whole-field ASCII check),
    /// kept as the oracle that the faster one must agree with.
    mod reference {
        use super::super::{Column, Ended, Flow, Progress, Summary, content};
        use std::io::{self, BufRead};

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

        fn clean(field: &[u8]) -> &[u8] {
            let f = trim(field);
            match f {
                [b'"', inner @ .., b'"'] => inner,
                _ => f,
            }
        }

        pub fn summarize(
            input: &mut impl BufRead,
            chunk_rows: u64,
            mut after_chunk: impl FnMut(Progress) -> Flow,
        ) -> io::Result<Ended> {
            let chunk_rows = chunk_rows.max(1);
            let mut buf = Vec::new();
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
                if !trim(line).is_empty() {
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
                    if trim(line).is_empty() {
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
    }

    /// Random CSV-ish text (quotes, blanks, CR, Unicode spaces, invalid UTF-8, missing and
    /// extra fields, numbers and words) summarised by both implementations through readers of
    /// many buffer sizes: the same summary, the same progress, the same stop.
    #[test]
    fn agrees_with_the_first_implementation_on_random_input() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let pieces: [&[u8]; 16] = [
            b"1",
            b"-2.5",
            b"3e2",
            b" 4 ",
            b"\"5\"",
            b"x",
            b"",
            b"\xc2\xa07\xc2\xa0",
            b"\xe2\x80\x838",
            b"\xff9",
            b"nan",
            b"inf",
            b"\t10\t",
            b"1,2",
            b"\"\"",
            b"\xc3\xa9",
        ];
        for case in 0..300 {
            let mut text: Vec<u8> = Vec::new();
            let lines = next(40);
            for _ in 0..lines {
                match next(10) {
                    0 => text.extend_from_slice(b"  "),
                    1 => text.push(b'\r'),
                    _ => {
                        let fields = next(5);
                        for f in 0..fields {
                            if f > 0 {
                                text.push(b',');
                            }
                            text.extend_from_slice(pieces[next(16) as usize]);
                        }
                    }
                }
                if next(20) != 0 {
                    text.push(b'\n');
                }
            }
            let chunk = 1 + next(5);
            let stop_at = next(6);
            for cap in [1usize, 2, 3, 8, 64, 1 << 16] {
                let run = |imp: u8| {
                    let mut seen = Vec::new();
                    let mut r = std::io::BufReader::with_capacity(cap, &text[..]);
                    let after = |p: Progress| {
                        seen.push(p);
                        if seen.len() as u64 == stop_at {
                            Flow::Stop
                        } else {
                            Flow::Continue
                        }
                    };
                    let ended = if imp == 0 {
                        summarize(&mut r, chunk, after)
                    } else {
                        reference::summarize(&mut r, chunk, after)
                    }
                    .unwrap();
                    (format!("{ended:?}"), seen)
                };
                assert_eq!(
                    run(0),
                    run(1),
                    "case {case}, buffer {cap}, chunk {chunk}: {:?}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }
}
