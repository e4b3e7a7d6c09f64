//! What one audit entry says and how it is fingerprinted. Pure: no pgrx, no SPI.
//!
//! - Column values are written as JSON the way `to_jsonb` would write them (numbers, booleans
//!   and json stay typed, everything else is a string), from each type's text output.
//! - A redacted value is replaced by a keyed BLAKE3 hash of its text (the key is the
//!   database's own, so the hash of a guessable value cannot be looked up elsewhere; equal
//!   values still have equal hashes, which an auditor can compare).
//! - An entry's digest is BLAKE3 over every column it stores, each length-prefixed, so no two
//!   different entries can be made to serialize alike. A seal's hash covers the previous
//!   seal's hash and the ids and digests of the entries it seals: the chain.

/// How a column's value is written in the entry's JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// int2/4/8, float4/8, numeric: a JSON number (NaN and infinities become strings).
    Number,
    /// boolean: true / false.
    Bool,
    /// json / jsonb: embedded as it is.
    Json,
    /// Everything else: a JSON string of the type's text output.
    Text,
}

/// Bytes of an entry digest kept in a seal (128 bits: second preimages stay out of reach).
pub const DIGEST_LEN: usize = 16;
pub type Digest = [u8; DIGEST_LEN];
pub type SealHash = [u8; 32];

/// Appends `s` as a JSON string.
pub fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Whether `s` is a number as JSON spells it (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`).
pub fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.first() == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Appends a value (its type's text output) as JSON of `kind`.
pub fn push_value(out: &mut String, kind: Kind, text: &str) {
    match kind {
        Kind::Number if is_json_number(text) => out.push_str(text),
        Kind::Bool if text == "t" => out.push_str("true"),
        Kind::Bool if text == "f" => out.push_str("false"),
        Kind::Json => out.push_str(text),
        _ => push_string(out, text),
    }
}

/// A JSON object written field by field.
#[derive(Debug, Default)]
pub struct Object {
    buf: String,
}

impl Object {
    pub fn new() -> Object {
        Object { buf: String::new() }
    }

    fn key(&mut self, name: &str) {
        self.buf.push(if self.buf.is_empty() { '{' } else { ',' });
        push_string(&mut self.buf, name);
        self.buf.push(':');
    }

    /// `name: value`, or `name: null` for `None`.
    pub fn value(&mut self, name: &str, kind: Kind, text: Option<&str>) {
        self.key(name);
        match text {
            Some(t) => push_value(&mut self.buf, kind, t),
            None => self.buf.push_str("null"),
        }
    }

    /// The object's text (`{}` when no field was added).
    pub fn finish(mut self) -> String {
        if self.buf.is_empty() {
            return "{}".into();
        }
        self.buf.push('}');
        self.buf
    }
}

/// The order jsonb keeps an object's keys in (shorter first, then bytewise, as Postgres's
/// `lengthCompareJsonbStringValue`), as indexes into `keys`; `None` when a key repeats (jsonb
/// would keep one of them: the caller writes such an object as text instead).
pub fn jsonb_key_order(keys: &[&str]) -> Option<Vec<usize>> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    let rank = |i: &usize| (keys[*i].len(), keys[*i].as_bytes());
    order.sort_by(|a, b| rank(a).cmp(&rank(b)));
    if order.windows(2).any(|w| keys[w[0]] == keys[w[1]]) {
        return None;
    }
    Some(order)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a redacted value is replaced by: `blake3:` and 128 bits of the keyed hash, in hex.
pub fn redact(key: &[u8; 32], text: &str) -> String {
    let h = blake3::keyed_hash(key, text.as_bytes());
    format!("blake3:{}", hex(&h.as_bytes()[..16]))
}

/// Every stored column of one entry, as its digest reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub id: i64,
    pub logged_at_us: i64,
    pub xid: u64,
    pub relid: u32,
    /// schema, table, op, tenant, actor, app_actor, client_addr, pk, old_values, new_values,
    /// redacted, classification: each as its text output (jsonb's is canonical), or NULL.
    pub fields: Vec<Option<String>>,
}

/// The number of text fields of an [`Entry`].
pub const ENTRY_FIELDS: usize = 12;

fn put(h: &mut blake3::Hasher, field: Option<&[u8]>) {
    match field {
        None => {
            h.update(&[0]);
        }
        Some(bytes) => {
            h.update(&[1]);
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
    }
}

/// The entry's fingerprint.
pub fn digest(e: &Entry) -> Digest {
    let mut h = blake3::Hasher::new_derive_key("floe audit entry v1");
    h.update(&e.id.to_le_bytes());
    h.update(&e.logged_at_us.to_le_bytes());
    h.update(&e.xid.to_le_bytes());
    h.update(&e.relid.to_le_bytes());
    h.update(&(e.fields.len() as u64).to_le_bytes());
    for f in &e.fields {
        put(&mut h, f.as_deref().map(str::as_bytes));
    }
    let mut out = [0; DIGEST_LEN];
    out.copy_from_slice(&h.finalize().as_bytes()[..DIGEST_LEN]);
    out
}

/// What a seal commits to: the table, its run, the month and the transaction range
/// `[lo, hi)` it covers, and its entries' ids and digests in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    pub relid: u32,
    pub run: i64,
    /// The (UTC) month of its entries, `YYYY-MM-01`.
    pub month: String,
    pub lo: u64,
    pub hi: u64,
    pub entries: Vec<(i64, Digest)>,
}

/// The hash of a seal chained to `prev` (all zeros for a table's first seal).
pub fn seal_hash(prev: &SealHash, s: &Seal) -> SealHash {
    let mut h = blake3::Hasher::new_derive_key("floe audit seal v1");
    h.update(prev);
    h.update(&s.relid.to_le_bytes());
    h.update(&s.run.to_le_bytes());
    h.update(&(s.month.len() as u64).to_le_bytes());
    h.update(s.month.as_bytes());
    h.update(&s.lo.to_le_bytes());
    h.update(&s.hi.to_le_bytes());
    h.update(&(s.entries.len() as u64).to_le_bytes());
    for (id, d) in &s.entries {
        h.update(&id.to_le_bytes());
        h.update(d);
    }
    *h.finalize().as_bytes()
}

/// The digests of a seal as stored (concatenated).
pub fn pack(digests: impl IntoIterator<Item = Digest>) -> Vec<u8> {
    digests.into_iter().flatten().collect()
}

/// Splits stored digests; `None` when the length is not a multiple of [`DIGEST_LEN`].
pub fn unpack(bytes: &[u8]) -> Option<Vec<Digest>> {
    if !bytes.len().is_multiple_of(DIGEST_LEN) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(DIGEST_LEN)
            .map(|c| {
                let mut d = [0; DIGEST_LEN];
                d.copy_from_slice(c);
                d
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(json: &str) -> serde_json::Value {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    #[test]
    fn jsonb_keys_shorter_first_then_bytewise() {
        let keys = ["name", "id", "email", "b", "a", "ab", "Zz", "é"];
        let order = jsonb_key_order(&keys).unwrap();
        let sorted: Vec<&str> = order.iter().map(|&i| keys[i]).collect();
        // "é" is two bytes; "Z" (0x5a) sorts before "a" (0x61)
        assert_eq!(sorted, ["a", "b", "Zz", "ab", "id", "é", "name", "email"]);
        assert_eq!(jsonb_key_order(&["a", "b", "a"]), None);
        assert_eq!(jsonb_key_order(&[]), Some(vec![]));
    }

    proptest! {
        /// The order is a permutation in which every key is no longer, and when as long no
        /// greater bytewise, than the next.
        #[test]
        fn jsonb_key_order_is_a_sorted_permutation(keys in prop::collection::hash_set("[a-z_é]{0,6}", 0..20)) {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let order = jsonb_key_order(&keys).unwrap();
            let mut seen = order.clone();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..keys.len()).collect::<Vec<_>>());
            for w in order.windows(2) {
                let (a, b) = (keys[w[0]], keys[w[1]]);
                prop_assert!(a.len() < b.len() || (a.len() == b.len() && a.as_bytes() < b.as_bytes()));
            }
        }
    }

    #[test]
    fn numbers() {
        for ok in [
            "0",
            "-0",
            "12",
            "1.5",
            "-0.25",
            "1e10",
            "1E+3",
            "2.5e-7",
            "123456789012345678901234567890",
        ] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in [
            "",
            "-",
            "01",
            "1.",
            ".5",
            "NaN",
            "Infinity",
            "-Infinity",
            "1e",
            "1e+",
            "0x10",
            " 1",
            "1 ",
        ] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }

    #[test]
    fn objects_are_json() {
        let mut o = Object::new();
        o.value("id", Kind::Number, Some("42"));
        o.value("price", Kind::Number, Some("NaN"));
        o.value("ok", Kind::Bool, Some("t"));
        o.value("meta", Kind::Json, Some("{\"a\": [1, 2]}"));
        o.value("name", Kind::Text, Some("O'Brien \"Bob\"\n\t\\ \u{1} é"));
        o.value("gone", Kind::Text, None);
        let v = parse(&o.finish());
        assert_eq!(v["id"], 42);
        assert_eq!(v["price"], "NaN");
        assert_eq!(v["ok"], true);
        assert_eq!(v["meta"]["a"][1], 2);
        assert_eq!(v["name"], "O'Brien \"Bob\"\n\t\\ \u{1} é");
        assert!(v["gone"].is_null());
        assert_eq!(Object::new().finish(), "{}");
    }

    #[test]
    fn redaction_is_keyed_and_stable() {
        let k1 = [7u8; 32];
        let k2 = [8u8; 32];
        let a = redact(&k1, "alice@example.com");
        assert!(a.starts_with("blake3:") && a.len() == 7 + 32, "{a}");
        assert_eq!(a, redact(&k1, "alice@example.com"));
        assert_ne!(a, redact(&k1, "bob@example.com"));
        assert_ne!(a, redact(&k2, "alice@example.com"));
        assert!(!a.contains("alice"));
    }

    fn entry() -> Entry {
        Entry {
            id: 1,
            logged_at_us: 1_700_000_000_000_000,
            xid: 750,
            relid: 16384,
            fields: vec![
                Some("public".into()),
                Some("leads".into()),
                Some("UPDATE".into()),
                None,
                Some("app".into()),
                None,
                Some("10.0.0.1/32".into()),
                Some("{\"id\": 1}".into()),
                Some("{\"email\": \"a\"}".into()),
                Some("{\"email\": \"b\"}".into()),
                Some("{}".into()),
                Some("{gdpr}".into()),
            ],
        }
    }

    #[test]
    fn digest_sees_every_field() {
        let base = digest(&entry());
        assert_eq!(base, digest(&entry()));
        let mut e = entry();
        e.id = 2;
        assert_ne!(base, digest(&e));
        let mut e = entry();
        e.logged_at_us += 1;
        assert_ne!(base, digest(&e));
        let mut e = entry();
        e.xid += 1;
        assert_ne!(base, digest(&e));
        for i in 0..ENTRY_FIELDS {
            let mut e = entry();
            e.fields[i] = match &e.fields[i] {
                None => Some(String::new()),
                Some(s) => Some(format!("{s}x")),
            };
            assert_ne!(base, digest(&e), "field {i}");
            let mut e = entry();
            e.fields[i] = None;
            if entry().fields[i].is_some() {
                assert_ne!(base, digest(&e), "field {i} as NULL");
            }
        }
        // Moving bytes between neighbouring fields changes the digest (length prefixes).
        let mut e = entry();
        e.fields[0] = Some("publicl".into());
        e.fields[1] = Some("eads".into());
        assert_ne!(base, digest(&e));
    }

    #[test]
    fn chain_links() {
        let s = Seal {
            relid: 1,
            run: 1,
            month: "2026-11-01".into(),
            lo: 0,
            hi: 10,
            entries: vec![(1, digest(&entry()))],
        };
        let h1 = seal_hash(&[0; 32], &s);
        assert_ne!(h1, seal_hash(&[1; 32], &s));
        let mut t = s.clone();
        t.entries[0].0 = 2;
        assert_ne!(h1, seal_hash(&[0; 32], &t));
        let mut t = s.clone();
        t.entries.push((2, [0; DIGEST_LEN]));
        assert_ne!(h1, seal_hash(&[0; 32], &t));
        let mut t = s.clone();
        t.month = "2026-12-01".into();
        assert_ne!(h1, seal_hash(&[0; 32], &t));
        let mut t = s.clone();
        t.hi = 11;
        assert_ne!(h1, seal_hash(&[0; 32], &t));
    }

    #[test]
    fn packing() {
        let ds = vec![[1u8; DIGEST_LEN], [2u8; DIGEST_LEN]];
        let p = pack(ds.clone());
        assert_eq!(p.len(), 2 * DIGEST_LEN);
        assert_eq!(unpack(&p), Some(ds));
        assert_eq!(unpack(&p[1..]), None);
        assert_eq!(unpack(&[]), Some(vec![]));
    }

    proptest! {
        #[test]
        fn any_text_makes_valid_json(names in prop::collection::vec(".{0,12}", 1..6),
                                     values in prop::collection::vec(prop::option::of(".{0,40}"), 6),
                                     kinds in prop::collection::vec(0u8..3, 6)) {
            let mut o = Object::new();
            for (i, n) in names.iter().enumerate() {
                let kind = [Kind::Number, Kind::Bool, Kind::Text][kinds[i] as usize];
                o.value(n, kind, values[i].as_deref());
            }
            let text = o.finish();
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert!(v.is_object());
        }

        #[test]
        fn strings_round_trip(s in "\\PC*|[\\x00-\\x1f\"\\\\]*") {
            let mut out = String::new();
            push_string(&mut out, &s);
            let v: String = serde_json::from_str(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(v, s);
        }
    }
}
