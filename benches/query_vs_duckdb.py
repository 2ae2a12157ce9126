"""DuckDB's side of benches/query.rs: the same queries on the same Parquet files.

Reads a job (JSON file, first argument: root, threads, queries by name), creates the
`telemetry` and `frame_index` views over the Hive-partitioned files, prints `ready`, then
serves one request per line on standard input: a query name, answered by one line of
JSON with the seconds the query took (result materialized as Arrow) and its row count.
The benchmark alternates these runs with its own, so both engines see the same machine.
"""

import json
import sys
import time

import duckdb

job = json.load(open(sys.argv[1]))
db = duckdb.connect()
db.execute(f"SET threads = {int(job['threads'])}")
hive = "hive_partitioning = true, hive_types = {'date': DATE, 'hour': VARCHAR}"
for table in ("telemetry", "frame_index"):
    db.execute(
        f"CREATE VIEW {table} AS SELECT * FROM read_parquet("
        f"'{job['root']}/dataset={table}/*/*/*.parquet', {hive})"
    )
print(json.dumps({"ready": duckdb.__version__}), flush=True)

for line in sys.stdin:
    sql = job["queries"][line.strip()]
    started = time.perf_counter()
    rows = db.execute(sql).to_arrow_table().num_rows
    print(json.dumps({"seconds": time.perf_counter() - started, "rows": rows}), flush=True)
