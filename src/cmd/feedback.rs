//! `netanom feedback`: operators' rules (suppress, benign), appended to `feedback.jsonl`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};

use netanom::config::ToolPaths;
use netanom::feedback::incidents::read_incidents;
use netanom::feedback::store::{self, Contents};
use netanom::feedback::{Action, Expiry, Record, Rule, RuleState, Scope, Span};
use netanom::output::alerts::format_timestamp;
use netanom_cli::{FeedbackArgs, FeedbackCommand, FeedbackRuleArgs};

/// Runs a `feedback` subcommand.
pub fn run(args: FeedbackArgs) -> anyhow::Result<ExitCode> {
    let paths = ToolPaths::load(
        args.config.as_deref(),
        args.alert_log.clone(),
        args.state_dir.clone(),
    )?;
    let file = paths.feedback.file();
    match args.command {
        FeedbackCommand::Suppress(a) => add(&paths, Action::Suppress, a),
        FeedbackCommand::Benign(a) => add(&paths, Action::Benign, a),
        FeedbackCommand::List(a) => {
            let contents = read(&file)?;
            let now = now();
            for e in contents.rules.entries() {
                let state = e.state(now);
                if state == RuleState::Expired && !a.all {
                    continue;
                }
                if a.json {
                    let mut v = serde_json::to_value(&e.rule)?;
                    v["state"] = state.as_str().into();
                    if let Some(x) = &e.expired {
                        v["expired"] = serde_json::to_value(x)?;
                    }
                    println!("{v}");
                } else {
                    let until = match (&e.expired, &e.rule.expires) {
                        (Some(x), _) => format!("expired {} by {}: {}", x.at, x.who, x.comment),
                        (None, Some(t)) => format!("until {t}"),
                        (None, None) => "no expiry".into(),
                    };
                    println!(
                        "{}  {:<8}  {:<7}  {}  by {} at {}, {until}  — {}",
                        e.rule.id,
                        e.rule.action.as_str(),
                        state.as_str(),
                        e.rule.scope,
                        e.rule.who,
                        e.rule.created,
                        e.rule.comment
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        FeedbackCommand::Expire(a) => {
            if a.comment.trim().is_empty() {
                bail!("--comment is empty: say why the rule ends (it is kept with the expiry)");
            }
            let contents = read(&file)?;
            let Some(e) = contents.rules.get(&a.id) else {
                bail!("unknown feedback rule id {} in {}", a.id, file.display());
            };
            if e.state(now()) == RuleState::Expired {
                bail!(
                    "feedback rule {} in {} has already expired",
                    a.id,
                    file.display()
                );
            }
            let (at, at_epoch) = stamp();
            store::append(
                &file,
                &Record::Expire(Expiry {
                    id: a.id.clone(),
                    comment: a.comment,
                    who: who(),
                    at,
                    at_epoch,
                }),
            )?;
            println!("feedback rule {} expired ({})", a.id, file.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads the rules, naming skipped lines on stderr.
fn read(file: &Path) -> anyhow::Result<Contents> {
    let contents = store::read(file)?;
    for s in &contents.skipped {
        eprintln!(
            "netanom: warning: {}:{}: skipped: {}",
            file.display(),
            s.line,
            s.reason
        );
    }
    Ok(contents)
}

/// Checks and appends a new rule.
fn add(paths: &ToolPaths, action: Action, a: FeedbackRuleArgs) -> anyhow::Result<ExitCode> {
    let file = paths.feedback.file();
    let scope = Scope {
        incident: a.incident.clone(),
        host: a.host,
        subnet: a.subnet,
        feature: a.feature.clone(),
    };
    if scope.matches_everything() && !a.force {
        bail!(
            "the scope of this rule ({scope}) matches every incident: give --incident, --host, --subnet or --feature, or --force if you mean every incident"
        );
    }
    if a.comment.trim().is_empty() {
        bail!("--comment is empty: say why (it is kept with the rule)");
    }
    let mut incident_span = None;
    if let Some(id) = &a.incident {
        let log = &paths.alert_log;
        let incidents = read_incidents(log)
            .with_context(|| format!("cannot read the alert log {} to look incident {id} up (set --alert-log or alerts.path)", log.display()))?;
        let Some(inc) = incidents.iter().find(|i| i.facts.id == *id) else {
            bail!(
                "unknown incident id {id} in {} (and its rotated generations)",
                log.display()
            );
        };
        incident_span = Some(Span {
            start_epoch: inc.start_ns as f64 / 1e9,
            end_epoch: inc.end_ns as f64 / 1e9,
        });
    }
    let contents = read(&file)?;
    let id = new_id(&contents);
    let (created, created_epoch) = stamp();
    let (expires, expires_epoch) = match a.expires {
        Some(d) if d.as_secs() > MAX_EXPIRES_S => bail!(
            "--expires {} is longer than ten years: leave --expires out for a rule that never ends",
            humantime::format_duration(d)
        ),
        Some(d) => {
            let at = created_epoch + d.as_secs_f64();
            (Some(format_timestamp((at * 1e9) as i64)), Some(at))
        }
        None => (None, None),
    };
    let rule = Rule {
        id: id.clone(),
        action,
        scope,
        comment: a.comment,
        who: who(),
        created,
        created_epoch,
        expires,
        expires_epoch,
        force: a.force,
        incident_span,
    };
    if let Some(dir) = file.parent() {
        if !dir.is_dir() {
            bail!(
                "the feedback state directory {} does not exist (set --state-dir or feedback.dir)",
                dir.display()
            );
        }
    }
    store::append(&file, &Record::Rule(rule.clone()))?;
    println!(
        "feedback rule {id}: {} {} ({})",
        action.as_str(),
        rule.scope,
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The longest `--expires` (ten years): beyond it the expiry would not be a date anyone means.
const MAX_EXPIRES_S: u64 = 10 * 365 * 86_400;

/// Now, Unix seconds.
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Now as RFC 3339 (µs, UTC) and Unix seconds.
fn stamp() -> (String, f64) {
    let t = now();
    (format_timestamp((t * 1e9) as i64), t)
}

/// Who is making the rule: the user behind sudo, else the login, else the uid.
fn who() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        // SAFETY: getuid has no preconditions.
        .unwrap_or_else(|| format!("uid {}", unsafe { libc::getuid() }))
}

/// An 8-hex-digit id not used yet in the file.
fn new_id(contents: &Contents) -> String {
    loop {
        let mut b = [0u8; 4];
        // SAFETY: the buffer is valid for its length.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
        if n != b.len() as isize {
            let t = now().to_bits() ^ u64::from(std::process::id());
            b.copy_from_slice(&(t as u32 ^ (t >> 32) as u32).to_le_bytes());
        }
        let id: String = b.iter().map(|x| format!("{x:02x}")).collect();
        if contents.rules.get(&id).is_none() {
            return id;
        }
    }
}
