//! Helpers shared by the integration tests: finding the servers the scripts started.
