//! What `floe.health()` concludes from the facts its glue collects. Pure: no pgrx, no SPI.
//!
//! Each check is a function from plain facts to a [`Check`], so every branch is unit-tested
//! without a server. Check names are `<module>.<what>`; later modules add their own.

use crate::check::Check;

/// Splits a library-list setting such as `shared_preload_libraries` the way the server does
/// (comma separated, blanks trimmed, `"double quoted"` names with `""` for a quote, no case
/// folding) and reports whether `library` is among them, under any of the spellings the
/// server accepts: `floe`, `floe.so`, `$libdir/floe`, `/abs/path/floe.so`.
pub fn lists_library(setting: &str, library: &str) -> bool {
    split_library_list(setting)
        .iter()
        .any(|entry| library_stem(entry) == library)
}

fn split_library_list(setting: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = setting.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        item.push('"');
                    } else {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
            while chars.peek().is_some_and(|&c| c != ',') {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
            item.truncate(item.trim_end().len());
        }
        if !item.is_empty() {
            out.push(item);
        }
        if chars.next().is_none() {
            return out;
        }
    }
}

fn library_stem(entry: &str) -> &str {
    let base = entry.rsplit('/').next().unwrap_or(entry);
    base.strip_suffix(".so").unwrap_or(base)
}

/// `core.version`: the loaded library against the installed extension's version.
pub fn version_check(library: &str, installed: Option<&str>, server: &str) -> Check {
    const NAME: &str = "core.version";
    match installed {
        Some(v) if v == library => {
            Check::ok(NAME, format!("floe {library} on PostgreSQL {server}"))
        }
        Some(v) => Check::warn(
            NAME,
            format!("the loaded library is floe {library} but the installed extension is {v}"),
            "Run ALTER EXTENSION floe UPDATE in this database.",
        ),
        None => Check::warn(
            NAME,
            format!("floe {library} is loaded but the extension is not installed in this database"),
            "Run CREATE EXTENSION floe in this database.",
        ),
    }
}

/// What the server's configuration says about preloading floe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreloadFacts {
    /// `_PG_init` ran in the postmaster's preload phase (the ground truth for this server).
    pub loaded_at_start: bool,
    /// The configuration files list floe for the next start; `None` when the caller may not
    /// read `pg_file_settings` and a restart is pending, so the next value is unknown.
    pub listed_for_next_start: Option<bool>,
}

/// `core.preload`: whether floe was loaded at server start and whether it will be next time.
pub fn preload_check(facts: PreloadFacts) -> Check {
    const NAME: &str = "core.preload";
    match (facts.loaded_at_start, facts.listed_for_next_start) {
        (true, Some(true)) => Check::ok(NAME, "floe is loaded through shared_preload_libraries".into()),
        (true, None) => Check::ok(
            NAME,
            "floe is loaded through shared_preload_libraries; a change to that setting is pending a restart".into(),
        ),
        (true, Some(false)) => Check::warn(
            NAME,
            "floe was preloaded at start but is no longer in shared_preload_libraries; the next restart turns its background workers off".into(),
            "Add floe back to shared_preload_libraries, or accept running maintenance by hand.",
        ),
        (false, Some(true)) => Check::warn(
            NAME,
            "floe is listed in shared_preload_libraries but the server has not been restarted since".into(),
            "Restart PostgreSQL to start floe's background workers.",
        ),
        (false, _) => Check::warn(
            NAME,
            "floe is not in shared_preload_libraries: background scheduling is off; every floe function still works when called by hand".into(),
            "Add floe to shared_preload_libraries in postgresql.conf and restart PostgreSQL.",
        ),
    }
}

/// `scheduler.running`: whether a floe scheduler worker serves this database.
/// `core.standby`: whether this server is a primary or a hot standby, and what holds there.
pub fn standby_check(in_recovery: bool) -> Check {
    const NAME: &str = "core.standby";
    if in_recovery {
        Check::ok(
            NAME,
            "a hot standby: floe's data reads here as replayed from the primary (content, views, isolation); no floe worker runs until it is promoted, and the job, queue and maintenance checks describe the primary's state as of the last replay".into(),
        )
    } else {
        Check::ok(NAME, "a primary: floe's workers and writes run here".into())
    }
}

/// `scheduler.running`: a scheduler worker serves the database (on a standby none should:
/// it starts when the standby is promoted).
pub fn scheduler_check(
    database: &str,
    workers: i64,
    loaded_at_start: bool,
    in_recovery: bool,
) -> Check {
    const NAME: &str = "scheduler.running";
    if in_recovery {
        return Check::ok(
            NAME,
            format!("a hot standby: the scheduler of \"{database}\" starts when it is promoted"),
        );
    }
    if workers > 0 {
        return Check::ok(
            NAME,
            format!("a floe scheduler worker is running for database \"{database}\""),
        );
    }
    let hint = if loaded_at_start {
        "Run due jobs by hand with floe.run_due_jobs() meanwhile; the server log says why no scheduler worker runs."
    } else {
        "The scheduler needs floe in shared_preload_libraries; run due jobs by hand with floe.run_due_jobs() meanwhile."
    };
    Check::warn(
        NAME,
        format!("no floe scheduler worker is running for database \"{database}\""),
        hint,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;
    use proptest::prelude::*;

    #[test]
    fn library_list_spellings() {
        assert!(lists_library("floe", "floe"));
        assert!(lists_library("pg_stat_statements, floe", "floe"));
        assert!(lists_library("$libdir/floe", "floe"));
        assert!(lists_library("/usr/lib/postgresql/15/lib/floe.so", "floe"));
        assert!(lists_library("\"floe\",auto_explain", "floe"));
        assert!(!lists_library("", "floe"));
        assert!(!lists_library("floe_extra, pg_floe", "floe"));
        assert!(
            !lists_library("FLOE", "floe"),
            "library names are case sensitive"
        );
        assert!(!lists_library("\"flo\"\"e\"", "floe"));
    }

    #[test]
    fn preload_check_covers_every_state() {
        let facts = |loaded_at_start, listed_for_next_start| PreloadFacts {
            loaded_at_start,
            listed_for_next_start,
        };
        assert_eq!(preload_check(facts(true, Some(true))).status, Status::Ok);
        assert_eq!(preload_check(facts(true, None)).status, Status::Ok);
        for (loaded, next) in [
            (true, Some(false)),
            (false, Some(true)),
            (false, Some(false)),
            (false, None),
        ] {
            let check = preload_check(facts(loaded, next));
            assert_eq!(check.status, Status::Warn);
            assert!(check.hint.is_some(), "every warning says what to do");
        }
        assert!(preload_check(facts(false, Some(true)))
            .detail
            .contains("not been restarted"));
    }

    #[test]
    fn version_check_states() {
        assert_eq!(
            version_check("0.1.0", Some("0.1.0"), "15.18").status,
            Status::Ok
        );
        let stale = version_check("0.2.0", Some("0.1.0"), "15.18");
        assert_eq!(stale.status, Status::Warn);
        assert!(stale.hint.unwrap().contains("ALTER EXTENSION floe UPDATE"));
        assert_eq!(version_check("0.1.0", None, "15.18").status, Status::Warn);
    }

    #[test]
    fn scheduler_check_states() {
        assert_eq!(scheduler_check("oltp", 1, true, false).status, Status::Ok);
        let standby = scheduler_check("oltp", 0, true, true);
        assert_eq!(standby.status, Status::Ok);
        assert!(standby.detail.contains("starts when it is promoted"));
        assert!(standby_check(true).detail.starts_with("a hot standby"));
        assert!(standby_check(false).detail.starts_with("a primary"));
        let off = scheduler_check("oltp", 0, false, false);
        assert_eq!(off.status, Status::Warn);
        let hint = off.hint.unwrap();
        assert!(hint.contains("shared_preload_libraries") && hint.contains("run_due_jobs"));
    }

    /// Library names, with `floe` and near-misses of it drawn often enough to matter.
    fn plain_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("floe".to_string()),
            Just("floe_x".to_string()),
            Just("pg_floe".to_string()),
            "[a-z_][a-z0-9_]{0,12}",
        ]
    }

    /// Writes a name the way a person might in postgresql.conf: bare or quoted, maybe with a
    /// `$libdir/` prefix or a `.so` suffix, with blanks around it.
    fn spelled(name: String, quoted: bool, libdir: bool, suffix: bool, pad: usize) -> String {
        let mut s = name;
        if libdir {
            s = format!("$libdir/{s}");
        }
        if suffix {
            s.push_str(".so");
        }
        if quoted {
            s = format!("\"{}\"", s.replace('"', "\"\""));
        }
        format!("{}{s}{}", " ".repeat(pad), " ".repeat(pad))
    }

    proptest! {
        #[test]
        fn library_membership_matches_the_list(
            entries in prop::collection::vec(
                (plain_name(), any::<bool>(), any::<bool>(), any::<bool>(), 0usize..3), 0..6),
        ) {
            let expected = entries.iter().any(|(n, ..)| n == "floe");
            let setting = entries
                .into_iter()
                .map(|(n, q, l, s, p)| spelled(n, q, l, s, p))
                .collect::<Vec<_>>()
                .join(",");
            prop_assert_eq!(lists_library(&setting, "floe"), expected, "setting {:?}", setting);
        }

        #[test]
        fn library_list_parse_never_panics(text in ".{0,40}") {
            let _ = lists_library(&text, "floe");
        }
    }
}
