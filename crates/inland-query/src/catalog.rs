//! What SQL can name: one DataFusion context per kind of role, each with only the tables
//! that role may read, over a read-only view of the store limited to those tables' prefixes.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreUrl};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use inland_datasets::{Dataset, PARTITION_COLUMNS};

use crate::auth::Role;
use crate::guard::ReadOnlyPrefixes;
use crate::{Error, audit};

/// The URL the archive is registered under inside the engine; no other store exists there.
pub(crate) const ARCHIVE_URL: &str = "inland://archive/";

/// A table SQL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `telemetry`: anonymized telemetry, partitioned by `date` and `hour`.
    Telemetry,
    /// `frame_index`: one row per anonymized frame, partitioned by `date` and `hour`.
    FrameIndex,
    /// `audit_log`: every audited query and export, partitioned by `chain`.
    AuditLog,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Self::Telemetry => Dataset::Telemetry.name(),
            Self::FrameIndex => Dataset::FrameIndex.name(),
            Self::AuditLog => "audit_log",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::Telemetry => Dataset::Telemetry.root(),
            Self::FrameIndex => Dataset::FrameIndex.root(),
            Self::AuditLog => audit::LOG_PREFIX,
        }
    }

    /// The tables `role` may query. Consent events identify vehicles and are never here.
    pub fn for_role(role: Role) -> &'static [Table] {
        if role.reads_audit_log() {
            &[Self::Telemetry, Self::FrameIndex, Self::AuditLog]
        } else {
            &[Self::Telemetry, Self::FrameIndex]
        }
    }

    fn listing(self, config: &SessionConfig) -> ListingOptions {
        match self {
            Self::Telemetry | Self::FrameIndex => {
                // The session's Parquet settings (pushdown, page index) apply only if the
                // format is built from them.
                let parquet = config.options().execution.parquet.clone();
                let options = datafusion::config::TableParquetOptions {
                    global: parquet,
                    ..Default::default()
                };
                ListingOptions::new(Arc::new(ParquetFormat::default().with_options(options)))
                    .with_file_extension(".parquet")
                    .with_table_partition_cols(partition_columns())
            }
            Self::AuditLog => ListingOptions::new(Arc::new(JsonFormat::default()))
                .with_file_extension(".json")
                .with_table_partition_cols(vec![(audit::CHAIN_COLUMN.into(), DataType::Utf8)]),
        }
    }

    fn schema(self) -> SchemaRef {
        match self {
            Self::Telemetry => Dataset::Telemetry.schema(),
            Self::FrameIndex => Dataset::FrameIndex.schema(),
            Self::AuditLog => audit::table_schema(),
        }
    }
}

/// `date` is a DATE. `hour` stays the two-digit text of the path (`'07'`): DataFusion
/// lists only the matching directory for `date = … AND hour = …`, which for an integer
/// hour would be spelled `hour=7` and match nothing.
fn partition_columns() -> Vec<(String, DataType)> {
    let [date, hour] = PARTITION_COLUMNS;
    vec![
        (date.into(), DataType::Date32),
        (hour.into(), DataType::Utf8),
    ]
}

/// Engine settings shared by every context.
#[derive(Debug, Clone)]
pub(crate) struct EngineSettings {
    pub target_partitions: usize,
    pub listing_ttl: Duration,
    pub memory_pool: Arc<dyn MemoryPool>,
}

/// A context in which exactly `tables` exist, reading `store` through a read-only guard.
pub(crate) fn context(
    store: Arc<dyn object_store::ObjectStore>,
    tables: &[Table],
    settings: &EngineSettings,
) -> Result<SessionContext, Error> {
    let prefixes: Vec<&str> = tables.iter().map(|t| t.prefix()).collect();
    let guarded = Arc::new(ReadOnlyPrefixes::new(store, &prefixes));
    let url = ObjectStoreUrl::parse(ARCHIVE_URL).map_err(Error::from_engine)?;
    let registry = DefaultObjectStoreRegistry::new();
    // The default registry serves the local file system at file://; nothing may read it.
    datafusion::execution::object_store::ObjectStoreRegistry::deregister_store(
        &registry,
        ObjectStoreUrl::local_filesystem().as_ref(),
    )
    .map_err(Error::from_engine)?;
    datafusion::execution::object_store::ObjectStoreRegistry::register_store(
        &registry,
        url.as_ref(),
        guarded,
    );
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(registry))
        .with_memory_pool(settings.memory_pool.clone())
        .with_object_list_cache_ttl(Some(settings.listing_ttl))
        .build_arc()
        .map_err(Error::from_engine)?;
    let mut config = SessionConfig::new()
        .with_target_partitions(settings.target_partitions)
        .with_information_schema(true);
    let options = config.options_mut();
    options.execution.parquet.pushdown_filters = true;
    options.execution.parquet.reorder_filters = true;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .build();
    let ctx = SessionContext::new_with_state(state);
    for &table in tables {
        let config = ctx.copied_config();
        let path = ListingTableUrl::parse(format!("{ARCHIVE_URL}{}", table.prefix()))
            .map_err(Error::from_engine)?;
        let listing = ListingTableConfig::new(path)
            .with_listing_options(table.listing(&config))
            .with_schema(table.schema());
        let provider = ListingTable::try_new(listing).map_err(Error::from_engine)?;
        ctx.register_table(table.name(), Arc::new(provider))
            .map_err(Error::from_engine)?;
    }
    Ok(ctx)
}
