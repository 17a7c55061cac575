//! pgsqlms: OCF resource agent for PostgreSQL streaming replication.
//! A thin shell around `run`, which returns the OCF exit code.

mod actions;
mod agent;
mod cib;
mod conninfo;
mod controlfile;
mod crm_mon;
mod divergence;
mod election;
mod exit;
mod hang;
mod health;
mod healthd;
mod instance;
mod logging;
mod lsn;
mod metadata;
mod notify;
mod pacemaker;
mod params;
mod pg;
mod process;
mod procfs;
mod rejoin_policy;
mod role;
mod safefs;
mod scores;
mod slots;
mod status;
mod status_cmd;
mod syncrep;
mod validate;
mod waldump;

use actions::Action;
use clap::Parser;
use exit::OcfExit;
use std::collections::HashMap;
use std::process::ExitCode;

/// OCF resource agent managing PostgreSQL streaming replication
/// (ocf:rust:pgsqlms). Pacemaker runs it with the action as its only
/// argument and the parameters in OCF_RESKEY_* variables.
#[derive(Parser)]
#[command(name = "pgsqlms", version, about, long_about = None)]
struct Cli {
    /// The OCF action, or `man`. Two more commands take their own options:
    /// `status` and `health-server` (see `pgsqlms status --help`,
    /// `pgsqlms health-server --help`)
    action: Option<Action>,
}

/// The cluster at a glance, from any node (run as root).
#[derive(Parser)]
#[command(name = "pgsqlms status")]
struct StatusCli {
    /// Print JSON (schema in README.md, "Status view") instead of the table
    #[arg(long)]
    json: bool,
    /// The pgsqlms resource to show, when the CIB has several
    #[arg(long)]
    resource: Option<String>,
    /// Colours: auto (when stdout is a terminal and NO_COLOR is unset), always, never
    #[arg(long, default_value = "auto")]
    color: String,
}

/// HTTP health checks for load balancers: GET /primary, /replica[?lag=BYTES], /health.
#[derive(Parser)]
#[command(name = "pgsqlms health-server")]
struct HealthCli {
    /// Address and port to listen on (loopback by default: open it to the
    /// load balancer's network on purpose)
    #[arg(long, default_value = "127.0.0.1:8008")]
    listen: std::net::SocketAddr,
    /// The pgsqlms resource (names the promotion marker promote leaves)
    #[arg(long, default_value = "pgsqld")]
    resource: String,
    /// Socket directory (or host) of the local PostgreSQL
    #[arg(long, default_value = params::DEFAULT_PGHOST)]
    pghost: String,
    #[arg(long, default_value_t = params::DEFAULT_PGPORT)]
    pgport: u16,
    /// The user the session is opened as (peer authentication)
    #[arg(long, default_value = params::DEFAULT_SYSTEM_USER)]
    system_user: String,
    /// Pacemaker's resource-agent runtime directory (HA_RSCTMP)
    #[arg(long, default_value = "/run/resource-agents")]
    rsctmp: String,
    /// How long one check may wait for PostgreSQL, in milliseconds
    #[arg(long, default_value_t = 2000)]
    pg_timeout_ms: u64,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key)
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    install_panic_hook();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match argv.get(1).and_then(|a| a.to_str()) {
        Some("status") => return status_main(StatusCli::parse_from(&argv[1..])),
        Some("health-server") => return health_main(HealthCli::parse_from(&argv[1..])),
        _ => {}
    }
    let (env, not_utf8) = read_env(std::env::vars_os());
    let action = match parse_action(&argv, &env) {
        Ok(action) => action,
        Err(code) => return code.into(),
    };
    let needs_env = action.is_none_or(Action::needs_parameters);
    if let Some(name) = not_utf8.first().filter(|_| needs_env) {
        logging::init(&env);
        logging::exit_reason(
            &env,
            &format!("{name} is not valid UTF-8: parameters must be UTF-8 text"),
        );
        return OcfExit::ErrConfigured.into();
    }
    run(action, env).into()
}

/// The action named on the command line. One the agent does not know is
/// OCF's "unimplemented" (Pacemaker may try actions an agent lacks), with a
/// reason; `--help` and `--version` print and exit.
fn parse_action(
    argv: &[std::ffi::OsString],
    env: &HashMap<String, String>,
) -> Result<Option<Action>, OcfExit> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let e = match Cli::try_parse_from(argv) {
        Ok(cli) => return Ok(cli.action),
        Err(e) => e,
    };
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => e.exit(),
        ErrorKind::InvalidValue => {
            let name = match e.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            logging::init(env);
            logging::exit_reason(env, &format!("action \"{name}\" is not implemented"));
            Err(OcfExit::ErrUnimplemented)
        }
        _ => {
            let _ = e.print();
            Err(OcfExit::ErrArgs)
        }
    }
}

/// A bug must still look like an OCF failure with a reason, not an exit
/// status 101 Pacemaker has no meaning for.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("ocf-exit-reason:{}", panic_reason(info));
        std::process::exit(OcfExit::ErrGeneric.code().into());
    }));
}

fn panic_reason(info: &std::panic::PanicHookInfo) -> String {
    let what = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".into());
    let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
    format!("internal error (please report): {what}{at}").replace('\n', " ")
}

/// The environment as text. A variable that is not UTF-8 is dropped; its
/// name is returned when the agent reads it (`OCF_*`), so that the action
/// fails on it instead of running with a default in its place.
fn read_env(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> (HashMap<String, String>, Vec<String>) {
    let mut env = HashMap::new();
    let mut not_utf8 = Vec::new();
    for (k, v) in vars {
        match (k.into_string(), v.into_string()) {
            (Ok(k), Ok(v)) => {
                env.insert(k, v);
            }
            (k, _) => {
                let name = k.unwrap_or_else(|k| k.to_string_lossy().into_owned());
                if name.starts_with("OCF_") {
                    not_utf8.push(name);
                }
            }
        }
    }
    not_utf8.sort();
    (env, not_utf8)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn status_main(cli: StatusCli) -> ExitCode {
    use std::io::IsTerminal;
    let colour = match cli.color.as_str() {
        "always" => true,
        "never" => false,
        _ => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let work = async {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let view = status_cmd::pacemaker_view(cli.resource.as_deref(), deadline).await?;
        let params = status_cmd::params_of(&view.resource)?;
        let pg = status_cmd::local_pg(&params, true, deadline).await;
        Ok::<_, String>(status::build(&view.resource.id, &view.local, &view.status, &pg))
    };
    match runtime().and_then(|rt| rt.block_on(work)) {
        Ok(report) => {
            if cli.json {
                println!("{}", status::to_json(&report));
            } else {
                print!("{}", status::render(&report, colour));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pgsqlms status: {e}");
            ExitCode::FAILURE
        }
    }
}

fn health_main(cli: HealthCli) -> ExitCode {
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    logging::init(&env);
    let params = params::Params {
        system_user: cli.system_user,
        pghost: cli.pghost,
        pgport: cli.pgport,
        ..params::Params::from_env(&HashMap::new()).expect("defaults are valid")
    };
    let cfg = healthd::Config {
        listen: cli.listen,
        tls: cli.tls_cert.zip(cli.tls_key),
        params,
        resource: cli.resource,
        rsctmp: cli.rsctmp,
        pg_timeout: std::time::Duration::from_millis(cli.pg_timeout_ms),
    };
    let result = runtime().and_then(|rt| {
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, healthd::serve(cfg))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgsqlms health-server: {e}");
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(action: Option<Action>, env: HashMap<String, String>) -> OcfExit {
    let Some(action) = action else {
        let names: Vec<String> = Action::ocf().map(Action::name).collect();
        eprintln!("usage: pgsqlms {{{}}}", names.join("|"));
        return OcfExit::ErrArgs;
    };
    if let actions::Kind::Document(document) = action.kind() {
        print!("{}", document());
        return OcfExit::Success;
    }
    logging::init(&env);
    let started = tokio::time::Instant::now();
    // stop needs only where the instance is and who runs it: a bad value
    // of a parameter it does not use must not keep it from stopping
    // (actions::stop_despite_configuration says why).
    let (params, deferred) = match params::Params::from_env(&env) {
        Ok(p) => (p, None),
        Err(e) if action == Action::Stop => {
            let mut lenient = env.clone();
            for unused in ["OCF_RESKEY_maxlag", "OCF_RESKEY_pgport", "OCF_RESKEY_rejoin_policy"] {
                lenient.remove(unused);
            }
            match params::Params::from_env(&lenient) {
                Ok(p) => (p, Some(e.0)),
                Err(_) => {
                    logging::exit_reason(&env, &e.0);
                    return OcfExit::ErrConfigured;
                }
            }
        }
        Err(e) => {
            logging::exit_reason(&env, &e.0);
            return OcfExit::ErrConfigured;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            logging::exit_reason(&env, &format!("cannot start the async runtime: {e}"));
            return OcfExit::ErrGeneric;
        }
    };
    let agent = agent::Agent::new(env, params, started);
    let result = match deferred {
        Some(why) => runtime.block_on(actions::stop_despite_configuration(&agent, Some(&why))),
        None => runtime.block_on(actions::dispatch(action, &agent)),
    };
    let code = match result {
        Ok(code) => code,
        Err(f) => {
            logging::exit_reason(&agent.env, &f.reason);
            f.code
        }
    };
    log::debug!("{} returns {} ({})", action.name(), code.code(), code.name());
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_action_is_an_argument_error() {
        assert_eq!(run(None, HashMap::new()), OcfExit::ErrArgs);
    }

    fn argv(words: &[&str]) -> Vec<std::ffi::OsString> {
        words.iter().map(std::ffi::OsString::from).collect()
    }

    #[test]
    fn unknown_actions_are_unimplemented() {
        let env: HashMap<String, String> =
            [("HA_LOGFACILITY".to_string(), "none".to_string())].into();
        let r = parse_action(&argv(&["pgsqlms", "migrate_to"]), &env);
        assert_eq!(r, Err(OcfExit::ErrUnimplemented));
        let r = parse_action(&argv(&["pgsqlms", "monitor", "extra"]), &env);
        assert_eq!(r, Err(OcfExit::ErrArgs));
    }

    #[test]
    fn every_action_parses_by_its_name() {
        use clap::ValueEnum;
        for a in Action::value_variants() {
            let r = parse_action(&argv(&["pgsqlms", &a.name()]), &HashMap::new());
            assert_eq!(r, Ok(Some(*a)));
        }
        assert_eq!(parse_action(&argv(&["pgsqlms"]), &HashMap::new()), Ok(None));
    }

    #[test]
    fn metadata_and_methods_need_nothing() {
        assert_eq!(run(Some(Action::MetaData), HashMap::new()), OcfExit::Success);
        assert_eq!(run(Some(Action::Methods), HashMap::new()), OcfExit::Success);
    }

    #[test]
    fn non_utf8_parameters_are_named_not_a_panic() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(b"/srv/\xff".to_vec());
        let vars = vec![
            (OsString::from("OCF_RESKEY_pgdata"), bad.clone()),
            (OsString::from("LANG_JUNK"), bad.clone()),
            (OsString::from("OCF_RESKEY_pgport"), OsString::from("5432")),
        ];
        let (env, not_utf8) = read_env(vars.into_iter());
        assert_eq!(not_utf8, vec!["OCF_RESKEY_pgdata".to_string()]);
        assert_eq!(env.get("OCF_RESKEY_pgport").map(String::as_str), Some("5432"));
        assert!(!env.contains_key("LANG_JUNK") && !env.contains_key("OCF_RESKEY_pgdata"));
    }

    /// The hook is installed in main: run this test binary again with a
    /// panicking test, as a child, and look at how it ends.
    #[test]
    fn a_panic_exits_generic_with_a_reason() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "tests::panicking_child", "--ignored", "--nocapture"])
            .env("PGSQLMS_PANIC_CHILD", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("ocf-exit-reason:internal error") && l.contains("boom")),
            "{stderr}"
        );
    }

    #[test]
    #[ignore = "run by a_panic_exits_generic_with_a_reason"]
    fn panicking_child() {
        if std::env::var_os("PGSQLMS_PANIC_CHILD").is_some() {
            install_panic_hook();
            panic!("boom");
        }
    }

    #[test]
    fn bad_parameters_are_a_configuration_error() {
        let env: HashMap<String, String> =
            [("OCF_RESKEY_maxlag", "lots"), ("HA_LOGFACILITY", "none")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(run(Some(Action::Monitor), env), OcfExit::ErrConfigured);
    }
}
