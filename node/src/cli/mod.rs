//! The `pkgnode` command line, in the spirit of `rspm`: serve, and the admin commands that work
//! directly on the configured database and storage (cluster and lock commands in `cluster`, git
//! builder commands in `git`).

mod cluster;
mod git;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::auth::{Scope, SecureKey};
use crate::config::{Config, Overrides};
use crate::ingest::{self, Claims, Ingested};
use crate::received::Received;
use crate::store::{RepoKind, Revoked, SourceKind, TokenRecord};

#[derive(Debug, Parser)]
#[command(
    name = "pkgnode",
    version,
    about = "A package-repository node for CRAN and PyPI clients"
)]
pub struct Cli {
    /// Configuration file (TOML); without one, SQLite and files under --data-dir.
    #[arg(long, global = true, env = "PKGNODE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the file).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Listen address (overrides the file).
    #[arg(long, global = true)]
    pub listen: Option<std::net::SocketAddr>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP until interrupted.
    Serve,
    /// Print the schema version this build migrates a database to (its newest migration).
    SchemaVersion,
    /// Create a source, a repo or a token.
    #[command(subcommand)]
    Create(Create),
    /// Subscribe a repo to a source.
    Subscribe {
        #[arg(long)]
        repo: String,
        #[arg(long)]
        source: String,
        /// Lower wins when two sources hold the same name; default after existing ones.
        #[arg(long)]
        priority: Option<i64>,
    },
    /// Add package files to a source.
    Add {
        #[arg(long)]
        source: String,
        #[arg(long, required = true, num_args = 1..)]
        path: Vec<PathBuf>,
    },
    /// List repos, sources, packages, transactions (snapshots, newest first), tokens, git
    /// builders or git builds (newest first).
    List {
        what: ListWhat,
        /// Packages, git builders or git builds of this source only.
        #[arg(long)]
        source: Option<String>,
        /// Transactions that changed this repo only.
        #[arg(long)]
        repo: Option<String>,
        /// Git builds of this builder only.
        #[arg(long)]
        name: Option<String>,
        /// Git builds per page.
        #[arg(long, default_value_t = 100)]
        count: i64,
        /// Which page of git builds (1 is the newest).
        #[arg(long, default_value_t = 1)]
        page: i64,
    },
    /// Check a git builder's remote now.
    #[command(subcommand)]
    Run(git::RunWhat),
    /// Build a git builder's commit or tag again.
    #[command(subcommand)]
    Rerun(git::RerunWhat),
    /// A git build's log.
    Logs(git::LogsArgs),
    /// Revoke a token, so no node accepts it any more.
    #[command(subcommand)]
    Revoke(Revoke),
    #[command(flatten)]
    Cluster(cluster::ClusterCommand),
}

#[derive(Debug, Subcommand)]
pub enum Revoke {
    /// By its id (`pkgnode list tokens`) or by the token itself.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["guid", "token"])))]
    Token {
        #[arg(long)]
        guid: Option<String>,
        #[arg(long)]
        token: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum Create {
    Source {
        #[arg(long)]
        name: String,
        #[arg(long = "type")]
        kind: SourceType,
    },
    Repo {
        #[arg(long)]
        name: String,
        #[arg(long = "type")]
        kind: RepoType,
        /// Reading needs a repos:read token.
        #[arg(long)]
        authenticated: bool,
    },
    Token(TokenArgs),
    /// A git builder for a git or git-python source.
    GitBuilder(git::CreateGitBuilder),
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[arg(long)]
    pub scope: TokenScope,
    /// The source a sources:write token may upload to.
    #[arg(long)]
    pub source: Option<String>,
    /// The repo a repos:read token may read (all when absent).
    #[arg(long)]
    pub repo: Option<String>,
    /// Validity, e.g. "30d", "12h".
    #[arg(long, default_value = "365d")]
    pub expires: humantime::Duration,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SourceType {
    Local,
    LocalPython,
    /// R packages built by git builders.
    Git,
    /// Python packages built by git builders.
    GitPython,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RepoType {
    R,
    Python,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TokenScope {
    #[value(name = "sources:write")]
    SourcesWrite,
    #[value(name = "repos:read")]
    ReposRead,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListWhat {
    Repos,
    Sources,
    Packages,
    Transactions,
    Tokens,
    GitBuilders,
    GitBuilds,
}

/// Reserved first path segments: a repo with one of these names would be unreachable.
const RESERVED_REPO_NAMES: &[&str] = &["upload", "__api__", "__ping__", "metrics", "load-balancer"];

/// Runs one command; returns what to print.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    use anyhow::Context;
    let overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        listen: cli.listen,
    };
    if let Command::SchemaVersion = cli.command {
        // Needs neither a config nor a database: a saved database is only restored into a
        // build of the same schema.
        println!("{}", crate::store::schema_version());
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    match cli.command {
        Command::SchemaVersion => {}
        Command::Serve => crate::server::serve(config).await?,
        Command::Cluster(command) => cluster::run(command, &config).await?,
        Command::Create(Create::Source { name, kind }) => {
            check_name(&name)?;
            let kind = match kind {
                SourceType::Local => SourceKind::Local,
                SourceType::LocalPython => SourceKind::LocalPython,
                SourceType::Git => SourceKind::Git,
                SourceType::GitPython => SourceKind::GitPython,
            };
            let (store, _) = crate::server::open(&config).await?;
            let source = store.create_source(&name, kind).await?;
            println!(
                "created source {} ({}), id {}",
                source.name,
                kind.as_str(),
                source.id
            );
        }
        Command::Create(Create::Repo {
            name,
            kind,
            authenticated,
        }) => {
            check_name(&name)?;
            if RESERVED_REPO_NAMES.contains(&name.as_str()) {
                anyhow::bail!(
                    "{name:?} is reserved for the node's own routes; choose another repo name"
                );
            }
            let kind = match kind {
                RepoType::R => RepoKind::R,
                RepoType::Python => RepoKind::Python,
            };
            let (store, _) = crate::server::open(&config).await?;
            let repo = store.create_repo(&name, kind, authenticated).await?;
            println!(
                "created repo {} ({}), id {}",
                repo.name,
                kind.as_str(),
                repo.id
            );
        }
        Command::Create(Create::Token(args)) => {
            let scope = match args.scope {
                TokenScope::SourcesWrite => Scope::SourcesWrite {
                    source: args
                        .source
                        .context("a sources:write token needs --source NAME")?,
                },
                TokenScope::ReposRead => Scope::ReposRead { repo: args.repo },
            };
            let key = SecureKey::load(&config.key_file(), !config.cluster.enabled)?;
            let issued = key.issue(&scope, Duration::from(args.expires))?;
            let (store, _) = crate::server::open(&config).await?;
            // Recorded before it is shown: a token without a record would be refused.
            store
                .record_token(&TokenRecord {
                    guid: issued.guid.clone(),
                    scope: issued.scope,
                    source: issued.source,
                    repo: issued.repo,
                    created_at_ms: issued.issued_at_ms,
                    expires_at_ms: issued.expires_at_ms,
                    revoked_at_ms: None,
                })
                .await
                .context("the token could not be recorded, so it was not issued")?;
            println!("token {} for {scope}, valid {}:", issued.guid, args.expires);
            println!("{}", issued.token);
        }
        Command::Revoke(Revoke::Token { guid, token }) => {
            let guid = match (guid, token) {
                (Some(guid), None) => guid,
                (None, Some(token)) => {
                    let key = SecureKey::load(&config.key_file(), false)?;
                    key.guid_of(token.trim())
                        .context("the token was not signed with this server's key")?
                }
                _ => anyhow::bail!("give exactly one of --guid G or --token T"),
            };
            let (store, _) = crate::server::open(&config).await?;
            match store.revoke_token(&guid).await? {
                Revoked::Now(_) => println!("revoked token {guid}"),
                Revoked::Already(record) => println!(
                    "token {guid} was already revoked at {}",
                    format_ms(record.revoked_at_ms.unwrap_or_default())
                ),
            }
        }
        Command::Create(Create::GitBuilder(args)) => {
            let (store, _) = crate::server::open(&config).await?;
            git::create(args, &store).await?;
        }
        Command::Run(what) => {
            let (store, _) = crate::server::open(&config).await?;
            git::run(what, &store, &config).await?;
        }
        Command::Rerun(what) => {
            let (store, _) = crate::server::open(&config).await?;
            git::rerun(what, &store, &config).await?;
        }
        Command::Logs(args) => {
            let (store, _) = crate::server::open(&config).await?;
            git::logs(args, &store).await?;
        }
        Command::Subscribe {
            repo,
            source,
            priority,
        } => {
            let (store, _) = crate::server::open(&config).await?;
            let repo_row = store
                .repo_by_name(&repo)
                .await?
                .with_context(|| format!("no repo named {repo:?}"))?;
            let source_row = store
                .source_by_name(&source)
                .await?
                .with_context(|| format!("no source named {source:?}"))?;
            let tx = store.subscribe(&repo_row, &source_row, priority).await?;
            println!("subscribed {repo} to {source} (transaction {tx})");
        }
        Command::Add { source, path } => {
            let (store, blobs) = crate::server::open(&config).await?;
            let source_row = store
                .source_by_name(&source)
                .await?
                .with_context(|| format!("no source named {source:?}"))?;
            if source_row.kind.is_git() {
                anyhow::bail!(
                    "source {source:?} is a {} source: its packages come from its git builders",
                    source_row.kind.as_str()
                );
            }
            for file in path {
                let filename = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .with_context(|| format!("{} has no usable file name", file.display()))?
                    .to_string();
                let received = Received::from_file(
                    &config.data_dir.join("tmp").join("uploads"),
                    &file,
                    config.limits.max_upload_bytes,
                )
                .await
                .with_context(|| format!("{} was not added", file.display()))?;
                let result = ingest::ingest(
                    &store,
                    &blobs,
                    &config.limits,
                    &source_row,
                    &filename,
                    &received,
                    &Claims::default(),
                )
                .await
                .with_context(|| format!("{} was not added", file.display()))?;
                match result {
                    Ingested::Stored { tx, .. } => {
                        println!("added {filename} to {source} (transaction {tx})")
                    }
                    Ingested::AlreadyPresent(_) => println!("{filename} is already in {source}"),
                }
            }
        }
        Command::List {
            what,
            source,
            repo,
            name,
            count,
            page,
        } => {
            let (store, _) = crate::server::open(&config).await?;
            match what {
                ListWhat::GitBuilders => git::list_builders(&store, source).await?,
                ListWhat::GitBuilds => git::list_builds(&store, source, name, count, page).await?,
                ListWhat::Repos => {
                    for repo in store.repos().await? {
                        println!(
                            "{}\t{}\t{}",
                            repo.name,
                            repo.kind.as_str(),
                            if repo.authenticated {
                                "authenticated"
                            } else {
                                "public"
                            }
                        );
                    }
                }
                ListWhat::Sources => {
                    for source in store.sources().await? {
                        println!("{}\t{}", source.name, source.kind.as_str());
                    }
                }
                ListWhat::Packages => {
                    let sources = match source {
                        Some(name) => vec![
                            store
                                .source_by_name(&name)
                                .await?
                                .with_context(|| format!("no source named {name:?}"))?,
                        ],
                        None => store.sources().await?,
                    };
                    for s in sources {
                        for file in store.source_files(s.id).await? {
                            println!(
                                "{}\t{}\t{}\t{}",
                                s.name, file.name, file.version, file.filename
                            );
                        }
                    }
                }
                ListWhat::Transactions => {
                    let repo_id = match repo {
                        Some(name) => Some(
                            store
                                .repo_by_name(&name)
                                .await?
                                .with_context(|| format!("no repo named {name:?}"))?
                                .id,
                        ),
                        None => None,
                    };
                    for tx in store.transactions(repo_id).await? {
                        let added: Vec<&str> =
                            tx.added.iter().map(|f| f.filename.as_str()).collect();
                        println!(
                            "{}\t{}\t{}\t{}\t{}",
                            tx.id,
                            tx.time,
                            tx.kind,
                            tx.description,
                            added.join(" ")
                        );
                    }
                }
                ListWhat::Tokens => {
                    for token in store.tokens().await? {
                        let grants = match (&token.source, &token.repo) {
                            (Some(source), _) => format!("{} {source}", token.scope),
                            (_, Some(repo)) => format!("{} {repo}", token.scope),
                            _ => token.scope.clone(),
                        };
                        let state = match token.revoked_at_ms {
                            Some(at) => format!("revoked {}", format_ms(at)),
                            None if token.expires_at_ms <= crate::store::now_ms() => {
                                "expired".to_string()
                            }
                            None => "active".to_string(),
                        };
                        println!(
                            "{}\t{grants}\tcreated {}\texpires {}\t{state}",
                            token.guid,
                            format_ms(token.created_at_ms),
                            format_ms(token.expires_at_ms)
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// Epoch milliseconds as RFC 3339 (UTC), seconds precision.
fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if !crate::config::valid_name(name) {
        anyhow::bail!("invalid name {name:?}: {}", crate::config::NAME_RULE);
    }
    Ok(())
}
