//! The command line: one subcommand per job, each with its own argument struct.

use clap::{Parser, Subcommand};

use crate::{client, score, server, train};

/// Train, serve and load-test a tabular ML model.
#[derive(Debug, Parser)]
#[command(name = "ml-serving", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train the pipeline on a CSV file and write a model artifact.
    Train(train::TrainArgs),
    /// Score a CSV or Parquet file offline with a model artifact.
    Score(score::ScoreArgs),
    /// Serve a model artifact over HTTP.
    Serve(server::ServeArgs),
    /// Exit 0 when a server answers 200 on its readiness route (for container health checks).
    Healthcheck(client::HealthcheckArgs),
    // The help of these two comes from their argument structs, which explain more.
    Predict(client::predict::PredictArgs),
    Loadtest(client::loadtest::LoadtestArgs),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Train(args) => train::run(&args),
            Command::Score(args) => score::run(&args),
            Command::Serve(args) => server::run(&args),
            Command::Healthcheck(args) => client::healthcheck(&args),
            Command::Predict(args) => client::predict::run(&args),
            Command::Loadtest(args) => client::loadtest::run(&args),
        }
    }
}
