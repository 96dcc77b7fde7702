//! The workload of the `cpu_heavy` example job, kept apart so that it builds natively too and
//! the benchmark can compare the same code as wasm (with and without fuel) and as native code.

use sha2::{Digest, Sha256};

/// Bytes in one MiB.
pub const MIB: usize = 1 << 20;

/// SHA-256 over `mib` MiB of deterministic data (a 1 MiB pattern repeated), calling
/// `on_mib(done)` after each MiB. `on_mib` returns `false` to stop early (then `None`).
pub fn sha256_mib(mib: u32, mut on_mib: impl FnMut(u32) -> bool) -> Option<[u8; 32]> {
    let block: Vec<u8> = (0..MIB)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 7)) as u8)
        .collect();
    let mut hasher = Sha256::new();
    for done in 1..=mib {
        hasher.update(&block);
        if !on_mib(done) {
            return None;
        }
    }
    Some(hasher.finalize().into())
}

/// Counts the primes below `n` with a sieve of Eratosthenes.
pub fn count_primes(n: u32) -> u32 {
    let n = n as usize;
    if n < 3 {
        return 0;
    }
    let mut composite = vec![false; n];
    // Only primes up to √n strike anything; for them `i * i < n` cannot overflow, even in
    // wasm32's 32-bit `usize`.
    let root = n.isqrt();
    let mut count = 0;
    for i in 2..n {
        if !composite[i] {
            count += 1;
            if i <= root {
                let mut j = i * i;
                while j < n {
                    composite[j] = true;
                    j += i;
                }
            }
        }
    }
    count
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes_below_100() {
        assert_eq!(count_primes(100), 25);
        assert_eq!(count_primes(2), 0);
    }

    #[test]
    fn sha_is_deterministic_and_stoppable() {
        let a = sha256_mib(2, |_| true).unwrap();
        let b = sha256_mib(2, |_| true).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, sha256_mib(1, |_| true).unwrap());
        assert_eq!(sha256_mib(3, |d| d < 2), None);
        assert_eq!(hex(&[0xab, 0x01]), "ab01");
    }
}
