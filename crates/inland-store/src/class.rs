/// What an object holds. Each class has its own key prefix, so a lifecycle rule per prefix
/// gives each its own shelf life (Garage has lifecycle rules but no object tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataClass {
    /// Anonymized telemetry, Parquet.
    Telemetry,
    /// Anonymized camera frames, JPEG.
    Frames,
    /// The Parquet index of the frames.
    FrameIndex,
    /// Consent and erasure records.
    Consent,
    /// The query audit log.
    Audit,
}

impl DataClass {
    pub const ALL: [DataClass; 5] = [
        Self::Telemetry,
        Self::Frames,
        Self::FrameIndex,
        Self::Consent,
        Self::Audit,
    ];

    /// The stable lower-case name used in config, metrics and the dataset partition.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Telemetry => "telemetry",
            Self::Frames => "frames",
            Self::FrameIndex => "frame_index",
            Self::Consent => "consent",
            Self::Audit => "audit",
        }
    }

    /// Every key of this class starts with this prefix (ending in `/`). The datasets use
    /// Hive partition syntax so DuckDB, Polars, Spark and Trino read them as they are.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Telemetry => "dataset=telemetry/",
            Self::Frames => "dataset=frames/",
            Self::FrameIndex => "dataset=frame_index/",
            Self::Consent => "consent/",
            Self::Audit => "audit/",
        }
    }

    /// The class a key belongs to, if any.
    pub fn of_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| key.starts_with(c.prefix()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_disjoint_and_recognised() {
        for class in DataClass::ALL {
            let key = format!("{}x", class.prefix());
            assert_eq!(DataClass::of_key(&key), Some(class));
        }
        assert_eq!(DataClass::of_key("dataset=other/x"), None);
    }
}
