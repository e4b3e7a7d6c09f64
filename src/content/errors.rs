//! The content store's errors: what a codec error means to the caller (its SQLSTATE and
//! hint), the body that is not there (machinery: the files of each step raise them).

use super::codec::CodecError;
use crate::error::{invalid, FloeError};

pub(super) fn codec_error(e: CodecError) -> FloeError {
    let message = e.to_string();
    match e {
        CodecError::Foreign(_) => FloeError::InvalidBinary {
            message,
            hint: "floe.decompress() reads frames made by floe.compress() or stored by the content store.".into(),
        },
        CodecError::Corrupted(_) | CodecError::WrongDictionary { .. } => FloeError::Corrupted {
            message,
            hint: "The bytes changed after floe wrote them; restore them from a backup. floe.frame_info() shows what the header claims.".into(),
        },
        CodecError::UnknownCodec(name) => invalid("codec", name, "none, lz4 or zstd"),
        CodecError::BadLevel { level, .. } => invalid(
            "level",
            level.to_string(),
            "a zstd level from -7 (fastest) to 22 (smallest); 3 is zstd's default",
        ),
        CodecError::TooLarge(_) => FloeError::TooLarge {
            message,
            hint: "Store bodies under 1 GB, or split them.".into(),
        },
        CodecError::DictionaryNotSupported(_) => invalid(
            "dictionary",
            "given",
            "NULL unless codec is zstd",
        ),
        CodecError::Library(_) => FloeError::WrongState {
            message,
            hint: "A dictionary needs enough varied samples: train it over more bodies (sample_rows), or a smaller dict_size.".into(),
        },
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn no_body(hash: &[u8]) -> FloeError {
    FloeError::NotFound {
        kind: "content",
        name: format!("\\x{}", hex(hash)),
        hint: "Pass a hash floe.content_put() returned for this tenant; released bodies are removed after floe.content_gc_grace.".into(),
    }
}
