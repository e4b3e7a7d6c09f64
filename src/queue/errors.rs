//! The queue's errors: the queue or job that is not there, the queue the caller may not
//! use, the job that cannot be finished (machinery: `catalog.rs` and the files of each step
//! raise them).

use super::retry;
use crate::error::FloeError;

pub(super) fn no_queue(name: &str) -> FloeError {
    FloeError::NotFound {
        kind: "queue",
        name: name.to_string(),
        hint: "floe.queue_settings lists the queues you can use; floe.create_queue() makes one."
            .into(),
    }
}

/// 42501 for a job of a queue the caller may not use (without naming the queue).
pub(super) fn not_member_job(id: i64) -> FloeError {
    FloeError::PermissionDenied {
        message: format!("permission denied for job {id}"),
        detail: None,
        hint: "A queue's jobs are handled by its owner role and that role's members.".into(),
    }
}

pub(super) fn not_member(name: &str) -> FloeError {
    FloeError::PermissionDenied {
        message: format!("permission denied for queue \"{name}\""),
        detail: None,
        hint: "A queue is used by its owner role and that role's members: GRANT the owner role to this role.".into(),
    }
}

pub(super) fn refused(id: i64, why: retry::Refusal) -> FloeError {
    let (message, hint) = why.explain(id);
    match why {
        retry::Refusal::NoSuchJob => FloeError::NotFound {
            kind: "job",
            name: id.to_string(),
            hint: hint.into(),
        },
        _ => FloeError::WrongState {
            message,
            hint: hint.into(),
        },
    }
}
