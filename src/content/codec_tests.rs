//! The unit tests of `codec.rs` (pure): frames, checksums, dictionaries, corrupt input.
use super::*;
use proptest::prelude::*;

fn spec(codec: Codec) -> Spec {
    Spec::new(codec, 3).unwrap()
}

/// Templated text with some variation: what the content store sees.
fn email(i: usize) -> Vec<u8> {
    let mut s = String::new();
    for k in 0..(20 + i % 30) {
        s.push_str(&format!(
            "<tr><td style=\"padding:8px;color:#333\">Hello customer {i}, item {k} ships \
             on day {} via https://t.example.com/c/{:x}</td></tr>\n",
            k % 7,
            (i * 7919 + k * 104729) % 1_000_003
        ));
    }
    s.into_bytes()
}

fn trained() -> Dictionary {
    let samples: Vec<Vec<u8>> = (0..300).map(email).collect();
    Dictionary::new(7, train(&samples, 16 * 1024).unwrap()).unwrap()
}

#[test]
fn header_layout_is_stable() {
    // A version-1 frame written by hand: stays readable forever.
    let raw = b"hello";
    let sum = checksum_of(&blake3::hash(raw));
    let mut frame = vec![0xF1, 0, 0, 0, 0, 0, 5, 0, 0, 0];
    frame.extend_from_slice(&sum.to_le_bytes());
    frame.extend_from_slice(raw);
    assert_eq!(decode(&frame, None).unwrap(), raw);
    assert_eq!(encode(raw, spec(Codec::None), None).unwrap(), frame);
    let i = info(&frame).unwrap();
    assert_eq!(
        (i.version, i.codec, i.dictionary, i.raw_len, i.stored_len),
        (1, Codec::None, 0, 5, 19)
    );
}

#[test]
fn every_codec_round_trips_and_shrinks_text() {
    let raw = email(3);
    for codec in [Codec::None, Codec::Lz4, Codec::Zstd] {
        let f = encode(&raw, spec(codec), None).unwrap();
        assert_eq!(info(&f).unwrap().codec, codec);
        assert_eq!(decode(&f, None).unwrap(), raw);
        if codec != Codec::None {
            assert!(
                f.len() * 3 < raw.len(),
                "{codec:?}: {} of {}",
                f.len(),
                raw.len()
            );
        }
    }
}

#[test]
fn dictionary_memory_counts_prepared_encoders() {
    let d = trained();
    let bare = d.memory();
    assert!(bare > d.bytes.len(), "{bare}");
    let raw = email(5);
    let f = encode(&raw, Spec::new(Codec::Zstd, 19).unwrap(), Some(&d)).unwrap();
    assert_eq!(decode(&f, Some(&d)).unwrap(), raw);
    assert!(d.memory() > bare, "a level-19 encoder is counted");
}

#[test]
fn dictionary_round_trips_and_must_match() {
    let d = trained();
    let raw = email(1000);
    let with = encode(&raw, spec(Codec::Zstd), Some(&d)).unwrap();
    let without = encode(&raw, spec(Codec::Zstd), None).unwrap();
    assert!(
        with.len() < without.len(),
        "{} vs {}",
        with.len(),
        without.len()
    );
    assert_eq!(info(&with).unwrap().dictionary, 7);
    assert_eq!(decode(&with, Some(&d)).unwrap(), raw);
    assert_eq!(
        decode(&with, None),
        Err(CodecError::WrongDictionary {
            wanted: 7,
            given: 0
        })
    );
    let other = Dictionary::new(8, d.bytes.clone()).unwrap();
    assert!(matches!(
        decode(&with, Some(&other)),
        Err(CodecError::WrongDictionary { .. })
    ));
    assert_eq!(
        encode(&raw, spec(Codec::Lz4), Some(&d)),
        Err(CodecError::DictionaryNotSupported(Codec::Lz4))
    );
    assert!(Dictionary::new(9, b"not a dictionary at all".to_vec()).is_err());
}

#[test]
fn incompressible_bytes_are_stored() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let raw: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for codec in [Codec::Lz4, Codec::Zstd] {
        let f = encode(&raw, spec(codec), None).unwrap();
        assert_eq!(info(&f).unwrap().codec, Codec::None);
        assert_eq!(f.len(), raw.len() + HEADER_LEN);
    }
}

#[test]
fn levels_and_names_are_checked() {
    assert!(Spec::new(Codec::Zstd, 23).is_err());
    assert!(Spec::new(Codec::Zstd, 22).is_ok());
    assert!(Spec::new(Codec::Zstd, -7).is_ok());
    assert!(Spec::new(Codec::Lz4, 99).is_ok(), "lz4 has one level");
    assert_eq!(Codec::parse(" ZSTD "), Ok(Codec::Zstd));
    assert_eq!(
        Codec::parse("brotli"),
        Err(CodecError::UnknownCodec("brotli".into()))
    );
}

#[test]
fn foreign_and_truncated_frames() {
    assert!(matches!(info(b""), Err(CodecError::Foreign(_))));
    assert!(
        matches!(info(b"\x28\xb5\x2f\xfd"), Err(CodecError::Foreign(_))),
        "a bare zstd frame"
    );
    assert!(matches!(
        info(b"\xF2rest-of-a-future-frame"),
        Err(CodecError::Foreign(_))
    ));
    let mut future = encode(b"abc", spec(Codec::None), None).unwrap();
    future[1] = 9;
    assert!(matches!(info(&future), Err(CodecError::Foreign(_))));
    let f = encode(&email(5), spec(Codec::Zstd), None).unwrap();
    for cut in [1, 5, HEADER_LEN, HEADER_LEN + 3, f.len() - 1] {
        assert!(
            matches!(decode(&f[..cut], None), Err(CodecError::Corrupted(_))),
            "cut {cut}"
        );
    }
    let mut trailing = f.clone();
    trailing.push(0);
    assert!(matches!(
        decode(&trailing, None),
        Err(CodecError::Corrupted(_))
    ));
}

#[test]
fn a_lying_length_does_not_allocate() {
    let mut f = encode(&email(5), spec(Codec::Lz4), None).unwrap();
    f[6..10].copy_from_slice(&(MAX_RAW as u32).to_le_bytes());
    assert!(matches!(info(&f), Err(CodecError::Corrupted(_))));
}

#[test]
fn sixteen_mebibytes_round_trip() {
    // The largest size the issue asks for, in every codec: repetitive and random halves.
    let mut raw = Vec::with_capacity(16 << 20);
    let mut i = 0;
    while raw.len() < 8 << 20 {
        raw.extend_from_slice(&email(i));
        i += 1;
    }
    raw.truncate(8 << 20);
    let mut x = 1u64;
    raw.extend((0..8 << 20).map(|_| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 56) as u8
    }));
    let d = trained();
    for (codec, dict) in [
        (Codec::None, None),
        (Codec::Lz4, None),
        (Codec::Zstd, None),
        (Codec::Zstd, Some(&d)),
    ] {
        let f = encode(&raw, spec(codec), dict).unwrap();
        assert_eq!(decode(&f, dict).unwrap(), raw, "{codec:?} {dict:?}");
    }
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Random bytes of any size up to 64 KiB.
        prop::collection::vec(any::<u8>(), 0..65_536),
        // Compressible: a few random words repeated, up to 1 MiB.
        (prop::collection::vec(any::<u8>(), 1..64), 0usize..16_384).prop_map(|(w, n)| w
            .iter()
            .cycle()
            .take(n * 64)
            .copied()
            .collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip(raw in body(), codec in 0u8..3, level in 1i32..6) {
        let codec = Codec::from_id(codec).unwrap();
        let f = encode(&raw, Spec::new(codec, level).unwrap(), None).unwrap();
        prop_assert!(f.len() <= raw.len() + HEADER_LEN);
        let i = info(&f).unwrap();
        prop_assert_eq!(i.raw_len as usize, raw.len());
        prop_assert_eq!(decode(&f, None).unwrap(), raw);
    }
}

/// The decoder fuzz: 20 000 cases of each kind (random bytes behind a valid magic, and
/// valid frames with bytes flipped, cut or appended). Every case must end in Ok (a flip
/// the checks cannot see would have to keep the checksum: 2^-32) or a clean error.
const FUZZ_CASES: u32 = 20_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(FUZZ_CASES))]

    #[test]
    fn fuzz_random_frames(codec in 0u8..4, dict in 0u32..2, raw_len in 0u32..1_000_000,
                          payload in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut f = header(Codec::from_id(codec).unwrap_or(Codec::None), dict, raw_len, 0, payload.len());
        f[1] = codec;
        f.extend_from_slice(&payload);
        let r = decode(&f, None);
        prop_assert!(r.is_err() || raw_len == 0 || codec == 0);
    }

    #[test]
    fn fuzz_mutated_frames(seed in 0usize..400, codec in 0u8..3,
                           flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
                           cut in any::<prop::sample::Index>(), mode in 0u8..3) {
        let raw = email(seed);
        let mut f = encode(&raw, spec(Codec::from_id(codec).unwrap()), None).unwrap();
        match mode {
            0 => for (at, x) in &flips {
                let i = at.index(f.len());
                f[i] ^= x | 1;
            },
            1 => { let n = cut.index(f.len()); f.truncate(n); }
            _ => f.extend_from_slice(&[0u8, 1, 2]),
        }
        match decode(&f, None) {
            Ok(out) => prop_assert_eq!(out, raw, "a mutated frame decoded to other bytes"),
            Err(CodecError::Corrupted(_) | CodecError::Foreign(_) | CodecError::WrongDictionary { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
    }
}
