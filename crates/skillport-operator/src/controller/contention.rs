//! Workloads whose controller takes the skills off again, pure.
//!
//! Many controllers own the Deployment they make and write its whole spec back whenever it
//! differs from theirs (controller-runtime's `CreateOrUpdate` with `existing.Spec =
//! desired.Spec`, as kagent's does): each apply of ours is undone within milliseconds, and each
//! undo wakes us to apply again — two controllers rolling one Deployment without end.
//!
//! What is done up front for a workload a controller owns: attach, say so, and watch. Refusing
//! every controlled workload would lock out the many controllers that leave fields they do not
//! set alone (those that patch or apply, Argo Rollouts' `workloadRef`), and an owner reference
//! cannot tell the two kinds apart; what the live object holds after our apply can.
//!
//! The rule: pod-level items our field manager applied (the skills' volumes, our init
//! containers) are no longer ours, although nothing of ours changed since the apply that made
//! the SkillSet `Ready` — another client removed them. The first removal is put right (a
//! `kubectl replace` or a GitOps sync of a manifest without them is a one-off). A second within
//! a few minutes ([`IN_A_ROW`]) makes the SkillSet hold: `Ready=False`, reason
//! `WorkloadContested`, no apply for a wait that doubles with each removal ([`wait`]); after the
//! wait it tries once more, and a removal right after that holds longer. The count is kept in
//! `status.contention` (a restart or a new leader does not start the fight again, nor does a
//! failed step or a moved tag), and forgotten with a new generation of the SkillSet, another
//! workload, or once the skills stayed a few minutes past the wait.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::status;
use crate::api::{Contention, SkillSetStatus, WorkloadRef, condition, reason};

/// The wait after the second removal in a row.
const FIRST_WAIT: Duration = Duration::from_secs(10 * 60);
/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(6 * 60 * 60);
/// How long after its wait a removal still counts as one more in a row (kagent's controller
/// takes the skills off within milliseconds of an apply); a contention is forgotten after it
/// while the skills stay.
const IN_A_ROW: Duration = Duration::from_secs(5 * 60);

/// How long the skills are not applied after `removals` removals in a row: none after the first,
/// then 10 min doubling to 6 h.
pub fn wait(removals: u32) -> Duration {
    if removals < 2 {
        return Duration::ZERO;
    }
    FIRST_WAIT
        .saturating_mul(1 << (removals - 2).min(10))
        .min(MAX_WAIT)
}

/// What changed of the SkillSet since its status was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ours {
    /// Nothing: what would be applied now is what was applied last.
    Same,
    /// Its skills, delivery or plan (a moved tag, a fallback), not its spec.
    Resolved,
    /// Its spec: a new generation.
    Spec,
}

/// What the workload holds of what the SkillSet applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// All of it, as applied.
    All,
    /// Less: items it applied are no longer its own (another field manager removed them,
    /// which is what server-side apply does to a removed field's owners).
    Taken,
    /// Not all of it, but nothing was taken (what is to be applied is new).
    Differs,
}

/// What the SkillSet knows of the workload it is attached to.
pub struct Seen<'a> {
    pub before: &'a SkillSetStatus,
    pub named: &'a WorkloadRef,
    pub ours: Ours,
    pub holds: Holds,
    /// The workload as read.
    pub live: &'a Value,
    pub now: Timestamp,
}

/// The contention to record, and whether to hold off applying (for how long).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    pub contention: Option<Contention>,
    pub hold: Option<Duration>,
}

/// Judges what the workload holds against what the SkillSet applied before.
pub fn judge(seen: &Seen<'_>) -> Judged {
    let before = seen.before;
    let on_it = before.workload.as_ref() == Some(seen.named);
    // A new generation is the user's new attempt; a moved tag is not.
    let prior = before
        .contention
        .clone()
        .filter(|_| on_it && seen.ours != Ours::Spec);
    let ready = status::get(&before.conditions, condition::READY);
    let attached =
        on_it && ready.is_some_and(|c| c.status == "True" && c.reason == reason::APPLIED);
    let holding = on_it && ready.is_some_and(|c| c.reason == reason::WORKLOAD_CONTESTED);
    // Within its wait and a few minutes more, a removal follows the last one "in a row".
    let recent = |c: &Contention| since(c, seen.now) < wait(c.removals) + IN_A_ROW;
    if seen.holds == Holds::All {
        return Judged {
            contention: prior.filter(recent),
            hold: None,
        };
    }
    if seen.ours == Ours::Same && attached && seen.holds == Holds::Taken {
        let removals = prior
            .filter(recent)
            .map_or(0, |c| c.removals)
            .saturating_add(1);
        let hold = (removals >= 2).then(|| wait(removals));
        let contention = Contention {
            manager: writer(seen.live),
            removals,
            last_removal: seen.now.to_string(),
        };
        return Judged {
            contention: Some(contention),
            hold,
        };
    }
    if holding && let Some(contention) = prior {
        let left = wait(contention.removals).saturating_sub(since(&contention, seen.now));
        return Judged {
            contention: Some(contention),
            hold: (!left.is_zero()).then_some(left),
        };
    }
    Judged {
        contention: prior,
        hold: None,
    }
}

/// How long ago the last removal was (as long as can be when its time does not parse or is
/// ahead of `now`: a skewed clock or an edited status must not stretch a hold).
fn since(contention: &Contention, now: Timestamp) -> Duration {
    contention
        .last_removal
        .parse::<Timestamp>()
        .ok()
        .filter(|last| *last <= now)
        .map_or(Duration::MAX, |last| {
            Duration::try_from(now.duration_since(last)).unwrap_or(Duration::MAX)
        })
}

/// The field manager that wrote the workload's spec last, not one of ours (`"another client"`
/// when `managedFields` does not say).
pub fn writer(live: &Value) -> String {
    let entries = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    entries
        .iter()
        .filter(|entry| {
            entry
                .get("subresource")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        })
        .filter_map(|entry| {
            let manager = entry.get("manager")?.as_str()?;
            let time = entry.get("time").and_then(Value::as_str).unwrap_or("");
            (!crate::attach::is_ours(manager)).then_some((time, manager))
        })
        .max()
        .map_or_else(
            || "another client".to_owned(),
            |(_, manager)| manager.to_owned(),
        )
}

/// The workload's controller, from its owner references: `Agent "k8s-agent"`.
pub fn controller(live: &Value) -> Option<String> {
    live.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|owner| owner.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|owner| {
            let field = |key| owner.get(key).and_then(Value::as_str).unwrap_or("?");
            format!("{} {:?}", field("kind"), field("name"))
        })
}

/// `Ready=False` while holding: who removes the skills, until when nothing is applied, and the
/// door that works with such a controller.
pub fn held_message(
    named: &WorkloadRef,
    skill_set: &str,
    contention: &Contention,
    live: &Value,
) -> String {
    let controlled =
        controller(live).map_or_else(String::new, |owner| format!(", the controller of {owner},"));
    let until = contention
        .last_removal
        .parse::<Timestamp>()
        .ok()
        .and_then(|last| last.checked_add(wait(contention.removals)).ok())
        .map_or_else(|| "a while".to_owned(), |until| until.to_string());
    format!(
        "field manager {:?}{controlled} removed the skills from {} {:?} {} times in a row: it \
         writes the workload's whole spec, and applying again would only start another rollout; \
         not applied again before {until}. Attach through the Pods instead: drop workloadRef \
         and have the controller put the label skillport.dev/skillset: {skill_set} on its Pods \
         (kagent: the Agent's spec.declarative.deployment.labels)",
        contention.manager,
        named.kind.as_str(),
        named.name,
        contention.removals,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::{Condition, WorkloadKind};

    fn named() -> WorkloadRef {
        WorkloadRef {
            kind: WorkloadKind::Deployment,
            name: "agent".into(),
        }
    }

    fn before(reason: &str, contention: Option<Contention>) -> SkillSetStatus {
        SkillSetStatus {
            workload: Some(named()),
            contention,
            conditions: vec![Condition {
                type_: condition::READY.into(),
                status: if reason == reason::APPLIED {
                    "True"
                } else {
                    "False"
                }
                .into(),
                reason: reason.into(),
                message: String::new(),
                observed_generation: Some(1),
                last_transition_time: String::new(),
            }],
            ..SkillSetStatus::default()
        }
    }

    fn live() -> Value {
        json!({"metadata": {
            "ownerReferences": [
                {"kind": "ConfigMap", "name": "x", "controller": false},
                {"kind": "Agent", "name": "k8s-agent", "controller": true},
            ],
            "managedFields": [
                {"manager": "kubectl", "operation": "Update", "time": "2026-12-06T10:00:00Z"},
                {"manager": "kagent-controller", "operation": "Update", "time": "2026-12-06T10:05:00Z"},
                {"manager": "skillport/tools", "operation": "Apply", "time": "2026-12-06T10:06:00Z"},
                {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status", "time": "2026-12-06T10:07:00Z"},
            ],
        }})
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn judge_at(before: &SkillSetStatus, unchanged: bool, current: bool, now: &str) -> Judged {
        judge(&Seen {
            before,
            named: &named(),
            ours: if unchanged {
                Ours::Same
            } else {
                Ours::Resolved
            },
            holds: if current { Holds::All } else { Holds::Taken },
            live: &live(),
            now: at(now),
        })
    }

    #[test]
    fn the_wait_doubles_from_ten_minutes_to_six_hours() {
        let minutes = |n| wait(n).as_secs() / 60;
        assert_eq!([minutes(0), minutes(1)], [0, 0]);
        assert_eq!([minutes(2), minutes(3), minutes(4)], [10, 20, 40]);
        assert_eq!([minutes(7), minutes(8), minutes(u32::MAX)], [320, 360, 360]);
    }

    #[test]
    fn the_writer_is_the_last_to_write_the_spec_and_not_us() {
        assert_eq!(writer(&live()), "kagent-controller");
        assert_eq!(writer(&json!({})), "another client");
        assert_eq!(controller(&live()).as_deref(), Some("Agent \"k8s-agent\""));
    }

    #[test]
    fn a_first_removal_is_put_right_and_a_second_holds() {
        let now = "2026-12-06T10:10:00Z";
        let first = judge_at(&before(reason::APPLIED, None), true, false, now);
        assert_eq!(first.hold, None, "one removal is put right");
        let contention = first.contention.unwrap();
        assert_eq!(
            (contention.manager.as_str(), contention.removals),
            ("kagent-controller", 1)
        );
        let second = judge_at(&before(reason::APPLIED, Some(contention)), true, false, now);
        assert_eq!(second.hold, Some(Duration::from_secs(600)));
        assert_eq!(second.contention.unwrap().removals, 2);
    }

    #[test]
    fn holding_waits_then_tries_once_more_and_holds_longer_if_removed_again() {
        let contention = Contention {
            manager: "kagent-controller".into(),
            removals: 2,
            last_removal: "2026-12-06T10:00:00Z".into(),
        };
        let held = before(reason::WORKLOAD_CONTESTED, Some(contention.clone()));
        // Nothing of ours is on the workload while holding: that is no new removal.
        let early = judge_at(&held, true, false, "2026-12-06T10:04:00Z");
        assert_eq!(early.hold, Some(Duration::from_secs(360)));
        assert_eq!(early.contention.as_ref(), Some(&contention));
        let due = judge_at(&held, true, false, "2026-12-06T10:10:00Z");
        assert_eq!(due.hold, None, "the wait is over: apply once more");
        // Applied (Ready again), and removed again: a longer wait.
        let again = judge_at(
            &before(reason::APPLIED, due.contention),
            true,
            false,
            "2026-12-06T10:10:01Z",
        );
        assert_eq!(again.hold, Some(Duration::from_secs(1200)));
    }

    #[test]
    fn a_difference_that_takes_nothing_from_us_is_no_removal() {
        let mut seen = Seen {
            before: &before(reason::APPLIED, None),
            named: &named(),
            ours: Ours::Same,
            holds: Holds::Differs,
            live: &live(),
            now: at("2026-12-06T10:00:00Z"),
        };
        assert_eq!(
            judge(&seen),
            Judged {
                contention: None,
                hold: None
            }
        );
        seen.holds = Holds::Taken;
        assert!(judge(&seen).contention.is_some());
    }

    #[test]
    fn our_own_change_is_no_removal_and_a_new_generation_forgets() {
        let contention = Contention {
            manager: "kagent-controller".into(),
            removals: 3,
            last_removal: "2026-12-06T10:00:00Z".into(),
        };
        // A moved tag: applied, not counted, the count kept (the fight goes on).
        let moved = judge_at(
            &before(reason::APPLIED, Some(contention.clone())),
            false,
            false,
            "2026-12-06T10:01:00Z",
        );
        assert_eq!(
            moved,
            Judged {
                contention: Some(contention.clone()),
                hold: None
            }
        );
        // While holding, a moved tag waits too.
        let held = judge_at(
            &before(reason::WORKLOAD_CONTESTED, Some(contention.clone())),
            false,
            false,
            "2026-12-06T10:01:00Z",
        );
        assert_eq!(held.hold, Some(Duration::from_secs(19 * 60)));
        // The user's new generation is a new attempt.
        let before = before(reason::WORKLOAD_CONTESTED, Some(contention));
        let seen = Seen {
            before: &before,
            named: &named(),
            ours: Ours::Spec,
            holds: Holds::Taken,
            live: &live(),
            now: at("2026-12-06T10:01:00Z"),
        };
        assert_eq!(
            judge(&seen),
            Judged {
                contention: None,
                hold: None
            }
        );
    }

    #[test]
    fn removals_far_apart_are_not_in_a_row() {
        let first = Contention {
            manager: "kubectl".into(),
            removals: 1,
            last_removal: "2026-12-06T10:00:00Z".into(),
        };
        let ready = before(reason::APPLIED, Some(first));
        let soon = judge_at(&ready, true, false, "2026-12-06T10:04:00Z");
        assert_eq!(soon.contention.unwrap().removals, 2);
        let later = judge_at(&ready, true, false, "2026-12-06T10:50:00Z");
        assert_eq!(later.hold, None, "a one-off 50 minutes later is put right");
        assert_eq!(later.contention.unwrap().removals, 1);
    }

    #[test]
    fn a_removal_time_ahead_of_the_clock_stretches_nothing() {
        let ahead = Contention {
            manager: "kagent-controller".into(),
            removals: 2,
            last_removal: "2026-12-07T10:00:00Z".into(),
        };
        let held = before(reason::WORKLOAD_CONTESTED, Some(ahead));
        assert_eq!(
            judge_at(&held, true, false, "2026-12-06T10:00:00Z").hold,
            None
        );
    }

    #[test]
    fn skills_that_stay_keep_the_count_a_few_minutes_past_the_wait() {
        let contention = Contention {
            manager: "kubectl".into(),
            removals: 2,
            last_removal: "2026-12-06T10:00:00Z".into(),
        };
        let ready = before(reason::APPLIED, Some(contention.clone()));
        let kept = judge_at(&ready, true, true, "2026-12-06T10:14:00Z");
        assert_eq!(kept.contention, Some(contention));
        let forgotten = judge_at(&ready, true, true, "2026-12-06T10:15:00Z");
        assert_eq!(forgotten.contention, None);
    }

    #[test]
    fn the_held_message_names_the_manager_the_controller_and_the_other_door() {
        let contention = Contention {
            manager: "kagent-controller".into(),
            removals: 2,
            last_removal: "2026-12-06T10:00:00Z".into(),
        };
        let message = held_message(&named(), "tools", &contention, &live());
        for part in [
            "\"kagent-controller\"",
            "Agent \"k8s-agent\"",
            "2 times",
            "before 2026-12-06T10:10:00Z",
            "skillport.dev/skillset: tools",
        ] {
            assert!(message.contains(part), "{part:?} in {message}");
        }
    }
}
