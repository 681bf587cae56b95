//! Reading feature rows from JSON request bodies, in one streaming pass: every bad field is
//! reported at once with its location (FastAPI's `{"loc","msg","type"}`), a syntax error is
//! told apart from a validation error, and a batch stops being read once it has too many rows.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

pub use crate::wire::{FieldError, Loc};

/// The visitor methods of every JSON scalar, for a seed that wants something else: each calls
/// `$reject(self, kind)` with what the value turned out to be, and accepts it as `()`.
macro_rules! scalars_are_wrong {
    (|$this:ident, $kind:ident| $reject:expr) => {
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            let ($this, $kind) = (self, "a string");
            $reject;
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            let ($this, $kind) = (self, "a number");
            $reject;
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            let ($this, $kind) = (self, "a number");
            $reject;
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            let ($this, $kind) = (self, "a number");
            $reject;
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            let ($this, $kind) = (self, "a boolean");
            $reject;
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            let ($this, $kind) = (self, "null");
            $reject;
            Ok(())
        }
    };
}

/// The most errors one answer lists; the rest are counted in one last entry. A body of
/// repeated bad keys must not turn into an answer many times its size.
pub const MAX_LISTED_ERRORS: usize = 20;
/// The longest key echoed back in an error's `loc`; longer ones are cut.
const MAX_ECHOED_KEY_CHARS: usize = 64;

/// The errors of one body: the first [`MAX_LISTED_ERRORS`], and a count of the rest.
#[derive(Debug, Default)]
struct ErrorList {
    listed: Vec<FieldError>,
    unlisted: usize,
    /// Whether an unknown-field error already lists the model's features.
    features_listed: bool,
}

impl ErrorList {
    fn push(&mut self, error: impl FnOnce() -> FieldError) {
        if self.listed.len() < MAX_LISTED_ERRORS {
            self.listed.push(error());
        } else {
            self.unlisted += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }

    fn into_vec(mut self) -> Vec<FieldError> {
        if self.unlisted > 0 {
            self.listed.push(field_error(
                vec![Loc::Key("body".to_string())],
                "too_many_errors",
                format!(
                    "{} more error(s) not listed (at most {MAX_LISTED_ERRORS} are)",
                    self.unlisted
                ),
            ));
        }
        self.listed
    }
}

/// Why a body could not be turned into rows.
#[derive(Debug)]
pub enum RowsError {
    /// Not JSON at all (or a number JSON cannot hold as a float): 400.
    Syntax(serde_json::Error),
    /// JSON, but some fields are wrong: 422.
    Invalid(Vec<FieldError>),
    /// More rows than allowed: 413.
    TooManyRows { max: usize },
}

/// Parses one row: a JSON object holding exactly the named features, each a finite number (and
/// ≥ 0 when `nonnegative`).
/// Returns the values in `names` order.
pub fn parse_row(names: &[String], body: &[u8], nonnegative: bool) -> Result<Vec<f64>, RowsError> {
    let mut out = Vec::with_capacity(names.len());
    let mut errors = ErrorList::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    RowSeed {
        names,
        nonnegative,
        prefix: &[],
        out: &mut out,
        errors: &mut errors,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(RowsError::Syntax)?;
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(RowsError::Invalid(errors.into_vec()))
    }
}

/// Parses a batch: a JSON array of rows, or an object `{"rows": [...]}`. Returns the values
/// row after row (`rows × names.len()`). Reading stops at the first row past `max_rows`.
pub fn parse_batch(
    names: &[String],
    body: &[u8],
    max_rows: usize,
    nonnegative: bool,
) -> Result<Vec<f64>, RowsError> {
    let mut state = BatchState {
        names,
        nonnegative,
        max_rows,
        out: Vec::new(),
        errors: ErrorList::default(),
        too_many: false,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let result = BatchSeed(&mut state)
        .deserialize(&mut de)
        .and_then(|()| de.end());
    if state.too_many {
        return Err(RowsError::TooManyRows { max: max_rows });
    }
    result.map_err(RowsError::Syntax)?;
    if state.errors.is_empty() {
        Ok(state.out)
    } else {
        Err(RowsError::Invalid(state.errors.into_vec()))
    }
}

fn body_loc(prefix: &[Loc], key: Option<&str>) -> Vec<Loc> {
    let mut loc = Vec::with_capacity(prefix.len() + 2);
    loc.push(Loc::Key("body".to_string()));
    loc.extend_from_slice(prefix);
    if let Some(key) = key {
        loc.push(Loc::Key(echoed_key(key)));
    }
    loc
}

/// A client's key as it may appear in an error: cut to [`MAX_ECHOED_KEY_CHARS`].
fn echoed_key(key: &str) -> String {
    match key.char_indices().nth(MAX_ECHOED_KEY_CHARS) {
        Some((cut, _)) => format!("{}…", &key[..cut]),
        None => key.to_string(),
    }
}

fn field_error(loc: Vec<Loc>, kind: &str, msg: String) -> FieldError {
    FieldError {
        loc,
        msg,
        kind: kind.to_string(),
    }
}

/// What a JSON value turned out to be, for a feature that must be a number.
enum Cell {
    Number(f64),
    Other(&'static str),
}

struct CellSeed;

impl<'de> DeserializeSeed<'de> for CellSeed {
    type Value = Cell;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cell, D::Error> {
        d.deserialize_any(CellVisitor)
    }
}

struct CellVisitor;

impl<'de> Visitor<'de> for CellVisitor {
    type Value = Cell;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_f64<E>(self, v: f64) -> Result<Cell, E> {
        Ok(Cell::Number(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Cell, E> {
        Ok(Cell::Number(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Cell, E> {
        Ok(Cell::Number(v as f64))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Cell, E> {
        Ok(Cell::Other("a boolean"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Cell, E> {
        Ok(Cell::Other("a string"))
    }
    fn visit_unit<E>(self) -> Result<Cell, E> {
        Ok(Cell::Other("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cell, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Cell::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cell, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Cell::Other("an object"))
    }
}

/// A map key, borrowed when the input allows it (a key without escapes): serde's own
/// `Cow<str>` always copies, an allocation per key per request.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v))
    }
}

struct RowSeed<'a> {
    names: &'a [String],
    /// Whether a value must be ≥ 0 (our model's rule).
    nonnegative: bool,
    prefix: &'a [Loc],
    out: &'a mut Vec<f64>,
    errors: &'a mut ErrorList,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of features")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let start = self.out.len();
        let width = self.names.len();
        self.out.resize(start + width, f64::NAN);
        let mut seen = 0u64; // bit i: feature i was given (models have ≤ 64 features here)
        let mut seen_wide = vec![false; if width > 64 { width } else { 0 }];
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let cell = map.next_value_seed(CellSeed)?;
            let Some(i) = self.names.iter().position(|n| *n == *key) else {
                // The feature list once per answer, not once per unknown key.
                let list = !std::mem::replace(&mut self.errors.features_listed, true);
                self.errors.push(|| {
                    field_error(
                        body_loc(self.prefix, Some(&key)),
                        "extra_forbidden",
                        if list {
                            format!(
                                "Unknown field; the model's features are: {}",
                                self.names.join(", ")
                            )
                        } else {
                            "Unknown field".to_string()
                        },
                    )
                });
                continue;
            };
            let already = if width > 64 {
                std::mem::replace(&mut seen_wide[i], true)
            } else {
                let bit = 1u64 << i;
                let was = seen & bit != 0;
                seen |= bit;
                was
            };
            if already {
                self.errors.push(|| {
                    field_error(
                        body_loc(self.prefix, Some(&key)),
                        "duplicate_field",
                        "Field given more than once".to_string(),
                    )
                });
                continue;
            }
            match cell {
                Cell::Number(v) if !v.is_finite() => self.errors.push(|| {
                    field_error(
                        body_loc(self.prefix, Some(&key)),
                        "finite_number",
                        "Input should be a finite number".to_string(),
                    )
                }),
                Cell::Number(v) if self.nonnegative && v < 0.0 => self.errors.push(|| {
                    field_error(
                        body_loc(self.prefix, Some(&key)),
                        "greater_than_equal",
                        format!("Input should be greater than or equal to 0, got {v}"),
                    )
                }),
                Cell::Number(v) => self.out[start + i] = v,
                Cell::Other(kind) => self.errors.push(|| {
                    field_error(
                        body_loc(self.prefix, Some(&key)),
                        "float_type",
                        format!("Input should be a valid number, got {kind}"),
                    )
                }),
            }
        }
        for (i, name) in self.names.iter().enumerate() {
            let given = if width > 64 {
                seen_wide[i]
            } else {
                seen & (1u64 << i) != 0
            };
            if !given {
                self.errors.push(|| {
                    field_error(
                        body_loc(self.prefix, Some(name)),
                        "missing",
                        "Field required".to_string(),
                    )
                });
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.not_an_object("an array");
        Ok(())
    }
    scalars_are_wrong!(|this, kind| this.not_an_object(kind));
}

impl RowSeed<'_> {
    fn not_an_object(self, kind: &str) {
        self.errors.push(|| {
            field_error(
                body_loc(self.prefix, None),
                "dict_type",
                format!("Input should be an object of the model's features, got {kind}"),
            )
        });
    }
}

/// What a batch parse accumulates.
struct BatchState<'a> {
    names: &'a [String],
    nonnegative: bool,
    max_rows: usize,
    out: Vec<f64>,
    errors: ErrorList,
    too_many: bool,
}

/// The whole batch body: an array of rows, or `{"rows": [...]}`.
struct BatchSeed<'s, 'a>(&'s mut BatchState<'a>);

impl<'de> DeserializeSeed<'de> for BatchSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BatchSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of rows, or an object {\"rows\": [...]}")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        RowsSeed {
            state: self.0,
            prefix: None,
        }
        .visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        let mut rows_seen = false;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if key == "rows" && !rows_seen {
                rows_seen = true;
                map.next_value_seed(RowsSeed {
                    state: &mut *state,
                    prefix: Some("rows"),
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
                state.errors.push(|| {
                    field_error(
                        vec![Loc::Key("body".to_string()), Loc::Key(key.into_owned())],
                        "extra_forbidden",
                        "Unknown field; a batch object holds only \"rows\"".to_string(),
                    )
                });
            }
        }
        if !rows_seen {
            state.errors.push(|| {
                field_error(
                    vec![Loc::Key("body".to_string()), Loc::Key("rows".to_string())],
                    "missing",
                    "Field required".to_string(),
                )
            });
        }
        Ok(())
    }

    scalars_are_wrong!(|this, kind| this.0.not_a_batch(kind));
}

impl BatchState<'_> {
    fn not_a_batch(&mut self, kind: &str) {
        self.errors.push(|| {
            field_error(
                vec![Loc::Key("body".to_string())],
                "list_type",
                format!(
                    "Input should be an array of rows or an object {{\"rows\": [...]}}, got {kind}"
                ),
            )
        });
    }
}

/// The array of rows, wherever it sits (`prefix` is `Some("rows")` inside the object form).
struct RowsSeed<'s, 'a> {
    state: &'s mut BatchState<'a>,
    prefix: Option<&'static str>,
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let state = self.state;
        let mut prefix: Vec<Loc> = self
            .prefix
            .map(|p| Loc::Key(p.to_string()))
            .into_iter()
            .collect();
        prefix.push(Loc::Index(0));
        let mut index = 0usize;
        loop {
            if index == state.max_rows {
                // One more element means too many: stop reading here.
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    state.too_many = true;
                    return Err(de::Error::custom("too many rows"));
                }
                break;
            }
            *prefix.last_mut().expect("index slot") = Loc::Index(index);
            let row = RowSeed {
                names: state.names,
                nonnegative: state.nonnegative,
                prefix: &prefix,
                out: &mut state.out,
                errors: &mut state.errors,
            };
            if seq.next_element_seed(row)?.is_none() {
                break;
            }
            index += 1;
        }
        if index == 0 {
            prefix.pop();
            state.errors.push(|| {
                field_error(
                    body_loc(&prefix, None),
                    "too_short",
                    "Input should hold at least 1 row".to_string(),
                )
            });
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.not_rows("an object");
        Ok(())
    }
    scalars_are_wrong!(|this, kind| this.not_rows(kind));
}

impl RowsSeed<'_, '_> {
    fn not_rows(self, kind: &str) {
        let prefix: Vec<Loc> = self
            .prefix
            .map(|p| Loc::Key(p.to_string()))
            .into_iter()
            .collect();
        self.state.errors.push(|| {
            field_error(
                body_loc(&prefix, None),
                "list_type",
                format!("Input should be an array of rows, got {kind}"),
            )
        });
    }
}
