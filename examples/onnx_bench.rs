//! Single-row latency of the ONNX evaluator (run by scripts/bench-onnx, which prints the figures
//! beside onnxruntime's).
//!
//!   onnx_bench MODEL.onnx DATA.json [MODEL.onnx DATA.json ...]
//!       per model, one tab-separated line: name, load ms, median and mean µs per single-row
//!       predict (every row of DATA in turn, for about half a second after a warm-up round)
//!   onnx_bench --rss MODEL.onnx
//!       resident memory (VmRSS) before and after loading, and the load time

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ml_serving::onnx::OnnxModel;

fn rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS")?.parse()?)
}

fn read_rows(path: &Path) -> Result<(usize, Vec<f32>)> {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
    let width = json["width"].as_u64().context("width")? as usize;
    let rows = json["rows"]
        .as_array()
        .context("rows")?
        .iter()
        .flat_map(|r| r.as_array().into_iter().flatten())
        .map(|v| v.as_f64().map_or(f32::NAN, |v| v as f32))
        .collect();
    Ok((width, rows))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--rss") {
        let path = Path::new(args.get(1).context("--rss MODEL.onnx")?);
        let before = rss_kib()?;
        let start = Instant::now();
        let model = OnnxModel::load(path)?;
        let load = start.elapsed();
        let after = rss_kib()?;
        println!(
            "{}\tload_ms={:.1}\trss_before_kib={before}\trss_after_kib={after}",
            path.display(),
            load.as_secs_f64() * 1e3
        );
        drop(model);
        return Ok(());
    }
    if args.is_empty() || !args.len().is_multiple_of(2) {
        bail!(
            "usage: onnx_bench MODEL.onnx DATA.json [MODEL.onnx DATA.json ...] | --rss MODEL.onnx"
        );
    }
    for pair in args.chunks(2) {
        let (model_path, data_path) = (Path::new(&pair[0]), Path::new(&pair[1]));
        let start = Instant::now();
        let model = OnnxModel::load(model_path)
            .with_context(|| format!("loading {}", model_path.display()))?;
        let load = start.elapsed();
        let (width, rows) = read_rows(data_path)?;
        if width != model.input().width {
            bail!(
                "{} takes {} features, {} has {width}",
                model_path.display(),
                model.input().width,
                data_path.display()
            );
        }
        let n = rows.len() / width;
        for r in 0..n {
            model.predict_f32(&rows[r * width..(r + 1) * width], 1)?;
        }
        let mut times = Vec::new();
        let begin = Instant::now();
        'outer: loop {
            for r in 0..n {
                let t = Instant::now();
                let out = model.predict_f32(&rows[r * width..(r + 1) * width], 1)?;
                times.push(t.elapsed());
                std::hint::black_box(out);
                if begin.elapsed() > Duration::from_millis(500) && times.len() >= n {
                    break 'outer;
                }
            }
        }
        times.sort();
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        println!(
            "{}\t{:.2}\t{:.2}\t{:.2}\t{}",
            model_path.file_stem().unwrap_or_default().to_string_lossy(),
            load.as_secs_f64() * 1e3,
            times[times.len() / 2].as_secs_f64() * 1e6,
            mean.as_secs_f64() * 1e6,
            times.len()
        );
    }
    Ok(())
}
