//! One row of `floe.health()` and its severity, the type every module's checks return.
//! Pure: no pgrx. (A leaf of its own, so that the modules and `health`, which gathers their
//! checks, do not import each other.)

use std::fmt;

/// Severity of one health check, ordered `Ok < Warn < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Ok,
    Warn,
    Critical,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::Ok, Status::Warn, Status::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Critical => "critical",
        }
    }

    /// Parses a status name, ignoring case and surrounding blanks.
    pub fn parse(text: &str) -> Option<Status> {
        let text = text.trim();
        Status::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `floe.health()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub hint: Option<String>,
}

impl Check {
    pub fn ok(name: &'static str, detail: String) -> Check {
        Check {
            name,
            status: Status::Ok,
            detail,
            hint: None,
        }
    }

    pub fn warn(name: &'static str, detail: String, hint: &str) -> Check {
        Check {
            name,
            status: Status::Warn,
            detail,
            hint: Some(hint.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn status_parse_and_order() {
        assert_eq!(Status::parse("ok"), Some(Status::Ok));
        assert_eq!(Status::parse(" WARN "), Some(Status::Warn));
        assert_eq!(Status::parse("Critical"), Some(Status::Critical));
        assert_eq!(Status::parse("error"), None);
        assert_eq!(Status::parse(""), None);
        assert!(Status::Ok < Status::Warn && Status::Warn < Status::Critical);
    }

    proptest! {
        #[test]
        fn status_round_trips(idx in 0usize..3, upper in any::<bool>()) {
            let status = Status::ALL[idx];
            let text = if upper { status.as_str().to_uppercase() } else { status.as_str().to_string() };
            prop_assert_eq!(Status::parse(&text), Some(status));
        }

        #[test]
        fn parse_never_panics(text in ".{0,40}") {
            let _ = Status::parse(&text);
        }
    }
}
