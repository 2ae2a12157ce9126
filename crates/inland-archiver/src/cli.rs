//! `inland archive …`: operator commands on the archive.

use std::io::Write;
use std::time::SystemTime;

use inland_store::ObjectStore;

use crate::erase::is_pseudonym;
use crate::{Error, erase, record_erasure};

#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum ArchiveCommand {
    /// Remove every telemetry and frame index row of the pseudonyms, and their frames,
    /// then record the request's completion under consent/erasure/<REQUEST_ID>.json.
    /// Idempotent: run it again to retry, or to catch records archived meanwhile.
    Erase {
        /// Names the erasure request (e.g. the consent withdrawal's id).
        #[arg(long)]
        request_id: String,
        /// The pseudonyms (32 hex digits each), one per key epoch of the vehicle.
        #[arg(required = true)]
        pseudonyms: Vec<String>,
    },
}

/// Runs an `archive` command against `store`, printing the outcome to `out`.
pub async fn run(
    cmd: ArchiveCommand,
    store: &dyn ObjectStore,
    mut out: impl Write,
) -> Result<(), Error> {
    match cmd {
        ArchiveCommand::Erase {
            request_id,
            pseudonyms,
        } => {
            // Checked first, so a bad id fails before anything is erased.
            crate::erasure_key(&request_id)?;
            if let Some(bad) = pseudonyms.iter().find(|p| !is_pseudonym(p)) {
                return Err(Error::Request(format!(
                    "{bad:?} is not a pseudonym (32 lower-case hex digits)"
                )));
            }
            let requested_at = SystemTime::now();
            let report = erase(store, &pseudonyms).await?;
            let key =
                record_erasure(store, &request_id, requested_at, &pseudonyms, &report).await?;
            writeln!(
                out,
                "erased: {} rows removed, {} files rewritten, {} deleted, {} frames deleted \
                 ({} files scanned); recorded as {key}",
                report.rows_removed,
                report.files_rewritten,
                report.files_deleted,
                report.frames_deleted,
                report.files_scanned
            )
            .map_err(Error::Output)
        }
    }
}
