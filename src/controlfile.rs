//! The PostgreSQL control file (`global/pg_control`): a native reader for the
//! monitor (no fork) and a parser of `pg_controldata` output (the fallback,
//! and the reference the native reader is tested against).
//!
//! The fields we need sit in the fixed prefix of `ControlFileData`, whose
//! layout has not changed from PostgreSQL 12 to 18. The CRC sits at the end
//! of the struct, whose size does change between major versions, so instead
//! of a table of sizes we look for the offset where the stored CRC-32C
//! matches the bytes before it: a torn or foreign file matches nowhere
//! (one chance in 2^32 per candidate offset).

use crate::lsn::Lsn;
use std::collections::HashMap;
use std::path::Path;

/// `DBState` from PostgreSQL's pg_control.h (same values 12 to 18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbState {
    StartingUp,
    ShutDown,
    ShutDownInRecovery,
    ShuttingDown,
    InCrashRecovery,
    InArchiveRecovery,
    InProduction,
}

impl DbState {
    pub const ALL: [DbState; 7] = [
        DbState::StartingUp,
        DbState::ShutDown,
        DbState::ShutDownInRecovery,
        DbState::ShuttingDown,
        DbState::InCrashRecovery,
        DbState::InArchiveRecovery,
        DbState::InProduction,
    ];

    fn from_code(c: i32) -> Option<DbState> {
        Some(match c {
            0 => DbState::StartingUp,
            1 => DbState::ShutDown,
            2 => DbState::ShutDownInRecovery,
            3 => DbState::ShuttingDown,
            4 => DbState::InCrashRecovery,
            5 => DbState::InArchiveRecovery,
            6 => DbState::InProduction,
            _ => return None,
        })
    }

    /// The words pg_controldata prints.
    pub fn as_str(self) -> &'static str {
        match self {
            DbState::StartingUp => "starting up",
            DbState::ShutDown => "shut down",
            DbState::ShutDownInRecovery => "shut down in recovery",
            DbState::ShuttingDown => "shutting down",
            DbState::InCrashRecovery => "in crash recovery",
            DbState::InArchiveRecovery => "in archive recovery",
            DbState::InProduction => "in production",
        }
    }

    fn from_text(s: &str) -> Option<DbState> {
        DbState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// What the agent needs from the control file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlData {
    pub system_id: u64,
    pub control_version: u32,
    pub state: DbState,
    pub checkpoint: Lsn,
    pub redo: Lsn,
    pub timeline: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("cannot read the control file: {0}")]
    Io(String),
    /// No offset where the CRC matches: torn write, or a layout we do not know.
    #[error("control file CRC does not match (torn or unknown layout)")]
    BadCrc,
    #[error("unexpected control file content: {0}")]
    Malformed(String),
}

/// The control file cannot be read or makes no sense.
impl crate::agent::EdgeError for ControlError {
    const CODE: crate::exit::OcfExit = crate::exit::OcfExit::ErrGeneric;
}

const MIN_CONTROL_VERSION: u32 = 1201; // PostgreSQL 12
const PREFIX_LEN: usize = 56;
const MAX_STRUCT_LEN: usize = 1024;

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// Decode the raw bytes of `global/pg_control` (host byte order, as written).
pub fn decode(bytes: &[u8]) -> Result<ControlData, ControlError> {
    if bytes.len() < PREFIX_LEN + 4 {
        return Err(ControlError::Malformed(format!("only {} bytes", bytes.len())));
    }
    let limit = bytes.len().min(MAX_STRUCT_LEN);
    let crc_ok = (PREFIX_LEN..=limit - 4)
        .step_by(4)
        .any(|off| crc32c::crc32c(&bytes[..off]) == u32_at(bytes, off));
    if !crc_ok {
        return Err(ControlError::BadCrc);
    }
    let control_version = u32_at(bytes, 8);
    if control_version < MIN_CONTROL_VERSION {
        return Err(ControlError::Malformed(format!(
            "pg_control version {control_version} predates PostgreSQL 12"
        )));
    }
    let state_code = u32_at(bytes, 16) as i32;
    let state = DbState::from_code(state_code)
        .ok_or_else(|| ControlError::Malformed(format!("unknown cluster state {state_code}")))?;
    Ok(ControlData {
        system_id: u64_at(bytes, 0),
        control_version,
        state,
        checkpoint: Lsn(u64_at(bytes, 32)),
        redo: Lsn(u64_at(bytes, 40)),
        timeline: u32_at(bytes, 48),
    })
}

/// Read and decode `<datadir>/global/pg_control`, once. PostgreSQL
/// rewrites the file in place: a read racing a write shows a bad CRC, and
/// the caller reads again (without blocking the runtime).
pub fn read(datadir: &Path) -> Result<ControlData, ControlError> {
    let path = datadir.join("global").join("pg_control");
    // A link, a FIFO or an endless file here is refused, not followed.
    let bytes = crate::safefs::read_in(datadir, "global/pg_control", crate::safefs::SMALL)
        .map_err(|e| ControlError::Io(format!("{} {e}", path.display())))?;
    decode(&bytes)
}

/// What pg_controldata prints (and still goes on) when the CRC fails:
/// "WARNING: Calculated CRC checksum does not match value stored in file"
/// on stdout up to 17, "warning: calculated CRC checksum does not match
/// value stored in control file" on stderr from 18.
const CRC_WARNING: &str = "calculated crc checksum does not match";

/// Parse `pg_controldata` output (run with LC_ALL=C; give stderr too).
/// Output it flags as untrustworthy (CRC mismatch) is an error, never a state.
pub fn parse_pg_controldata(text: &str) -> Result<ControlData, ControlError> {
    if text.to_ascii_lowercase().contains(CRC_WARNING) {
        return Err(ControlError::BadCrc);
    }
    let fields: HashMap<&str, &str> =
        text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim(), v.trim())).collect();
    let get = |k: &str| {
        fields.get(k).copied().ok_or_else(|| ControlError::Malformed(format!("no \"{k}\" line")))
    };
    let lsn = |k: &str| get(k)?.parse::<Lsn>().map_err(ControlError::Malformed);
    let num =
        |k: &str| get(k)?.parse::<u32>().map_err(|e| ControlError::Malformed(format!("{k}: {e}")));
    let state_text = get("Database cluster state")?;
    Ok(ControlData {
        system_id: get("Database system identifier")?
            .parse()
            .map_err(|e| ControlError::Malformed(format!("system identifier: {e}")))?,
        control_version: num("pg_control version number")?,
        state: DbState::from_text(state_text)
            .ok_or_else(|| ControlError::Malformed(format!("unknown state \"{state_text}\"")))?,
        checkpoint: lsn("Latest checkpoint location")?,
        redo: lsn("Latest checkpoint's REDO location")?,
        timeline: num("Latest checkpoint's TimeLineID")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(state: i32, struct_len: usize) -> Vec<u8> {
        let mut b = vec![0u8; 8192];
        b[0..8].copy_from_slice(&7_000_000_000_000_000_001u64.to_ne_bytes());
        b[8..12].copy_from_slice(&1300u32.to_ne_bytes());
        b[16..20].copy_from_slice(&state.to_ne_bytes());
        b[32..40].copy_from_slice(&0x0000_0001_0000_0060u64.to_ne_bytes());
        b[40..48].copy_from_slice(&0x0000_0001_0000_0028u64.to_ne_bytes());
        b[48..52].copy_from_slice(&3u32.to_ne_bytes());
        let crc = crc32c::crc32c(&b[..struct_len]);
        b[struct_len..struct_len + 4].copy_from_slice(&crc.to_ne_bytes());
        b
    }

    #[test]
    fn decodes_the_prefix_whatever_the_struct_size() {
        for len in [264, 296, 300] {
            let c = decode(&synthetic(6, len)).unwrap();
            assert_eq!(c.state, DbState::InProduction);
            assert_eq!(c.checkpoint.to_string(), "1/60");
            assert_eq!(c.redo.to_string(), "1/28");
            assert_eq!(c.timeline, 3);
            assert_eq!(c.control_version, 1300);
            assert_eq!(c.system_id, 7_000_000_000_000_000_001);
        }
    }

    #[test]
    fn every_state_code_maps() {
        let expect = [
            "starting up",
            "shut down",
            "shut down in recovery",
            "shutting down",
            "in crash recovery",
            "in archive recovery",
            "in production",
        ];
        for (code, text) in expect.iter().enumerate() {
            assert_eq!(decode(&synthetic(code as i32, 296)).unwrap().state.as_str(), *text);
        }
        assert!(matches!(decode(&synthetic(7, 296)), Err(ControlError::Malformed(_))));
    }

    #[test]
    fn a_corrupted_byte_is_detected() {
        let mut b = synthetic(6, 296);
        b[33] ^= 0x40;
        assert_eq!(decode(&b), Err(ControlError::BadCrc));
        assert!(matches!(decode(&b[..20]), Err(ControlError::Malformed(_))));
    }

    #[test]
    fn refuses_pre_12_control_files() {
        let mut b = synthetic(6, 296);
        b[8..12].copy_from_slice(&1100u32.to_ne_bytes());
        let crc = crc32c::crc32c(&b[..296]);
        b[296..300].copy_from_slice(&crc.to_ne_bytes());
        assert!(matches!(decode(&b), Err(ControlError::Malformed(m)) if m.contains("1100")));
    }

    /// Real files and pg_controldata output from PostgreSQL 15 and 18
    /// (tests/fixtures/generate.sh): the native reader must agree.
    #[test]
    fn native_reader_agrees_with_pg_controldata_on_fixtures() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut compared = 0;
        for version in ["pg15", "pg18"] {
            let dir = root.join(version);
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let Some(state) =
                    name.strip_prefix("pg_control-").and_then(|n| n.strip_suffix(".bin"))
                else {
                    continue;
                };
                let text =
                    std::fs::read_to_string(dir.join(format!("controldata-{state}.txt"))).unwrap();
                let from_text = parse_pg_controldata(&text).unwrap();
                let native = decode(&std::fs::read(e.path()).unwrap()).unwrap();
                assert_eq!(native, from_text, "{version}/{state}");
                compared += 1;
            }
        }
        assert!(compared >= 8, "expected fixtures for both versions, compared {compared}");
    }

    #[test]
    fn parses_pg_controldata_text() {
        let text = "pg_control version number:            1300\n\
Database system identifier:           7311566658875001685\n\
Catalog version number:               202209061\n\
Database cluster state:               shut down in recovery\n\
Latest checkpoint location:           0/3000060\n\
Latest checkpoint's REDO location:    0/3000028\n\
Latest checkpoint's REDO WAL file:    000000020000000000000003\n\
Latest checkpoint's TimeLineID:       2\n";
        let c = parse_pg_controldata(text).unwrap();
        assert_eq!(c.state, DbState::ShutDownInRecovery);
        assert_eq!(c.checkpoint, "0/3000060".parse().unwrap());
        assert_eq!(c.redo, "0/3000028".parse().unwrap());
        assert_eq!(c.timeline, 2);
        assert!(parse_pg_controldata("Database cluster state: weird\n").is_err());
        // pg_controldata's own CRC warning: the values below it are garbage
        let warned = format!(
            "WARNING: Calculated CRC checksum does not match value stored in file.\n\
Either the file is corrupt, or it has a different layout than this program\n\
is expecting.  The results below are untrustworthy.\n\n{text}"
        );
        assert_eq!(parse_pg_controldata(&warned), Err(ControlError::BadCrc));
        let warned18 = format!(
            "pg_controldata: warning: calculated CRC checksum does not match value stored in control file\n{text}"
        );
        assert_eq!(parse_pg_controldata(&warned18), Err(ControlError::BadCrc));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn text(c: &ControlData) -> String {
            format!(
                "pg_control version number:            {}\n\
                 Database system identifier:           {}\n\
                 Database cluster state:               {}\n\
                 Latest checkpoint location:           {}\n\
                 Latest checkpoint's REDO location:    {}\n\
                 Latest checkpoint's TimeLineID:       {}\n",
                c.control_version,
                c.system_id,
                c.state.as_str(),
                c.checkpoint,
                c.redo,
                c.timeline
            )
        }

        proptest! {
            #[test]
            fn parsers_never_panic(s in "\\PC*", bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
                let _ = parse_pg_controldata(&s);
                let _ = decode(&bytes);
            }

            /// What pg_controldata prints reads back as the same values.
            #[test]
            fn controldata_round_trips(
                sys in any::<u64>(), ver in any::<u32>(), st in 0usize..7,
                ckpt in any::<u64>(), redo in any::<u64>(), tli in any::<u32>(),
            ) {
                let c = ControlData {
                    system_id: sys,
                    control_version: ver,
                    state: DbState::ALL[st],
                    checkpoint: Lsn(ckpt),
                    redo: Lsn(redo),
                    timeline: tli,
                };
                prop_assert_eq!(parse_pg_controldata(&text(&c)), Ok(c));
            }
        }
    }
}
