//! `ml-serving train`: read a labelled CSV, split it with a seed, fit the pipeline, measure it
//! on the held-out rows and write the model artifact.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

use crate::artifact::{
    ClassLabels, DEFAULT_MODEL_NAME, DEFAULT_MODEL_PATH, FORMAT_NAME, FORMAT_VERSION,
    ModelArtifact, TrainingRecord,
};
use crate::dataset::{self, BUNDLED_DATA, DEFAULT_FEATURES};
use crate::evaluate::HeldOutMetrics;
use crate::pipeline::Pipeline;

/// Train the tutorial's pipeline and write a model artifact.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Training data: a CSV file with a header row.
    #[arg(long, default_value = BUNDLED_DATA)]
    pub data: PathBuf,
    /// Feature columns, comma-separated, in the order the model will take them.
    #[arg(long, value_delimiter = ',', default_values = DEFAULT_FEATURES)]
    pub features: Vec<String>,
    /// The target column: two classes.
    #[arg(long, default_value = "diagnosis")]
    pub target: String,
    /// The target value that is the positive class (prediction 1).
    #[arg(long, default_value = "M")]
    pub positive: String,
    /// Seed of the shuffle before the split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of the rows held out for testing, in (0, 1).
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Where to write the artifact (atomically; an existing file is replaced only on success).
    #[arg(long, default_value = DEFAULT_MODEL_PATH)]
    pub out: PathBuf,
    /// Model name stored in the artifact (the server's `MODEL_NAME` overrides it).
    #[arg(long, default_value = DEFAULT_MODEL_NAME)]
    pub name: String,
    /// Model version stored in the artifact.
    #[arg(long = "model-version", default_value = "1")]
    pub model_version: String,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl Default for TrainArgs {
    fn default() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: TrainArgs,
        }
        Wrapper::parse_from(["train"]).args
    }
}

/// What a training run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub model: String,
    pub version: String,
    pub out: PathBuf,
    pub features: Vec<String>,
    pub train_rows: u64,
    pub test_rows: u64,
    pub svm_gamma: f64,
    pub metrics: HeldOutMetrics,
    pub fit_seconds: f64,
}

/// Fits the pipeline as `args` say and returns the artifact (not yet written) and the report.
pub fn train(args: &TrainArgs) -> anyhow::Result<(ModelArtifact, TrainReport)> {
    if !(args.test_fraction > 0.0 && args.test_fraction < 1.0) {
        bail!(
            "--test-fraction must be between 0 and 1 (exclusive), got {}",
            args.test_fraction
        );
    }
    if args.features.is_empty() || args.features.iter().any(|f| f.trim().is_empty()) {
        bail!("--features needs at least one non-empty column name");
    }
    let data = dataset::load_labeled(&args.data, &args.features, &args.target, &args.positive)?;
    let rows = data.targets.len();
    // scikit-learn's train_test_split: the test set is ceil(fraction × rows).
    let test_rows = (args.test_fraction * rows as f64).ceil() as usize;
    let train_rows = rows.saturating_sub(test_rows);
    if test_rows == 0 || train_rows < 2 {
        bail!(
            "{}: {rows} rows are too few for a {} test split (need at least 2 training rows and 1 test row)",
            args.data.display(),
            args.test_fraction
        );
    }

    let mut order: Vec<usize> = (0..rows).collect();
    order.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(args.seed));
    let (test_idx, train_idx) = order.split_at(test_rows);
    let pick = |idx: &[usize]| -> (Array2<f64>, Vec<bool>) {
        (
            data.features.select(Axis(0), idx),
            idx.iter().map(|&i| data.targets[i]).collect(),
        )
    };
    let (x_train, y_train) = pick(train_idx);
    let (x_test, y_test) = pick(test_idx);
    if y_train.iter().all(|&y| y) || y_train.iter().all(|&y| !y) {
        bail!(
            "{}: the {train_rows} training rows hold only one class; use more data or another --seed",
            args.data.display()
        );
    }

    let started = Instant::now();
    let pipeline = Pipeline::default()
        .fit(x_train.view(), &y_train)
        .with_context(|| format!("fitting the pipeline on {}", args.data.display()))?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let metrics = HeldOutMetrics::from_votes(&pipeline.votes(x_test.view())?, &y_test);

    // The sample row is the file's first row (the tutorial's sample for the default features),
    // with missing cells imputed so that it is always a valid request.
    let mut sample = data.features.row(0).to_vec();
    pipeline.imputer.apply(&mut sample);

    let [negative, positive] = data.classes.clone();
    let artifact = ModelArtifact {
        format: FORMAT_NAME.to_string(),
        format_version: FORMAT_VERSION,
        name: args.name.clone(),
        version: args.model_version.clone(),
        created_at: crate::clock::now_rfc3339(),
        ml_serving_version: env!("CARGO_PKG_VERSION").to_string(),
        feature_names: args.features.clone(),
        labels: ClassLabels { negative, positive },
        sample,
        training: TrainingRecord {
            data_file: args
                .data
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            data_sha256: data.sha256.clone(),
            target_column: args.target.clone(),
            seed: args.seed,
            test_fraction: args.test_fraction,
            train_rows: train_rows as u64,
            test_rows: test_rows as u64,
        },
        metrics: metrics.clone(),
        pipeline,
    };
    let report = TrainReport {
        model: args.name.clone(),
        version: args.model_version.clone(),
        out: args.out.clone(),
        features: args.features.clone(),
        train_rows: train_rows as u64,
        test_rows: test_rows as u64,
        svm_gamma: artifact.pipeline.models.svm_gamma,
        metrics,
        fit_seconds,
    };
    Ok((artifact, report))
}

/// `ml-serving train`: fit, write the artifact, print the report.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    // Refuse a --out that cannot be replaced before spending the time to train.
    crate::atomic_file::check_replaceable(&args.out)?;
    let (artifact, report) = train(args)?;
    artifact.save(&args.out)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

impl TrainReport {
    pub fn to_text(&self) -> String {
        let m = &self.metrics;
        let c = &m.confusion;
        format!(
            "trained {name} v{version} on {train} rows, tested on {test} held-out rows\n\
             features: {features}\n\
             \n\
             held-out metrics (positive class = 1):\n\
             \x20 accuracy   {acc:.4}\n\
             \x20 precision  {prec:.4}\n\
             \x20 recall     {rec:.4}\n\
             \x20 f1         {f1:.4}\n\
             \n\
             confusion matrix     predicted 0  predicted 1\n\
             \x20 actual 0         {tn:>11}  {fp:>11}\n\
             \x20 actual 1         {fn_:>11}  {tp:>11}\n\
             \n\
             each model alone: logistic regression {lr:.4}, decision tree {dt:.4}, SVM {svm:.4} (gamma {gamma:.4})\n\
             fit time: {fit:.3} s\n\
             model written to {out}\n",
            name = self.model,
            version = self.version,
            train = self.train_rows,
            test = self.test_rows,
            features = self.features.join(", "),
            acc = m.accuracy,
            prec = m.precision,
            rec = m.recall,
            f1 = m.f1,
            tn = c.true_negative,
            fp = c.false_positive,
            fn_ = c.false_negative,
            tp = c.true_positive,
            lr = m.logistic_accuracy,
            dt = m.tree_accuracy,
            svm = m.svm_accuracy,
            gamma = self.svm_gamma,
            fit = self.fit_seconds,
            out = self.out.display(),
        )
    }
}
