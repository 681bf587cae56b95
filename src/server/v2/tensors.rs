//! Reading V2 input tensors into rows of the model's features, and choosing the outputs.

use serde_json::Value;

use super::error::*;
use super::types::*;
use super::{BATCH_INPUT, INPUT_DATATYPES};

/// What the model answers for each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Output {
    /// The ensemble's decision, 0 or 1.
    Predict,
    /// Its class name.
    Label,
    /// Each sub-model's vote for the positive class, 0 or 1.
    LogisticVote,
    TreeVote,
    SvmVote,
}

impl Output {
    pub(super) const ALL: [Self; 5] = [
        Self::Predict,
        Self::Label,
        Self::LogisticVote,
        Self::TreeVote,
        Self::SvmVote,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Predict => "predict",
            Self::Label => "label",
            Self::LogisticVote => "logistic_vote",
            Self::TreeVote => "tree_vote",
            Self::SvmVote => "svm_vote",
        }
    }

    pub(super) fn datatype(self) -> &'static str {
        match self {
            Self::Label => "BYTES",
            _ => "INT64",
        }
    }

    fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

pub(super) fn wants_binary(parameters: Option<&serde_json::Map<String, Value>>, key: &str) -> bool {
    parameters.and_then(|p| p.get(key)) == Some(&Value::Bool(true))
}

/// The outputs a request asks for, in its order; all of them when it names none.
pub(super) fn select_outputs(request: &InferenceRequest) -> Result<Vec<Output>, V2Error> {
    if wants_binary(request.parameters.as_ref(), "binary_data_output") {
        return Err(bad(
            "binary tensor data is not supported: this server answers JSON tensors only",
        ));
    }
    let Some(wanted) = request.outputs.as_deref().filter(|o| !o.is_empty()) else {
        return Ok(Output::ALL.to_vec());
    };
    let mut selected = Vec::with_capacity(wanted.len());
    for out in wanted {
        let Some(output) = Output::ALL.into_iter().find(|o| o.name() == out.name) else {
            return Err(bad(format!(
                "unknown output {:?}; this model's outputs are: {}",
                out.name,
                Output::names()
            )));
        };
        if selected.contains(&output) {
            return Err(bad(format!("output {:?} is asked for twice", out.name)));
        }
        if wants_binary(out.parameters.as_ref(), "binary_data") {
            return Err(bad(format!(
                "output {:?}: binary tensor data is not supported: this server answers JSON tensors only",
                out.name
            )));
        }
        selected.push(output);
    }
    Ok(selected)
}

// ------------------------------------------------------------------ inputs

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Datatype {
    Fp64,
    Fp32,
}

pub(super) fn datatype(input: &RequestInput) -> Result<Datatype, V2Error> {
    match input.datatype.as_str() {
        "FP64" => Ok(Datatype::Fp64),
        "FP32" => Ok(Datatype::Fp32),
        other => Err(bad(format!(
            "input {:?} has datatype {other:?}; this model takes {}",
            input.name,
            INPUT_DATATYPES.join(" or ")
        ))),
    }
}

pub(super) fn shape_text<T: std::fmt::Display>(shape: &[T]) -> String {
    let dims: Vec<String> = shape.iter().map(T::to_string).collect();
    format!("[{}]", dims.join(", "))
}

pub(super) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The two input layouts, for the error messages.
pub(super) fn layouts_help(features: &[String]) -> String {
    format!(
        "send one tensor {BATCH_INPUT:?} of shape [N, {}] or one tensor per feature of shape [N]: {}",
        features.len(),
        features.join(", ")
    )
}

/// The rows of the request, checked against the limit: N must be at least 1 and at most `max`.
pub(super) fn check_rows(rows: u64, max: usize) -> Result<usize, V2Error> {
    if rows == 0 {
        return Err(bad("the inputs hold no rows: N must be at least 1"));
    }
    match usize::try_from(rows) {
        Ok(rows) if rows <= max => Ok(rows),
        _ => Err(V2Error::TooManyRows {
            rows: usize::try_from(rows).unwrap_or(usize::MAX),
            max,
        }),
    }
}

/// The tensor's elements in row-major order. `data` is flat (exactly as many elements as the
/// shape holds) or nested exactly as the shape. Nothing is allocated by the shape's word: a
/// shape that claims more than the data holds costs no more than the data.
pub(super) fn elements<'a>(
    input: &'a RequestInput,
    shape: &[usize],
) -> Result<Vec<&'a Value>, V2Error> {
    let Some(total) = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) else {
        return Err(bad(format!(
            "input {:?}: shape {} holds more elements than can be counted",
            input.name,
            shape_text(shape)
        )));
    };
    let Value::Array(items) = &input.data else {
        return Err(bad(format!(
            "input {:?}: data must be an array of numbers, got {}",
            input.name,
            kind_of(&input.data)
        )));
    };
    let mut out = Vec::with_capacity(items.len());
    if items.iter().any(Value::is_array) {
        nested(input, &input.data, shape, &mut String::new(), &mut out)?;
    } else if items.len() == total {
        out.extend(items);
    } else {
        return Err(bad(format!(
            "input {:?}: shape {} holds {total} elements, but data has {}",
            input.name,
            shape_text(shape),
            items.len()
        )));
    }
    Ok(out)
}

pub(super) fn nested<'a>(
    input: &RequestInput,
    value: &'a Value,
    shape: &[usize],
    at: &mut String,
    out: &mut Vec<&'a Value>,
) -> Result<(), V2Error> {
    let Some((&len, rest)) = shape.split_first() else {
        if value.is_array() {
            return Err(bad(format!(
                "input {:?}: data{at} is an array, but the shape has no dimension left for it",
                input.name
            )));
        }
        out.push(value);
        return Ok(());
    };
    match value {
        Value::Array(items) if items.len() == len => {
            for (i, item) in items.iter().enumerate() {
                let mark = at.len();
                at.push_str(&format!("[{i}]"));
                nested(input, item, rest, at, out)?;
                at.truncate(mark);
            }
            Ok(())
        }
        Value::Array(items) => Err(bad(format!(
            "input {:?}: data{at} has {} elements, but the shape says {len}",
            input.name,
            items.len()
        ))),
        other => Err(bad(format!(
            "input {:?}: data{at} is {}, but the shape says an array of {len}",
            input.name,
            kind_of(other)
        ))),
    }
}

/// One element as a feature value: a number, finite in its datatype, not negative.
pub(super) fn feature_value(
    input: &RequestInput,
    datatype: Datatype,
    value: &Value,
    at: impl Fn() -> String,
) -> Result<f64, V2Error> {
    let Value::Number(number) = value else {
        return Err(bad(format!(
            "input {:?}: {} is {}, but tensor data must be numbers",
            input.name,
            at(),
            kind_of(value)
        )));
    };
    let mut v = number.as_f64().unwrap_or(f64::NAN);
    if datatype == Datatype::Fp32 {
        let single = v as f32;
        if v.is_finite() && !single.is_finite() {
            return Err(bad(format!(
                "input {:?}: {} is {v}, outside the range of FP32",
                input.name,
                at()
            )));
        }
        v = f64::from(single);
    }
    if !v.is_finite() {
        return Err(bad(format!(
            "input {:?}: {} is not a finite number",
            input.name,
            at()
        )));
    }
    if v < 0.0 {
        return Err(bad(format!(
            "input {:?}: {} is {v}, but a feature value must be ≥ 0",
            input.name,
            at()
        )));
    }
    Ok(v)
}

/// Reads the request's inputs into rows of the model's features, one after another.
pub(super) fn read_inputs(
    features: &[String],
    inputs: &[RequestInput],
    max_rows: usize,
) -> Result<Vec<f64>, V2Error> {
    if inputs.is_empty() {
        return Err(bad(format!(
            "the request has no inputs; {}",
            layouts_help(features)
        )));
    }
    if let Some(batch) = inputs.iter().find(|i| i.name == BATCH_INPUT) {
        if inputs.len() > 1 {
            return Err(bad(format!(
                "input {BATCH_INPUT:?} holds every feature: send it alone, not with other inputs"
            )));
        }
        return read_matrix(features, batch, max_rows);
    }
    read_columns(features, inputs, max_rows)
}

/// The `[N, width]` layout.
pub(super) fn read_matrix(
    features: &[String],
    input: &RequestInput,
    max_rows: usize,
) -> Result<Vec<f64>, V2Error> {
    let width = features.len();
    let datatype = datatype(input)?;
    let [rows, columns] = input.shape[..] else {
        return Err(bad(format!(
            "input {:?} has shape {}; it must be [N, {width}], N rows of: {}",
            input.name,
            shape_text(&input.shape),
            features.join(", ")
        )));
    };
    if columns != width as u64 {
        return Err(bad(format!(
            "input {:?} has shape {}; it must be [N, {width}], N rows of: {}",
            input.name,
            shape_text(&input.shape),
            features.join(", ")
        )));
    }
    let rows = check_rows(rows, max_rows)?;
    elements(input, &[rows, width])?
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            feature_value(input, datatype, value, || {
                format!(
                    "row {}, column {} ({})",
                    i / width,
                    i % width,
                    features[i % width]
                )
            })
        })
        .collect()
}

/// The one-tensor-per-feature layout: every feature once, each `[N]` or `[N, 1]`, one N.
pub(super) fn read_columns(
    features: &[String],
    inputs: &[RequestInput],
    max_rows: usize,
) -> Result<Vec<f64>, V2Error> {
    let width = features.len();
    let mut columns: Vec<Option<(&RequestInput, Datatype)>> = vec![None; width];
    let mut rows: Option<(u64, &str)> = None;
    for input in inputs {
        let Some(j) = features.iter().position(|f| *f == input.name) else {
            return Err(bad(format!(
                "unknown input {:?}; {}",
                input.name,
                layouts_help(features)
            )));
        };
        if columns[j].is_some() {
            return Err(bad(format!("input {:?} is given twice", input.name)));
        }
        let datatype = datatype(input)?;
        let n = match input.shape[..] {
            [n] | [n, 1] => n,
            _ => {
                return Err(bad(format!(
                    "input {:?} has shape {}; a feature's tensor must be [N] or [N, 1]",
                    input.name,
                    shape_text(&input.shape)
                )));
            }
        };
        match rows {
            Some((first, first_name)) if first != n => {
                return Err(bad(format!(
                    "input {:?} has {n} rows but input {first_name:?} has {first}: every input must have the same N",
                    input.name
                )));
            }
            Some(_) => {}
            None => rows = Some((n, &input.name)),
        }
        columns[j] = Some((input, datatype));
    }
    let missing: Vec<&str> = features
        .iter()
        .zip(&columns)
        .filter(|(_, c)| c.is_none())
        .map(|(f, _)| f.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "missing input(s): {}; {}",
            missing.join(", "),
            layouts_help(features)
        )));
    }
    let rows = check_rows(rows.map_or(0, |(n, _)| n), max_rows)?;
    // Every column is present (checked above); its data is checked against N before the rows
    // are allocated.
    let mut cells = Vec::with_capacity(width);
    for (input, datatype) in columns.into_iter().flatten() {
        let shape: &[usize] = if input.shape.len() == 2 {
            &[rows, 1]
        } else {
            &[rows]
        };
        cells.push((input, datatype, elements(input, shape)?));
    }
    let mut values = vec![0.0; rows * width];
    for (j, (input, datatype, column)) in cells.into_iter().enumerate() {
        for (r, value) in column.into_iter().enumerate() {
            values[r * width + j] = feature_value(input, datatype, value, || format!("row {r}"))?;
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, shape: &[u64], datatype: &str, data: Value) -> RequestInput {
        RequestInput {
            name: name.to_string(),
            shape: shape.to_vec(),
            datatype: datatype.to_string(),
            parameters: None,
            data,
        }
    }

    fn features() -> Vec<String> {
        vec!["a".to_string(), "b".to_string()]
    }

    #[test]
    fn matrix_data_may_be_flat_or_nested() {
        let flat = input(
            BATCH_INPUT,
            &[2, 2],
            "FP64",
            serde_json::json!([1, 2, 3, 4]),
        );
        let nested = input(
            BATCH_INPUT,
            &[2, 2],
            "FP64",
            serde_json::json!([[1, 2], [3, 4]]),
        );
        for i in [flat, nested] {
            assert_eq!(
                read_inputs(&features(), &[i], 10).unwrap(),
                vec![1.0, 2.0, 3.0, 4.0]
            );
        }
    }

    #[test]
    fn columns_are_interleaved_into_rows() {
        let a = input("a", &[2], "FP64", serde_json::json!([1, 3]));
        let b = input("b", &[2, 1], "FP32", serde_json::json!([[2], [4]]));
        assert_eq!(
            read_inputs(&features(), &[b, a], 10).unwrap(),
            vec![1.0, 2.0, 3.0, 4.0]
        );
    }

    #[test]
    fn nested_data_must_follow_the_shape() {
        let ragged = input(
            BATCH_INPUT,
            &[2, 2],
            "FP64",
            serde_json::json!([[1, 2], [3]]),
        );
        let err = read_inputs(&features(), &[ragged], 10).unwrap_err();
        assert!(err.message().contains("data[1] has 1 elements"), "{err:?}");
        let deep = input("a", &[1], "FP64", serde_json::json!([[1]]));
        let b = input("b", &[1], "FP64", serde_json::json!([1]));
        let err = read_inputs(&features(), &[deep, b], 10).unwrap_err();
        assert!(err.message().contains("data[0] is an array"), "{err:?}");
    }

    #[test]
    fn fp32_values_are_rounded_and_range_checked() {
        let a = input("a", &[1], "FP32", serde_json::json!([0.1]));
        let b = input("b", &[1], "FP32", serde_json::json!([1e39]));
        let err = read_inputs(&features(), &[a.clone(), b], 10).unwrap_err();
        assert!(err.message().contains("range of FP32"), "{err:?}");
        let b = input("b", &[1], "FP64", serde_json::json!([1e39]));
        assert_eq!(
            read_inputs(&features(), &[a, b], 10).unwrap(),
            vec![f64::from(0.1f32), 1e39]
        );
    }
}
