//! The field type every parser returns.

use serde::Serialize;

/// How far a field can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldStatus {
    /// Read and validated as printed.
    Valid,
    /// Valid after fixing typical OCR confusions (`O`→`0`, `I`→`1`, a stray space, ...). Where a check digit
    /// protects the field, the fix made the check pass.
    Corrected,
    /// Not legible on the document; taken from another field that encodes it and passed its check (a China ID
    /// number's birth date and sex). `raw` is what was read in its own place, if anything.
    Derived,
    /// Text was found but failed validation (check digit, impossible date, unknown code, cross-check with
    /// another field): `value` is `None`, `raw` holds the text.
    Unreadable,
    /// Not found in the OCR lines.
    Missing,
}

/// One extracted value with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field<T> {
    /// The validated value; `None` unless `status` is `Valid`, `Corrected` or `Derived`.
    pub value: Option<T>,
    /// The OCR text the value was read from (after width normalisation), when there was any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// Minimum confidence of the OCR lines used, `0..=1` (0 when missing).
    pub confidence: f32,
    /// Validation outcome.
    pub status: FieldStatus,
}

impl<T> Field<T> {
    /// A value read and validated as printed.
    pub fn valid(value: T, raw: impl Into<String>, confidence: f32) -> Self {
        Self { value: Some(value), raw: Some(raw.into()), confidence, status: FieldStatus::Valid }
    }

    /// A value that validated after correcting OCR confusions.
    pub fn corrected(value: T, raw: impl Into<String>, confidence: f32) -> Self {
        Self { value: Some(value), raw: Some(raw.into()), confidence, status: FieldStatus::Corrected }
    }

    /// `valid` or `corrected` depending on `changed`.
    pub fn checked(value: T, raw: impl Into<String>, confidence: f32, changed: bool) -> Self {
        if changed { Self::corrected(value, raw, confidence) } else { Self::valid(value, raw, confidence) }
    }

    /// A value taken from another validated field, in place of this field's own reading.
    pub fn derive(&mut self, value: T, confidence: f32) {
        self.value = Some(value);
        self.confidence = confidence;
        self.status = FieldStatus::Derived;
    }

    /// Text found that failed validation.
    pub fn unreadable(raw: impl Into<String>, confidence: f32) -> Self {
        Self { value: None, raw: Some(raw.into()), confidence, status: FieldStatus::Unreadable }
    }

    /// Nothing found.
    pub fn missing() -> Self {
        Self { value: None, raw: None, confidence: 0.0, status: FieldStatus::Missing }
    }

    /// `true` for `Valid`, `Corrected` and `Derived`.
    pub fn is_ok(&self) -> bool {
        matches!(self.status, FieldStatus::Valid | FieldStatus::Corrected | FieldStatus::Derived)
    }

    /// Turns a readable field into an unreadable one (keeps `raw` and `confidence`); used when a cross-check
    /// with another field fails. Missing fields stay missing.
    pub fn invalidate(&mut self) {
        if self.status != FieldStatus::Missing {
            self.value = None;
            self.status = FieldStatus::Unreadable;
        }
    }

    /// The value, if readable.
    pub fn value(&self) -> Option<&T> {
        self.value.as_ref()
    }
}

/// Sex as printed on a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// 男 / M.
    Male,
    /// 女 / F.
    Female,
    /// MRZ `<` or `X`.
    Unspecified,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_field_serialises_without_value() {
        let f: Field<String> = Field::unreadable("1101O5", 0.8);
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["value"], serde_json::Value::Null);
        assert_eq!(json["raw"], "1101O5");
        assert_eq!(json["status"], "unreadable");
        let m: Field<String> = Field::missing();
        let json = serde_json::to_value(&m).unwrap();
        assert!(json.get("raw").is_none());
        assert_eq!(json["status"], "missing");
    }

    #[test]
    fn invalidate_drops_the_value_but_keeps_missing() {
        let mut f = Field::valid(5, "5", 0.9);
        f.invalidate();
        assert_eq!(f.status, FieldStatus::Unreadable);
        assert_eq!(f.value, None);
        let mut m: Field<u8> = Field::missing();
        m.invalidate();
        assert_eq!(m.status, FieldStatus::Missing);
    }
}
