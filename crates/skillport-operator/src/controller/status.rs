//! Conditions: set one, keep its transition time when nothing changed, and say which changed
//! (each change is an Event).

use k8s_openapi::jiff::{Timestamp, Unit};

use crate::api::Condition;

/// The longest condition message kept: messages may quote what a registry or git server said.
const MAX_MESSAGE: usize = 4096;

/// `text`, cut to at most `max` bytes (at a character boundary, ending in `…` when cut).
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A condition change, for its Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub type_: String,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// Sets condition `type_` in `conditions`; returns the change when its status or reason is new.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Option<Transition> {
    let status_text = if status { "True" } else { "False" };
    let existing = conditions.iter_mut().find(|c| c.type_ == type_);
    let changed = existing
        .as_ref()
        .is_none_or(|c| c.status != status_text || c.reason != reason);
    let now = || {
        Timestamp::now()
            .round(Unit::Second)
            .expect("rounding now to seconds works")
            .to_string()
    };
    let condition = Condition {
        type_: type_.to_owned(),
        status: status_text.to_owned(),
        reason: reason.to_owned(),
        message: truncate(message, MAX_MESSAGE),
        observed_generation: generation,
        last_transition_time: match &existing {
            Some(c) if c.status == status_text => c.last_transition_time.clone(),
            _ => now(),
        },
    };
    match existing {
        Some(slot) => *slot = condition,
        None => conditions.push(condition),
    }
    changed.then(|| Transition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message: message.to_owned(),
    })
}

/// Condition `type_`, if set.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_condition_keeps_its_time_and_is_no_transition() {
        let mut conditions = Vec::new();
        assert!(
            set(
                &mut conditions,
                "Ready",
                false,
                "WorkloadNotFound",
                "a",
                Some(1)
            )
            .is_some()
        );
        conditions[0].last_transition_time = "2020-01-01T00:00:00Z".into();
        assert!(
            set(
                &mut conditions,
                "Ready",
                false,
                "WorkloadNotFound",
                "b",
                Some(2)
            )
            .is_none()
        );
        assert_eq!(conditions[0].last_transition_time, "2020-01-01T00:00:00Z");
        assert_eq!(conditions[0].message, "b");
        let change = set(&mut conditions, "Ready", true, "Applied", "c", Some(2));
        assert_eq!(change.map(|t| t.reason), Some("Applied".to_owned()));
        assert_ne!(conditions[0].last_transition_time, "2020-01-01T00:00:00Z");
        assert_eq!(conditions.len(), 1);
    }
}
