use std::fmt;

/// A Vehicle Identification Number (ISO 3779): 17 characters, digits and upper-case
/// letters except I, O and Q. This is personal data: never log it or write it to storage
/// outside the raw topic; the anonymizer replaces it with a pseudonym.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vin(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VinError {
    #[error("a VIN has 17 characters, this one has {0}")]
    Length(usize),
    #[error("a VIN uses digits and capital letters except I, O and Q; found {0:?}")]
    Character(char),
}

impl Vin {
    pub fn parse(s: &str) -> Result<Self, VinError> {
        let len = s.chars().count();
        if len != 17 {
            return Err(VinError::Length(len));
        }
        if let Some(c) = s.chars().find(|c| {
            !(c.is_ascii_digit() || c.is_ascii_uppercase()) || matches!(c, 'I' | 'O' | 'Q')
        }) {
            return Err(VinError::Character(c));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Vin {
    type Err = VinError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Debug never prints the VIN itself, so a stray `{:?}` in a log line cannot leak it.
impl fmt::Debug for Vin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vin(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_and_rejects_bad_vins() {
        assert!(Vin::parse("LSVAU2180N2183294").is_ok());
        assert_eq!(Vin::parse("SHORT"), Err(VinError::Length(5)));
        assert_eq!(
            Vin::parse("LSVAU2180N218329O"),
            Err(VinError::Character('O'))
        );
        assert_eq!(
            Vin::parse("lsvau2180n2183294"),
            Err(VinError::Character('l'))
        );
    }

    #[test]
    fn debug_does_not_leak() {
        let v = Vin::parse("LSVAU2180N2183294").unwrap();
        assert!(!format!("{v:?}").contains("LSVAU"));
    }
}
