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
use crate::model::{Answer, Model};
use crate::pipeline::Votes;
use output::{Columns, PredictionKind};

pub use format::Format;
pub use shard::Shard;

/// Score every row of a CSV or Parquet file; writes `id,prediction,label` (and the votes or
/// per-class scores on request).
#[derive(Debug, Clone, clap::Args)]
pub struct ScoreArgs {
    /// The model artifact (the same setting as `serve --model-path`; `--model` is an alias).
    #[arg(long, alias = "model", env = "MODEL_PATH", default_value = DEFAULT_MODEL_PATH)]
    pub model_path: PathBuf,
    /// Take the model from this repository instead of --model-path (`<dir>/<name>/<version>/<file>`,
    /// as `serve --model-repository`): the one --model-name names.
    #[arg(long, env = "MODEL_REPOSITORY", requires = "model_name")]
    pub model_repository: Option<PathBuf>,
    /// The repository model to score with.
    #[arg(long, requires = "model_repository")]
    pub model_name: Option<String>,
    /// Its version (default: the latest its version policy selects, as `serve` serves it).
    #[arg(long, requires = "model_repository")]
    pub model_version: Option<u64>,
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
    /// positive class); the prediction is their majority. For our models only.
    #[arg(long)]
    pub votes: bool,
    /// Also write each class's score, a `score_<class>` column per class in the model's order:
    /// an ONNX classifier's probabilities; for ours, the share of its three models' votes (0,
    /// 1/3, 2/3 or 1). Columns are named by class label (ours; an ONNX model's sidecar
    /// `class_labels`, else its ZipMap's keys), else by the class's position from 0. A regression
    /// model has no scores.
    #[arg(long)]
    pub scores: bool,
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

    /// Row `i`'s id text (for ids read from the input).
    pub fn text_at(&self, i: usize) -> &str {
        match self {
            Ids::Text { text, ends } => &text[if i == 0 { 0 } else { ends[i - 1] }..ends[i]],
            Ids::Numbers(_) => "",
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
    /// Our model's decisions.
    pub predictions: Vec<bool>,
    /// Each model's vote per row; empty unless asked for.
    pub votes: Vec<Votes>,
    /// Our model's per-class scores (the share of its votes for each class), when asked for.
    pub shares: Vec<[f32; 2]>,
    /// An ONNX model's answers (instead of `predictions`), with their per-class scores when
    /// asked for.
    pub answers: Vec<Answer>,
    pub errors: Vec<RowError>,
    pub covered: u64,
}

impl Scored {
    /// The rows scored.
    pub fn rows(&self) -> usize {
        self.predictions.len() + self.answers.len()
    }

    /// Row `i`'s per-class scores; empty unless asked for.
    pub fn scores(&self, i: usize) -> &[f32] {
        if let Some(shares) = self.shares.get(i) {
            return shares;
        }
        match self.answers.get(i) {
            Some(Answer::Class {
                scores: Some(s), ..
            }) => s,
            _ => &[],
        }
    }
}

/// What a run asks of the model besides each row's answer.
#[derive(Debug, Clone, Copy)]
struct Asked {
    votes: bool,
    /// The number of per-class scores per row; 0 when not asked for.
    scores: usize,
}

/// The model's answers for `rows` (when `predict`; otherwise only their errors are kept).
fn score_rows(model: &Model, rows: Rows, asked: Asked, predict: bool) -> anyhow::Result<Scored> {
    let mut scored = Scored {
        ids: rows.ids,
        errors: rows.errors,
        covered: rows.covered,
        ..Scored::default()
    };
    if !predict || rows.values.is_empty() {
        return Ok(scored);
    }
    if let Model::Native(m) = model {
        let pipeline = &m.artifact.pipeline;
        let width = pipeline.width();
        let n = rows.values.len() / width;
        let x = ArrayView2::from_shape((n, width), &rows.values).context("row width")?;
        if asked.votes || asked.scores > 0 {
            let votes = pipeline.votes(x)?;
            scored.predictions = votes.iter().map(|v| v.majority()).collect();
            if asked.scores > 0 {
                // The share of the three votes for each class, as `Model::answers_with_scores`
                // gives it, without an answer object per row.
                scored.shares = votes
                    .iter()
                    .map(|v| {
                        let positive =
                            f32::from(u8::from(v.logistic) + u8::from(v.tree) + u8::from(v.svm))
                                / 3.0;
                        [1.0 - positive, positive]
                    })
                    .collect();
            }
            if asked.votes {
                scored.votes = votes;
            }
        } else {
            scored.predictions = pipeline.predict(x)?;
        }
        return Ok(scored);
    }
    scored.answers = if asked.scores > 0 {
        model.answers_with_scores(&rows.values)
    } else {
        model.answers(&rows.values)
    }
    .map_err(anyhow::Error::msg)?;
    if asked.scores > 0 {
        let complete = (0..scored.rows()).all(|i| scored.scores(i).len() == asked.scores);
        anyhow::ensure!(
            complete,
            "the model did not give {} scores for every row",
            asked.scores
        );
    }
    Ok(scored)
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
        self.scored += part.rows() as u64;
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

/// The output's columns for this model and these flags, checked against what the model gives
/// on its sample row: a flag asking for what the model cannot give is refused here, before any
/// row is read.
fn output_columns(model: &Model, args: &ScoreArgs) -> anyhow::Result<Columns> {
    let name = model.stored_name();
    let probe = model
        .answers_with_scores(model.sample())
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("scoring {name}'s sample row"))?;
    let (prediction, scores) = match (model, probe.first()) {
        (Model::Native(_), Some(Answer::Class { scores, .. })) => {
            (PredictionKind::Flag, scores.clone())
        }
        (
            Model::Onnx(_),
            Some(Answer::Class {
                prediction, scores, ..
            }),
        ) => {
            let kind = if prediction.is_string() {
                PredictionKind::Text
            } else {
                PredictionKind::Integer
            };
            (kind, scores.clone())
        }
        (Model::Onnx(_), Some(Answer::Value { .. })) => {
            anyhow::ensure!(
                !args.scores,
                "--scores: {name} is a regression model: it answers one value per row and has \
                 no per-class scores"
            );
            (PredictionKind::Number, None)
        }
        _ => bail!("{name} gave no answer for its sample row"),
    };
    anyhow::ensure!(
        !args.votes || matches!(model, Model::Native(_)),
        "--votes: {name} is an ONNX model, which has no sub-model votes; --scores gives its \
         per-class scores"
    );
    let scores = match (args.scores, scores) {
        (false, _) => Vec::new(),
        (true, Some(scores)) => score_classes(model, scores.len()),
        (true, None) => {
            let outputs: Vec<String> = model.outputs().into_iter().map(|o| o.name).collect();
            bail!(
                "--scores: {name} offers no per-class scores (its outputs: {})",
                outputs.join(", ")
            )
        }
    };
    let labels = match model {
        Model::Native(m) => [
            m.artifact.labels.name(false).to_string(),
            m.artifact.labels.name(true).to_string(),
        ],
        Model::Onnx(_) => Default::default(),
    };
    Ok(Columns {
        labels,
        prediction,
        votes: args.votes,
        scores,
    })
}

/// The classes of a model's `k` scores, in order: its class labels, else (an ONNX model
/// without them) its ZipMap's keys, else the positions `0`, `1`, ...
fn score_classes(model: &Model, k: usize) -> Vec<String> {
    let classes = model.classes();
    if classes.len() == k {
        return classes;
    }
    let keys = match model {
        Model::Onnx(m) => m.graph.predict_f64(model.sample(), 1).ok().and_then(|out| {
            out.values.into_iter().find_map(|v| match v {
                crate::onnx::Value::Maps(maps) => Some(maps.keys),
                crate::onnx::Value::Tensor(_) => None,
            })
        }),
        Model::Native(_) => None,
    };
    match keys {
        Some(crate::onnx::Labels::I64(keys)) if keys.len() == k => {
            keys.iter().map(i64::to_string).collect()
        }
        Some(crate::onnx::Labels::Str(keys)) if keys.len() == k => keys,
        _ => (0..k).map(|i| i.to_string()).collect(),
    }
}

fn is_stdio(path: Option<&Path>) -> bool {
    path.is_none_or(|p| p.as_os_str() == "-")
}

pub fn run(args: &ScoreArgs) -> anyhow::Result<()> {
    let path = match (&args.model_repository, &args.model_name) {
        (Some(root), Some(name)) => crate::repository::resolve(root, name, args.model_version)?,
        _ => args.model_path.clone(),
    };
    let model = Model::load(&path, crate::artifact::DEFAULT_MAX_MODEL_BYTES)?;
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

    let columns = output_columns(&model, args)?;
    let asked = Asked {
        votes: columns.votes,
        scores: columns.scores.len(),
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
    let mut sink = output::Sink::create(output_path, output_format, columns)?;
    let mut tally = Tally {
        label,
        scored: 0,
        invalid: 0,
        listed: Vec::new(),
    };
    let progress = Progress::new(source.total_rows());
    let file_rows = source.file_rows();
    let mut covered = 0u64;
    // One thread reads (and decompresses) the next chunk and one writes (and compresses) the
    // last one while the others score this one; each hand-off holds at most one chunk.
    let sink = std::thread::scope(|scope| -> anyhow::Result<output::Sink> {
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
        let (to_write, writable) = std::sync::mpsc::sync_channel::<Vec<Scored>>(1);
        let writer = scope.spawn(move || -> anyhow::Result<output::Sink> {
            for parts in writable {
                for part in &parts {
                    sink.write(part)?;
                }
            }
            Ok(sink)
        });
        while let Some(chunk) = received.recv().context("the reading thread stopped")?? {
            // Without --skip-invalid, once a row is bad nothing more is written (the run
            // fails); the rest is still read, to report every bad row.
            let predict = args.skip_invalid || tally.invalid == 0;
            let mut parts = chunk.par_map(|rows| score_rows(&model, rows, asked, predict))?;
            let mut keep = 0;
            for part in &mut parts {
                covered += part.covered;
                progress.advance(part.covered);
                tally.add(part);
                if args.skip_invalid || tally.invalid == 0 {
                    keep += 1;
                }
            }
            parts.truncate(keep);
            if !parts.is_empty() && to_write.send(parts).is_err() {
                break; // the writer failed: its error is below
            }
        }
        drop(to_write);
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("the writing thread panicked"))?
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
