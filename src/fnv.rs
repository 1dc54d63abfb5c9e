//! FNV-1a (64 bits): the one non-cryptographic hash, for what must be stable across runs,
//! platforms and Rust versions but is not a definition: the order tests are dealt to
//! shards, the offline `echo` embeddings, the history cache's file name. A definition is
//! hashed once, with SHA-256 ([`crate::repo::Definition::digest`]).

/// The FNV-1a hash of `bytes`.
pub(crate) fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_values() {
        // The reference values of the FNV test suite.
        assert_eq!(super::fnv1a(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a(*b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(super::fnv1a(*b"foobar"), 0x8594_4171_f739_67e8);
    }
}
