//! The server's configuration file (TOML).
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8787"
//! token_file = "/etc/clawcage/api-token"   # or token = "..." (at least 16 characters)
//! concurrency = 2                           # tasks running at once, all groups together
//!
//! [groups.dev]
//! policy = "policies/dev.toml"   # relative paths are relative to this file
//! workspace = "/srv/dev"
//! model = "anthropic:claude-sonnet-4-5"
//! memory = "memory/dev.md"       # the agent reads it and may update it (`memory` tool); not in the workspace
//! skills = "skills/dev"         # where its skills are (default: the installed ones); only approved ones are used
//! mcp = "mcp/dev.toml"           # [mcp.NAME] servers started inside each task's sandbox
//! agent_schedules = 5            # the agent may keep up to 5 schedules here (`schedule` tool)
//!
//! [roles.maintainer]
//! members = ["telegram:1234", "slack:U0123", "discord:5678"]
//! start = ["dev"]                # groups this role may start tasks in ("*": all)
//! approve = ["dev"]              # groups whose approvals this role may answer
//!
//! [channels.telegram]
//! token = "env:TELEGRAM_BOT_TOKEN"   # or "file:/path"
//! group = "dev"
//! ```
//!
//! Every error names the file, line, column and field; unknown keys are
//! errors. The bearer token of the HTTP API is the operator: it may do
//! everything. Chat senders get what their roles give them, nothing
//! otherwise.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Config files larger than this are refused before parsing.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Shortest API token accepted.
const MIN_TOKEN_LEN: usize = 16;
/// Most tasks that may run at once.
const MAX_CONCURRENCY: u32 = 256;
/// Most schedules a group's agent may keep (`agent_schedules`).
pub const MAX_AGENT_SCHEDULES: u32 = 100;
/// The chat channels a role member may name.
pub const CHANNELS: &[&str] = &["telegram", "slack", "discord"];

/// A configuration that cannot be used. `Display` is one line naming the
/// file, and for invalid content the line, column and field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read the config file: {source}")]
    Io {
        /// The path as given.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, a wrong type, or an unacceptable value.
    #[error("{file}:{line}:{column}: field `{field}`: {message}")]
    Invalid {
        /// The path as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (characters).
        column: usize,
        /// Dotted field path, e.g. `groups.dev.policy`.
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// A group's policy file is not valid (the policy error names its own file).
    #[error("{file}:{line}:{column}: field `groups.{group}.policy`: {source}")]
    Policy {
        /// The config file.
        file: String,
        /// Line of the `policy` key.
        line: usize,
        /// Column of the `policy` key.
        column: usize,
        /// The group.
        group: String,
        /// The policy's own error.
        #[source]
        source: Box<clawcage_policy::PolicyError>,
    },
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[groups.NAME]`, by name.
    pub groups: BTreeMap<String, Group>,
    /// `[roles.NAME]`, by name.
    pub roles: BTreeMap<String, RoleConfig>,
    /// `[channels.*]`.
    pub channels: Channels,
}

/// `[server]`.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address the HTTP API and web UI listen on.
    pub listen: SocketAddr,
    /// The API's bearer token.
    pub token: String,
    /// Tasks running at once, all groups together.
    pub concurrency: usize,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("token", &"<redacted>")
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// An agent group: where and under which policy its tasks run.
#[derive(Debug, Clone)]
pub struct Group {
    /// Its name.
    pub name: String,
    /// The policy file (absolute).
    pub policy_file: PathBuf,
    /// The policy, parsed and validated.
    pub policy: clawcage_policy::Policy,
    /// The workspace directory (absolute, exists).
    pub workspace: PathBuf,
    /// The model, `provider:name`; `None`: the agent's default.
    pub model: Option<String>,
    /// The memory file the agent reads and may update.
    pub memory: Option<PathBuf>,
    /// The skills directory.
    pub skills: Option<PathBuf>,
    /// MCP servers started inside each task's sandbox (`mcp = "FILE"`).
    pub mcp: BTreeMap<String, clawcage_agent::mcp::ServerConfig>,
    /// `agent_schedules`: how many schedules the group's agent may keep
    /// through its `schedule` tool (`None`: the tool is not offered and a
    /// call to it is refused).
    pub agent_schedules: Option<u32>,
}

/// Which groups a permission covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Groups {
    /// Every group (`"*"`).
    All,
    /// These groups.
    Some(BTreeSet<String>),
}

impl Groups {
    /// Whether `group` is covered.
    pub fn contains(&self, group: &str) -> bool {
        match self {
            Groups::All => true,
            Groups::Some(s) => s.contains(group),
        }
    }
}

/// `[roles.NAME]`.
#[derive(Debug, Clone)]
pub struct RoleConfig {
    /// Senders holding the role, as `(channel, sender id)`.
    pub members: BTreeSet<(String, String)>,
    /// Groups the role may start tasks in.
    pub start: Groups,
    /// Groups whose approvals the role may answer.
    pub approve: Groups,
}

/// What a sender may do, from the roles they hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rights {
    /// The roles (empty: an unknown sender).
    pub roles: Vec<String>,
}

impl Config {
    /// The roles `sender` on `channel` holds (none: an unknown sender).
    pub fn rights(&self, channel: &str, sender: &str) -> Rights {
        let key = (channel.to_string(), sender.to_string());
        Rights { roles: self.roles.iter().filter(|(_, r)| r.members.contains(&key)).map(|(n, _)| n.clone()).collect() }
    }

    /// Whether a sender with `rights` may start a task in `group`.
    pub fn may_start(&self, rights: &Rights, group: &str) -> bool {
        rights.roles.iter().any(|r| self.roles.get(r).is_some_and(|r| r.start.contains(group)))
    }

    /// Whether a sender with `rights` may answer approvals of tasks in `group`.
    pub fn may_approve(&self, rights: &Rights, group: &str) -> bool {
        rights.roles.iter().any(|r| self.roles.get(r).is_some_and(|r| r.approve.contains(group)))
    }
}

/// `[channels.*]`: the chat channels to run.
#[derive(Debug, Clone, Default)]
pub struct Channels {
    /// Telegram Bot API.
    pub telegram: Option<Telegram>,
    /// Slack Events API.
    pub slack: Option<Slack>,
    /// Discord gateway.
    pub discord: Option<Discord>,
}

/// A secret read from the environment or a file; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `[channels.telegram]`.
#[derive(Debug, Clone)]
pub struct Telegram {
    /// Bot token.
    pub token: Secret,
    /// Group its tasks run in.
    pub group: String,
    /// API base URL (default `https://api.telegram.org`).
    pub api_base: String,
}

/// `[channels.slack]`.
#[derive(Debug, Clone)]
pub struct Slack {
    /// Bot token (`xoxb-...`) for chat.postMessage.
    pub bot_token: Secret,
    /// Signing secret that verifies the Events API's requests.
    pub signing_secret: Secret,
    /// Group its tasks run in.
    pub group: String,
    /// Web API base URL (default `https://slack.com/api`).
    pub api_base: String,
}

/// `[channels.discord]`.
#[derive(Debug, Clone)]
pub struct Discord {
    /// Bot token.
    pub token: Secret,
    /// Group its tasks run in.
    pub group: String,
    /// REST base URL (default `https://discord.com/api/v10`).
    pub api_base: String,
    /// Gateway URL (default `wss://gateway.discord.gg/?v=10&encoding=json`).
    pub gateway: String,
}

// ---- the file as written ----------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    #[serde(default)]
    groups: BTreeMap<String, Spanned<RawGroup>>,
    #[serde(default)]
    roles: BTreeMap<String, RawRole>,
    #[serde(default)]
    channels: RawChannels,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Spanned<String>,
    token: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    concurrency: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    policy: Spanned<String>,
    workspace: Spanned<String>,
    model: Option<Spanned<String>>,
    memory: Option<Spanned<String>>,
    skills: Option<Spanned<String>>,
    mcp: Option<Spanned<String>>,
    agent_schedules: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    #[serde(default)]
    members: Vec<Spanned<String>>,
    #[serde(default)]
    start: Vec<Spanned<String>>,
    #[serde(default)]
    approve: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawChannels {
    telegram: Option<RawTelegram>,
    slack: Option<RawSlack>,
    discord: Option<RawDiscord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTelegram {
    token: Spanned<String>,
    group: Spanned<String>,
    api_base: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    bot_token: Spanned<String>,
    signing_secret: Spanned<String>,
    group: Spanned<String>,
    api_base: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscord {
    token: Spanned<String>,
    group: Spanned<String>,
    api_base: Option<Spanned<String>>,
    gateway: Option<Spanned<String>>,
}

/// Read and validate the config file at `path`: every referenced file is
/// checked (policies parsed, workspaces present, secrets readable).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    use std::io::Read;
    let name = path.display().to_string();
    let io = |source| ConfigError::Io { file: name.clone(), source };
    let mut text = String::new();
    std::fs::File::open(path).and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)).map_err(io)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(io(std::io::Error::other(format!("larger than {MAX_FILE_BYTES} bytes"))));
    }
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
    parse(&text, &name, &base, &|var| std::env::var(var).ok())
}

/// Parse config `text` (named `origin` in errors); relative paths are
/// relative to `base`; `env` looks up `env:VAR` secrets.
pub fn parse(
    text: &str,
    origin: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let cx = Cx { file: origin, text, base };
    let de = toml::Deserializer::new(text);
    let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        // toml's `Spanned` shows up in the path as private segments.
        let field = e.path().to_string();
        let field: Vec<&str> = field.split('.').filter(|s| !s.starts_with("$__serde_spanned")).collect();
        let field = field.join(".");
        let inner = e.into_inner();
        let span = inner.span().unwrap_or(0..0);
        cx.err(&span, if field == "." { "" } else { &field }, inner.message().to_string())
    })?;
    cx.build(raw, env)
}

struct Cx<'a> {
    file: &'a str,
    text: &'a str,
    base: &'a Path,
}

impl Cx<'_> {
    fn err(&self, span: &Range<usize>, field: &str, message: String) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError::Invalid { file: self.file.to_string(), line, column, field: field.to_string(), message }
    }

    fn at<T>(&self, v: &Spanned<T>, field: &str, message: impl Into<String>) -> ConfigError {
        self.err(&v.span(), field, message.into())
    }

    fn path(&self, v: &Spanned<String>) -> PathBuf {
        let p = Path::new(v.get_ref());
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn build(&self, raw: RawConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let server = self.server(&raw.server)?;
        let mut groups = BTreeMap::new();
        for (name, g) in &raw.groups {
            let field = format!("groups.{name}");
            if !valid_name(name) {
                return Err(self.at(g, &field, format!("{name:?} is not a group name (letters, digits, - and _)")));
            }
            groups.insert(name.clone(), self.group(name, g.get_ref())?);
        }
        let mut roles = BTreeMap::new();
        for (name, r) in &raw.roles {
            roles.insert(name.clone(), self.role(name, r, &groups)?);
        }
        let group_ref = |v: &Spanned<String>, field: &str| -> Result<String, ConfigError> {
            if groups.contains_key(v.get_ref()) {
                Ok(v.get_ref().clone())
            } else {
                Err(self.at(v, field, format!("no group {:?} is defined", v.get_ref())))
            }
        };
        let base_url = |v: &Option<Spanned<String>>, field: &str, default: &str| -> Result<String, ConfigError> {
            match v {
                None => Ok(default.to_string()),
                Some(v) => {
                    let s = v.get_ref().trim_end_matches('/');
                    let ok = ["http://", "https://", "ws://", "wss://"].iter().any(|p| s.starts_with(p));
                    if ok {
                        Ok(s.to_string())
                    } else {
                        Err(self.at(v, field, format!("{s:?} is not an http(s) or ws(s) URL")))
                    }
                }
            }
        };
        let ch = &raw.channels;
        let channels = Channels {
            telegram: match &ch.telegram {
                None => None,
                Some(t) => Some(Telegram {
                    token: self.secret(&t.token, "channels.telegram.token", env)?,
                    group: group_ref(&t.group, "channels.telegram.group")?,
                    api_base: base_url(&t.api_base, "channels.telegram.api_base", "https://api.telegram.org")?,
                }),
            },
            slack: match &ch.slack {
                None => None,
                Some(s) => Some(Slack {
                    bot_token: self.secret(&s.bot_token, "channels.slack.bot_token", env)?,
                    signing_secret: self.secret(&s.signing_secret, "channels.slack.signing_secret", env)?,
                    group: group_ref(&s.group, "channels.slack.group")?,
                    api_base: base_url(&s.api_base, "channels.slack.api_base", "https://slack.com/api")?,
                }),
            },
            discord: match &ch.discord {
                None => None,
                Some(d) => Some(Discord {
                    token: self.secret(&d.token, "channels.discord.token", env)?,
                    group: group_ref(&d.group, "channels.discord.group")?,
                    api_base: base_url(&d.api_base, "channels.discord.api_base", "https://discord.com/api/v10")?,
                    gateway: base_url(
                        &d.gateway,
                        "channels.discord.gateway",
                        "wss://gateway.discord.gg/?v=10&encoding=json",
                    )?,
                }),
            },
        };
        Ok(Config { file: PathBuf::from(self.file), server, groups, roles, channels })
    }

    fn server(&self, s: &RawServer) -> Result<ServerConfig, ConfigError> {
        let listen = s.listen.get_ref().parse::<SocketAddr>().map_err(|_| {
            self.at(
                &s.listen,
                "server.listen",
                format!("{:?} is not an address (e.g. 127.0.0.1:8787)", s.listen.get_ref()),
            )
        })?;
        let token = match (&s.token, &s.token_file) {
            (Some(t), None) => t.get_ref().clone(),
            (None, Some(f)) => self.token_file(f)?,
            (Some(t), Some(_)) => return Err(self.at(t, "server.token", "give token or token_file, not both")),
            (None, None) => {
                return Err(self.at(&s.listen, "server.token", "missing: the API needs token or token_file"));
            }
        };
        if token.chars().count() < MIN_TOKEN_LEN || token.chars().any(char::is_whitespace) {
            let (v, field) = match (&s.token, &s.token_file) {
                (Some(t), _) => (t, "server.token"),
                (_, Some(f)) => (f, "server.token_file"),
                _ => (&s.listen, "server.token"),
            };
            return Err(self.at(v, field, format!("the token must be at least {MIN_TOKEN_LEN} characters, no spaces")));
        }
        let concurrency = match &s.concurrency {
            None => 2,
            Some(c) if (1..=MAX_CONCURRENCY).contains(c.get_ref()) => *c.get_ref() as usize,
            Some(c) => {
                return Err(self.at(c, "server.concurrency", format!("must be between 1 and {MAX_CONCURRENCY}")));
            }
        };
        Ok(ServerConfig { listen, token, concurrency })
    }

    fn token_file(&self, f: &Spanned<String>) -> Result<String, ConfigError> {
        let path = self.path(f);
        let field = "server.token_file";
        let meta = std::fs::metadata(&path).map_err(|e| self.at(f, field, format!("{}: {e}", path.display())))?;
        if meta.permissions().mode() & 0o077 != 0 {
            let msg = format!(
                "{} is readable by others (mode {:o}); chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            );
            return Err(self.at(f, field, msg));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| self.at(f, field, format!("{}: {e}", path.display())))?;
        Ok(text.trim_end_matches(['\n', '\r']).to_string())
    }

    fn group(&self, name: &str, g: &RawGroup) -> Result<Group, ConfigError> {
        let field = |k: &str| format!("groups.{name}.{k}");
        let policy_file = self.path(&g.policy);
        let policy = clawcage_policy::load_file(&policy_file).map_err(|source| {
            let (line, column) = line_col(self.text, g.policy.span().start);
            ConfigError::Policy {
                file: self.file.to_string(),
                line,
                column,
                group: name.to_string(),
                source: Box::new(source),
            }
        })?;
        let workspace = self.path(&g.workspace);
        let workspace = std::fs::canonicalize(&workspace).ok().filter(|p| p.is_dir()).ok_or_else(|| {
            self.at(&g.workspace, &field("workspace"), format!("{} is not a directory", workspace.display()))
        })?;
        let model = match &g.model {
            None => None,
            Some(m) => {
                let ok = m.get_ref().split_once(':').is_some_and(|(p, n)| valid_name(p) && !n.is_empty());
                if !ok {
                    let msg = format!("{:?} is not provider:name (e.g. anthropic:claude-sonnet-4-5)", m.get_ref());
                    return Err(self.at(m, &field("model"), msg));
                }
                Some(m.get_ref().clone())
            }
        };
        let memory = match &g.memory {
            None => None,
            Some(m) => {
                let p = self.path(m);
                if !p.parent().is_some_and(Path::is_dir) || p.is_dir() {
                    let msg = format!("{} is not a file in an existing directory", p.display());
                    return Err(self.at(m, &field("memory"), msg));
                }
                // The memory tool writes it directly: inside the workspace
                // that would be a change that skips review.
                let dir = p.parent().and_then(|d| std::fs::canonicalize(d).ok());
                if dir.is_some_and(|d| d.starts_with(&workspace)) {
                    let msg = format!(
                        "{} is inside the workspace {}: the agent's memory writes would skip review; put it outside",
                        p.display(),
                        workspace.display()
                    );
                    return Err(self.at(m, &field("memory"), msg));
                }
                Some(p)
            }
        };
        let skills = match &g.skills {
            None => None,
            Some(s) => {
                let p = self.path(s);
                if !p.is_dir() {
                    return Err(self.at(s, &field("skills"), format!("{} is not a directory", p.display())));
                }
                Some(p)
            }
        };
        let agent_schedules = match &g.agent_schedules {
            None => None,
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(v) if (1..=MAX_AGENT_SCHEDULES).contains(&v) => Some(v),
                _ => {
                    let msg = format!(
                        "{} is not a number of schedules from 1 to {MAX_AGENT_SCHEDULES} (leave it out: the agent may not schedule)",
                        n.get_ref()
                    );
                    return Err(self.at(n, &field("agent_schedules"), msg));
                }
            },
        };
        let mcp = match &g.mcp {
            None => BTreeMap::new(),
            Some(m) => {
                let p = self.path(m);
                clawcage_agent::mcp::load_config(&p).map_err(|e| self.at(m, &field("mcp"), e))?
            }
        };
        Ok(Group {
            name: name.to_string(),
            policy_file,
            policy,
            workspace,
            model,
            memory,
            skills,
            mcp,
            agent_schedules,
        })
    }

    fn role(&self, name: &str, r: &RawRole, groups: &BTreeMap<String, Group>) -> Result<RoleConfig, ConfigError> {
        let mut members = BTreeSet::new();
        for m in &r.members {
            let field = format!("roles.{name}.members");
            let ok = m.get_ref().split_once(':').filter(|(c, id)| CHANNELS.contains(c) && !id.is_empty());
            let Some((c, id)) = ok else {
                let msg = format!("{:?} is not channel:sender-id with channel one of {CHANNELS:?}", m.get_ref());
                return Err(self.at(m, &field, msg));
            };
            members.insert((c.to_string(), id.to_string()));
        }
        let groups_of = |list: &[Spanned<String>], key: &str| -> Result<Groups, ConfigError> {
            let mut out = BTreeSet::new();
            for g in list {
                if g.get_ref() == "*" {
                    return Ok(Groups::All);
                }
                if !groups.contains_key(g.get_ref()) {
                    return Err(self.at(
                        g,
                        &format!("roles.{name}.{key}"),
                        format!("no group {:?} is defined", g.get_ref()),
                    ));
                }
                out.insert(g.get_ref().clone());
            }
            Ok(Groups::Some(out))
        };
        Ok(RoleConfig { members, start: groups_of(&r.start, "start")?, approve: groups_of(&r.approve, "approve")? })
    }

    fn secret(
        &self,
        v: &Spanned<String>,
        field: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secret, ConfigError> {
        let s = v.get_ref();
        let value = if let Some(var) = s.strip_prefix("env:") {
            env(var)
                .filter(|x| !x.is_empty())
                .ok_or_else(|| self.at(v, field, format!("environment variable {var} is not set")))?
        } else if let Some(file) = s.strip_prefix("file:") {
            let p = self.path(&Spanned::new(0..0, file.to_string()));
            let text = std::fs::read_to_string(&p).map_err(|e| self.at(v, field, format!("{}: {e}", p.display())))?;
            text.trim_end_matches(['\n', '\r']).to_string()
        } else {
            return Err(self.at(v, field, "expected env:VAR or file:PATH (secrets are not written into the config)"));
        };
        if value.is_empty() {
            return Err(self.at(v, field, "the secret is empty"));
        }
        Ok(Secret(value))
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
