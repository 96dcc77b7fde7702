//! Files in granted directories, moved in the largest pieces the host handles per call.
//!
//! `std::fs` works as it is on the paths a job type's manifest grants (`[[dirs]]`); these
//! helpers only choose the buffer sizes. Each read or write of a guest is one call into the
//! host, which moves at most 64 KiB at a time ([`CHUNK`]): `std::io::BufReader::new` (8 KiB)
//! and `std::io::copy` (8 KiB) make eight times as many calls as needed, and a
//! `BufWriter` flushes every 8 KiB. On a local filesystem the host does the I/O on the job's
//! own thread, so with these sizes a job reads and writes at close to native speed.
//!
//! ```ignore
//! use queuemgr_guest::fs;
//! use std::io::{BufRead, Write};
//!
//! let mut out = fs::writer("/data/out/report.csv")?;
//! for line in fs::reader("/data/in/sales.csv")?.lines() {
//!     writeln!(out, "{}", line?.to_uppercase())?;
//! }
//! out.flush()?;
//! let whole: Vec<u8> = fs::read("/data/in/sales.csv")?;
//! ```

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// The most the host reads or writes in one call: the best buffer size.
pub const CHUNK: usize = 64 * 1024;

/// Opens `path` for reading through a [`CHUNK`]-sized buffer (for `lines()`, `read_until`, …).
pub fn reader(path: impl AsRef<Path>) -> io::Result<BufReader<File>> {
    Ok(BufReader::with_capacity(CHUNK, File::open(path)?))
}

/// Creates (or truncates) `path` for writing through a [`CHUNK`]-sized buffer. Call `flush()`
/// at the end to see a write error; dropping it flushes silently.
pub fn writer(path: impl AsRef<Path>) -> io::Result<BufWriter<File>> {
    Ok(BufWriter::with_capacity(CHUNK, File::create(path)?))
}

/// Reads the whole file, [`CHUNK`] by [`CHUNK`], into a buffer sized from its length.
pub fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let len = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut buf = Vec::with_capacity(len);
    file.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Writes `data` as the whole content of `path` (created or truncated), [`CHUNK`] by
/// [`CHUNK`].
pub fn write(path: impl AsRef<Path>, data: impl AsRef<[u8]>) -> io::Result<()> {
    let mut file = File::create(path)?;
    for piece in data.as_ref().chunks(CHUNK) {
        file.write_all(piece)?;
    }
    file.flush()
}

/// Copies everything from `from` to `to` through one [`CHUNK`]-sized buffer (what
/// `std::io::copy` does with 8 KiB); returns the bytes copied.
pub fn copy(from: &mut impl Read, to: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_chunks() {
        let dir = std::env::temp_dir().join(format!("qm-sdk-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.bin");
        let data: Vec<u8> = (0..(3 * CHUNK + 17)).map(|i| (i % 251) as u8).collect();
        write(&path, &data).unwrap();
        assert_eq!(read(&path).unwrap(), data);
        let mut out = Vec::new();
        assert_eq!(
            copy(&mut reader(&path).unwrap(), &mut out).unwrap(),
            data.len() as u64
        );
        assert_eq!(out, data);
        let mut w = writer(dir.join("g.txt")).unwrap();
        w.write_all(b"a\nb\n").unwrap();
        w.flush().unwrap();
        drop(w);
        use std::io::BufRead;
        let lines: Vec<String> = reader(dir.join("g.txt"))
            .unwrap()
            .lines()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(lines, ["a", "b"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
