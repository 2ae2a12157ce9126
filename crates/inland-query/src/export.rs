//! `inland export`: the one path for data to leave the country.
//!
//! Only aggregates may leave. The logical plan must end in an aggregation: above it only
//! projections, filters (HAVING), sorts, limits, aliases and DISTINCT, none with a
//! subquery; each aggregate function is one of a fixed list and yields a number, a
//! boolean or a time (so `min(pseudonym)` or `array_agg(…)` cannot smuggle rows out).
//! Raw rows, window functions, joins and unions over an aggregation, constant rows: all
//! refused.
//!
//! The service then counts the distinct vehicles (pseudonyms) behind every group by
//! adding `count(DISTINCT pseudonym)` to the aggregation and carrying it up, drops the
//! groups of fewer than `k` vehicles, writes the rest (CSV or Parquet), and appends a
//! transfer record (SQL, who ran it, who approved it, k, groups suppressed, the output's
//! SHA-256) to the audit log before the file takes its final name.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::compute::kernels::cmp::gt_eq;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::Column;
use datafusion::common::tree_node::TreeNode;
use datafusion::functions_aggregate::expr_fn::count_distinct;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, Distinct, Expr, ExprSchemable, LogicalPlan};
use datafusion::parquet::arrow::ArrowWriter;
use inland_datasets::telemetry::PSEUDONYM;
use sha2::{Digest, Sha256};

use crate::audit::{Appended, Kind, Transfer};
use crate::auth::Principal;
use crate::engine::{Attempt, Engine, Interface, collect, plan, within};
use crate::output::{self, Format};
use crate::{Error, metrics};

/// The hidden column carrying each group's number of distinct vehicles.
const GROUP_SIZE: &str = "__inland_group_vehicles";

/// Aggregate functions whose result describes a group rather than repeating a row.
const ALLOWED_AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "mean",
    "min",
    "max",
    "median",
    "stddev",
    "stddev_samp",
    "stddev_pop",
    "var",
    "var_samp",
    "var_pop",
    "var_sample",
    "var_population",
    "approx_distinct",
    "approx_median",
    "approx_percentile_cont",
    "approx_percentile_cont_with_weight",
    "percentile_cont",
    "quantile_cont",
    "corr",
    "covar",
    "covar_samp",
    "covar_pop",
    "regr_slope",
    "regr_intercept",
    "regr_count",
    "regr_r2",
    "regr_avgx",
    "regr_avgy",
    "regr_sxx",
    "regr_syy",
    "regr_sxy",
    "bool_and",
    "bool_or",
];

/// The export's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Parquet,
}

impl ExportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        }
    }
}

/// What to export, and on whose approval.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub sql: String,
    /// Who approved the transfer (name, role, ticket), recorded in the audit log.
    pub approved_by: String,
    /// The output file; must not exist yet.
    pub out: PathBuf,
    pub format: ExportFormat,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// Groups written.
    pub rows: u64,
    /// Groups dropped for aggregating fewer than `k` vehicles.
    pub groups_suppressed: u64,
    pub k: u64,
    /// SHA-256 of the output file.
    pub sha256: String,
    /// The transfer record's audit entry.
    pub audit: Appended,
}

impl Engine {
    /// Runs an export for `who` (an admin); see the module documentation.
    pub async fn export(
        &self,
        who: &Principal,
        request: &ExportRequest,
    ) -> Result<ExportReport, Error> {
        let mut attempt = Attempt::new(Kind::Export, who, Interface::Export, &request.sql);
        let k = self.export_k;
        let limits = self.limits(who.role);
        let prepared = within(limits.timeout, async {
            check_request(who, request)?;
            let ctx = self.context(who.role);
            let plan = plan(ctx, who.role, &request.sql, &mut attempt.tables).await?;
            let sized = with_group_size(&plan)?;
            let (schema, batches, _) = collect(ctx, sized, limits.max_rows).await?;
            let (schema, kept, suppressed) = suppress_small_groups(&schema, &batches, k)?;
            let body = encode(&schema, &kept, request.format)?;
            let partial = partial_path(&request.out);
            write_durably(&partial, &body)?;
            Ok((kept, suppressed, body, partial))
        })
        .await;
        let (kept, suppressed, body, partial) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => return Err(self.failed(attempt, e).await),
        };
        let rows: u64 = kept.iter().map(|b| b.num_rows() as u64).sum();
        let sha256 = hex::encode(Sha256::digest(&body));
        let transfer = Transfer {
            approved_by: request.approved_by.trim().into(),
            k,
            groups_suppressed: suppressed,
            output_format: request.format.as_str().into(),
            output_file: request
                .out
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            output_sha256: sha256.clone(),
        };
        let audit = match self.append(attempt.succeeded(rows, Some(transfer))).await {
            Ok(audit) => audit,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        // Only an audited export gets its final name.
        std::fs::rename(&partial, &request.out)
            .and_then(|()| sync_parent(&request.out))
            .map_err(|source| Error::Output {
                path: request.out.clone(),
                source,
            })?;
        metrics::exported(rows, suppressed);
        Ok(ExportReport {
            rows,
            groups_suppressed: suppressed,
            k,
            sha256,
            audit,
        })
    }
}

/// Refuses an export by someone who may not export, without an approver, or over an
/// existing file.
fn check_request(who: &Principal, request: &ExportRequest) -> Result<(), Error> {
    if !who.role.may_export() {
        return Err(Error::Forbidden(format!(
            "exports need the admin role; {} is {}",
            who.user, who.role
        )));
    }
    if request.approved_by.trim().is_empty() {
        return Err(Error::Forbidden(
            "an export needs the name of who approved the transfer (--approved-by)".into(),
        ));
    }
    if request.out.exists() {
        return Err(Error::Output {
            path: request.out.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "already exists; an export never overwrites a file",
            ),
        });
    }
    Ok(())
}

/// `plan` with the group size carried to its output as the last column, or why it is not
/// an aggregate.
fn with_group_size(plan: &LogicalPlan) -> Result<LogicalPlan, Error> {
    let rebuilt = match plan {
        LogicalPlan::Aggregate(aggregate) => return sized_aggregate(aggregate),
        LogicalPlan::Projection(projection) => {
            refuse_subqueries(&projection.expr)?;
            let input = with_group_size(&projection.input)?;
            let mut exprs = projection.expr.clone();
            exprs.push(Expr::Column(group_size_column(&input)?));
            plan.with_new_exprs(exprs, vec![input])
        }
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Distinct(Distinct::All(_)) => {
            let exprs = plan.expressions();
            refuse_subqueries(&exprs)?;
            let input = with_group_size(plan.inputs()[0])?;
            plan.with_new_exprs(exprs, vec![input])
        }
        LogicalPlan::TableScan(scan) => {
            return Err(Error::NotAggregate(format!(
                "the result holds rows of {} itself; group and aggregate them (GROUP BY … \
                 with count, sum, avg, …), or aggregate over the whole table",
                scan.table_name
            )));
        }
        LogicalPlan::Window(_) => {
            return Err(Error::NotAggregate(
                "a window function above the aggregation yields a value per row; compute \
                 it inside the aggregation instead"
                    .into(),
            ));
        }
        LogicalPlan::Join(_) | LogicalPlan::Union(_) => {
            return Err(Error::NotAggregate(
                "joins and unions above an aggregation are not exported; express the result \
                 as one aggregation"
                    .into(),
            ));
        }
        other => {
            return Err(Error::NotAggregate(format!(
                "{} is not an aggregation of the archive; an export must end in GROUP BY or \
                 a global aggregate",
                other
                    .display()
                    .to_string()
                    .split(':')
                    .next()
                    .unwrap_or("the statement")
            )));
        }
    };
    rebuilt.map_err(Error::from_engine)
}

/// The aggregation plus `count(DISTINCT pseudonym)`, after checking its functions.
fn sized_aggregate(aggregate: &Aggregate) -> Result<LogicalPlan, Error> {
    refuse_subqueries(&aggregate.group_expr)?;
    refuse_subqueries(&aggregate.aggr_expr)?;
    let input_schema = aggregate.input.schema();
    for expr in &aggregate.aggr_expr {
        let Some(function) = aggregate_function(expr) else {
            return Err(Error::Internal(
                "an aggregation holds a non-aggregate expression".into(),
            ));
        };
        let name = function.func.name();
        let allowed = std::iter::once(name)
            .chain(function.func.aliases().iter().map(String::as_str))
            .any(|n| ALLOWED_AGGREGATES.contains(&n.to_ascii_lowercase().as_str()));
        if !allowed {
            return Err(Error::NotAggregate(format!(
                "{name} can reproduce individual values; use count, sum, avg, min, max, \
                 median, stddev, var, percentiles or correlations"
            )));
        }
        let output = expr.get_type(input_schema).map_err(Error::from_engine)?;
        if !summary_type(&output) {
            return Err(Error::NotAggregate(format!(
                "{name} returns {output} here, which could carry an identifier or a whole \
                 row; only numbers, booleans and times leave the country as aggregates"
            )));
        }
    }
    let pseudonyms = input_schema.columns_with_unqualified_name(PSEUDONYM);
    let pseudonym = match pseudonyms.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(Error::NotAggregate(format!(
                "cannot count the vehicles in each group: the aggregated rows carry no \
                 {PSEUDONYM} column; aggregate telemetry or frame_index directly, or keep \
                 {PSEUDONYM} in the subquery"
            )));
        }
        _ => {
            return Err(Error::NotAggregate(format!(
                "the aggregated rows carry {} {PSEUDONYM} columns (a join); aggregate one \
                 dataset at a time so each group counts one kind of vehicle",
                pseudonyms.len()
            )));
        }
    };
    let mut aggr_expr = aggregate.aggr_expr.clone();
    aggr_expr.push(count_distinct(Expr::Column(pseudonym)).alias(GROUP_SIZE));
    Aggregate::try_new(
        aggregate.input.clone(),
        aggregate.group_expr.clone(),
        aggr_expr,
    )
    .map(LogicalPlan::Aggregate)
    .map_err(Error::from_engine)
}

fn aggregate_function(expr: &Expr) -> Option<&AggregateFunction> {
    match expr {
        Expr::AggregateFunction(function) => Some(function),
        Expr::Alias(alias) => aggregate_function(&alias.expr),
        _ => None,
    }
}

fn summary_type(data_type: &DataType) -> bool {
    data_type.is_numeric()
        || data_type.is_temporal()
        || matches!(data_type, DataType::Boolean | DataType::Null)
}

fn refuse_subqueries(exprs: &[Expr]) -> Result<(), Error> {
    let has_subquery = exprs.iter().any(|e| {
        e.exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
            ))
        })
        .unwrap_or(true)
    });
    if has_subquery {
        return Err(Error::NotAggregate(
            "a subquery in or above the aggregation could carry values of single rows; \
             filter in the WHERE clause of the aggregated query instead"
                .into(),
        ));
    }
    Ok(())
}

fn group_size_column(plan: &LogicalPlan) -> Result<Column, Error> {
    plan.schema()
        .columns_with_unqualified_name(GROUP_SIZE)
        .into_iter()
        .next()
        .ok_or_else(|| Error::Internal("the group size column got lost".into()))
}

/// Drops groups of fewer than `k` vehicles and the size column; returns the remaining
/// batches and how many groups were dropped.
fn suppress_small_groups(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    k: u64,
) -> Result<(SchemaRef, Vec<RecordBatch>, u64), Error> {
    let size_index = schema
        .index_of(GROUP_SIZE)
        .map_err(|_| Error::Internal("the group size column got lost".into()))?;
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| i != size_index)
        .collect();
    let output = Arc::new(
        schema
            .project(&keep)
            .map_err(|e| Error::Internal(e.to_string()))?,
    );
    let threshold = Int64Array::new_scalar(i64::try_from(k).unwrap_or(i64::MAX));
    let (mut kept, mut suppressed) = (Vec::with_capacity(batches.len()), 0u64);
    for batch in batches {
        let sizes = batch.column(size_index);
        let large_enough = gt_eq(sizes, &threshold).map_err(|e| Error::Internal(e.to_string()))?;
        let filtered = filter_record_batch(batch, &large_enough)
            .map_err(|e| Error::Internal(e.to_string()))?;
        suppressed += (batch.num_rows() - filtered.num_rows()) as u64;
        if large_enough.null_count() > 0 {
            return Err(Error::Internal("a group without a size".into()));
        }
        kept.push(
            filtered
                .project(&keep)
                .map_err(|e| Error::Internal(e.to_string()))?,
        );
    }
    Ok((output, kept, suppressed))
}

fn encode(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: ExportFormat,
) -> Result<Vec<u8>, Error> {
    match format {
        ExportFormat::Csv => output::encode(Format::Csv, schema, batches),
        ExportFormat::Parquet => {
            let internal = |e| Error::Internal(format!("encoding the export: {e}"));
            let mut writer =
                ArrowWriter::try_new(Vec::new(), schema.clone(), None).map_err(internal)?;
            for batch in batches {
                writer.write(batch).map_err(internal)?;
            }
            writer.into_inner().map_err(internal)
        }
    }
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".inland-partial");
    PathBuf::from(name)
}

fn write_durably(path: &Path, body: &[u8]) -> Result<(), Error> {
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(path)?;
        file.write_all(body)?;
        file.sync_all()
    };
    write().map_err(|source| {
        let _ = std::fs::remove_file(path);
        Error::Output {
            path: path.into(),
            source,
        }
    })
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    use inland_core::ErrorCode;

    use super::*;
    use crate::auth::Role;
    use crate::config::{ExportConfig, QueryConfig};
    use crate::testing::{self, who};

    fn request(sql: &str, out: &Path) -> ExportRequest {
        ExportRequest {
            sql: sql.into(),
            approved_by: "Li Wei, DPO, ticket 42".into(),
            out: out.into(),
            format: ExportFormat::Csv,
        }
    }

    #[tokio::test]
    async fn row_level_and_disguised_row_level_output_is_refused() {
        let fixture = testing::archive().await;
        let engine = testing::engine(&fixture, &QueryConfig::default());
        let admin = who(Role::Admin);
        let out = fixture.dir.path().join("out.csv");
        for (sql, why) in [
            ("SELECT * FROM telemetry", "rows of telemetry itself"),
            (
                "SELECT pseudonym, latitude FROM telemetry LIMIT 5",
                "rows of telemetry itself",
            ),
            (
                "SELECT DISTINCT latitude, longitude FROM telemetry",
                "rows of telemetry itself",
            ),
            ("SELECT 1 AS one", "not an aggregation"),
            (
                "SELECT date, count(*) OVER (PARTITION BY date) FROM telemetry",
                "window function",
            ),
            (
                "SELECT date, rank() OVER (ORDER BY count(*)) FROM telemetry GROUP BY date",
                "window function",
            ),
            (
                "SELECT date, min(pseudonym) FROM telemetry GROUP BY date",
                "returns Utf8",
            ),
            (
                "SELECT date, max(object_key) FROM frame_index GROUP BY date",
                "returns Utf8",
            ),
            (
                "SELECT date, array_agg(latitude) FROM telemetry GROUP BY date",
                "array_agg can reproduce individual values",
            ),
            (
                "SELECT date, first_value(latitude) FROM telemetry GROUP BY date",
                "first_value can reproduce",
            ),
            (
                "SELECT date, count(*) FROM telemetry GROUP BY date \
                 UNION ALL SELECT date, count(*) FROM frame_index GROUP BY date",
                "unions",
            ),
            (
                "SELECT date, count(*), (SELECT max(latitude) FROM telemetry) FROM telemetry \
                 GROUP BY date",
                "subquery",
            ),
            (
                "SELECT t.date, count(*) FROM telemetry t JOIN frame_index f \
                 ON t.pseudonym = f.pseudonym GROUP BY t.date",
                "a join",
            ),
            (
                "SELECT h, count(*) FROM (SELECT hour AS h FROM telemetry) GROUP BY h",
                "no pseudonym column",
            ),
        ] {
            let err = engine
                .export(&admin, &request(sql, &out))
                .await
                .unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidInput, "{sql}: {err}");
            assert!(err.to_string().contains(why), "{sql}: {err}");
            assert!(!out.exists());
        }
        let err = engine
            .export(
                &who(Role::Analyst),
                &request("SELECT count(*) FROM telemetry", &out),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::PermissionDenied, "{err}");
        let mut unapproved = request("SELECT count(*) FROM telemetry", &out);
        unapproved.approved_by = " ".into();
        let err = engine.export(&admin, &unapproved).await.unwrap_err();
        assert!(err.to_string().contains("--approved-by"), "{err}");
        // Every refusal is on record as a failed export.
        let reports = crate::audit::verify(fixture.archive.store().as_ref())
            .await
            .unwrap();
        assert_eq!(reports[0].entries, 16);
    }

    #[tokio::test]
    async fn groups_of_fewer_than_k_vehicles_are_suppressed_and_the_transfer_recorded() {
        let fixture = testing::archive().await;
        let config = QueryConfig {
            export: ExportConfig { k: 3 },
            ..QueryConfig::default()
        };
        let engine = testing::engine(&fixture, &config);
        let admin = who(Role::Admin);
        let sizes = engine
            .query(
                &admin,
                Interface::Cli,
                "SELECT count(DISTINCT pseudonym) AS vehicles FROM telemetry GROUP BY date, hour",
            )
            .await
            .unwrap();
        let sizes: Vec<i64> = sizes
            .batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        let small = sizes.iter().filter(|&&n| n < 3).count() as u64;
        assert!(small > 0 && small < sizes.len() as u64, "{sizes:?}");

        let out = fixture.dir.path().join("hourly.csv");
        let sql = "SELECT date, hour, count(*) AS samples, round(avg(\"Vehicle.Speed\"), 3) AS speed \
                   FROM telemetry GROUP BY date, hour HAVING count(*) > 0 ORDER BY date, hour";
        let report = engine.export(&admin, &request(sql, &out)).await.unwrap();
        assert_eq!(report.groups_suppressed, small);
        assert_eq!(report.rows, sizes.len() as u64 - small);
        let csv = std::fs::read(&out).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&csv)), report.sha256);
        let text = String::from_utf8(csv).unwrap();
        assert!(text.starts_with("date,hour,samples,speed\n"), "{text}");
        assert!(!text.contains(GROUP_SIZE));
        assert_eq!(text.lines().count() as u64, report.rows + 1);
        assert!(!partial_path(&out).exists());

        // The transfer record is in the audit log, and an auditor can read it.
        let record = engine
            .query(
                &who(Role::Auditor),
                Interface::Http,
                "SELECT kind, approved_by, k, groups_suppressed, output_sha256, \"rows\" \
                 FROM audit_log WHERE kind = 'export' AND outcome = 'ok'",
            )
            .await
            .unwrap();
        let batch = &record.batches[0];
        assert_eq!(
            batch.column(1).as_string::<i32>().value(0),
            "Li Wei, DPO, ticket 42"
        );
        assert_eq!(
            batch
                .column(2)
                .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
                .value(0),
            3
        );
        assert_eq!(
            batch
                .column(3)
                .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
                .value(0),
            small
        );
        assert_eq!(batch.column(4).as_string::<i32>().value(0), report.sha256);

        // Never over an existing file.
        let err = engine
            .export(&admin, &request(sql, &out))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("never overwrites"), "{err}");
    }

    #[tokio::test]
    async fn nested_aggregates_count_vehicles_of_the_inner_groups() {
        let fixture = testing::archive().await;
        let engine = testing::engine(&fixture, &QueryConfig::default());
        let out = fixture.dir.path().join("daily.parquet");
        let sql = "SELECT date, avg(km) AS mean_km, count(*) AS vehicles FROM ( \
                     SELECT date, pseudonym, max(\"Vehicle.TraveledDistance\") - \
                            min(\"Vehicle.TraveledDistance\") AS km \
                     FROM telemetry GROUP BY date, pseudonym) \
                   GROUP BY date";
        let mut parquet = request(sql, &out);
        parquet.format = ExportFormat::Parquet;
        let report = engine.export(&who(Role::Admin), &parquet).await.unwrap();
        // Every vehicle drives every day: two days of 24 vehicles, k = 10.
        assert_eq!((report.rows, report.groups_suppressed), (2, 0));
        let file = std::fs::File::open(&out).unwrap();
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                file,
            )
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
        let schema = batches[0].schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["date", "mean_km", "vehicles"]);
        assert_eq!(
            batches[0].column(2).as_primitive::<Int64Type>().value(0),
            24
        );
    }
}
