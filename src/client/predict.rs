//! `ml-serving predict`: one prediction from the command line. Features come from flags named
//! like the features, from a JSON file, or from standard input; with none, the model's sample
//! row.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Map, Value};

use super::http::{self, Reply};
use super::{DEFAULT_URL, sample_row, write_stdout};
use crate::wire::{ErrorBody, Loc, ValidationErrorBody};

/// Send one prediction to a server and print its answer.
///
/// Features: `--feature name=value` (repeatable), or `--<name> <value>` pairs after the other
/// options, e.g. `ml-serving predict --concavity_mean 0.3001 --area_se 153.4 ...`; or
/// `--file row.json`; or `--stdin` (or `-`). With none, the model's sample row is sent.
#[derive(Debug, Clone, clap::Args)]
pub struct PredictArgs {
    /// The server.
    #[arg(long, env = "ML_SERVING_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// One feature, as `name=value` (repeatable).
    #[arg(long = "feature", value_name = "NAME=VALUE")]
    pub features: Vec<String>,
    /// Send this JSON file as the request body (`-` reads standard input).
    #[arg(long, value_name = "FILE.json")]
    pub file: Option<PathBuf>,
    /// Read the JSON request body from standard input.
    #[arg(long)]
    pub stdin: bool,
    /// Take the sample row from this model artifact instead of asking the server.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Print the status and the server's answer as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout_secs: f64,
    /// Sent as `Authorization: Bearer <key>`.
    #[arg(long, env = "API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Features as `--<name> <value>` (or `--<name>=<value>`) pairs; `-` alone reads standard
    /// input. Put the other options before these.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "--FEATURE VALUE"
    )]
    pub rest: Vec<String>,
}

/// The options of `PredictArgs`, refused among the trailing feature pairs where clap no
/// longer sees them.
const OWN_OPTIONS: &[&str] = &[
    "url",
    "feature",
    "file",
    "stdin",
    "model",
    "json",
    "timeout-secs",
    "api-key",
    "help",
];

/// Where the request body comes from.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    Features(Map<String, Value>),
    File(PathBuf),
    Stdin,
    Sample,
}

impl PredictArgs {
    fn source(&self) -> anyhow::Result<Source> {
        let mut features = Map::new();
        let mut stdin = self.stdin;
        for pair in &self.features {
            let (name, value) = pair
                .split_once('=')
                .with_context(|| format!("--feature {pair:?}: expected NAME=VALUE"))?;
            insert_feature(&mut features, name, value)?;
        }
        let mut rest = self.rest.iter();
        while let Some(arg) = rest.next() {
            if arg == "-" {
                stdin = true;
                continue;
            }
            let Some(flag) = arg.strip_prefix("--").filter(|f| !f.is_empty()) else {
                bail!("unexpected argument {arg:?}: features are given as --<name> <value>");
            };
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name, value.to_string()),
                None => {
                    let value = rest
                        .next()
                        .with_context(|| format!("--{flag} needs a value"))?;
                    (flag, value.clone())
                }
            };
            if OWN_OPTIONS.contains(&name) {
                bail!("--{name} must come before the feature values");
            }
            insert_feature(&mut features, name, &value)?;
        }
        let given = [!features.is_empty(), self.file.is_some(), stdin];
        if given.iter().filter(|&&g| g).count() > 1 {
            bail!("give the features one way: flags, --file or standard input");
        }
        Ok(if !features.is_empty() {
            Source::Features(features)
        } else if let Some(file) = &self.file {
            if file.as_os_str() == "-" {
                Source::Stdin
            } else {
                Source::File(file.clone())
            }
        } else if stdin {
            Source::Stdin
        } else {
            Source::Sample
        })
    }
}

/// A value that reads as a number is sent as a JSON number, anything else as a string, so
/// the server judges it and says what is wrong.
fn insert_feature(
    features: &mut Map<String, Value>,
    name: &str,
    value: &str,
) -> anyhow::Result<()> {
    anyhow::ensure!(!name.is_empty(), "a feature needs a name");
    let value = match value.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => serde_json::json!(v),
        _ => Value::String(value.to_string()),
    };
    if features.insert(name.to_string(), value).is_some() {
        bail!("feature {name} is given twice");
    }
    Ok(())
}

/// `STATUS: message`, the message taken from our error bodies when the answer is one.
fn describe(reply: &Reply) -> String {
    let status = reply.status;
    if let Ok(v) = serde_json::from_slice::<ValidationErrorBody>(&reply.body) {
        let fields: Vec<String> = v
            .detail
            .iter()
            .map(|e| {
                let loc: Vec<String> = e
                    .loc
                    .iter()
                    .filter(|l| !matches!(l, Loc::Key(k) if k == "body"))
                    .map(|l| match l {
                        Loc::Key(k) => k.clone(),
                        Loc::Index(i) => i.to_string(),
                    })
                    .collect();
                format!("\n  {}: {} ({})", loc.join("."), e.msg, e.kind)
            })
            .collect();
        return format!("{status}:{}", fields.concat());
    }
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(&reply.body) {
        return format!("{status}: {}", e.detail);
    }
    let text = String::from_utf8_lossy(&reply.body);
    if text.trim().is_empty() {
        status.to_string()
    } else {
        format!("{status}: {}", text.trim())
    }
}

/// `ml-serving predict`.
pub fn run(args: &PredictArgs) -> anyhow::Result<()> {
    let timeout = Duration::try_from_secs_f64(args.timeout_secs)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--timeout-secs must be a positive number")?;
    let source = args.source()?;
    let body = match &source {
        Source::Features(_) | Source::Sample => None,
        Source::File(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        Source::Stdin => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading standard input")?;
            Some(buf)
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reply = runtime.block_on(async {
        let body = match (source, body) {
            (_, Some(bytes)) => Bytes::from(bytes),
            (Source::Features(row), None) => Bytes::from(serde_json::to_vec(&row)?),
            (_, None) => {
                let row = sample_row(&args.url, args.model.as_deref(), timeout).await?;
                Bytes::from(serde_json::to_vec(&row)?)
            }
        };
        http::request_once(
            &args.url,
            Method::POST,
            "/predict",
            Some(body),
            args.api_key.as_deref().filter(|k| !k.is_empty()),
            timeout,
        )
        .await
    })?;
    print_reply(args, &reply)?;
    if !reply.status.is_success() {
        bail!(
            "POST {}/predict answered {}",
            args.url.trim_end_matches('/'),
            describe(&reply)
        );
    }
    Ok(())
}

fn print_reply(args: &PredictArgs, reply: &Reply) -> anyhow::Result<()> {
    let answer: Option<Value> = serde_json::from_slice(&reply.body).ok();
    let text = String::from_utf8_lossy(&reply.body);
    let line = if args.json {
        let answer = answer.unwrap_or_else(|| Value::String(text.into_owned()));
        serde_json::json!({"status": reply.status.as_u16(), "answer": answer}).to_string()
    } else {
        match answer {
            Some(a) if reply.status == StatusCode::OK && a["label"].is_string() => format!(
                "{}  label={} prediction={}",
                reply.status,
                a["label"].as_str().unwrap_or_default(),
                a["prediction"]
            ),
            _ => format!("{}  {}", reply.status, text.trim()),
        }
    };
    write_stdout(&format!("{line}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: PredictArgs,
    }

    fn source(argv: &[&str]) -> anyhow::Result<Source> {
        let cli = Cli::try_parse_from(std::iter::once("predict").chain(argv.iter().copied()))?;
        cli.args.source()
    }

    fn features(pairs: &[(&str, Value)]) -> Source {
        Source::Features(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn feature_flags() {
        assert_eq!(source(&[]).unwrap(), Source::Sample);
        assert_eq!(
            source(&[
                "--json",
                "--area_se",
                "153.4",
                "--texture_worst=-1",
                "--x",
                "abc"
            ])
            .unwrap(),
            features(&[
                ("area_se", serde_json::json!(153.4)),
                ("texture_worst", serde_json::json!(-1.0)),
                ("x", Value::String("abc".into())),
            ])
        );
        assert_eq!(
            source(&["--feature", "a=1", "--feature", "b=2"]).unwrap(),
            features(&[("a", serde_json::json!(1.0)), ("b", serde_json::json!(2.0))])
        );
        assert_eq!(source(&["-"]).unwrap(), Source::Stdin);
        assert_eq!(source(&["--stdin"]).unwrap(), Source::Stdin);
        assert_eq!(source(&["--file", "-"]).unwrap(), Source::Stdin);
        assert_eq!(
            source(&["--file", "r.json"]).unwrap(),
            Source::File("r.json".into())
        );
    }

    #[test]
    fn bad_feature_flags() {
        for argv in [
            &["--area_se"][..],
            &["--area_se", "1", "--area_se", "2"],
            &["--area_se", "1", "--json"],
            &["--area_se", "1", "--file", "x.json"],
            &["--file", "x.json", "-"],
            &["area_se", "1"],
            &["--feature", "novalue"],
        ] {
            assert!(source(argv).is_err(), "{argv:?} should be refused");
        }
    }

    #[test]
    fn error_messages() {
        let reply = Reply {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: Bytes::from_static(
                br#"{"detail":[{"loc":["body","area_se"],"msg":"must be >= 0","type":"greater_than_equal"}]}"#,
            ),
        };
        assert_eq!(
            describe(&reply),
            "422 Unprocessable Entity:\n  area_se: must be >= 0 (greater_than_equal)"
        );
        let reply = Reply {
            status: StatusCode::UNAUTHORIZED,
            body: Bytes::from_static(br#"{"detail":"Missing or wrong API key"}"#),
        };
        assert_eq!(
            describe(&reply),
            "401 Unauthorized: Missing or wrong API key"
        );
    }
}
