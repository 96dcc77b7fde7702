//! Job ids the host makes when the caller gives none.

/// A new job id: a UUIDv7 (48 bits of milliseconds, then 74 random bits; monotonic within the
/// process), so ids sort by creation time and two hosts never make the same one, even hosts in
/// containers that share a pid and add batches in the same microsecond. Ids stored before (of
/// the form `j-<µs>-<pid>-<n>`) and ids given by users stay valid: an id is any string.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    /// Ids carry no pid or per-process counter (which repeat across containers): they are
    /// UUIDv7s, unique and in creation order.
    #[test]
    fn generated_ids_are_uuid_v7_unique_and_in_creation_order() {
        let ids: Vec<String> = (0..10_000).map(|_| super::new_id()).collect();
        for id in &ids {
            let u = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(u.get_version(), Some(uuid::Version::SortRand), "{id}");
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids, "ids sort in the order they were made");
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "no id twice");
    }
}
