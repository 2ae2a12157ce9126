//! Arrow Flight SQL: what ADBC (Python, Go, R), the Flight SQL JDBC driver (DBeaver)
//! and pyarrow clients speak.
//!
//! Statements (`CommandStatementQuery`) and prepared statements without parameters are
//! served: GetFlightInfo plans the SQL (errors for bad SQL or unknown tables come here)
//! and returns its schema and a ticket carrying the SQL; DoGet runs it, audits it and
//! streams the batches. The ticket holds nothing the caller could not send as SQL, and
//! DoGet authenticates and authorizes again, so no server-side state is needed. Catalog
//! metadata (GetSqlInfo, GetCatalogs, GetDbSchemas, GetTables, GetTableTypes) lists only
//! the tables the caller's role may read. Updates are refused: the service is read-only.
//!
//! Credentials: `authorization: Bearer <token>` on every call, or a handshake with
//! `Basic base64(user:token)`, answered with the bearer header clients then send.

use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, CommandStatementUpdate, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use bytes::Bytes;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::arrow::record_batch::RecordBatch;
use futures::{Stream, TryStreamExt, stream};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{Principal, Tokens};
use crate::engine::{Engine, Interface};
use crate::{Error, metrics};

/// The catalog and schema every table is listed under (DataFusion's defaults, which SQL
/// may also spell out: `datafusion.public.telemetry`).
const CATALOG: &str = "datafusion";
const SCHEMA: &str = "public";

type DoGetStream = <FlightSqlServer as FlightService>::DoGetStream;

static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
    let mut builder = SqlInfoDataBuilder::new();
    builder.append(SqlInfo::FlightSqlServerName, "Inland query service");
    builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    builder.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    builder.append(SqlInfo::FlightSqlServerReadOnly, true);
    builder.append(SqlInfo::FlightSqlServerSql, true);
    builder.append(SqlInfo::FlightSqlServerSubstrait, false);
    builder.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    builder.append(SqlInfo::FlightSqlServerCancel, false);
    builder.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    builder.build().expect("the SQL info is well-formed")
});

/// The Flight SQL service over an [`Engine`].
#[derive(Clone)]
pub struct FlightSqlServer {
    engine: Arc<Engine>,
    tokens: Arc<Tokens>,
}

impl FlightSqlServer {
    pub fn new(engine: Arc<Engine>, tokens: Arc<Tokens>) -> Self {
        Self { engine, tokens }
    }

    /// The gRPC service to add to a tonic server.
    pub fn into_service(self) -> FlightServiceServer<Self> {
        FlightServiceServer::new(self)
    }

    fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        self.tokens
            .caller(authorization(request), Interface::FlightSql)
            .map_err(|e| e.status())
    }

    /// The result schema of `sql` for the caller (planned, not run; audited if refused).
    async fn plan<T>(&self, request: &Request<T>, sql: &str) -> Result<SchemaRef, Status> {
        let who = self.principal(request)?;
        self.engine
            .schema(&who, Interface::FlightSql, sql)
            .await
            .map_err(|e| e.status())
    }

    /// Runs `sql` for the caller and streams the audited result.
    async fn run<T>(
        &self,
        request: &Request<T>,
        sql: &str,
    ) -> Result<Response<DoGetStream>, Status> {
        let who = self.principal(request)?;
        let result = self
            .engine
            .query(&who, Interface::FlightSql, sql)
            .await
            .map_err(|e| e.status())?;
        Ok(batches(result.schema, result.batches))
    }

    /// FlightInfo for an authenticated caller: one endpoint whose ticket is `command`,
    /// which DoGet receives back.
    fn info(
        &self,
        request: Request<FlightDescriptor>,
        schema: &Schema,
        command: &impl ProstMessageExt,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        let ticket = Ticket::new(command.as_any().encode_to_vec());
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Error::Internal(format!("encoding the schema: {e}")).status())?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    /// The single batch a metadata command answers with, for an authenticated caller.
    fn metadata<T>(
        &self,
        request: &Request<T>,
        batch: Result<RecordBatch, arrow_flight::error::FlightError>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(request)?;
        one_batch(batch)
    }
}

fn one_batch(
    batch: Result<RecordBatch, arrow_flight::error::FlightError>,
) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(|e| Error::Internal(e.to_string()).status())?;
    Ok(batches(batch.schema(), vec![batch]))
}

fn authorization<T>(request: &Request<T>) -> Option<&str> {
    request
        .metadata()
        .get("authorization")
        .map(|h| h.to_str().unwrap_or(""))
}

fn batches(schema: SchemaRef, batches: Vec<RecordBatch>) -> Response<DoGetStream> {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(stream::iter(batches.into_iter().map(Ok)))
        .map_err(Status::from);
    Response::new(Box::pin(stream))
}

fn sql_of(handle: &[u8]) -> Result<String, Status> {
    String::from_utf8(handle.to_vec()).map_err(|_| {
        Error::Sql("the statement handle is not UTF-8 SQL; get it from GetFlightInfo".into())
            .status()
    })
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlServer {
    type FlightService = FlightSqlServer;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let (token, _) = self
            .tokens
            .handshake(authorization(&request))
            .map_err(|e| {
                metrics::auth_failed(Interface::FlightSql, e.code());
                e.status()
            })?;
        let bearer = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
            Error::Unauthenticated("the token is not header-safe text".into()).status()
        })?;
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: Bytes::new(),
        };
        let output: Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>> =
            Box::pin(stream::iter([Ok(reply)]));
        let mut response = Response::new(output);
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = self.plan(&request, &query.query).await?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        self.info(request, &schema, &ticket)
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.run(&request, &sql_of(&ticket.statement_handle)?).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let schema = self.plan(&request, &query.query).await?;
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|e: datafusion::arrow::error::ArrowError| {
                Error::Internal(format!("encoding the schema: {e}")).status()
            })?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: query.query.into_bytes().into(),
            dataset_schema,
            parameter_schema: Bytes::new(),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        // Handles are the SQL itself: nothing is held to release.
        self.principal(&request).map(|_| ())
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = self
            .plan(&request, &sql_of(&query.prepared_statement_handle)?)
            .await?;
        self.info(request, &schema, &query)
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.run(&request, &sql_of(&query.prepared_statement_handle)?)
            .await
    }

    async fn do_put_prepared_statement_query(
        &self,
        _query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<arrow_flight::sql::DoPutPreparedStatementResult, Status> {
        self.principal(&request)?;
        Err(Error::Sql(
            "statement parameters are not supported; write the values into the SQL".into(),
        )
        .status())
    }

    async fn do_put_statement_update(
        &self,
        update: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        // Planned and audited like any statement: a write is refused there; a query sent
        // as an update is run and recorded, but its rows belong to a query call.
        self.run(&request, &update.query).await?;
        Err(
            Error::Sql("this is a query: run it with executeQuery, not executeUpdate".into())
                .status(),
        )
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&SQL_INFO).schema();
        self.info(request, &schema, &query)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.metadata(&request, query.into_builder(&SQL_INFO).build())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.info(request, &query.into_builder().schema(), &query)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        self.metadata(&request, builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.info(request, &query.clone().into_builder().schema(), &query)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append(CATALOG, SCHEMA);
        self.metadata(&request, builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.info(request, &query.clone().into_builder().schema(), &query)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let who = self.principal(&request)?;
        let tables = self.engine.tables(who.role).await.map_err(|e| e.status())?;
        let mut builder = query.into_builder();
        for (name, schema) in tables {
            builder
                .append(CATALOG, SCHEMA, name, "TABLE", &schema)
                .map_err(|e| Error::Internal(e.to_string()).status())?;
        }
        one_batch(builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.info(request, &query.into_builder().schema(), &query)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append("TABLE");
        self.metadata(&request, builder.build())
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(&request)?;
        Err(Status::unimplemented(format!(
            "{} is not served; send SQL as a statement query",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

#[cfg(test)]
mod tests {
    use arrow_flight::sql::client::FlightSqlServiceClient;
    use datafusion::arrow::array::AsArray;
    use futures::TryStreamExt;
    use tonic::transport::Channel;

    use super::*;
    use crate::config::QueryConfig;
    use crate::testing;

    async fn serve(tokens: Tokens) -> (testing::Fixture, std::net::SocketAddr) {
        let fixture = testing::archive().await;
        let engine = testing::engine(&fixture, &QueryConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = FlightSqlServer::new(engine, Arc::new(tokens)).into_service();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        (fixture, addr)
    }

    async fn client(addr: std::net::SocketAddr) -> FlightSqlServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        FlightSqlServiceClient::new(channel)
    }

    async fn fetch(
        client: &mut FlightSqlServiceClient<Channel>,
        info: FlightInfo,
    ) -> Result<Vec<RecordBatch>, arrow_flight::error::FlightError> {
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        client.do_get(ticket).await?.try_collect().await
    }

    fn tokens() -> (Tokens, String, String) {
        let (text, [analyst, auditor, _]) = testing::token_list();
        (Tokens::parse(&text, "test").unwrap(), analyst, auditor)
    }

    #[tokio::test]
    async fn statements_prepared_statements_and_metadata_for_the_callers_role() {
        let (tokens, analyst, auditor) = tokens();
        let (fixture, addr) = serve(tokens).await;
        let mut client = client(addr).await;
        // JDBC-style: a handshake with user:token yields the bearer token.
        client.handshake("ana", &analyst).await.unwrap();
        assert_eq!(client.token(), Some(&analyst));
        let info = client
            .execute("SELECT count(*) AS n FROM telemetry".into(), None)
            .await
            .unwrap();
        let batches = fetch(&mut client, info).await.unwrap();
        let n = batches[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0);
        assert_eq!(n as u64, fixture.written.telemetry_rows);

        let mut prepared = client
            .prepare(
                "SELECT camera_id FROM frame_index GROUP BY camera_id".into(),
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            prepared.dataset_schema().unwrap().field(0).name(),
            "camera_id"
        );
        let info = prepared.execute().await.unwrap();
        let rows: usize = fetch(&mut client, info)
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, 4);
        prepared.close().await.unwrap();

        let tables = |client: &mut FlightSqlServiceClient<Channel>| {
            let mut client = client.clone();
            async move {
                let info = client
                    .get_tables(CommandGetTables {
                        include_schema: true,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                let batches = fetch(&mut client, info).await.unwrap();
                let names = batches[0]
                    .column_by_name("table_name")
                    .unwrap()
                    .as_string::<i32>();
                names
                    .iter()
                    .map(|n| n.unwrap().to_owned())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(tables(&mut client).await, ["frame_index", "telemetry"]);
        client.set_token(auditor);
        assert_eq!(
            tables(&mut client).await,
            ["audit_log", "frame_index", "telemetry"]
        );
        let info = client
            .get_sql_info(vec![SqlInfo::FlightSqlServerReadOnly])
            .await
            .unwrap();
        assert_eq!(fetch(&mut client, info).await.unwrap()[0].num_rows(), 1);
    }

    #[tokio::test]
    async fn credentials_and_sql_errors_map_to_grpc_codes() {
        let (tokens, analyst, _) = tokens();
        let (_fixture, addr) = serve(tokens).await;
        let mut client = client(addr).await;
        let code = |e: arrow_flight::error::FlightError| match e {
            arrow_flight::error::FlightError::Tonic(status) => status.code(),
            other => panic!("not a gRPC status: {other}"),
        };
        let err = client.execute("SELECT 1".into(), None).await.unwrap_err();
        assert_eq!(code(err), tonic::Code::Unauthenticated);
        assert!(client.handshake("ana", "wrong").await.is_err());
        client.set_token(analyst);
        for (sql, expected) in [
            ("SELEC 1", tonic::Code::InvalidArgument),
            ("SELECT * FROM consent_events", tonic::Code::NotFound),
            ("DROP TABLE telemetry", tonic::Code::PermissionDenied),
        ] {
            let err = client.execute(sql.into(), None).await.unwrap_err();
            assert_eq!(code(err), expected, "{sql}");
        }
        let err = client
            .execute_update("CREATE VIEW v AS SELECT 1".into(), None)
            .await
            .unwrap_err();
        assert_eq!(code(err), tonic::Code::PermissionDenied);
        // A ticket forged with other SQL is planned and checked again.
        let forged = TicketStatementQuery {
            statement_handle: "SELECT * FROM consent_events".into(),
        };
        let err = fetch(
            &mut client,
            FlightInfo::new().with_endpoint(
                FlightEndpoint::new().with_ticket(Ticket::new(forged.as_any().encode_to_vec())),
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(code(err), tonic::Code::NotFound);
    }
}
