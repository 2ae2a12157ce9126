//! The command line: `inland query` (serve), `inland query token`, `inland sql`,
//! `inland audit verify` and `inland export`. The binary flattens [`Command`] into its
//! own subcommands; [`Command::serves`] tells the service apart from the clients, which
//! [`run`] runs. Both read the binary's `store` section, data directory and `query`
//! section.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

use inland_store::StoreConfig;

use crate::Error;
use crate::archive::Archive;
use crate::audit::{self, ChainReport};
use crate::auth::{self, Role, Tokens};
use crate::client::Client;
use crate::config::QueryConfig;
use crate::engine::{Engine, Interface};
use crate::export::{ExportFormat, ExportRequest};
use crate::output::{self, Format};
use crate::service::QueryService;

/// The query service's subcommands of `inland`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Serve SQL over the anonymized archive (Arrow Flight SQL and HTTP), every query
    /// audited; `inland query token` makes a token for the token list.
    Query(QueryArgs),
    /// Run one SQL statement over the anonymized archive and print the result, through a
    /// query server (--server) or on the store directly (audited either way).
    Sql(SqlArgs),
    /// Check the query audit log's hash chains.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Export an aggregate query's result out of the country: aggregates only, groups of
    /// fewer than k vehicles suppressed, a transfer record in the audit log.
    Export(ExportArgs),
}

impl Command {
    /// Whether this is `inland query` itself, the long-running service ([`bind`] and
    /// [`QueryService::serve`]); everything else is a client command for [`run`].
    pub fn serves(&self) -> bool {
        matches!(self, Self::Query(QueryArgs { command: None }))
    }
}

/// `inland query [token …]`.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    #[command(subcommand)]
    pub command: Option<QueryCommand>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum QueryCommand {
    /// Make a token: prints it (once) and its entry for the token list.
    Token(TokenArgs),
}

/// The query service of `inland query`, bound to its listeners over the configured
/// store (`store` section, local directories under `data_dir`); serve it with
/// [`QueryService::serve`].
pub async fn bind(
    store: &StoreConfig,
    data_dir: &Path,
    config: &QueryConfig,
) -> Result<QueryService, Error> {
    let archive = Archive::open(store, data_dir).await?;
    QueryService::bind(&archive, config).await
}

/// Runs a client command, printing to `out`.
pub async fn run(
    command: Command,
    store: &StoreConfig,
    data_dir: &Path,
    config: &QueryConfig,
    out: &mut impl Write,
) -> Result<(), Error> {
    match command {
        Command::Query(QueryArgs {
            command: Some(QueryCommand::Token(args)),
        }) => token(args, out),
        Command::Query(QueryArgs { command: None }) => Err(Error::Config(
            "`inland query` is the service: start it with bind and serve, not run".into(),
        )),
        Command::Sql(args) if args.server.is_some() => sql(args, None, config, out).await,
        Command::Sql(args) => {
            let archive = Archive::open(store, data_dir).await?;
            sql(args, Some(&archive), config, out).await
        }
        Command::Audit { command } => {
            audit(command, &Archive::open(store, data_dir).await?, out).await
        }
        Command::Export(args) => {
            export(args, &Archive::open(store, data_dir).await?, config, out).await
        }
    }
}

/// What a failed write to standard output becomes.
fn printed(written: io::Result<()>) -> Result<(), Error> {
    written.map_err(|source| Error::Output {
        path: PathBuf::from("standard output"),
        source,
    })
}

/// How `inland sql` prints a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// An aligned text table.
    Table,
    Csv,
    /// A JSON array of row objects.
    Json,
}

/// `inland sql "SELECT …"`.
#[derive(Debug, Clone, clap::Args)]
pub struct SqlArgs {
    /// The statement. Quote column names that contain dots: "Vehicle.Speed".
    pub sql: String,
    /// A query server's HTTP URL (https://…, or http:// to a loopback address). Without
    /// it the archive is read directly with this machine's store settings.
    #[arg(long, env = "INLAND_QUERY_URL")]
    pub server: Option<String>,
    /// A PEM CA certificate to trust for the server (a private CA).
    #[arg(long, env = "INLAND_QUERY_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Your query token.
    #[arg(long, env = "INLAND_QUERY_TOKEN", hide_env_values = true)]
    pub token: String,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub format: Output,
}

/// `inland export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// An aggregate query (GROUP BY, or a global aggregate).
    pub sql: String,
    /// The file to write; must not exist.
    #[arg(long)]
    pub out: PathBuf,
    /// Who approved this transfer out of the country (name, role, ticket).
    #[arg(long)]
    pub approved_by: String,
    /// csv or parquet; default: from the file extension (.parquet, else csv).
    #[arg(long, value_enum)]
    pub format: Option<ExportFormat>,
    /// Your query token (an admin's).
    #[arg(long, env = "INLAND_QUERY_TOKEN", hide_env_values = true)]
    pub token: String,
}

/// `inland audit …`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum AuditCommand {
    /// Walk every audit chain in the store and report the first broken link of each.
    Verify,
}

/// `inland query token …`: make a token for the token list.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// Who will hold the token (recorded in the audit log with each query).
    #[arg(long)]
    pub user: String,
    #[arg(long, value_enum)]
    pub role: RoleArg,
}

/// A role on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    Analyst,
    Auditor,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Analyst => Role::Analyst,
            RoleArg::Auditor => Role::Auditor,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// Runs `inland sql`: through `args.server`, or directly on `archive` (then the token
/// is checked against `config`'s token list and the query audited as `cli`).
pub async fn sql(
    args: SqlArgs,
    archive: Option<&Archive>,
    config: &QueryConfig,
    out: &mut impl Write,
) -> Result<(), Error> {
    let (schema, batches) = match &args.server {
        Some(server) => {
            Client::new(server, &args.token, args.ca_file.as_deref())?
                .query(&args.sql)
                .await?
        }
        None => {
            let archive = archive.ok_or_else(|| {
                Error::Config("no --server given and no store configured to read directly".into())
            })?;
            let tokens = Tokens::load(config.token_file.as_deref())?;
            let who = tokens.authenticate(&args.token)?.clone();
            let engine = Engine::new(archive, config)?;
            let result = engine.query(&who, Interface::Cli, &args.sql).await?;
            (result.schema, result.batches)
        }
    };
    print(args.format, &schema, &batches, out)
}

fn print(
    format: Output,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    out: &mut impl Write,
) -> Result<(), Error> {
    let written = match format {
        Output::Table => {
            let empty = [RecordBatch::new_empty(schema.clone())];
            let shown = if batches.is_empty() {
                &empty[..]
            } else {
                batches
            };
            let table = pretty_format_batches(shown)
                .map_err(|e| Error::Internal(format!("formatting the table: {e}")))?;
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            writeln!(
                out,
                "{table}\n({rows} row{})",
                if rows == 1 { "" } else { "s" }
            )
        }
        Output::Csv => out.write_all(&output::encode(Format::Csv, schema, batches)?),
        Output::Json => out
            .write_all(&output::encode(Format::Json, schema, batches)?)
            .and_then(|()| out.write_all(b"\n")),
    };
    printed(written)
}

/// Runs `inland export` on `archive`.
pub async fn export(
    args: ExportArgs,
    archive: &Archive,
    config: &QueryConfig,
    out: &mut impl Write,
) -> Result<(), Error> {
    let tokens = Tokens::load(config.token_file.as_deref())?;
    let who = tokens.authenticate(&args.token)?.clone();
    let format =
        args.format
            .unwrap_or_else(|| match args.out.extension().and_then(|e| e.to_str()) {
                Some(ext) if ext.eq_ignore_ascii_case("parquet") => ExportFormat::Parquet,
                _ => ExportFormat::Csv,
            });
    let engine = Engine::new(archive, config)?;
    let report = engine
        .export(
            &who,
            &ExportRequest {
                sql: args.sql,
                approved_by: args.approved_by,
                out: args.out.clone(),
                format,
            },
        )
        .await?;
    printed(writeln!(
        out,
        "wrote {} groups to {} ({}, sha256 {}); suppressed {} groups of fewer than {} vehicles; \
         transfer record {}/{}",
        report.rows,
        args.out.display(),
        format.as_str(),
        report.sha256,
        report.groups_suppressed,
        report.k,
        report.audit.chain,
        report.audit.seq
    ))
}

/// Runs `inland audit …` on `archive`'s store; an error if any chain is broken.
pub async fn audit(
    command: AuditCommand,
    archive: &Archive,
    out: &mut impl Write,
) -> Result<(), Error> {
    match command {
        AuditCommand::Verify => {
            let reports = audit::verify(archive.store().as_ref())
                .await
                .map_err(|e| Error::Store(e.to_string()))?;
            let broken = reports.iter().filter(|r| r.broken.is_some()).count();
            let mut text = String::new();
            for report in &reports {
                text.push_str(&describe(report));
                text.push('\n');
            }
            text.push_str(&format!(
                "{} chain{}, {broken} broken\n",
                reports.len(),
                if reports.len() == 1 { "" } else { "s" }
            ));
            printed(out.write_all(text.as_bytes()))?;
            if broken > 0 {
                return Err(Error::Tampered(format!(
                    "{broken} audit chain{} broken; see above",
                    if broken == 1 { " is" } else { "s are" }
                )));
            }
            Ok(())
        }
    }
}

fn describe(report: &ChainReport) -> String {
    let span = format!(
        "entries {}..{} ({} to {})",
        report.first_seq, report.last_seq, report.first_at, report.last_at
    );
    let gone = if report.first_seq > 0 {
        format!(
            "; entries before {} are gone (expired after the audit shelf life, or deleted)",
            report.first_seq
        )
    } else {
        String::new()
    };
    match &report.broken {
        None => format!("ok      {}: {span}{gone}", report.chain),
        Some(link) => format!(
            "BROKEN  {}: after {} good entries, at {}: {}",
            report.chain,
            report.entries - 1,
            link.key,
            link.problem
        ),
    }
}

/// Runs `inland query token`: prints a new token (shown once) and its token-list entry.
pub fn token(args: TokenArgs, out: &mut impl Write) -> Result<(), Error> {
    if args.user.trim().is_empty() {
        return Err(Error::Config("--user must name who holds the token".into()));
    }
    let (token, entry) = auth::generate(args.user.trim(), args.role.into());
    printed(write!(
        out,
        "token (give it to {}; it is not stored anywhere):\n  {token}\n\nadd to the token list:\n{}",
        entry.user,
        entry.to_toml()
    ))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use inland_core::ErrorCode;

    use super::*;
    use crate::testing;

    /// The binary's command line, as `inland` flattens [`Command`] into its own.
    #[derive(Parser)]
    enum Inland {
        #[command(flatten)]
        Query(Command),
    }

    /// A config whose token list has an analyst and an admin (made with
    /// `inland query token`); returns their tokens.
    async fn config(dir: &Path) -> (QueryConfig, String, String) {
        let mut made = Vec::new();
        for role in ["analyst", "admin"] {
            let mut text = Vec::new();
            let command = parse(&["query", "token", "--user", role, "--role", role]);
            run(
                command,
                &StoreConfig::default(),
                dir,
                &QueryConfig::default(),
                &mut text,
            )
            .await
            .unwrap();
            made.push(String::from_utf8(text).unwrap());
        }
        let [analyst, admin] = <[String; 2]>::try_from(made).unwrap();
        let token = |text: &str| text.lines().nth(1).unwrap().trim().to_owned();
        let entry = |text: &str| {
            text.split_once("add to the token list:\n")
                .unwrap()
                .1
                .to_owned()
        };
        std::fs::write(dir.join("tokens.toml"), entry(&analyst) + &entry(&admin)).unwrap();
        let config = QueryConfig {
            token_file: Some(dir.join("tokens.toml")),
            ..QueryConfig::default()
        };
        (config, token(&analyst), token(&admin))
    }

    fn parse(args: &[&str]) -> Command {
        let Inland::Query(command) =
            Inland::try_parse_from(std::iter::once("inland").chain(args.iter().copied())).unwrap();
        command
    }

    /// Runs `args` as `inland` would, on the fixture's archive (a local store).
    async fn run_on(
        args: &[&str],
        fixture: &testing::Fixture,
        config: &QueryConfig,
    ) -> Result<String, Error> {
        let store = StoreConfig {
            local: inland_store::LocalConfig {
                dir: fixture.dir.path().into(),
            },
            ..StoreConfig::default()
        };
        let command = parse(args);
        assert!(!command.serves());
        let mut out = Vec::new();
        run(command, &store, Path::new("/nonexistent"), config, &mut out).await?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn only_a_bare_inland_query_serves() {
        assert!(parse(&["query"]).serves());
        assert!(!parse(&["query", "token", "--user", "a", "--role", "auditor"]).serves());
        assert!(!parse(&["audit", "verify"]).serves());
        assert!(Inland::try_parse_from(["inland", "query", "token", "--role", "root"]).is_err());
    }

    #[tokio::test]
    async fn sql_prints_a_table_or_csv_and_audits_as_cli() {
        let fixture = testing::archive().await;
        let (config, analyst, _) = config(fixture.dir.path()).await;
        let sql = "SELECT camera_id, count(*) AS frames FROM frame_index GROUP BY camera_id ORDER BY camera_id";
        let table = run_on(&["sql", sql, "--token", &analyst], &fixture, &config)
            .await
            .unwrap();
        assert!(
            table.starts_with("+-----------+--------+\n| camera_id | frames |"),
            "{table}"
        );
        assert!(table.ends_with("(4 rows)\n"), "{table}");
        let csv = run_on(
            &["sql", sql, "--token", &analyst, "--format", "csv"],
            &fixture,
            &config,
        )
        .await
        .unwrap();
        assert!(csv.starts_with("camera_id,frames\nfront,"), "{csv}");
        let empty = run_on(
            &[
                "sql",
                "SELECT pseudonym FROM telemetry WHERE false",
                "--token",
                &analyst,
            ],
            &fixture,
            &config,
        )
        .await
        .unwrap();
        assert!(
            empty.contains("| pseudonym |") && empty.ends_with("(0 rows)\n"),
            "{empty}"
        );
        let err = run_on(
            &["sql", "SELECT 1", "--token", "inq_nope"],
            &fixture,
            &config,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unauthenticated);
        let err = run_on(
            &[
                "sql",
                "SELECT 1",
                "--token",
                &analyst,
                "--server",
                "http://10.1.2.3:8081",
            ],
            &fixture,
            &config,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("use https"), "{err}");
    }

    #[tokio::test]
    async fn export_writes_the_file_and_audit_verify_checks_every_chain() {
        let fixture = testing::archive().await;
        let (config, analyst, admin) = config(fixture.dir.path()).await;
        let out = fixture.dir.path().join("daily.csv");
        let sql = "SELECT date, count(*) AS samples FROM telemetry GROUP BY date";
        let args = [
            "export",
            sql,
            "--out",
            out.to_str().unwrap(),
            "--approved-by",
            "DPO",
        ];
        let err = run_on(
            &[&args[..], &["--token", &analyst]].concat(),
            &fixture,
            &config,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::PermissionDenied);
        let report = run_on(
            &[&args[..], &["--token", &admin]].concat(),
            &fixture,
            &config,
        )
        .await
        .unwrap();
        assert!(report.starts_with("wrote 2 groups to"), "{report}");
        assert!(
            report.contains("suppressed 0 groups of fewer than 10 vehicles"),
            "{report}"
        );
        assert!(
            std::fs::read_to_string(&out)
                .unwrap()
                .starts_with("date,samples\n")
        );

        let verified = run_on(&["audit", "verify"], &fixture, &config)
            .await
            .unwrap();
        assert!(verified.ends_with("2 chains, 0 broken\n"), "{verified}");
        assert!(verified.starts_with("ok      "), "{verified}");

        // Tamper with the first entry of one chain.
        let store = fixture.archive.store();
        let first = store
            .list(crate::audit::LOG_PREFIX)
            .await
            .unwrap()
            .remove(0)
            .key;
        let body = String::from_utf8(store.get(&first).await.unwrap().to_vec()).unwrap();
        store
            .put(&first, body.replace("\"user\":\"", "\"user\":\"x").into())
            .await
            .unwrap();
        let err = run_on(&["audit", "verify"], &fixture, &config)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("1 audit chain is broken"), "{err}");
    }
}
