//! Logging the way OCF agents do (resource-agents' ha_log): to syslog when
//! `HA_LOGFACILITY` names a facility, to `HA_LOGFILE` when set, else to
//! stderr, which the executor copies into the Pacemaker log. Debug messages
//! only with `HA_debug=1` (to `HA_DEBUGLOG` when set). The tag is
//! `pgsqlms(<resource>)[<pid>]`, or `HA_LOGTAG`.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

/// Mode of a log file the agent creates (HA_LOGFILE, HA_DEBUGLOG).
pub const LOGFILE_MODE: u32 = 0o640;

type Syslog = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

pub struct OcfLogger {
    tag: String,
    debug: bool,
    syslog: Option<Mutex<Syslog>>,
    logfile: Option<String>,
    debuglog: Option<String>,
}

pub fn level_word(l: Level) -> &'static str {
    match l {
        Level::Error => "ERROR",
        Level::Warn => "WARNING",
        Level::Info => "INFO",
        Level::Debug | Level::Trace => "DEBUG",
    }
}

fn facility(name: &str) -> Option<syslog::Facility> {
    name.parse::<syslog::Facility>().ok()
}

impl OcfLogger {
    pub fn from_env(env: &HashMap<String, String>) -> OcfLogger {
        let get = |k: &str| env.get(k).map(String::as_str).filter(|s| !s.is_empty());
        let instance = get("OCF_RESOURCE_INSTANCE").unwrap_or("undef");
        let tag =
            get("HA_LOGTAG").map(str::to_string).unwrap_or_else(|| format!("pgsqlms({instance})"));
        let debug = matches!(get("HA_debug"), Some("1") | Some("true") | Some("yes"));
        let syslog = get("HA_LOGFACILITY")
            .filter(|f| *f != "none")
            .and_then(facility)
            .and_then(|facility| {
                syslog::unix(syslog::Formatter3164 {
                    facility,
                    hostname: None,
                    process: tag.clone(),
                    pid: std::process::id(),
                })
                .ok()
            })
            .map(Mutex::new);
        OcfLogger {
            tag,
            debug,
            syslog,
            logfile: get("HA_LOGFILE").map(str::to_string),
            debuglog: get("HA_DEBUGLOG").map(str::to_string),
        }
    }

    fn line(&self, level: Level, msg: &str) -> String {
        format!("{}[{}]: {}: {}", self.tag, std::process::id(), level_word(level), msg)
    }

    fn append(path: &str, line: &str) {
        use std::os::unix::fs::OpenOptionsExt;
        // An explicit mode, not the executor's umask: the log may quote
        // server messages; readable by the owner's group (adm), no one else.
        if let Ok(mut f) =
            std::fs::OpenOptions::new().create(true).append(true).mode(LOGFILE_MODE).open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

impl Log for OcfLogger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= Level::Info || self.debug
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let msg = r.args().to_string();
        let line = self.line(r.level(), &msg);
        if r.level() >= Level::Debug
            && let Some(d) = &self.debuglog
        {
            Self::append(d, &line);
            return;
        }
        let mut sent = false;
        if let Some(s) = &self.syslog
            && let Ok(mut s) = s.lock()
        {
            let text = format!("{}: {msg}", level_word(r.level()));
            let _ = match r.level() {
                Level::Error => s.err(text),
                Level::Warn => s.warning(text),
                Level::Info => s.info(text),
                _ => s.debug(text),
            };
            sent = true;
        }
        if let Some(f) = &self.logfile {
            Self::append(f, &line);
            sent = true;
        }
        if !sent {
            eprintln!("{line}");
        }
    }

    fn flush(&self) {}
}

pub fn init(env: &HashMap<String, String>) {
    let logger = OcfLogger::from_env(env);
    let max = if logger.debug { LevelFilter::Debug } else { LevelFilter::Info };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
}

/// What Pacemaker keeps of an exit reason (EXIT_REASON_MAX_LEN).
pub const EXIT_REASON_MAX: usize = 128;

/// `reason` on one line, within `EXIT_REASON_MAX` bytes: cut on a character
/// boundary, with "..." when cut. Reasons put their cause first.
pub fn short_reason(reason: &str) -> String {
    let one_line: String = reason.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if one_line.len() <= EXIT_REASON_MAX {
        return one_line;
    }
    let mut end = EXIT_REASON_MAX - 3;
    while !one_line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &one_line[..end])
}

/// One `ocf-exit-reason:` line on stderr: crm_mon shows it beside the
/// failed action. The whole text is logged as an error.
pub fn exit_reason(env: &HashMap<String, String>, reason: &str) {
    let prefix =
        env.get("OCF_EXIT_REASON_PREFIX").map(String::as_str).unwrap_or("ocf-exit-reason:");
    log::error!("{}", reason.replace('\n', " "));
    eprintln!("{prefix}{}", short_reason(reason));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::env_of;

    #[test]
    fn tag_and_line_shape() {
        let l = OcfLogger::from_env(&env_of(
            "",
            &[("OCF_RESOURCE_INSTANCE", "pgsqld"), ("HA_LOGFACILITY", "none")],
        ));
        assert!(l.syslog.is_none());
        let line = l.line(Level::Warn, "hello");
        assert!(line.starts_with("pgsqlms(pgsqld)["), "{line}");
        assert!(line.ends_with("]: WARNING: hello"), "{line}");
        let l = OcfLogger::from_env(&env_of("", &[("HA_LOGTAG", "custom")]));
        assert!(l.line(Level::Info, "x").starts_with("custom["));
    }

    #[test]
    fn debug_only_with_ha_debug() {
        let meta = |lvl| Metadata::builder().level(lvl).build();
        let quiet = OcfLogger::from_env(&HashMap::new());
        assert!(quiet.enabled(&meta(Level::Info)));
        assert!(!quiet.enabled(&meta(Level::Debug)));
        let loud = OcfLogger::from_env(&env_of("", &[("HA_debug", "1")]));
        assert!(loud.enabled(&meta(Level::Debug)));
    }

    #[test]
    fn exit_reasons_fit_in_what_pacemaker_keeps() {
        assert_eq!(short_reason("short\nreason"), "short reason");
        let long = format!("cause first: {}", "é".repeat(70_000));
        let r = short_reason(&long);
        assert!(r.len() <= EXIT_REASON_MAX, "{} bytes", r.len());
        assert!(r.starts_with("cause first: é") && r.ends_with("..."), "{r}");
        let exact = "x".repeat(EXIT_REASON_MAX);
        assert_eq!(short_reason(&exact), exact);
    }

    #[test]
    fn logfile_receives_lines() {
        // whatever the umask (the executor's may be 000)
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let path = std::env::temp_dir().join(format!("pgsqlms-log-test-{}", std::process::id()));
        let l = OcfLogger::from_env(&env_of(
            "",
            &[("HA_LOGFILE", path.to_str().unwrap()), ("OCF_RESOURCE_INSTANCE", "r")],
        ));
        l.log(&Record::builder().level(Level::Info).args(format_args!("written")).build());
        nix::sys::stat::umask(old);
        let text = std::fs::read_to_string(&path).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        std::fs::remove_file(&path).unwrap();
        assert_eq!(mode & 0o7777, LOGFILE_MODE);
        assert!(text.contains("pgsqlms(r)[") && text.contains("INFO: written"), "{text}");
    }
}
