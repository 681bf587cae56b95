//! `ml-serving score`: offline batch scoring of a file of any size with a model artifact. Rows
//! are read, scored on every core and written in bounded chunks, in order; every input row is
//! either scored or reported, and an output file appears only when the run succeeds.

mod format;
mod input;
mod output;
mod parquet_in;
mod parquet_out;
mod shard;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ndarray::ArrayView2;

use crate::artifact::DEFAULT_MODEL_PATH;
use crate::dataset::scoring::RowError;
use crate::model::Model;
use crate::pipeline::Votes;

pub use format::Format;
pub use shard::Shard;

/// Score every row of a CSV or Parquet file; writes `id,prediction,label` (and the votes on
/// request).
#[derive(Debug, Clone, clap::Args)]
pub struct ScoreArgs {
    /// The model artifact (the same setting as `serve --model-path`; `--model` is an alias).
    #[arg(long, alias = "model", env = "MODEL_PATH", default_value = DEFAULT_MODEL_PATH)]
    pub model_path: PathBuf,
    /// Rows to score, with the model's feature columns (any order; extra columns ignored; `id`
    /// passed through); for an ONNX model without feature names (no sidecar), every column but
    /// `id` is a feature, by position. `-` reads standard input.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the scores (atomically: only a successful run leaves a file); `-` or
    /// nothing writes standard output.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// The input's format; by default from its extension (`.csv`, `.csv.gz`, `.csv.zst`,
    /// `.parquet`), CSV for standard input.
    #[arg(long, value_enum)]
    pub input_format: Option<Format>,
    /// The output's format; by default from its extension, CSV for standard output.
    #[arg(long, value_enum)]
    pub output_format: Option<Format>,
    /// Report rows with bad cells and score the rest, instead of failing.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Also write each model's vote (`logistic_regression`, `decision_tree`, `svm`: 1 for the
    /// positive class); the prediction is their majority.
    #[arg(long)]
    pub votes: bool,
    /// Score only part I of N (from 0): the I-th of N contiguous, nearly equal ranges of rows.
    /// The parts of N runs, in order, hold every row once.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// The number of parts, for a run whose part index comes from JOB_COMPLETION_INDEX (a
    /// Kubernetes Indexed Job).
    #[arg(long, env = "SHARD_COUNT", value_name = "N")]
    pub shard_count: Option<u64>,
    /// The part index when --shard-count is given (set by Kubernetes in an Indexed Job).
    #[arg(long, env = "JOB_COMPLETION_INDEX", value_name = "I", hide = true)]
    pub shard_index: Option<u64>,
    /// Rows read, scored and written at a time (tests make it small to cross many chunks).
    #[arg(long, default_value_t = CHUNK_ROWS as u64, value_parser = clap::value_parser!(u64).range(1..=1 << 24), hide = true)]
    pub chunk_rows: u64,
}

/// Rows one thread scores at a time: large enough to amortise scheduling, small enough to
/// balance the cores.
const PART_ROWS: usize = 8192;
/// Rows read before they are scored and written: bounds the memory a run needs.
const CHUNK_ROWS: usize = 8 * PART_ROWS;
/// Bytes of CSV lines read before they are scored and written (with `CHUNK_ROWS`, the bound).
const CHUNK_BYTES: usize = 8 << 20;
/// How many rows a chunk and a part hold.
#[derive(Debug, Clone, Copy)]
pub struct Chunking {
    pub chunk_rows: usize,
    pub part_rows: usize,
}

impl Chunking {
    fn new(chunk_rows: u64) -> Self {
        let chunk_rows = usize::try_from(chunk_rows).unwrap_or(CHUNK_ROWS).max(1);
        Self {
            chunk_rows,
            part_rows: PART_ROWS.min(chunk_rows),
        }
    }
}

/// How many bad rows an error message lists before it summarises.
const MAX_LISTED_ERRORS: usize = 20;

/// The ids of scored rows: the input's `id` column, or the rows' numbers (from 1).
#[derive(Debug)]
pub enum Ids {
    Text { text: String, ends: Vec<usize> },
    Numbers(Vec<u64>),
}

impl Default for Ids {
    fn default() -> Self {
        Ids::Numbers(Vec::new())
    }
}

impl Ids {
    fn text() -> Self {
        Ids::Text {
            text: String::new(),
            ends: Vec::new(),
        }
    }

    fn push(&mut self, id: Option<&str>, number: u64) {
        match (self, id) {
            (Ids::Text { text, ends }, Some(id)) => {
                text.push_str(id);
                ends.push(text.len());
            }
            (Ids::Numbers(v), _) => v.push(number),
            (Ids::Text { text, ends }, None) => ends.push(text.len()),
        }
    }
}

/// Rows read and checked, before the model sees them.
#[derive(Debug, Default)]
pub struct Rows {
    pub ids: Ids,
    /// One value per feature per row, row after row.
    pub values: Vec<f64>,
    pub errors: Vec<RowError>,
    /// Data rows covered (scored or not).
    pub covered: u64,
}

/// One part's answers, in row order.
#[derive(Debug, Default)]
pub struct Scored {
    pub ids: Ids,
    pub predictions: Vec<bool>,
    /// Each model's vote per row; empty unless asked for.
    pub votes: Vec<Votes>,
    /// An ONNX model's answers (instead of `predictions`).
    pub answers: Vec<crate::model::Answer>,
    pub errors: Vec<RowError>,
    pub covered: u64,
}

/// The model's answers for `rows` (when `predict`; otherwise only their errors are kept).
fn score_rows(model: &Model, rows: Rows, votes: bool, predict: bool) -> anyhow::Result<Scored> {
    let model = match model {
        Model::Native(m) => m,
        Model::Onnx(_) => {
            let answers = if predict && !rows.values.is_empty() {
                model.answers(&rows.values).map_err(anyhow::Error::msg)?
            } else {
                Vec::new()
            };
            return Ok(Scored {
                ids: rows.ids,
                answers,
                errors: rows.errors,
                covered: rows.covered,
                ..Scored::default()
            });
        }
    };
    let pipeline = &model.artifact.pipeline;
    let width = pipeline.width();
    let n = rows.values.len().checked_div(width).unwrap_or(0);
    let (predictions, votes) = if !predict || n == 0 {
        (Vec::new(), Vec::new())
    } else {
        let x = ArrayView2::from_shape((n, width), &rows.values).context("row width")?;
        if votes {
            let v = pipeline.votes(x)?;
            (v.iter().map(|v| v.majority()).collect(), v)
        } else {
            (pipeline.predict(x)?, Vec::new())
        }
    };
    Ok(Scored {
        ids: rows.ids,
        predictions,
        votes,
        answers: Vec::new(),
        errors: rows.errors,
        covered: rows.covered,
    })
}

/// Counts rows and keeps the first errors, for the summary and the failure message.
struct Tally {
    label: String,
    scored: u64,
    invalid: u64,
    listed: Vec<RowError>,
}

impl Tally {
    fn add(&mut self, part: &mut Scored) {
        self.scored += (part.predictions.len() + part.answers.len()) as u64;
        self.invalid += part.errors.len() as u64;
        let room = MAX_LISTED_ERRORS.saturating_sub(self.listed.len());
        self.listed.extend(part.errors.drain(..).take(room));
    }

    fn listing(&self) -> String {
        let mut text = format!(
            "{} invalid row{}:",
            self.invalid,
            if self.invalid == 1 { "" } else { "s" }
        );
        for e in &self.listed {
            text.push_str(&format!("\n  {}, {e}", self.label));
        }
        let more = self.invalid - self.listed.len() as u64;
        if more > 0 {
            text.push_str(&format!("\n  ... and {more} more"));
        }
        text
    }
}

/// A progress bar on a terminal's standard error; nothing otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(total_rows: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total_rows {
                Some(n) => indicatif::ProgressBar::new(n).with_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:30} {human_pos}/{human_len} rows, {per_sec}, ETA {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                ),
                None => indicatif::ProgressBar::new_spinner().with_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} {human_pos} rows, {per_sec}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                ),
            };
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
            bar
        });
        Self { bar }
    }

    fn advance(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(rows);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The part to score from the flags: `--shard I/N`, or `--shard-count N` with the index from
/// JOB_COMPLETION_INDEX (`--shard-index`).
fn shard_of(args: &ScoreArgs) -> anyhow::Result<Option<Shard>> {
    match (args.shard, args.shard_count, args.shard_index) {
        (Some(shard), None, _) => Ok(Some(shard)),
        (Some(_), Some(_), _) => bail!("give either --shard I/N or --shard-count, not both"),
        (None, Some(count), Some(index)) => {
            Ok(Some(Shard::new(index, count).map_err(anyhow::Error::msg)?))
        }
        (None, Some(_), None) => {
            bail!("--shard-count (SHARD_COUNT) needs the part index in JOB_COMPLETION_INDEX")
        }
        (None, None, Some(index)) => {
            eprintln!(
                "warning: JOB_COMPLETION_INDEX is {index} but no --shard-count (SHARD_COUNT) is \
                 given: scoring every row"
            );
            Ok(None)
        }
        (None, None, None) => Ok(None),
    }
}

fn is_stdio(path: Option<&Path>) -> bool {
    path.is_none_or(|p| p.as_os_str() == "-")
}

pub fn run(args: &ScoreArgs) -> anyhow::Result<()> {
    let model = Model::load(&args.model_path, crate::artifact::DEFAULT_MAX_MODEL_BYTES)?;
    let shard = shard_of(args)?;
    let stdin = is_stdio(Some(&args.input));
    let input_format = args
        .input_format
        .or_else(|| (!stdin).then(|| Format::from_path(&args.input)))
        .unwrap_or(Format::Csv);
    let output_path = args.output.as_deref().filter(|p| !is_stdio(Some(p)));
    let output_format = args
        .output_format
        .or_else(|| output_path.map(Format::from_path))
        .unwrap_or(Format::Csv);
    let label = if stdin {
        "standard input".to_string()
    } else {
        args.input.display().to_string()
    };

    let labels = match &model {
        Model::Native(m) => Some(&m.artifact.labels),
        Model::Onnx(_) => {
            anyhow::ensure!(
                !args.votes,
                "--votes: an ONNX model has no sub-model votes (its scores are on the V2 routes)"
            );
            anyhow::ensure!(
                output_format != Format::Parquet,
                "an ONNX model's scores are written as CSV (plain, .gz or .zst); Parquet output \
                 is for ml-serving artifacts so far"
            );
            None
        }
    };
    let mut source = input::Source::open(
        &args.input,
        input_format,
        model.features(),
        !model.nonnegative_features(),
        !model.has_named_features(),
        shard,
        Chunking::new(args.chunk_rows),
    )?;
    let mut sink = output::Sink::create(output_path, output_format, labels, args.votes)?;
    let mut tally = Tally {
        label,
        scored: 0,
        invalid: 0,
        listed: Vec::new(),
    };
    let progress = Progress::new(source.total_rows());
    let file_rows = source.file_rows();
    let mut covered = 0u64;
    // One thread reads (and decompresses) the next chunk while the others score this one.
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (chunks, received) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            loop {
                let next = source.next_chunk();
                let last = !matches!(next, Ok(Some(_)));
                if chunks.send(next).is_err() || last {
                    break;
                }
            }
        });
        while let Some(chunk) = received.recv().context("the reading thread stopped")?? {
            // Without --skip-invalid, once a row is bad nothing more is written (the run
            // fails); the rest is still read, to report every bad row.
            let predict = args.skip_invalid || tally.invalid == 0;
            let parts = chunk.par_map(|rows| score_rows(&model, rows, args.votes, predict))?;
            for mut part in parts {
                covered += part.covered;
                progress.advance(part.covered);
                tally.add(&mut part);
                if args.skip_invalid || tally.invalid == 0 {
                    sink.write(&part)?;
                }
            }
        }
        Ok(())
    })?;
    progress.finish();
    // A part may be empty (more parts than rows); the file may not.
    if covered == 0 && file_rows.is_none_or(|n| n == 0) {
        bail!("{}: no data rows", tally.label);
    }
    if tally.invalid > 0 {
        if !args.skip_invalid {
            bail!(
                "{}\n{}; pass --skip-invalid to score the valid rows",
                tally.listing(),
                if output_path.is_some() {
                    "nothing was written"
                } else {
                    "standard output holds only the rows before the first bad one"
                }
            );
        }
        eprintln!("skipping {}", tally.listing());
    }
    sink.finish().with_context(|| match output_path {
        Some(p) => format!("writing {}", p.display()),
        None => "writing standard output".to_string(),
    })?;
    eprintln!(
        "scored {} rows ({} invalid rows skipped) with {} v{}{}",
        tally.scored,
        tally.invalid,
        model.stored_name(),
        model.version(),
        shard.map_or_else(String::new, |s| format!(", part {s}"))
    );
    Ok(())
}
