//! `ml-serving score`: offline batch scoring of a CSV file with a model artifact.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use ndarray::{ArrayView2, Axis};
use rayon::prelude::*;

use crate::artifact::{DEFAULT_MODEL_PATH, LoadedModel};
use crate::dataset;

/// Score every row of a CSV file; writes `id,prediction,label`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScoreArgs {
    /// The model artifact.
    #[arg(long, env = "MODEL_PATH", default_value = DEFAULT_MODEL_PATH)]
    pub model: PathBuf,
    /// CSV with the model's feature columns (any order; extra columns ignored; `id` passed through).
    #[arg(long)]
    pub input: PathBuf,
    /// Output CSV (written atomically); standard output when absent.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Report rows with bad cells and score the rest, instead of failing.
    #[arg(long)]
    pub skip_invalid: bool,
}

/// Rows per parallel work item: large enough to amortise scheduling, small enough to balance.
const CHUNK_ROWS: usize = 8192;
/// How many bad rows an error message lists before it summarises.
const MAX_LISTED_ERRORS: usize = 20;

/// Predictions for every row, in order, using every core.
pub fn predict_all(model: &LoadedModel, x: ArrayView2<f64>) -> anyhow::Result<Vec<bool>> {
    let pipeline = &model.artifact.pipeline;
    let chunks: Vec<Vec<bool>> = x
        .axis_chunks_iter(Axis(0), CHUNK_ROWS)
        .into_par_iter()
        .map(|chunk| pipeline.predict(chunk))
        .collect::<Result<_, _>>()?;
    Ok(chunks.concat())
}

pub fn run(args: &ScoreArgs) -> anyhow::Result<()> {
    let model = LoadedModel::load(&args.model)?;
    let rows = dataset::load_for_scoring(&args.input, &model.artifact.feature_names)?;
    if !rows.invalid.is_empty() {
        let listed: Vec<String> = rows
            .invalid
            .iter()
            .take(MAX_LISTED_ERRORS)
            .map(|e| format!("  {}: {e}", args.input.display()))
            .collect();
        let more = rows.invalid.len().saturating_sub(MAX_LISTED_ERRORS);
        let summary = format!(
            "{} invalid cell(s):\n{}{}",
            rows.invalid.len(),
            listed.join("\n"),
            if more > 0 {
                format!("\n  ... and {more} more")
            } else {
                String::new()
            }
        );
        if !args.skip_invalid {
            bail!("{summary}\nnothing was written; pass --skip-invalid to score the valid rows");
        }
        eprintln!("skipping {summary}");
    }
    let predictions = predict_all(&model, rows.features.view())?;
    let labels = &model.artifact.labels;
    let mut out = Vec::with_capacity(predictions.len() * 16);
    out.extend_from_slice(b"id,prediction,label\n");
    for (id, &p) in rows.ids.iter().zip(&predictions) {
        write_csv_field(&mut out, id);
        out.extend_from_slice(if p { b",1," } else { b",0," });
        write_csv_field(&mut out, labels.name(p));
        out.push(b'\n');
    }
    match &args.output {
        Some(path) => crate::atomic_file::write(path, &out)
            .with_context(|| format!("writing {}", path.display()))?,
        None => std::io::stdout().lock().write_all(&out)?,
    }
    eprintln!(
        "scored {} rows ({} skipped) with {} v{}",
        predictions.len(),
        rows.invalid.len(),
        model.artifact.name,
        model.artifact.version
    );
    Ok(())
}

fn write_csv_field(out: &mut Vec<u8>, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(field.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}
