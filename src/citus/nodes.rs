//! The Citus cluster as `floe.health()` sees it from the coordinator (pure): every worker must
//! have floe, at the coordinator's version. Citus creates floe on a worker it adds, but a
//! worker can lose it (DROP EXTENSION there, a node restored from an older backup) or lag a
//! version behind after an update: the shards' policies and guards there would then be
//! missing or differ. Also the shard id a shard's name carries.

use crate::check::{Check, Status};

/// What one worker answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Worker {
    /// floe's version there (`None`: not installed).
    Answered(Option<String>),
    /// The coordinator could not ask it (the error).
    Unreachable(String),
}

/// `citus.workers`: ok when every worker has floe at `version`; critical when one lacks it
/// (its shards lose floe's guards and policies refer to a missing function) or cannot be
/// asked; warn when one runs another version.
pub fn workers_check(version: &str, workers: &[(String, Worker)]) -> Check {
    const NAME: &str = "citus.workers";
    let mut status = Status::Ok;
    let mut problems = Vec::new();
    for (node, answer) in workers {
        match answer {
            Worker::Answered(Some(v)) if v == version => {}
            Worker::Answered(Some(v)) => {
                status = status.max(Status::Warn);
                problems.push(format!("{node} has floe {v}"));
            }
            Worker::Answered(None) => {
                status = Status::Critical;
                problems.push(format!("{node} has no floe"));
            }
            Worker::Unreachable(e) => {
                status = Status::Critical;
                problems.push(format!("{node} cannot be asked ({e})"));
            }
        }
    }
    if problems.is_empty() {
        return Check::ok(
            NAME,
            format!("{} worker(s), each with floe {version}", workers.len()),
        );
    }
    Check {
        name: NAME,
        status,
        detail: format!("coordinator has floe {version}; {}", problems.join("; ")),
        hint: Some(
            "On each worker named: CREATE EXTENSION floe (or ALTER EXTENSION floe UPDATE), with the same floe build installed there; Citus propagates floe only when the coordinator creates or updates it.".into(),
        ),
    }
}

/// The shard id a Citus shard's name ends with (`leads_102008`: 102008).
pub fn shard_id_of(name: &str) -> Option<i64> {
    let (_, digits) = name.rsplit_once('_')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ids() {
        assert_eq!(shard_id_of("leads_102008"), Some(102008));
        assert_eq!(shard_id_of("a_long_name_3b5e9f_102008"), Some(102008));
        assert_eq!(shard_id_of("leads"), None);
        assert_eq!(shard_id_of("leads_"), None);
        assert_eq!(shard_id_of("leads_12a"), None);
        assert_eq!(shard_id_of("leads_+12"), None);
        assert_eq!(shard_id_of("leads_99999999999999999999"), None);
    }

    #[test]
    fn every_worker_at_the_coordinators_version() {
        let w = |n: &str, a: Worker| (n.to_string(), a);
        let ok = workers_check(
            "0.10.0",
            &[w("a:1", Worker::Answered(Some("0.10.0".into())))],
        );
        assert_eq!(ok.status, Status::Ok);
        assert_eq!(ok.detail, "1 worker(s), each with floe 0.10.0");
        let older = workers_check(
            "0.10.0",
            &[w("a:1", Worker::Answered(Some("0.9.0".into())))],
        );
        assert_eq!(older.status, Status::Warn);
        assert!(
            older.detail.contains("a:1 has floe 0.9.0"),
            "{}",
            older.detail
        );
        let none = workers_check(
            "0.10.0",
            &[
                w("a:1", Worker::Answered(Some("0.9.0".into()))),
                w("b:2", Worker::Answered(None)),
            ],
        );
        assert_eq!(none.status, Status::Critical);
        assert!(none.detail.contains("b:2 has no floe"), "{}", none.detail);
        let down = workers_check("0.10.0", &[w("c:3", Worker::Unreachable("timeout".into()))]);
        assert_eq!(down.status, Status::Critical);
        assert_eq!(workers_check("0.10.0", &[]).status, Status::Ok);
    }
}
