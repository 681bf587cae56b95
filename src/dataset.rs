//! Reading tabular data from CSV: the training set (features plus a two-class target) here, and
//! the rows to score (features only, an optional `id` passed through) in [`scoring`].

pub mod fields;
pub mod scoring;

pub use scoring::{RowError, ScoringRows, load_for_scoring};

use std::path::{Path, PathBuf};

use ndarray::Array2;
use sha2::{Digest, Sha256};

/// The data set that ships with the project (UCI Breast Cancer Wisconsin, Diagnostic).
pub const BUNDLED_DATA: &str = "data/breast_cancer.csv";

/// The tutorial's six features, in the tutorial's order.
pub const DEFAULT_FEATURES: [&str; 6] = [
    "concavity_mean",
    "concave_points_mean",
    "perimeter_se",
    "area_se",
    "texture_worst",
    "area_worst",
];

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid CSV at line {line}: {message}")]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{path} is empty: it has no header row")]
    NoHeader { path: PathBuf },
    #[error("{path} has a header but no data rows")]
    NoRows { path: PathBuf },
    #[error("{path} has no column named {column:?} (columns: {available})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        available: String,
    },
    #[error("{path}: the column {column:?} is named twice in the header")]
    DuplicateColumn { path: PathBuf, column: String },
    #[error("{path}, line {line}, column {column:?}: {value:?} is not a number")]
    NotNumeric {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
    },
    #[error("{path}, line {line}, column {column:?}: the target is missing")]
    MissingTarget {
        path: PathBuf,
        line: u64,
        column: String,
    },
    #[error("{path}: the target column {column:?} must hold exactly two classes, found {found:?}")]
    ClassCount {
        path: PathBuf,
        column: String,
        found: Vec<String>,
    },
    #[error(
        "{path}: the positive class {positive:?} never occurs in column {column:?} (found {found:?})"
    )]
    PositiveClassAbsent {
        path: PathBuf,
        column: String,
        positive: String,
        found: Vec<String>,
    },
}

/// A training set: feature matrix (missing cells are `NaN`), boolean target (`true` = positive class).
#[derive(Debug, Clone)]
pub struct LabeledData {
    pub feature_names: Vec<String>,
    pub features: Array2<f64>,
    pub targets: Vec<bool>,
    /// Class names: `[negative, positive]`.
    pub classes: [String; 2],
    /// SHA-256 of the file's bytes, recorded in the model artifact.
    pub sha256: String,
}

/// Parses one cell: empty, `NaN` or `NA` is a missing value (`NaN`), anything else must be a number.
/// `None` when the cell is neither.
pub fn parse_cell(cell: &str) -> Option<f64> {
    let cell = cell.trim();
    if cell.is_empty() || cell.eq_ignore_ascii_case("nan") || cell.eq_ignore_ascii_case("na") {
        return Some(f64::NAN);
    }
    cell.parse::<f64>().ok().filter(|v| v.is_finite())
}

struct Csv {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Csv {
    fn read(path: &Path) -> Result<Self, DatasetError> {
        let bytes = std::fs::read(path).map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// A reader; `flexible` lets rows have another number of fields than the header, for the
    /// caller to report them one by one instead of failing the whole file.
    fn reader(&self, flexible: bool) -> csv::Reader<&[u8]> {
        csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(flexible)
            .from_reader(&self.bytes[..])
    }

    fn csv_error(&self, err: csv::Error) -> DatasetError {
        let line = err.position().map_or(0, |p| p.line());
        DatasetError::Csv {
            path: self.path.clone(),
            line,
            message: err.to_string(),
        }
    }

    fn header(&self, reader: &mut csv::Reader<&[u8]>) -> Result<Vec<String>, DatasetError> {
        let header = reader.headers().map_err(|e| self.csv_error(e))?;
        if header.is_empty() || (header.len() == 1 && header[0].trim().is_empty()) {
            return Err(DatasetError::NoHeader {
                path: self.path.clone(),
            });
        }
        let names: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(DatasetError::DuplicateColumn {
                    path: self.path.clone(),
                    column: name.clone(),
                });
            }
        }
        Ok(names)
    }

    fn column(&self, header: &[String], name: &str) -> Result<usize, DatasetError> {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| DatasetError::MissingColumn {
                path: self.path.clone(),
                column: name.to_string(),
                available: header.join(", "),
            })
    }
}

/// Reads a training set: the named feature columns and a two-class target column.
pub fn load_labeled(
    path: &Path,
    feature_names: &[String],
    target: &str,
    positive: &str,
) -> Result<LabeledData, DatasetError> {
    let csv = Csv::read(path)?;
    let mut reader = csv.reader(false);
    let header = csv.header(&mut reader)?;
    let feature_idx = feature_names
        .iter()
        .map(|f| csv.column(&header, f))
        .collect::<Result<Vec<_>, _>>()?;
    let target_idx = csv.column(&header, target)?;

    let mut values = Vec::new();
    let mut raw_targets = Vec::new();
    let mut classes: Vec<String> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv.csv_error(e))?;
        let line = record.position().map_or(0, |p| p.line());
        for (&idx, name) in feature_idx.iter().zip(feature_names) {
            let cell = &record[idx];
            let value = parse_cell(cell).ok_or_else(|| DatasetError::NotNumeric {
                path: csv.path.clone(),
                line,
                column: name.clone(),
                value: cell.to_string(),
            })?;
            values.push(value);
        }
        let class = record[target_idx].trim();
        if class.is_empty() {
            return Err(DatasetError::MissingTarget {
                path: csv.path.clone(),
                line,
                column: target.to_string(),
            });
        }
        if !classes.iter().any(|c| c == class) {
            classes.push(class.to_string());
        }
        raw_targets.push(class == positive);
    }
    if raw_targets.is_empty() {
        return Err(DatasetError::NoRows { path: csv.path });
    }
    classes.sort();
    if classes.len() != 2 {
        return Err(DatasetError::ClassCount {
            path: csv.path,
            column: target.to_string(),
            found: classes,
        });
    }
    if !classes.iter().any(|c| c == positive) {
        return Err(DatasetError::PositiveClassAbsent {
            path: csv.path,
            column: target.to_string(),
            positive: positive.to_string(),
            found: classes,
        });
    }
    let negative = classes
        .iter()
        .find(|c| *c != positive)
        .cloned()
        .unwrap_or_default();
    let rows = raw_targets.len();
    let features = Array2::from_shape_vec((rows, feature_names.len()), values)
        .expect("one value per feature per row");
    Ok(LabeledData {
        feature_names: feature_names.to_vec(),
        features,
        targets: raw_targets,
        classes: [negative, positive.to_string()],
        sha256: hex::encode(Sha256::digest(&csv.bytes)),
    })
}

/// The default feature list as owned strings.
pub fn default_features() -> Vec<String> {
    DEFAULT_FEATURES.iter().map(|s| s.to_string()).collect()
}
