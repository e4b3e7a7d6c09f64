//! The tenant context: which variable holds it, and what its text means. Pure.
//!
//! The context is a custom setting (`app.current_tenant_id` unless `floe.tenant_setting`
//! names another), set per transaction with `SET LOCAL`. An unset or empty variable means
//! "no tenant": every tenant-isolated statement then fails (fail closed). So does a tenant
//! set outside the current transaction, unless `floe.session_tenant` allows it ([`scope`]).

use std::fmt;
use uuid::Uuid;

/// Why there is no usable tenant in the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextError {
    /// The variable is missing or empty.
    Unset { setting: String },
    /// The variable holds something that is not a uuid.
    Malformed { setting: String, value: String },
    /// `floe.tenant_setting` itself is not a usable custom variable name.
    BadSettingName { name: String },
    /// The variable holds a tenant, but was set outside the current transaction (for the
    /// session, by ALTER ROLE/DATABASE ... SET, or by the connection's options) and
    /// `floe.session_tenant` is off.
    SessionWide { setting: String },
    /// The current or session user must set its tenant with a signed token, and no token
    /// verified this tenant in this transaction.
    TokenRequired { setting: String },
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContextError::Unset { setting } => write!(f, "no tenant is set ({setting} is empty)"),
            ContextError::Malformed { setting, value } => {
                write!(f, "tenant context {setting} = \"{value}\" is not a uuid")
            }
            ContextError::SessionWide { setting } => write!(
                f,
                "the tenant context {setting} was set for the session, not in this transaction"
            ),
            ContextError::TokenRequired { setting } => write!(
                f,
                "this role must set its tenant with floe.set_tenant_token(): {setting} set any other way is refused"
            ),
            ContextError::BadSettingName { name } => {
                write!(
                    f,
                    "floe.tenant_setting \"{name}\" is not a custom variable name"
                )
            }
        }
    }
}

/// Splits and checks a custom variable name such as `app.current_tenant_id`: two or more
/// dot-separated parts, each a plain identifier (letters, digits, `_`, `$`; not starting with
/// a digit or `$`). Only such names can be `SET` without quoting surprises, and the first
/// part may not be `floe` (that prefix is reserved for floe's own settings).
pub fn setting_parts(name: &str) -> Result<Vec<&str>, ContextError> {
    let bad = || ContextError::BadSettingName {
        name: name.to_string(),
    };
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() < 2 || parts[0].eq_ignore_ascii_case("floe") {
        return Err(bad());
    }
    for part in &parts {
        let mut chars = part.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            return Err(bad());
        }
    }
    if name.len() > 63 * 2 {
        return Err(bad());
    }
    Ok(parts)
}

/// Parses the context variable's text. `None` (never set in this session) and blank both mean
/// "unset"; anything else must be a uuid in one of the spellings Postgres accepts.
pub fn parse_tenant(setting: &str, raw: Option<&str>) -> Result<Uuid, ContextError> {
    let text = raw.map(str::trim).unwrap_or("");
    if text.is_empty() {
        return Err(ContextError::Unset {
            setting: setting.to_string(),
        });
    }
    // The uuid crate also reads "urn:uuid:..."; Postgres's uuid type does not, and the two
    // must agree on what a tenant id is.
    let parsed = if text
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
    {
        Err(())
    } else {
        Uuid::parse_str(text).map_err(|_| ())
    };
    parsed.map_err(|_| ContextError::Malformed {
        setting: setting.to_string(),
        value: text.chars().take(80).collect(),
    })
}

/// Whether a parsed tenant counts: set in this transaction, or session-wide tenants allowed.
pub fn scope(
    setting: &str,
    id: Uuid,
    set_in_this_transaction: bool,
    session_allowed: bool,
) -> Result<Uuid, ContextError> {
    if set_in_this_transaction || session_allowed {
        Ok(id)
    } else {
        Err(ContextError::SessionWide {
            setting: setting.to_string(),
        })
    }
}

/// A one-entry cache of the last parsed context: `current_tenant()` runs for every statement
/// (and, in a careless policy, every row), but the variable rarely changes.
#[derive(Debug, Default)]
pub struct ParseCache {
    last: Option<(String, String, Uuid)>,
}

impl ParseCache {
    /// Parses `raw` as the value of `setting` (whose name is checked on a cache miss).
    pub fn parse(&mut self, setting: &str, raw: Option<&str>) -> Result<Uuid, ContextError> {
        if let (Some((s, r, id)), Some(raw)) = (&self.last, raw) {
            if s == setting && r == raw {
                return Ok(*id);
            }
        }
        setting_parts(setting)?;
        let id = parse_tenant(setting, raw)?;
        if let Some(raw) = raw {
            self.last = Some((setting.to_string(), raw.to_string(), id));
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: &str = "app.current_tenant_id";

    #[test]
    fn setting_names() {
        assert_eq!(setting_parts(S).unwrap(), vec!["app", "current_tenant_id"]);
        assert!(setting_parts("myapp.tenant.v2").is_ok());
        for bad in [
            "",
            "tenant",
            "app.",
            ".x",
            "app.te nant",
            "app.x;drop",
            "floe.tenant",
            "1app.x",
            "app.\"x\"",
        ] {
            assert!(setting_parts(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn parse_states() {
        assert!(matches!(
            parse_tenant(S, None),
            Err(ContextError::Unset { .. })
        ));
        assert!(matches!(
            parse_tenant(S, Some("  ")),
            Err(ContextError::Unset { .. })
        ));
        assert!(matches!(
            parse_tenant(S, Some("42")),
            Err(ContextError::Malformed { .. })
        ));
        let id = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        assert_eq!(parse_tenant(S, Some(id)).unwrap().to_string(), id);
        // Postgres also accepts braces, no hyphens and upper case.
        assert_eq!(
            parse_tenant(S, Some("{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}"))
                .unwrap()
                .to_string(),
            id
        );
        assert_eq!(
            parse_tenant(S, Some("a0eebc999c0b4ef8bb6d6bb9bd380a11"))
                .unwrap()
                .to_string(),
            id
        );
    }

    #[test]
    fn a_session_wide_tenant_counts_only_when_allowed() {
        let id = parse_tenant(S, Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")).unwrap();
        assert_eq!(scope(S, id, true, false), Ok(id));
        assert_eq!(scope(S, id, false, true), Ok(id));
        let err = scope(S, id, false, false).unwrap_err();
        assert_eq!(
            err,
            ContextError::SessionWide {
                setting: S.to_string()
            }
        );
        assert!(err.to_string().contains("not in this transaction"), "{err}");
        assert!(
            !err.to_string().contains("a0eebc99"),
            "never echoes the tenant: {err}"
        );
    }

    #[test]
    fn cache_follows_the_variable() {
        let mut cache = ParseCache::default();
        let a = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        let b = "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        assert_eq!(cache.parse(S, Some(a)).unwrap().to_string(), a);
        assert_eq!(cache.parse(S, Some(a)).unwrap().to_string(), a);
        assert_eq!(cache.parse(S, Some(b)).unwrap().to_string(), b);
        assert!(
            cache.parse(S, Some("")).is_err(),
            "a cleared context is never served from cache"
        );
        assert!(cache.parse(S, None).is_err());
        assert!(cache.parse("other.var", Some("junk")).is_err());
    }

    proptest! {
        #[test]
        fn any_uuid_round_trips(bytes in any::<[u8; 16]>()) {
            let id = Uuid::from_bytes(bytes);
            prop_assert_eq!(parse_tenant(S, Some(&id.to_string())).unwrap(), id);
            prop_assert_eq!(parse_tenant(S, Some(&id.simple().to_string())).unwrap(), id);
        }

        #[test]
        fn cache_agrees_with_parse(values in prop::collection::vec(
            prop_oneof![
                Just(None),
                Just(Some(String::new())),
                Just(Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".to_string())),
                Just(Some("b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".to_string())),
                ".{0,40}".prop_map(Some),
            ], 1..20)) {
            let mut cache = ParseCache::default();
            for v in values {
                prop_assert_eq!(cache.parse(S, v.as_deref()), parse_tenant(S, v.as_deref()));
                prop_assert!(cache.parse("floe.bad", v.as_deref()).is_err());
            }
        }

        #[test]
        fn setting_parts_never_panics(name in ".{0,80}") {
            let _ = setting_parts(&name);
        }
    }
}
