//! One query, from SQL text to an audited result: parse, refuse anything but a read,
//! resolve tables against the caller's role, plan, run under the role's row and time
//! limits, append the audit entry, and only then hand the rows out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::memory_pool::{FairSpillPool, MemoryPool, UnboundedMemoryPool};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use serde::{Deserialize, Serialize};

use crate::archive::Archive;
use crate::audit::{Appended, AuditLog, Kind, Record, Transfer};
use crate::auth::{Principal, Role};
use crate::catalog::{self, EngineSettings, Table};
use crate::config::{Limits, QueryConfig, RoleLimits};
use crate::{Error, metrics};

/// How a query arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interface {
    FlightSql,
    Http,
    /// `inland sql` reading the store directly.
    Cli,
    /// `inland export`.
    Export,
}

impl Interface {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FlightSql => "flight_sql",
            Self::Http => "http",
            Self::Cli => "cli",
            Self::Export => "export",
        }
    }
}

/// An audited result.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: u64,
    /// The audit entry that records this query.
    pub audit: Appended,
}

/// The query engine shared by every interface.
pub struct Engine {
    /// Telemetry and frame index only.
    analyst: SessionContext,
    /// Also the audit log.
    privileged: SessionContext,
    audit: AuditLog,
    limits: Limits,
    pub(crate) export_k: u64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("audit", &self.audit)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `archive`, auditing to a new chain of `config.audit_writer`.
    pub fn new(archive: &Archive, config: &QueryConfig) -> Result<Self, Error> {
        config.validate_engine()?;
        let target_partitions = match config.target_partitions {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let memory_pool: Arc<dyn MemoryPool> = match config.memory_limit_mib {
            0 => Arc::new(UnboundedMemoryPool::default()),
            mib => Arc::new(FairSpillPool::new((mib as usize) << 20)),
        };
        let settings = EngineSettings {
            target_partitions,
            listing_ttl: config.listing_ttl,
            memory_pool,
        };
        Ok(Self {
            analyst: catalog::context(archive.reader(), Table::for_role(Role::Analyst), &settings)?,
            privileged: catalog::context(
                archive.reader(),
                Table::for_role(Role::Admin),
                &settings,
            )?,
            audit: AuditLog::start(archive.store(), &config.audit_writer),
            limits: config.limits.clone(),
            export_k: config.export.k,
        })
    }

    /// The audit chain this engine appends to.
    pub fn audit_chain(&self) -> &str {
        self.audit.chain()
    }

    pub(crate) fn context(&self, role: Role) -> &SessionContext {
        if role.reads_audit_log() {
            &self.privileged
        } else {
            &self.analyst
        }
    }

    pub(crate) fn limits(&self, role: Role) -> &RoleLimits {
        self.limits.of(role)
    }

    /// The tables `role` can query and their columns.
    pub async fn tables(&self, role: Role) -> Result<Vec<(&'static str, SchemaRef)>, Error> {
        let ctx = self.context(role);
        let mut out = Vec::new();
        for table in Table::for_role(role) {
            let provider = ctx
                .table_provider(table.name())
                .await
                .map_err(Error::from_engine)?;
            out.push((table.name(), provider.schema()));
        }
        Ok(out)
    }

    /// The result schema of `sql` without running it (Flight SQL's GetFlightInfo). A
    /// statement that cannot be planned is audited as failed.
    pub async fn schema(
        &self,
        who: &Principal,
        via: Interface,
        sql: &str,
    ) -> Result<SchemaRef, Error> {
        let mut attempt = Attempt::new(Kind::Query, who, via, sql);
        let limits = self.limits(who.role);
        let ctx = self.context(who.role);
        let planned = within(limits.timeout, async {
            let plan = plan(ctx, who.role, sql, &mut attempt.tables).await?;
            Ok(physical(ctx, plan, limits.max_rows).await?.schema())
        })
        .await;
        match planned {
            Ok(schema) => Ok(schema),
            Err(e) => Err(self.failed(attempt, e).await),
        }
    }

    /// Runs `sql` for `who`: planned in the role's catalog, cut off at the role's row
    /// limit (more rows is an error, not a truncated answer) and time limit, audited
    /// before it is returned.
    pub async fn query(
        &self,
        who: &Principal,
        via: Interface,
        sql: &str,
    ) -> Result<QueryResult, Error> {
        let mut attempt = Attempt::new(Kind::Query, who, via, sql);
        let limits = self.limits(who.role);
        let ctx = self.context(who.role);
        let outcome = within(limits.timeout, async {
            let plan = plan(ctx, who.role, sql, &mut attempt.tables).await?;
            collect(ctx, plan, limits.max_rows).await
        })
        .await;
        match outcome {
            Ok((schema, batches, rows)) => {
                let latency = attempt.started.elapsed();
                let audit = self.append(attempt.succeeded(rows, None)).await?;
                metrics::query_done(via, latency, rows);
                Ok(QueryResult {
                    schema,
                    batches,
                    rows,
                    audit,
                })
            }
            Err(e) => Err(self.failed(attempt, e).await),
        }
    }

    /// Audits a failed attempt and returns the error the caller sees (the audit
    /// failure, if even that could not be written).
    pub(crate) async fn failed(&self, attempt: Attempt<'_>, error: Error) -> Error {
        let via = attempt.via;
        let error = match self.append(attempt.failed(&error)).await {
            Ok(_) => error,
            Err(audit) => audit,
        };
        metrics::query_failed(via, error.code());
        error
    }

    pub(crate) async fn append(&self, record: Record) -> Result<Appended, Error> {
        let (user, role, via) = (
            record.principal.user.clone(),
            record.principal.role,
            record.interface,
        );
        let (rows, outcome) = (
            record.rows,
            record
                .outcome
                .as_ref()
                .map_or_else(|(code, _)| code.as_str(), |()| "ok"),
        );
        match self.audit.append(record).await {
            Ok(appended) => {
                metrics::audited(&appended, &user, role, via, rows, outcome);
                Ok(appended)
            }
            Err(e) => {
                metrics::audit_failed(&e);
                Err(Error::Audit(e))
            }
        }
    }
}

/// One query or export as its audit entry will tell it, gathered while it runs.
pub(crate) struct Attempt<'a> {
    kind: Kind,
    who: &'a Principal,
    via: Interface,
    sql: &'a str,
    pub started: Instant,
    /// The tables the SQL names, filled in as soon as they are known, so a later failure
    /// is audited with them.
    pub tables: Vec<String>,
}

impl<'a> Attempt<'a> {
    pub fn new(kind: Kind, who: &'a Principal, via: Interface, sql: &'a str) -> Self {
        Self {
            kind,
            who,
            via,
            sql,
            started: Instant::now(),
            tables: Vec::new(),
        }
    }

    pub fn succeeded(self, rows: u64, transfer: Option<Transfer>) -> Record {
        self.record(Some(rows), Ok(()), transfer)
    }

    pub fn failed(self, error: &Error) -> Record {
        self.record(None, Err((error.code(), error.to_string())), None)
    }

    fn record(
        self,
        rows: Option<u64>,
        outcome: Result<(), (inland_core::ErrorCode, String)>,
        transfer: Option<Transfer>,
    ) -> Record {
        Record {
            kind: self.kind,
            principal: self.who.clone(),
            interface: self.via,
            sql: self.sql.into(),
            tables: self.tables,
            rows,
            outcome,
            duration_ms: self.started.elapsed().as_millis() as u64,
            transfer,
        }
    }
}

/// `work`, or a timeout error once it has run for `limit`.
pub(crate) async fn within<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or(Err(Error::Timeout { limit }))
}

/// Parses and plans `sql` in `ctx`, refusing anything that is not a read and naming
/// unknown tables; fills `tables` with the tables the statement names as soon as they
/// are known, so a later failure is audited with them.
pub(crate) async fn plan(
    ctx: &SessionContext,
    role: Role,
    sql: &str,
    tables: &mut Vec<String>,
) -> Result<LogicalPlan, Error> {
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let statement = state
        .sql_to_statement(sql, &dialect)
        .map_err(Error::from_engine)?;
    check_read_only(&statement)?;
    let references = state
        .resolve_table_references(&statement)
        .map_err(Error::from_engine)?;
    tables.extend(references.iter().map(|r| r.to_string()));
    tables.sort();
    tables.dedup();
    for reference in references {
        // Table functions (generate_series, range) compute rows and read nothing; an
        // unknown catalog or schema is an error here, and either way not a readable table.
        let function =
            reference.schema().is_none() && state.table_functions().contains_key(reference.table());
        if !function && !ctx.table_exist(reference.clone()).unwrap_or(false) {
            let available = Table::for_role(role)
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::UnknownTable {
                table: reference.to_string(),
                available,
            });
        }
    }
    let plan = state
        .statement_to_plan(statement)
        .await
        .map_err(Error::from_engine)?;
    // A second, independent check on the plan itself.
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|e| Error::Forbidden(read_only_message(&e.strip_backtrace())))?;
    Ok(plan)
}

fn read_only_message(what: &str) -> String {
    format!(
        "{what}: the query service is read-only; it serves SELECT (and SHOW, DESCRIBE, \
         EXPLAIN) over the registered datasets, nothing that creates, changes, copies or \
         configures"
    )
}

/// Only reads pass: a query, SHOW TABLES/COLUMNS, DESCRIBE, or EXPLAIN of those.
fn check_read_only(statement: &DfStatement) -> Result<(), Error> {
    match statement {
        DfStatement::Statement(inner) => match inner.as_ref() {
            Statement::Query(_)
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ExplainTable { .. } => Ok(()),
            Statement::Explain { statement, .. } => {
                check_read_only(&DfStatement::Statement(statement.clone()))
            }
            other => Err(Error::Forbidden(read_only_message(&first_words(
                &other.to_string(),
            )))),
        },
        DfStatement::Explain(explain) => check_read_only(&explain.statement),
        DfStatement::CreateExternalTable(_) => {
            Err(Error::Forbidden(read_only_message("CREATE EXTERNAL TABLE")))
        }
        DfStatement::CopyTo(_) => Err(Error::Forbidden(read_only_message("COPY"))),
        DfStatement::Reset(_) => Err(Error::Forbidden(read_only_message("RESET"))),
    }
}

/// The statement's leading keywords, never its literals.
fn first_words(statement: &str) -> String {
    statement
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// The physical plan of `plan`, fetching at most `max_rows + 1` rows so an oversized
/// result is recognised without being computed in full. Its schema is the one results
/// carry (after optimization, nullability can differ from the logical plan's; Flight SQL
/// clients require the announced and the streamed schema to be the same).
async fn physical(
    ctx: &SessionContext,
    plan: LogicalPlan,
    max_rows: u64,
) -> Result<Arc<dyn ExecutionPlan>, Error> {
    let fetch = usize::try_from(max_rows.saturating_add(1)).unwrap_or(usize::MAX);
    // EXPLAIN and DESCRIBE must stay the root; their few rows are still counted.
    let limited = match plan {
        LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) | LogicalPlan::DescribeTable(_) => plan,
        plan => LogicalPlanBuilder::from(plan)
            .limit(0, Some(fetch))
            .and_then(LogicalPlanBuilder::build)
            .map_err(Error::from_engine)?,
    };
    ctx.state()
        .create_physical_plan(&limited)
        .await
        .map_err(Error::from_engine)
}

/// Runs `plan` under the row limit: more than `max_rows` rows is an error.
pub(crate) async fn collect(
    ctx: &SessionContext,
    plan: LogicalPlan,
    max_rows: u64,
) -> Result<(SchemaRef, Vec<RecordBatch>, u64), Error> {
    let physical = physical(ctx, plan, max_rows).await?;
    let schema = physical.schema();
    let batches = datafusion::physical_plan::collect(physical, ctx.task_ctx())
        .await
        .map_err(Error::from_engine)?;
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    if rows > max_rows {
        return Err(Error::TooManyRows { limit: max_rows });
    }
    Ok((schema, batches, rows))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{AsArray, RecordBatch};
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::execution::object_store::ObjectStoreUrl;
    use inland_core::ErrorCode;
    use inland_store::{LocalStore, ObjectStore as _};
    use object_store::ObjectStoreExt;

    use super::*;
    use crate::catalog::ARCHIVE_URL;
    use crate::testing::{self, who};

    fn count(batches: &[RecordBatch]) -> i64 {
        batches[0].column(0).as_primitive::<Int64Type>().value(0)
    }

    fn text(batches: &[RecordBatch]) -> String {
        datafusion::arrow::util::pretty::pretty_format_batches(batches)
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn analysts_query_telemetry_with_partition_pruning_and_projection() {
        let fixture = testing::archive().await;
        let engine = testing::engine(&fixture, &QueryConfig::default());
        let analyst = who(Role::Analyst);
        let all = engine
            .query(&analyst, Interface::Http, "SELECT count(*) FROM telemetry")
            .await
            .unwrap();
        assert_eq!(count(&all.batches) as u64, fixture.written.telemetry_rows);
        let per_hour = engine
            .query(
                &analyst,
                Interface::Http,
                "SELECT date, hour, count(*) AS n FROM telemetry GROUP BY date, hour \
                 ORDER BY n DESC, date, hour LIMIT 1",
            )
            .await
            .unwrap();
        let batch = &per_hour.batches[0];
        let date =
            datafusion::arrow::util::display::array_value_to_string(batch.column(0), 0).unwrap();
        let hour = batch.column(1).as_string::<i32>().value(0).to_owned();
        let n = batch.column(2).as_primitive::<Int64Type>().value(0);
        let filter = format!("date = '{date}' AND hour = '{hour}'");
        let filtered = engine
            .query(
                &analyst,
                Interface::Http,
                &format!("SELECT count(*) FROM telemetry WHERE {filter}"),
            )
            .await
            .unwrap();
        assert_eq!(count(&filtered.batches), n);
        // Only that partition's files are read, and only the selected column.
        let plan = engine
            .query(
                &analyst,
                Interface::Http,
                &format!("EXPLAIN SELECT \"Vehicle.Speed\" FROM telemetry WHERE {filter}"),
            )
            .await
            .unwrap();
        let plan = text(&plan.batches);
        assert!(
            plan.contains(&format!("date={date}/hour={hour}/")),
            "{plan}"
        );
        assert_eq!(plan.matches(".parquet").count(), 2, "{plan}");
        assert!(plan.contains("projection=[Vehicle.Speed]"), "{plan}");
    }

    #[tokio::test]
    async fn only_the_anonymized_datasets_are_reachable() {
        let fixture = testing::archive().await;
        // A consent record and a frame sit in the same store.
        let store = LocalStore::open(fixture.dir.path()).unwrap();
        let consent = "consent/events/date=2026-11-02/hour=01/c.parquet";
        store.put(consent, "not for analysts".into()).await.unwrap();
        store
            .put(
                "dataset=frames/date=2026-11-02/hour=01/f.jpg",
                "pixels".into(),
            )
            .await
            .unwrap();
        let engine = testing::engine(&fixture, &QueryConfig::default());
        let analyst = who(Role::Analyst);
        for (sql, code) in [
            ("SELECT * FROM consent_events", ErrorCode::NotFound),
            ("SELECT * FROM audit_log", ErrorCode::NotFound),
            ("SELECT * FROM other.public.telemetry", ErrorCode::NotFound),
            (
                "SELECT * FROM 'consent/events/date=2026-11-02/hour=01/c.parquet'",
                ErrorCode::NotFound,
            ),
            ("SELECT * FROM 'file:///etc/passwd'", ErrorCode::NotFound),
            (
                "SELECT * FROM read_parquet('inland://archive/consent/')",
                ErrorCode::NotFound,
            ),
            ("SELECT * FROM read_csv('/etc/passwd')", ErrorCode::NotFound),
            (
                "CREATE EXTERNAL TABLE c STORED AS PARQUET LOCATION 'inland://archive/consent/'",
                ErrorCode::PermissionDenied,
            ),
            (
                "COPY (SELECT * FROM telemetry) TO '/tmp/inland-leak.csv'",
                ErrorCode::PermissionDenied,
            ),
            (
                "INSERT INTO telemetry SELECT * FROM telemetry",
                ErrorCode::PermissionDenied,
            ),
            ("DELETE FROM telemetry", ErrorCode::PermissionDenied),
            ("DROP TABLE telemetry", ErrorCode::PermissionDenied),
            (
                "CREATE VIEW v AS SELECT * FROM telemetry",
                ErrorCode::PermissionDenied,
            ),
            (
                "SET datafusion.execution.target_partitions = 1",
                ErrorCode::PermissionDenied,
            ),
            (
                "EXPLAIN COPY (SELECT 1) TO '/tmp/inland-leak.csv'",
                ErrorCode::PermissionDenied,
            ),
            ("SELECT 1; SELECT 2", ErrorCode::InvalidInput),
        ] {
            let err = engine
                .query(&analyst, Interface::Http, sql)
                .await
                .unwrap_err();
            assert_eq!(err.code(), code, "{sql}: {err}");
        }
        assert!(!std::path::Path::new("/tmp/inland-leak.csv").exists());
        let err = engine
            .query(&analyst, Interface::Http, "SELECT * FROM consent_events")
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("tables you can query: telemetry, frame_index"),
            "{err}"
        );
        let series = engine
            .query(
                &analyst,
                Interface::Http,
                "SELECT * FROM generate_series(1, 3)",
            )
            .await
            .unwrap();
        assert_eq!(series.rows, 3);
        let tables = engine
            .query(&analyst, Interface::Http, "SHOW TABLES")
            .await
            .unwrap();
        let listed = text(&tables.batches);
        assert!(
            listed.contains("telemetry") && listed.contains("frame_index"),
            "{listed}"
        );
        assert!(
            !listed.contains("audit_log") && !listed.contains("consent"),
            "{listed}"
        );

        // Below SQL, the engine's only store refuses other prefixes and every write,
        // and the local file system is not registered at all.
        let ctx = engine.context(Role::Analyst);
        let runtime = ctx.runtime_env();
        assert!(
            runtime
                .object_store(ObjectStoreUrl::local_filesystem())
                .is_err()
        );
        let store = runtime
            .object_store(ObjectStoreUrl::parse(ARCHIVE_URL).unwrap())
            .unwrap();
        let refused = store.get(&object_store::path::Path::from(consent)).await;
        assert!(matches!(
            refused,
            Err(object_store::Error::PermissionDenied { .. })
        ));
        let frame = object_store::path::Path::from("dataset=frames/date=2026-11-02/hour=01/f.jpg");
        assert!(store.get(&frame).await.is_err());
        let audit = object_store::path::Path::from("audit/log/x.json");
        assert!(store.get(&audit).await.is_err());
    }

    #[tokio::test]
    async fn auditors_and_admins_also_read_the_audit_log() {
        let fixture = testing::archive().await;
        let engine = testing::engine(&fixture, &QueryConfig::default());
        engine
            .query(
                &who(Role::Analyst),
                Interface::FlightSql,
                "SELECT count(*) FROM frame_index",
            )
            .await
            .unwrap();
        let _ = engine
            .query(&who(Role::Analyst), Interface::Http, "SELEC nonsense")
            .await;
        for role in [Role::Auditor, Role::Admin] {
            let log = engine
                .query(
                    &who(role),
                    Interface::Http,
                    "SELECT seq, \"user\", interface, outcome, \"rows\", tables FROM audit_log \
                     WHERE \"user\" = 'test-analyst' ORDER BY seq",
                )
                .await
                .unwrap();
            let shown = text(&log.batches);
            assert_eq!(log.rows, 2, "{shown}");
            assert!(
                shown.contains(
                    "| 0   | test-analyst | flight_sql | ok            | 1    | [frame_index] |"
                ),
                "{shown}"
            );
            assert!(shown.contains("invalid_input"), "{shown}");
        }
    }

    #[tokio::test]
    async fn limits_are_per_role_and_errors_are_clear_and_audited() {
        let fixture = testing::archive().await;
        let mut config = QueryConfig::default();
        config.limits.analyst.max_rows = 10;
        config.limits.auditor.timeout = Duration::from_nanos(1);
        let engine = testing::engine(&fixture, &config);
        let analyst = who(Role::Analyst);
        let ok = engine
            .query(
                &analyst,
                Interface::Http,
                "SELECT pseudonym FROM telemetry LIMIT 10",
            )
            .await
            .unwrap();
        assert_eq!(ok.rows, 10);
        let cases = [
            (
                &analyst,
                "SELECT pseudonym FROM telemetry",
                ErrorCode::ResourceExhausted,
                "more than 10 rows",
            ),
            (&analyst, "SELEC 1", ErrorCode::InvalidInput, "SQL error"),
            (
                &analyst,
                "SELECT no_such_column FROM telemetry",
                ErrorCode::InvalidInput,
                "no_such_column",
            ),
            (
                &analyst,
                "SELECT CAST('x' AS INT)",
                ErrorCode::InvalidInput,
                "Cast",
            ),
        ];
        for (caller, sql, code, message) in cases {
            let err = engine
                .query(caller, Interface::Http, sql)
                .await
                .unwrap_err();
            assert_eq!(err.code(), code, "{sql}: {err}");
            assert!(err.to_string().contains(message), "{sql}: {err}");
        }
        let err = engine
            .query(
                &who(Role::Auditor),
                Interface::Http,
                // Millions of joined rows: it cannot end before the deadline is first
                // checked (a bare count(*) can, answered from Parquet statistics).
                "SELECT count(*) FROM telemetry a CROSS JOIN telemetry b WHERE a.time < b.time",
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Timeout, "{err}");
        // The admin's limits are its own.
        let all = engine
            .query(
                &who(Role::Admin),
                Interface::Http,
                "SELECT pseudonym FROM telemetry",
            )
            .await
            .unwrap();
        assert_eq!(all.rows, fixture.written.telemetry_rows);
        let reports = crate::audit::verify(fixture.archive.store().as_ref())
            .await
            .unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].broken, None);
        assert_eq!(reports[0].entries, 7);
    }

    #[tokio::test]
    async fn no_result_leaves_without_its_audit_entry() {
        let fixture = testing::archive().await;
        // The audit store's root is replaced by a file: every put fails.
        let audit_root = fixture.dir.path().join("audit-store");
        let store = LocalStore::open(&audit_root).unwrap();
        std::fs::remove_dir(&audit_root).unwrap();
        std::fs::write(&audit_root, b"not a directory").unwrap();
        let archive = Archive::new(fixture.archive.reader(), Arc::new(store));
        let engine = Engine::new(&archive, &QueryConfig::default()).unwrap();
        let err = engine
            .query(
                &who(Role::Analyst),
                Interface::Http,
                "SELECT count(*) FROM telemetry",
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
        assert!(err.to_string().contains("could not be audited"), "{err}");
    }
}
