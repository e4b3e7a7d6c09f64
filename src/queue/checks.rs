//! What `floe.queue_health()` and `floe.health()` say about queues. Pure: no pgrx, no SPI.

use crate::check::{Check, Status};

/// Microseconds.
pub type Micros = i64;

/// The alarm of one queue tier: its oldest ready job has waited longer than the queue's
/// guarantee (`max_wait`, by default 4 aging steps: by then it outranks any job that arrives).
pub fn wait_alarm(oldest_wait: Option<Micros>, max_wait: Micros) -> Option<String> {
    match oldest_wait {
        Some(w) if w > max_wait => Some(format!(
            "a job has waited {}, beyond the queue's guarantee of {}",
            human(w),
            human(max_wait)
        )),
        _ => None,
    }
}

/// A short human duration: "3 h 12 min", "40 min", "12 s", "250 ms".
pub fn human(us: Micros) -> String {
    let ms = us / 1000;
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let s = ms / 1000;
    if s < 60 {
        return format!("{s} s");
    }
    let min = s / 60;
    if min < 60 {
        return if s % 60 == 0 || min >= 10 {
            format!("{min} min")
        } else {
            format!("{min} min {} s", s % 60)
        };
    }
    let h = min / 60;
    if min % 60 == 0 {
        format!("{h} h")
    } else {
        format!("{h} h {} min", min % 60)
    }
}

/// Facts about one queue, as the glue collects them.
#[derive(Debug, Clone, Default)]
pub struct QueueFacts {
    pub name: String,
    /// The longest any ready job has waited since it became runnable.
    pub oldest_wait: Option<Micros>,
    pub max_wait: Micros,
    /// Jobs dead-lettered within the last hour.
    pub new_dead: i64,
    /// Running jobs whose visibility ended and that nothing has returned yet.
    pub expired: i64,
}

/// `queue.max_wait`: no ready job has waited beyond its queue's guarantee.
pub fn max_wait_check(queues: &[QueueFacts]) -> Check {
    let late: Vec<String> = queues
        .iter()
        .filter_map(|q| {
            wait_alarm(q.oldest_wait, q.max_wait).map(|_| {
                format!(
                    "{} (oldest {} > {})",
                    q.name,
                    human(q.oldest_wait.unwrap_or(0)),
                    human(q.max_wait)
                )
            })
        })
        .collect();
    if late.is_empty() {
        Check {
            name: "queue.max_wait",
            status: Status::Ok,
            detail: format!(
                "{} queue(s); no job waited beyond its queue's guarantee",
                queues.len()
            ),
            hint: None,
        }
    } else {
        Check {
            name: "queue.max_wait",
            status: Status::Critical,
            detail: format!("jobs waiting beyond the guarantee: {}", late.join(", ")),
            hint: Some(
                "Workers are too few or stopped: see floe.queue_health() for depth and wait per priority."
                    .into(),
            ),
        }
    }
}

/// `queue.dead_letters`: no job dead-lettered within the last hour, and no expired job left
/// unreturned (nothing dequeues, and the maintenance job does not run).
pub fn dead_letter_check(queues: &[QueueFacts]) -> Check {
    let dead: Vec<String> = queues
        .iter()
        .filter(|q| q.new_dead > 0)
        .map(|q| format!("{} ({})", q.name, q.new_dead))
        .collect();
    let expired: Vec<String> = queues
        .iter()
        .filter(|q| q.expired > 0)
        .map(|q| format!("{} ({})", q.name, q.expired))
        .collect();
    if dead.is_empty() && expired.is_empty() {
        return Check {
            name: "queue.dead_letters",
            status: Status::Ok,
            detail: "no new dead letters in the last hour".into(),
            hint: None,
        };
    }
    let mut parts = Vec::new();
    if !dead.is_empty() {
        parts.push(format!(
            "new dead letters in the last hour: {}",
            dead.join(", ")
        ));
    }
    if !expired.is_empty() {
        parts.push(format!(
            "expired jobs not yet returned: {}",
            expired.join(", ")
        ));
    }
    Check {
        name: "queue.dead_letters",
        status: Status::Warn,
        detail: parts.join("; "),
        hint: Some(
            "See floe.dead_letters (last_error) and put fixed jobs back with floe.redrive(); SELECT floe.queue_maintenance() returns expired jobs."
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Micros = 60_000_000;

    #[test]
    fn humans() {
        assert_eq!(human(250_000), "250 ms");
        assert_eq!(human(12_000_000), "12 s");
        assert_eq!(human(90_000_000), "1 min 30 s");
        assert_eq!(human(40 * MIN), "40 min");
        assert_eq!(human(192 * MIN), "3 h 12 min");
        assert_eq!(human(120 * MIN), "2 h");
    }

    #[test]
    fn alarms() {
        assert_eq!(wait_alarm(None, 40 * MIN), None);
        assert_eq!(wait_alarm(Some(40 * MIN), 40 * MIN), None);
        assert_eq!(
            wait_alarm(Some(52 * MIN), 40 * MIN).as_deref(),
            Some("a job has waited 52 min, beyond the queue's guarantee of 40 min")
        );
        let ok = QueueFacts {
            name: "mail".into(),
            oldest_wait: Some(MIN),
            max_wait: 40 * MIN,
            ..Default::default()
        };
        assert_eq!(max_wait_check(std::slice::from_ref(&ok)).status, Status::Ok);
        let late = QueueFacts {
            oldest_wait: Some(41 * MIN),
            ..ok.clone()
        };
        let c = max_wait_check(&[ok.clone(), late]);
        assert_eq!(c.status, Status::Critical);
        assert!(c.detail.contains("mail (oldest 41 min > 40 min)"));
        assert_eq!(
            dead_letter_check(std::slice::from_ref(&ok)).status,
            Status::Ok
        );
        let dead = QueueFacts {
            new_dead: 3,
            expired: 1,
            ..ok
        };
        let c = dead_letter_check(&[dead]);
        assert_eq!(c.status, Status::Warn);
        assert_eq!(
            c.detail,
            "new dead letters in the last hour: mail (3); expired jobs not yet returned: mail (1)"
        );
    }
}
