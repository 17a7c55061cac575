//! OCF exit codes, exactly as Pacemaker reads them.

use std::process::ExitCode;

/// The outcome of an action. The discriminant is the OCF code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OcfExit {
    Success = 0,
    ErrGeneric = 1,
    ErrArgs = 2,
    ErrUnimplemented = 3,
    ErrPerm = 4,
    ErrInstalled = 5,
    ErrConfigured = 6,
    NotRunning = 7,
    RunningPromoted = 8,
    FailedPromoted = 9,
}

impl OcfExit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Name as the OCF specification spells it, for logs.
    pub fn name(self) -> &'static str {
        match self {
            OcfExit::Success => "OCF_SUCCESS",
            OcfExit::ErrGeneric => "OCF_ERR_GENERIC",
            OcfExit::ErrArgs => "OCF_ERR_ARGS",
            OcfExit::ErrUnimplemented => "OCF_ERR_UNIMPLEMENTED",
            OcfExit::ErrPerm => "OCF_ERR_PERM",
            OcfExit::ErrInstalled => "OCF_ERR_INSTALLED",
            OcfExit::ErrConfigured => "OCF_ERR_CONFIGURED",
            OcfExit::NotRunning => "OCF_NOT_RUNNING",
            OcfExit::RunningPromoted => "OCF_RUNNING_PROMOTED",
            OcfExit::FailedPromoted => "OCF_FAILED_PROMOTED",
        }
    }
}

impl From<OcfExit> for ExitCode {
    fn from(e: OcfExit) -> Self {
        ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_ocf_specification() {
        let expected = [
            (OcfExit::Success, 0, "OCF_SUCCESS"),
            (OcfExit::ErrGeneric, 1, "OCF_ERR_GENERIC"),
            (OcfExit::ErrArgs, 2, "OCF_ERR_ARGS"),
            (OcfExit::ErrUnimplemented, 3, "OCF_ERR_UNIMPLEMENTED"),
            (OcfExit::ErrPerm, 4, "OCF_ERR_PERM"),
            (OcfExit::ErrInstalled, 5, "OCF_ERR_INSTALLED"),
            (OcfExit::ErrConfigured, 6, "OCF_ERR_CONFIGURED"),
            (OcfExit::NotRunning, 7, "OCF_NOT_RUNNING"),
            (OcfExit::RunningPromoted, 8, "OCF_RUNNING_PROMOTED"),
            (OcfExit::FailedPromoted, 9, "OCF_FAILED_PROMOTED"),
        ];
        for (exit, code, name) in expected {
            assert_eq!(exit.code(), code);
            assert_eq!(exit.name(), name);
        }
    }
}
