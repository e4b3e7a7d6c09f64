//! floe's error boundary.
//!
//! Every module keeps its own error enum in pure code (no pgrx) and converts it into
//! [`FloeError`] in its `api.rs`. [`FloeError`] is the one place where an error gets its
//! SQLSTATE, message, detail and hint; `#[pg_extern]` functions return
//! `Result<T, ErrorReport>` (spelled out: pgrx's schema generator needs to see `Result`) and `?` does the rest, so every failure reaches the client with
//! a deliberate SQLSTATE instead of pgrx's generic one.

pub use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;
use std::fmt;

/// What went wrong, classified by what the caller can do about it.
///
/// Each variant maps to exactly one SQLSTATE (see [`FloeError::sqlstate`]); the fields are
/// the parts of the message, so call sites describe the problem rather than format prose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FloeError {
    /// 22023 `invalid_parameter_value`: an argument has a value floe cannot use.
    InvalidArgument {
        argument: &'static str,
        value: String,
        expected: String,
    },
    /// 42501 `insufficient_privilege`: the caller (or the tenant context) may not do this.
    PermissionDenied {
        message: String,
        detail: Option<String>,
        hint: String,
    },
    /// 42703 `undefined_column`: a named column does not exist.
    UndefinedColumn {
        table: String,
        column: String,
        hint: String,
    },
    /// 55000 `object_not_in_prerequisite_state`: the object exists but is in the wrong state.
    WrongState { message: String, hint: String },
    /// 42704 `undefined_object`: a named floe object (queue, job, set...) does not exist.
    NotFound {
        kind: &'static str,
        name: String,
        hint: String,
    },
    /// 42710 `duplicate_object`: a named floe object exists already.
    AlreadyExists {
        kind: &'static str,
        name: String,
        hint: String,
    },
    /// 42P17 `invalid_object_definition`: the objects as they stand contradict the request
    /// (a partition that would overlap another).
    InvalidDefinition {
        message: String,
        detail: Option<String>,
        hint: String,
    },
    /// 42809 `wrong_object_type`: the object exists but is not of the kind floe needs (a
    /// table where a materialized view is expected).
    WrongObjectType { message: String, hint: String },
    /// 55P03 `lock_not_available`: a lock was not granted within floe's lock timeout.
    LockNotAvailable { message: String, hint: String },
    /// A Postgres ERROR caught on the way (in a subtransaction), passed on with its own
    /// SQLSTATE and floe's context in front of the message.
    Sql {
        code: PgSqlErrorCode,
        message: String,
        detail: Option<String>,
        hint: String,
    },
    /// XX001 `data_corrupted`: stored bytes fail their own integrity checks.
    Corrupted { message: String, hint: String },
    /// 22P03 `invalid_binary_representation`: bytes that are not in floe's format at all (a
    /// value that is not a floe frame, or one of a later format version).
    InvalidBinary { message: String, hint: String },
    /// 54000 `program_limit_exceeded`: a value beyond a size floe can store.
    TooLarge { message: String, hint: String },
    /// 0A000 `feature_not_supported`: valid input that this build cannot handle.
    NotSupported { message: String, hint: String },
    /// XX000 `internal_error`: an invariant of floe itself is broken. Seeing one is a bug.
    Internal { message: String },
}

impl FloeError {
    /// The SQLSTATE a client sees.
    pub fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            FloeError::InvalidArgument { .. } => ERRCODE_INVALID_PARAMETER_VALUE,
            FloeError::PermissionDenied { .. } => ERRCODE_INSUFFICIENT_PRIVILEGE,
            FloeError::UndefinedColumn { .. } => ERRCODE_UNDEFINED_COLUMN,
            FloeError::WrongState { .. } => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            FloeError::NotFound { .. } => ERRCODE_UNDEFINED_OBJECT,
            FloeError::AlreadyExists { .. } => ERRCODE_DUPLICATE_OBJECT,
            FloeError::InvalidDefinition { .. } => ERRCODE_INVALID_OBJECT_DEFINITION,
            FloeError::WrongObjectType { .. } => ERRCODE_WRONG_OBJECT_TYPE,
            FloeError::LockNotAvailable { .. } => ERRCODE_LOCK_NOT_AVAILABLE,
            FloeError::Sql { code, .. } => *code,
            FloeError::Corrupted { .. } => ERRCODE_DATA_CORRUPTED,
            FloeError::InvalidBinary { .. } => ERRCODE_INVALID_BINARY_REPRESENTATION,
            FloeError::TooLarge { .. } => ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            FloeError::NotSupported { .. } => ERRCODE_FEATURE_NOT_SUPPORTED,
            FloeError::Internal { .. } => ERRCODE_INTERNAL_ERROR,
        }
    }

    /// The primary message (no trailing period, lower case, as Postgres writes them).
    pub fn message(&self) -> String {
        match self {
            FloeError::InvalidArgument {
                argument, value, ..
            } => format!("invalid value for argument \"{argument}\": \"{value}\""),
            FloeError::NotFound { kind, name, .. } => format!("{kind} \"{name}\" does not exist"),
            FloeError::UndefinedColumn { table, column, .. } => {
                format!("column \"{column}\" of relation {table} does not exist")
            }
            FloeError::AlreadyExists { kind, name, .. } => {
                format!("{kind} \"{name}\" already exists")
            }
            FloeError::PermissionDenied { message, .. }
            | FloeError::WrongState { message, .. }
            | FloeError::InvalidDefinition { message, .. }
            | FloeError::WrongObjectType { message, .. }
            | FloeError::LockNotAvailable { message, .. }
            | FloeError::Sql { message, .. }
            | FloeError::Corrupted { message, .. }
            | FloeError::InvalidBinary { message, .. }
            | FloeError::TooLarge { message, .. }
            | FloeError::NotSupported { message, .. }
            | FloeError::Internal { message } => message.clone(),
        }
    }

    /// What the caller can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            FloeError::InvalidArgument { expected, .. } => Some(format!("Expected {expected}.")),
            FloeError::PermissionDenied { hint, .. }
            | FloeError::UndefinedColumn { hint, .. }
            | FloeError::WrongState { hint, .. }
            | FloeError::NotFound { hint, .. }
            | FloeError::AlreadyExists { hint, .. }
            | FloeError::InvalidDefinition { hint, .. }
            | FloeError::WrongObjectType { hint, .. }
            | FloeError::LockNotAvailable { hint, .. }
            | FloeError::Sql { hint, .. }
            | FloeError::Corrupted { hint, .. }
            | FloeError::InvalidBinary { hint, .. }
            | FloeError::TooLarge { hint, .. }
            | FloeError::NotSupported { hint, .. } => Some(hint.clone()),
            FloeError::Internal { .. } => Some(
                "This is a bug in floe; please report it with the statement that raised it.".into(),
            ),
        }
    }
}

impl FloeError {
    /// Supporting detail, when there is more to say than one line.
    pub fn detail(&self) -> Option<String> {
        match self {
            FloeError::PermissionDenied { detail, .. }
            | FloeError::InvalidDefinition { detail, .. }
            | FloeError::Sql { detail, .. } => detail.clone(),
            _ => None,
        }
    }

    /// Raises this error as a Postgres ERROR (for code that cannot return a `Result`, such as
    /// trigger functions).
    #[track_caller]
    pub fn raise(self) -> ! {
        ErrorReport::from(self).report(pgrx::PgLogLevel::ERROR);
        unreachable!("an ERROR report does not return")
    }
}

/// 22023 for `argument`: its `value` is not what floe can use (`expected`).
pub fn invalid(argument: &'static str, value: impl Into<String>, expected: &str) -> FloeError {
    FloeError::InvalidArgument {
        argument,
        value: value.into(),
        expected: expected.into(),
    }
}

/// A NULL where floe needs a value: 22023, not pgrx's generic "must not be null".
pub fn required<T>(value: Option<T>, argument: &'static str) -> Result<T, FloeError> {
    value.ok_or_else(|| invalid(argument, "NULL", "a value (this argument cannot be NULL)"))
}

impl fmt::Display for FloeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for FloeError {}

impl From<FloeError> for ErrorReport {
    #[track_caller]
    fn from(err: FloeError) -> Self {
        let mut report = ErrorReport::new(err.sqlstate(), err.message(), "floe");
        if let Some(hint) = err.hint() {
            report = report.set_hint(hint);
        }
        if let Some(detail) = err.detail() {
            report = report.set_detail(detail);
        }
        report
    }
}

impl From<pgrx::spi::SpiError> for FloeError {
    fn from(err: pgrx::spi::SpiError) -> Self {
        FloeError::Internal {
            message: format!("SPI failed: {err}"),
        }
    }
}

/// The stable keys that start the DETAIL of floe's tenant-context errors (all SQLSTATE 42501,
/// like Postgres's own row level security violations and missing grants, which carry no such
/// key): applications tell the cases apart by the key, never by the message text.
pub mod tenant_key {
    /// No tenant in the context (an application bug: a transaction forgot set_tenant).
    pub const NO_TENANT: &str = "floe.no_tenant";
    /// A tenant set outside the current transaction (session-wide, role default).
    pub const SESSION_TENANT: &str = "floe.session_tenant";
    /// The context holds something that is not a uuid.
    pub const MALFORMED_TENANT: &str = "floe.malformed_tenant";
    /// The role must set its tenant with a signed token.
    pub const TOKEN_REQUIRED: &str = "floe.token_required";
    /// A tenant token was refused (empty, forged, expired, ...).
    pub const BAD_TOKEN: &str = "floe.bad_token";
    /// A row, or an argument, of another tenant than the context's (an attack or a bug).
    pub const OTHER_TENANT: &str = "floe.other_tenant";
    /// An attempt to change the tenant of a row.
    pub const TENANT_CHANGE: &str = "floe.tenant_change";
    /// Admin mode without the tenant an insert needs.
    pub const ADMIN_WITHOUT_TENANT: &str = "floe.admin_without_tenant";
    /// A function that serves every tenant (a queue worker's dequeue), called while the
    /// transaction serves one tenant.
    pub const TENANT_CONTEXT: &str = "floe.tenant_context";
}

/// A 42501 of the tenant context: the DETAIL starts with `key` (see [`tenant_key`]).
pub fn tenant_denied(
    key: &'static str,
    message: String,
    detail: Option<&str>,
    hint: String,
) -> FloeError {
    FloeError::PermissionDenied {
        message,
        detail: Some(match detail {
            Some(d) => format!("{key}: {d}"),
            None => key.to_string(),
        }),
        hint,
    }
}
