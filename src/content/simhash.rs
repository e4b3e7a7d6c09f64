//! Near-duplicate signatures: a 64-bit SimHash over word shingles. Pure.
//!
//! The body is split into words (runs of letters and digits, lowercased ASCII; other bytes
//! separate words), every run of [`SHINGLE`] consecutive words is hashed, and each of the
//! 64 bits of the signature is the majority vote of that bit over all shingle hashes
//! (Charikar's SimHash, as used for web near-duplicate detection). Two bodies that share
//! most shingles get signatures that differ in few bits; the similarity floe reports is
//! `1 - hamming_distance / 64`.
//!
//! The hash is defined here (FNV-1a 64 over the shingle's words, finished with the SplitMix64
//! mixer) and fixed by a test vector: stored signatures must mean the same thing to every
//! later version.

/// Words per shingle.
pub const SHINGLE: usize = 4;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of one word (lowercased), as the building block of shingle hashes.
fn word_hash(word: &[u8]) -> u64 {
    word.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(FNV_PRIME)
    })
}

fn words(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split(|b| !b.is_ascii_alphanumeric() && *b < 0x80)
        .filter(|w| !w.is_empty())
}

/// The signature of `body`. A body with fewer words than a shingle hashes its words as one
/// shingle; an empty body (no words) has signature 0.
pub fn signature(body: &[u8]) -> u64 {
    let hashes: Vec<u64> = words(body).map(word_hash).collect();
    if hashes.is_empty() {
        return 0;
    }
    let mut votes = [0i32; 64];
    let mut vote = |h: u64| {
        for (bit, v) in votes.iter_mut().enumerate() {
            *v += if h >> bit & 1 == 1 { 1 } else { -1 };
        }
    };
    let n = SHINGLE.min(hashes.len());
    for window in hashes.windows(n) {
        let h = window
            .iter()
            .fold(FNV_OFFSET, |acc, &w| (acc ^ w).wrapping_mul(FNV_PRIME));
        vote(splitmix(h));
    }
    votes.iter().enumerate().fold(
        0u64,
        |sig, (bit, &v)| if v > 0 { sig | 1 << bit } else { sig },
    )
}

/// `1 - hamming(a, b) / 64`: 1.0 for equal signatures, about 0.5 for unrelated ones.
pub fn similarity(a: u64, b: u64) -> f32 {
    1.0 - (a ^ b).count_ones() as f32 / 64.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn letter(name: &str, token: u32) -> String {
        let mut s = format!("<p>Dear {name},</p>\n");
        for i in 0..40 {
            s.push_str(&format!(
                "<p>Our spring collection item {i} is now available in every store near you, \
                 with free shipping on orders over fifty dollars.</p>\n"
            ));
        }
        s.push_str(&format!(
            "<a href=\"https://t.example.com/u/{token:08x}\">Unsubscribe</a>"
        ));
        s
    }

    #[test]
    fn test_vector_is_stable() {
        // Changing the hash would change every stored signature's meaning.
        assert_eq!(signature(b""), 0);
        assert_eq!(signature(b"<p>!!</p>"), signature(b"p p"));
        assert_eq!(signature(b"Hello World"), signature(b"hello, world!"));
        assert_eq!(
            signature(b"the quick brown fox jumps over the lazy dog"),
            0x129b_2c34_1e40_e032
        );
    }

    #[test]
    fn near_copies_are_similar_and_others_are_not() {
        let a = signature(letter("Ana", 1).as_bytes());
        let b = signature(letter("Bartholomew", 0xdead_beef).as_bytes());
        assert!(similarity(a, b) >= 0.9, "{}", similarity(a, b));
        let other = signature(
            b"Invoice 2291: 3 seats of the Pro plan, billed monthly. Payment is due within \
              thirty days; wire transfers to account 4411 reference the invoice number.",
        );
        assert!(similarity(a, other) < 0.8, "{}", similarity(a, other));
        assert_eq!(similarity(a, a), 1.0);
    }

    proptest! {
        #[test]
        fn similarity_is_symmetric_and_bounded(a in any::<u64>(), b in any::<u64>()) {
            let s = similarity(a, b);
            prop_assert_eq!(s, similarity(b, a));
            prop_assert!((0.0..=1.0).contains(&s));
        }

        #[test]
        fn case_and_punctuation_do_not_matter(text in "[a-z ]{0,200}") {
            let upper = text.to_ascii_uppercase().replace(' ', " , ");
            prop_assert_eq!(signature(text.as_bytes()), signature(upper.as_bytes()));
        }
    }
}
