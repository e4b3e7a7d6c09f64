//! floe's compressed frame: encoding, decoding and the header. Pure (no pgrx).
//!
//! A frame is self-describing, so that any frame ever written stays readable:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 1 | magic and format version: `0xF1` (high nibble `F` = floe, low nibble 1 = version 1) |
//! | 1 | 1 | codec: 0 none, 1 lz4 (block format, lz4_flex), 2 zstd (one zstd frame with its content size) |
//! | 2 | 4 | dictionary id, little-endian u32; 0 = none (only zstd uses one) |
//! | 6 | 4 | raw length, little-endian u32 |
//! | 10 | 4 | checksum: the first 4 bytes of BLAKE3(raw), little-endian u32 |
//! | 14 | .. | payload |
//!
//! Decoding checks everything it can before it allocates or trusts a byte: the magic and
//! version (a foreign or future frame is [`CodecError::Foreign`]), the header length, the
//! codec's own framing (zstd's declared content size must equal the raw length, the whole
//! payload must be one zstd frame; lz4's output must fill the raw length exactly), a bound on
//! the expansion ratio (so a corrupt length cannot make it allocate a gigabyte from a few
//! bytes), and finally the checksum of what came out. Anything else is
//! [`CodecError::Corrupted`].
//!
//! When a codec does not make the bytes smaller, the frame stores them as they are (codec
//! none), as TOAST does: a frame is never bigger than its input plus the header.

use std::fmt;

/// Magic and version of the frames this build writes.
pub const MAGIC_V1: u8 = 0xF1;
/// Length of the version-1 header.
pub const HEADER_LEN: usize = 14;
/// The largest raw body a frame may hold: what fits a `bytea` (1 GB less its header).
pub const MAX_RAW: usize = (1 << 30) - 1 - 4 - HEADER_LEN;
/// lz4's block format cannot expand a byte into more than 255 (plus a small constant).
const LZ4_MAX_RATIO: u64 = 255;
/// zstd's densest block (RLE: 4 bytes for 128 KiB) bounds its expansion.
const ZSTD_MAX_RATIO: u64 = 32_768;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    None,
    Lz4,
    Zstd,
}

impl Codec {
    pub fn id(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Lz4 => 1,
            Codec::Zstd => 2,
        }
    }

    pub fn from_id(id: u8) -> Option<Codec> {
        match id {
            0 => Some(Codec::None),
            1 => Some(Codec::Lz4),
            2 => Some(Codec::Zstd),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }

    pub fn parse(name: &str) -> Result<Codec, CodecError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Codec::None),
            "lz4" => Ok(Codec::Lz4),
            "zstd" => Ok(Codec::Zstd),
            _ => Err(CodecError::UnknownCodec(name.to_string())),
        }
    }
}

/// The zstd levels floe accepts: zstd's own range (negative levels are its fast modes).
pub fn zstd_levels() -> std::ops::RangeInclusive<i32> {
    zstd::zstd_safe::min_c_level().max(-7)..=zstd::zstd_safe::max_c_level()
}

/// What a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    pub version: u8,
    pub codec: Codec,
    pub dictionary: u32,
    pub raw_len: u32,
    pub checksum: u32,
    /// The whole frame, header included.
    pub stored_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// Not a floe frame (or one of a later format version): SQLSTATE 22P03.
    Foreign(String),
    /// A floe frame that fails its own checks: SQLSTATE XX001.
    Corrupted(String),
    /// A codec name floe does not know: SQLSTATE 22023.
    UnknownCodec(String),
    /// A level outside the codec's range: SQLSTATE 22023.
    BadLevel { codec: Codec, level: i32 },
    /// The body is larger than a frame can hold: SQLSTATE 54000.
    TooLarge(usize),
    /// A dictionary was given to a codec that has none (only zstd has): SQLSTATE 22023.
    DictionaryNotSupported(Codec),
    /// The dictionary the frame names was not supplied, or another was: SQLSTATE 22023/XX001.
    WrongDictionary { wanted: u32, given: u32 },
    /// The zstd library refused (training, a bad dictionary): SQLSTATE 22023.
    Library(String),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Foreign(why) => write!(f, "not a floe compressed frame: {why}"),
            CodecError::Corrupted(why) => write!(f, "corrupted floe frame: {why}"),
            CodecError::UnknownCodec(name) => write!(f, "unknown codec \"{name}\""),
            CodecError::BadLevel { codec, level } => {
                write!(
                    f,
                    "level {level} is out of range for codec {}",
                    codec.name()
                )
            }
            CodecError::TooLarge(len) => write!(
                f,
                "a body of {len} bytes is larger than a frame can hold ({MAX_RAW} bytes)"
            ),
            CodecError::DictionaryNotSupported(c) => {
                write!(f, "codec {} does not use a dictionary", c.name())
            }
            CodecError::WrongDictionary { wanted, given } => write!(
                f,
                "the frame needs dictionary {wanted}, but dictionary {given} was supplied"
            ),
            CodecError::Library(why) => write!(f, "zstd: {why}"),
        }
    }
}

/// The frame's checksum of `raw`: the first 4 bytes of its BLAKE3 hash.
pub fn checksum_of(hash: &blake3::Hash) -> u32 {
    let b = hash.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// A trained zstd dictionary, prepared for both directions.
pub struct Dictionary {
    pub id: u32,
    pub bytes: Vec<u8>,
    decoder: zstd::dict::DecoderDictionary<'static>,
    /// Prepared for compression, per level (preparing one at a high level costs more than
    /// compressing a body with it).
    encoders: std::sync::Mutex<Vec<(i32, std::sync::Arc<zstd::dict::EncoderDictionary<'static>>)>>,
}

impl Dictionary {
    pub fn new(id: u32, bytes: Vec<u8>) -> Result<Dictionary, CodecError> {
        if id == 0 {
            return Err(CodecError::Library("dictionary id 0 means none".into()));
        }
        // A zstd dictionary starts with its magic; raw-content dictionaries are accepted by
        // zstd too, but floe only stores trained ones.
        if bytes.len() < 8 || bytes[..4] != [0x37, 0xA4, 0x30, 0xEC] {
            return Err(CodecError::Library(format!(
                "dictionary {id} is not a trained zstd dictionary"
            )));
        }
        let decoder = zstd::dict::DecoderDictionary::copy(&bytes);
        Ok(Dictionary {
            id,
            bytes,
            decoder,
            encoders: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn encoder(&self, level: i32) -> std::sync::Arc<zstd::dict::EncoderDictionary<'static>> {
        let mut encoders = self.encoders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, e)) = encoders.iter().find(|(l, _)| *l == level) {
            return e.clone();
        }
        let e = std::sync::Arc::new(zstd::dict::EncoderDictionary::copy(&self.bytes, level));
        encoders.push((level, e.clone()));
        e
    }

    /// Memory held by the prepared dictionaries (a level-19 encoder of a 512 KiB dictionary
    /// is about 10 MiB): callers that cache dictionaries bound the cache by this.
    pub fn memory(&self) -> usize {
        let encoders = self.encoders.lock().unwrap_or_else(|e| e.into_inner());
        self.bytes.len()
            + self.decoder.as_ddict().sizeof()
            + encoders
                .iter()
                .map(|(_, e)| e.as_cdict().sizeof())
                .sum::<usize>()
    }
}

impl fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dictionary({}, {} bytes)", self.id, self.bytes.len())
    }
}

/// Reads and checks a header (not the payload).
pub fn info(frame: &[u8]) -> Result<FrameInfo, CodecError> {
    let Some(&magic) = frame.first() else {
        return Err(CodecError::Foreign("the value is empty".into()));
    };
    if magic >> 4 != 0xF {
        return Err(CodecError::Foreign(format!(
            "it starts with byte 0x{magic:02X}, not a floe frame marker"
        )));
    }
    if magic != MAGIC_V1 {
        return Err(CodecError::Foreign(format!(
            "frame format version {} is newer than this floe understands (1)",
            magic & 0xF
        )));
    }
    if frame.len() < HEADER_LEN {
        return Err(CodecError::Corrupted(format!(
            "the header is truncated ({} of {HEADER_LEN} bytes)",
            frame.len()
        )));
    }
    let u32_at =
        |at: usize| u32::from_le_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]);
    let codec = Codec::from_id(frame[1]).ok_or_else(|| {
        CodecError::Foreign(format!(
            "codec id {} is unknown to this floe (written by a newer version?)",
            frame[1]
        ))
    })?;
    let info = FrameInfo {
        version: magic & 0xF,
        codec,
        dictionary: u32_at(2),
        raw_len: u32_at(6),
        checksum: u32_at(10),
        stored_len: frame.len(),
    };
    if info.dictionary != 0 && codec != Codec::Zstd {
        return Err(CodecError::Corrupted(format!(
            "codec {} with dictionary {}",
            codec.name(),
            info.dictionary
        )));
    }
    if info.raw_len as usize > MAX_RAW {
        return Err(CodecError::Corrupted(format!(
            "raw length {} exceeds the maximum {MAX_RAW}",
            info.raw_len
        )));
    }
    let payload = (frame.len() - HEADER_LEN) as u64;
    let raw = u64::from(info.raw_len);
    let plausible = match codec {
        Codec::None => payload == raw,
        Codec::Lz4 => raw <= payload * LZ4_MAX_RATIO + 16,
        Codec::Zstd => raw <= payload * ZSTD_MAX_RATIO,
    };
    if !plausible {
        return Err(CodecError::Corrupted(format!(
            "{} payload of {payload} bytes cannot hold {raw} raw bytes (truncated?)",
            codec.name()
        )));
    }
    Ok(info)
}

/// How to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub codec: Codec,
    /// zstd's level; ignored by the others.
    pub level: i32,
}

impl Spec {
    pub fn new(codec: Codec, level: i32) -> Result<Spec, CodecError> {
        if codec == Codec::Zstd && !zstd_levels().contains(&level) {
            return Err(CodecError::BadLevel { codec, level });
        }
        Ok(Spec { codec, level })
    }
}

fn header(codec: Codec, dictionary: u32, raw_len: u32, checksum: u32, payload: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload);
    out.push(MAGIC_V1);
    out.push(codec.id());
    out.extend_from_slice(&dictionary.to_le_bytes());
    out.extend_from_slice(&raw_len.to_le_bytes());
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

/// Encodes `raw`, whose BLAKE3 hash the caller has (the content store keys rows by it).
pub fn encode_hashed(
    raw: &[u8],
    hash: &blake3::Hash,
    spec: Spec,
    dictionary: Option<&Dictionary>,
) -> Result<Vec<u8>, CodecError> {
    if raw.len() > MAX_RAW {
        return Err(CodecError::TooLarge(raw.len()));
    }
    if dictionary.is_some() && spec.codec != Codec::Zstd {
        return Err(CodecError::DictionaryNotSupported(spec.codec));
    }
    let raw_len = raw.len() as u32;
    let sum = checksum_of(hash);
    let stored = |payload: &[u8]| {
        let mut out = header(Codec::None, 0, raw_len, sum, payload.len());
        out.extend_from_slice(payload);
        out
    };
    let compressed = match spec.codec {
        Codec::None => return Ok(stored(raw)),
        Codec::Lz4 => lz4_flex::block::compress(raw),
        Codec::Zstd => {
            let prepared = dictionary.map(|d| d.encoder(spec.level));
            let mut c = match &prepared {
                Some(d) => zstd::bulk::Compressor::with_prepared_dictionary(d),
                None => zstd::bulk::Compressor::new(spec.level),
            }
            .map_err(|e| CodecError::Library(e.to_string()))?;
            // The frame's own checksum covers the raw bytes; zstd's would be a second one.
            use zstd::zstd_safe::CParameter;
            c.set_parameter(CParameter::ChecksumFlag(false))
                .and_then(|_| c.set_parameter(CParameter::ContentSizeFlag(true)))
                .map_err(|e| CodecError::Library(e.to_string()))?;
            c.compress(raw)
                .map_err(|e| CodecError::Library(e.to_string()))?
        }
    };
    if compressed.len() >= raw.len() {
        return Ok(stored(raw));
    }
    let dict_id = dictionary.map_or(0, |d| d.id);
    let mut out = header(spec.codec, dict_id, raw_len, sum, compressed.len());
    out.extend_from_slice(&compressed);
    Ok(out)
}

/// Encodes `raw` into a frame.
pub fn encode(
    raw: &[u8],
    spec: Spec,
    dictionary: Option<&Dictionary>,
) -> Result<Vec<u8>, CodecError> {
    encode_hashed(raw, &blake3::hash(raw), spec, dictionary)
}

/// Decodes a frame. `dictionary` must be the one the header names (see [`info`]) when it
/// names one.
pub fn decode(frame: &[u8], dictionary: Option<&Dictionary>) -> Result<Vec<u8>, CodecError> {
    decode_hashed(frame, dictionary).map(|(raw, _)| raw)
}

/// Decodes a frame and returns the BLAKE3 hash of the bytes too (computed for the checksum
/// anyway; the content store compares all 32 bytes with its key).
pub fn decode_hashed(
    frame: &[u8],
    dictionary: Option<&Dictionary>,
) -> Result<(Vec<u8>, blake3::Hash), CodecError> {
    let info = info(frame)?;
    let given = dictionary.map_or(0, |d| d.id);
    if info.dictionary != given {
        return Err(CodecError::WrongDictionary {
            wanted: info.dictionary,
            given,
        });
    }
    let payload = &frame[HEADER_LEN..];
    let raw_len = info.raw_len as usize;
    let raw = match info.codec {
        Codec::None => payload.to_vec(),
        Codec::Lz4 => {
            let mut out = vec![0u8; raw_len];
            let n = lz4_flex::block::decompress_into(payload, &mut out)
                .map_err(|e| CodecError::Corrupted(format!("lz4: {e}")))?;
            if n != raw_len {
                return Err(CodecError::Corrupted(format!(
                    "lz4 payload decodes to {n} bytes, the header says {raw_len}"
                )));
            }
            out
        }
        Codec::Zstd => {
            match zstd::zstd_safe::get_frame_content_size(payload) {
                Ok(Some(n)) if n == raw_len as u64 => {}
                Ok(Some(n)) => {
                    return Err(CodecError::Corrupted(format!(
                        "zstd frame declares {n} bytes, the header says {raw_len}"
                    )))
                }
                Ok(None) => {
                    return Err(CodecError::Corrupted(
                        "zstd frame without a content size".into(),
                    ))
                }
                Err(_) => return Err(CodecError::Corrupted("zstd frame header is invalid".into())),
            }
            match zstd::zstd_safe::find_frame_compressed_size(payload) {
                Ok(n) if n == payload.len() => {}
                Ok(n) => {
                    return Err(CodecError::Corrupted(format!(
                        "zstd frame ends at byte {n} of a {}-byte payload",
                        payload.len()
                    )))
                }
                Err(_) => return Err(CodecError::Corrupted("zstd frame is truncated".into())),
            }
            let mut d = match dictionary {
                Some(dict) => zstd::bulk::Decompressor::with_prepared_dictionary(&dict.decoder),
                None => zstd::bulk::Decompressor::new(),
            }
            .map_err(|e| CodecError::Library(e.to_string()))?;
            let mut out = Vec::with_capacity(raw_len);
            let n = d
                .decompress_to_buffer(payload, &mut out)
                .map_err(|e| CodecError::Corrupted(format!("zstd: {e}")))?;
            if n != raw_len {
                return Err(CodecError::Corrupted(format!(
                    "zstd payload decodes to {n} bytes, the header says {raw_len}"
                )));
            }
            out
        }
    };
    let hash = blake3::hash(&raw);
    if checksum_of(&hash) != info.checksum {
        return Err(CodecError::Corrupted(
            "the checksum of the decoded bytes does not match the header".into(),
        ));
    }
    Ok((raw, hash))
}

/// Trains a zstd dictionary of at most `max_size` bytes over `samples`.
pub fn train(samples: &[Vec<u8>], max_size: usize) -> Result<Vec<u8>, CodecError> {
    zstd::dict::from_samples(samples, max_size).map_err(|e| CodecError::Library(e.to_string()))
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
