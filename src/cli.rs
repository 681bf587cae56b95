//! The command line: one subcommand per job, each with its own argument struct.

use clap::{Parser, Subcommand};

use crate::{score, train};

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
    /// Score a CSV file offline with a model artifact.
    Score(score::ScoreArgs),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Train(args) => train::run(&args),
            Command::Score(args) => score::run(&args),
        }
    }
}
