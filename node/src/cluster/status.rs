//! Node statuses, with Workbench's words, and the status cell a running node keeps for its
//! request handlers.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::auth::KeyError;

/// Shown instead of Online for a node whose last check-in is older than the threshold.
pub const MISSED_CHECK_IN: &str = "Missed check-in";

/// A node's status as stored in the `nodes` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum NodeStatus {
    Starting = 0,
    Online,
    Offline,
    Deleting,
    FailedToResolve,
    InvalidSecureKey,
    InvalidKeyPermissions,
    VersionMismatch,
    ConfigMismatch,
    ClockSkew,
}

impl NodeStatus {
    const ALL: [NodeStatus; 10] = [
        Self::Starting,
        Self::Online,
        Self::Offline,
        Self::Deleting,
        Self::FailedToResolve,
        Self::InvalidSecureKey,
        Self::InvalidKeyPermissions,
        Self::VersionMismatch,
        Self::ConfigMismatch,
        Self::ClockSkew,
    ];

    /// The word shown by `list-nodes` and stored in the database.
    pub fn word(self) -> &'static str {
        match self {
            Self::Starting => "Starting",
            Self::Online => "Online",
            Self::Offline => "Offline",
            Self::Deleting => "Deleting",
            Self::FailedToResolve => "Failed to resolve",
            Self::InvalidSecureKey => "Invalid secure key",
            Self::InvalidKeyPermissions => "Invalid permissions on secure key",
            Self::VersionMismatch => "Version mismatch",
            Self::ConfigMismatch => "Config mismatch",
            Self::ClockSkew => "Clock skew",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.word() == word)
    }

    /// A status that keeps a node out of the cluster until it is fixed and restarted.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            Self::FailedToResolve
                | Self::InvalidSecureKey
                | Self::InvalidKeyPermissions
                | Self::VersionMismatch
                | Self::ConfigMismatch
        )
    }

    /// The status a key file problem gives.
    pub fn from_key_error(error: &KeyError) -> Self {
        match error {
            KeyError::Permissions { .. } => Self::InvalidKeyPermissions,
            KeyError::Io(..) | KeyError::TooShort { .. } => Self::InvalidSecureKey,
        }
    }
}

impl std::fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// The status shown for a stored row: Online nodes that stopped checking in show as
/// "Missed check-in".
pub fn displayed(status: &str, last_seen_ms: i64, now_ms: i64, missed_after_ms: i64) -> String {
    if status == NodeStatus::Online.word() && now_ms - last_seen_ms > missed_after_ms {
        MISSED_CHECK_IN.to_string()
    } else {
        status.to_string()
    }
}

/// This node's own status, read on every write request.
#[derive(Debug)]
pub struct StatusCell(AtomicU8);

impl StatusCell {
    pub fn new(status: NodeStatus) -> Self {
        Self(AtomicU8::new(status as u8))
    }

    pub fn get(&self) -> NodeStatus {
        let value = self.0.load(Ordering::Acquire);
        NodeStatus::ALL
            .into_iter()
            .find(|s| *s as u8 == value)
            .unwrap_or(NodeStatus::Starting)
    }

    pub fn set(&self, status: NodeStatus) {
        self.0.store(status as u8, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_missed_check_in_applies_to_online_only() {
        for status in NodeStatus::ALL {
            assert_eq!(NodeStatus::parse(status.word()), Some(status));
            let cell = StatusCell::new(status);
            assert_eq!(cell.get(), status);
        }
        assert_eq!(displayed("Online", 0, 2_000, 1_500), MISSED_CHECK_IN);
        assert_eq!(displayed("Online", 1_000, 2_000, 1_500), "Online");
        assert_eq!(displayed("Offline", 0, 2_000, 1_500), "Offline");
    }
}
