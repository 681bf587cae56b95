//! ml-serving: train, serve and load-test a tabular classifier (the UCI breast-cancer tutorial).

pub mod artifact;
pub mod atomic_file;
pub mod cli;
pub mod client;
pub mod clock;
pub mod dataset;
pub mod evaluate;
pub mod grpc_proto;
pub mod model;
pub mod onnx;
pub mod pipeline;
pub mod repository;
pub mod score;
pub mod server;
pub mod telemetry;
pub mod train;
pub mod wire;
