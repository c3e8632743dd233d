//! The work a change still owes (CloudFront invalidation, SNS announcement), recorded durably in
//! the published document's own S3 metadata (`x-amz-meta-allowlist-pending`): written in the
//! same PUT as the changed document, so no crash can separate the change from the record of what
//! it owes. Whichever run comes next completes what is owed (even when the prefix set is then
//! unchanged) and clears the record with a conditional PUT of the same bytes.

use std::collections::BTreeSet;

/// The S3 user-metadata key (S3 sends it as `x-amz-meta-allowlist-pending`).
pub const METADATA_KEY: &str = "allowlist-pending";

/// One piece of owed work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Task {
    /// Invalidate the published paths on CloudFront.
    Invalidate,
    /// Publish the change on the SNS topic.
    Announce,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Invalidate => "invalidate",
            Task::Announce => "announce",
        }
    }

    fn parse(s: &str) -> Option<Task> {
        match s {
            "invalidate" => Some(Task::Invalidate),
            "announce" => Some(Task::Announce),
            _ => None,
        }
    }
}

/// What a published document still owes, and how the change that wrote it changed the set (for
/// the announcement's attributes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    pub tasks: BTreeSet<Task>,
    /// Prefixes the change added and removed.
    pub added: usize,
    pub removed: usize,
}

impl Pending {
    /// What a change owes: every task the run is configured for.
    pub fn for_change(configured: &BTreeSet<Task>, added: usize, removed: usize) -> Pending {
        Pending {
            tasks: configured.clone(),
            added,
            removed,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// What is still owed once `done` are done.
    pub fn without(&self, done: &BTreeSet<Task>) -> Pending {
        Pending {
            tasks: self.tasks.difference(done).copied().collect(),
            ..self.clone()
        }
    }

    /// The metadata value: `tasks=announce+invalidate;added=2;removed=0` (ASCII, as S3 metadata
    /// must be).
    pub fn to_metadata(&self) -> String {
        let tasks: Vec<&str> = self.tasks.iter().map(|t| t.name()).collect();
        format!(
            "tasks={};added={};removed={}",
            tasks.join("+"),
            self.added,
            self.removed
        )
    }

    /// Reads a metadata value. A value we cannot read owes everything: doing work twice is
    /// harmless (invalidations are idempotent, consumers dedupe announcements by synctoken),
    /// losing it is not.
    pub fn from_metadata(value: &str) -> Pending {
        let mut pending = Pending::default();
        let mut understood = true;
        for part in value.split(';') {
            match part.split_once('=') {
                Some(("tasks", names)) => {
                    for name in names.split('+').filter(|n| !n.is_empty()) {
                        match Task::parse(name) {
                            Some(task) => {
                                pending.tasks.insert(task);
                            }
                            None => understood = false,
                        }
                    }
                }
                Some(("added", n)) => pending.added = n.parse().unwrap_or(0),
                Some(("removed", n)) => pending.removed = n.parse().unwrap_or(0),
                _ => understood = false,
            }
        }
        if !understood {
            pending.tasks = [Task::Invalidate, Task::Announce].into();
        }
        pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(list: &[Task]) -> BTreeSet<Task> {
        list.iter().copied().collect()
    }

    #[test]
    fn a_change_owes_what_is_configured_and_round_trips() {
        let pending = Pending::for_change(&tasks(&[Task::Announce, Task::Invalidate]), 2, 1);
        let value = pending.to_metadata();
        assert_eq!(value, "tasks=invalidate+announce;added=2;removed=1");
        assert!(value.is_ascii());
        assert_eq!(Pending::from_metadata(&value), pending);
        assert!(Pending::for_change(&BTreeSet::new(), 1, 0).is_empty());
    }

    #[test]
    fn done_tasks_leave_the_rest_owed() {
        let pending = Pending::for_change(&tasks(&[Task::Announce, Task::Invalidate]), 3, 0);
        let rest = pending.without(&tasks(&[Task::Invalidate]));
        assert_eq!(rest.tasks, tasks(&[Task::Announce]));
        assert_eq!((rest.added, rest.removed), (3, 0));
        assert!(rest.without(&tasks(&[Task::Announce])).is_empty());
        assert_eq!(
            Pending::from_metadata(&rest.to_metadata()).tasks,
            tasks(&[Task::Announce])
        );
        assert_eq!(
            Pending::from_metadata("tasks=;added=0;removed=0"),
            Pending::default()
        );
    }

    #[test]
    fn an_unreadable_record_owes_everything() {
        for value in ["garbage", "tasks=announce+teleport", ""] {
            let pending = Pending::from_metadata(value);
            assert_eq!(
                pending.tasks,
                tasks(&[Task::Announce, Task::Invalidate]),
                "{value:?}"
            );
        }
    }
}
