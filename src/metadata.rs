//! meta-data XML and the ocf_rust_pgsqlms(7) manual page, both generated from
//! the parameter table in `params` and the `Action` enum, so parameters,
//! defaults and actions never drift between what Pacemaker reads and what the
//! operator reads.

use crate::actions::Action;
use crate::params::PARAMS;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

pub const AGENT_NAME: &str = "pgsqlms";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const SHORTDESC: &str =
    "Manages PostgreSQL servers in streaming replication (primary and hot standbys)";
const LONGDESC: &str = "Manages a PostgreSQL 12+ instance as a promotable clone: one primary, hot standbys \
fed by streaming replication. Instances always start as standbys; the best standby is elected at promotion \
time, and a switchover is cancelled when the designated standby did not receive the old primary's shutdown \
checkpoint. Drop-in replacement for PAF (ocf:heartbeat:pgsqlms): same parameters, same operating model.";

fn text_element(w: &mut Writer<Vec<u8>>, name: &str, attrs: &[(&str, &str)], text: &str) {
    let mut start = BytesStart::new(name);
    for (k, v) in attrs {
        start.push_attribute((*k, *v));
    }
    w.write_event(Event::Start(start)).expect("write to Vec");
    w.write_event(Event::Text(BytesText::new(text))).expect("write to Vec");
    w.write_event(Event::End(BytesEnd::new(name))).expect("write to Vec");
}

/// The OCF 1.1 meta-data document (valid against OCF 1.1's schema, as pcs
/// ships it in ocf-1.1.rng).
pub fn meta_data_xml() -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", None, None))).expect("write to Vec");
    w.write_event(Event::DocType(BytesText::from_escaped(
        "resource-agent SYSTEM \"ra-api-1.dtd\"",
    )))
    .expect("write to Vec");
    let mut root = BytesStart::new("resource-agent");
    root.push_attribute(("name", AGENT_NAME));
    root.push_attribute(("version", VERSION));
    w.write_event(Event::Start(root)).expect("write to Vec");
    text_element(&mut w, "version", &[], "1.1");
    text_element(&mut w, "longdesc", &[("lang", "en")], LONGDESC);
    text_element(&mut w, "shortdesc", &[("lang", "en")], SHORTDESC);

    w.write_event(Event::Start(BytesStart::new("parameters"))).expect("write to Vec");
    for p in PARAMS {
        let mut start = BytesStart::new("parameter");
        start.push_attribute(("name", p.name));
        start.push_attribute(("unique", if p.unique { "1" } else { "0" }));
        start.push_attribute(("required", "0"));
        if p.reloadable {
            start.push_attribute(("reloadable", "1"));
        }
        w.write_event(Event::Start(start)).expect("write to Vec");
        text_element(&mut w, "longdesc", &[("lang", "en")], p.longdesc);
        text_element(&mut w, "shortdesc", &[("lang", "en")], p.shortdesc);
        let mut content = BytesStart::new("content");
        content.push_attribute(("type", p.content_type));
        if let Some(d) = p.default {
            content.push_attribute(("default", d));
        }
        w.write_event(Event::Empty(content)).expect("write to Vec");
        w.write_event(Event::End(BytesEnd::new("parameter"))).expect("write to Vec");
    }
    w.write_event(Event::End(BytesEnd::new("parameters"))).expect("write to Vec");

    w.write_event(Event::Start(BytesStart::new("actions"))).expect("write to Vec");
    for action in Action::ocf() {
        for a in action.advertised() {
            let mut el = BytesStart::new("action");
            el.push_attribute(("name", action.name().as_str()));
            el.push_attribute(("timeout", a.timeout.to_string().as_str()));
            if let Some(i) = a.interval {
                el.push_attribute(("interval", i.to_string().as_str()));
                el.push_attribute(("depth", "0"));
            }
            if let Some(r) = a.role {
                el.push_attribute(("role", r));
            }
            w.write_event(Event::Empty(el)).expect("write to Vec");
        }
    }
    w.write_event(Event::End(BytesEnd::new("actions"))).expect("write to Vec");
    w.write_event(Event::End(BytesEnd::new("resource-agent"))).expect("write to Vec");
    let mut out = String::from_utf8(w.into_inner()).expect("all inputs are UTF-8");
    out.push('\n');
    out
}

/// The `methods` action: one supported action per line.
pub fn methods() -> String {
    Action::ocf().map(|a| a.name() + "\n").collect()
}

fn roff_escape(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    // A line starting with a dot or quote would be read as a request.
    if s.starts_with('.') || s.starts_with('\'') { format!("\\&{s}") } else { s }
}

/// What rejoin_policy does, for the manual page.
const REJOIN_SECTION: &str = ".SH FORMER PRIMARIES (rejoin_policy)\n\
A primary lost in a failover may have committed transactions no standby received: its WAL \
forked from the new primary's history. At its next start the agent proves it (the new \
primary's timeline history against this instance's last WAL record) and then, per \
\\fBrejoin_policy\\fR:\n\
.TP\n.B manual\nthe start fails; the exit reason asks for pg_rewind. Nothing is changed.\n\
.TP\n.B rewind\nonly when the CIB shows another node promoted and it answers through \
primary_conninfo, and pg_rewind \\-\\-dry\\-run succeeds: the WAL segments from the last \
checkpoint before the fork on are copied to \
\\fI<datadir>.diverged\\-<YYYYmmddTHHMMSS>\\-tl<timeline>\\fR beside the data directory, with \
this node's own top-level files (postgresql.conf, local.conf...); pg_rewind runs as system_user \
from primary_conninfo (dbname=postgres); this node's files are put back; it starts as a standby. \
Needs wal_log_hints=on or data checksums, and a primary_conninfo user that is superuser or has \
EXECUTE on pg_ls_dir(text,boolean,boolean), pg_stat_file(text,boolean), pg_read_binary_file(text) \
and pg_read_binary_file(text,bigint,bigint,boolean).\n\
.TP\n.B rewind\\-or\\-clone\nthe same; when pg_rewind is impossible or fails, pg_basebackup \
rebuilds the data directory, the old one renamed to \\fI<datadir>.replaced\\-<YYYYmmddTHHMMSS>\\fR \
(refused when the disk has no room for both).\n\
.PP\nWhat is lost: the transactions the old primary committed after the fork, which no client \
should have been told were durable with synchronous replication. They stay readable with \
\\fBpg_waldump \\-\\-path\\fR \\fI<datadir>.diverged\\-...\\fR; remove these directories once \
read. Both run within the start timeout (raise it to what a copy of the database takes); a \
run cut short leaves \\fI<datadir>.rejoin\\-in\\-progress\\fR and the next start redoes it \
(for pg_rewind, the kept WAL is put back first). validate\\-all checks the binaries (5), \
wal_log_hints or checksums, the user's rights and the room for a rebuild (2).\n";

/// The manual page, in man(7) roff.
pub fn man_page() -> String {
    let mut m = String::new();
    m.push_str(&format!(
        ".TH OCF_RUST_PGSQLMS 7 \"\" \"pgsqlms {VERSION}\" \"OCF resource agents\"\n"
    ));
    m.push_str(".SH NAME\nocf_rust_pgsqlms \\- ");
    m.push_str(&roff_escape(SHORTDESC));
    m.push_str("\n.SH SYNOPSIS\n.B pcs resource create pgsqld ocf:rust:pgsqlms\n");
    m.push_str("bindir=/usr/lib/postgresql/15/bin pgdata=/etc/postgresql/15/main datadir=/var/lib/postgresql/15/main promotable notify=true\n");
    m.push_str(".PP\n.B pgsqlms\n.I action\n.SH DESCRIPTION\n");
    m.push_str(&roff_escape(LONGDESC));
    m.push('\n');
    m.push_str(".SH PARAMETERS\n");
    for p in PARAMS {
        m.push_str(&format!(".TP\n.BR {} \" ({}", p.name, p.content_type));
        match p.default {
            Some(d) if !d.is_empty() => m.push_str(&format!(", default: {}", roff_escape(d))),
            Some(_) => m.push_str(", default: empty"),
            None => {}
        }
        m.push_str(")\"\n");
        m.push_str(&roff_escape(p.shortdesc));
        m.push_str(". ");
        m.push_str(&roff_escape(p.longdesc));
        m.push('\n');
    }
    m.push_str(".SH ACTIONS\n");
    for a in Action::ocf() {
        m.push_str(&format!(".TP\n.B {}\n", a.name()));
        m.push_str(&roff_escape(&a.description()));
        // clap drops the final period of a doc comment; the manual has sentences.
        m.push_str(&format!(". Default timeout: {} s.", a.advertised()[0].timeout));
        m.push('\n');
    }
    m.push_str(REJOIN_SECTION);
    m.push_str(".SH EXIT STATUS\nOCF codes: 0 success or running standby, 1 generic error, 2 invalid arguments, \
3 unimplemented action, 4 insufficient privileges, 5 not installed, 6 not configured, 7 not running, \
8 running as primary, 9 failed primary. Every failure prints one \\fBocf\\-exit\\-reason:\\fR line on \
standard error, which crm_mon shows beside the failed action.\n");
    m.push_str(".SH ENVIRONMENT\n.TP\n.B HA_LOGFACILITY\nSyslog facility (none: no syslog).\n.TP\n.B HA_debug\n\
1 to log debug messages.\n.TP\n.B HA_SBIN_DIR\nWhere the Pacemaker tools are (default /usr/sbin).\n");
    m.push_str(".SH SEE ALSO\n.BR pcs (8),\n.BR crm_mon (8),\n.BR pg_ctl (1)\n");
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_data_lists_every_parameter_with_its_default() {
        let xml = meta_data_xml();
        for p in PARAMS {
            assert!(xml.contains(&format!("<parameter name=\"{}\"", p.name)), "{}", p.name);
            if let Some(d) = p.default {
                assert!(xml.contains(&format!("default=\"{d}\"")), "{}", p.name);
            }
        }
        assert!(xml.contains("<version>1.1</version>"));
        assert!(xml.contains("<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">"));
        assert!(xml.contains("role=\"Promoted\"") && xml.contains("role=\"Unpromoted\""));
    }

    /// Pacemaker 2.1+ restarts an OCF 1.1 agent's instances on any
    /// parameter change unless the agent advertises reload-agent and marks
    /// the parameter reloadable: the agent-only settings must not restart
    /// PostgreSQL everywhere; what PostgreSQL or the start uses must.
    #[test]
    fn agent_only_parameters_are_reloadable() {
        let xml = meta_data_xml();
        assert!(xml.contains("<action name=\"reload-agent\""), "{xml}");
        let reloadable: Vec<&str> =
            PARAMS.iter().filter(|p| p.reloadable).map(|p| p.name).collect();
        assert_eq!(
            reloadable,
            ["maxlag", "sync_failover", "rejoin_policy", "replication_slots_grace"]
        );
        for p in PARAMS {
            let tag = format!(
                "<parameter name=\"{}\" unique=\"{}\" required=\"0\"",
                p.name, p.unique as u8
            );
            let with = format!("{tag} reloadable=\"1\">");
            assert!(xml.contains(if p.reloadable { &with } else { &tag }), "{}", p.name);
            assert_eq!(xml.contains(&with), p.reloadable, "{}", p.name);
        }
    }

    #[test]
    fn methods_lists_each_action_once() {
        let m = methods();
        assert_eq!(m.lines().filter(|l| *l == "monitor").count(), 1);
        assert_eq!(m.lines().count(), Action::ocf().count());
        for a in Action::ocf() {
            assert!(m.lines().any(|l| l == a.name()), "{}", a.name());
        }
    }

    #[test]
    fn meta_data_and_man_page_list_every_action() {
        let xml = meta_data_xml();
        let man = man_page();
        for a in Action::ocf() {
            let name = a.name();
            for ad in a.advertised() {
                let mut el = format!("<action name=\"{name}\" timeout=\"{}\"", ad.timeout);
                if let (Some(i), Some(r)) = (ad.interval, ad.role) {
                    el.push_str(&format!(" interval=\"{i}\" depth=\"0\" role=\"{r}\""));
                }
                assert!(xml.contains(&format!("{el}/>")), "meta-data lacks {el}:\n{xml}");
            }
            let entry = format!(".TP\n.B {name}\n{}. Default", roff_escape(&a.description()));
            assert!(man.contains(&entry), "the man page lacks {name}");
        }
        assert!(!xml.contains("\"man\""), "man is not an OCF action");
    }

    #[test]
    fn man_page_documents_the_same_parameters() {
        let man = man_page();
        for p in PARAMS {
            assert!(man.contains(&format!(".BR {} ", p.name)), "{}", p.name);
        }
        assert!(man.contains("/usr/lib/postgresql/15/bin"));
        assert!(man.starts_with(".TH OCF_RUST_PGSQLMS 7"));
        assert!(man.contains("FORMER PRIMARIES (rejoin_policy)") && man.contains("diverged"));
    }

    #[test]
    fn roff_escapes_requests_and_dashes() {
        assert_eq!(roff_escape(".x-y"), "\\&.x\\-y");
        assert_eq!(roff_escape("a\\b"), "a\\eb");
    }
}
