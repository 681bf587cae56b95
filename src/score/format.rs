//! The file formats `score` reads and writes, chosen by extension or flag, and the
//! compression streams of compressed CSV.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

/// A file format for rows to score or for scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    /// CSV compressed with gzip.
    #[value(name = "csv.gz")]
    CsvGz,
    /// CSV compressed with Zstandard.
    #[value(name = "csv.zst")]
    CsvZst,
    Parquet,
}

impl Format {
    /// The format a file name implies: `.parquet` (or `.pq`), `.gz`, `.zst`; CSV otherwise.
    pub fn from_path(path: &Path) -> Self {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.ends_with(".parquet") || name.ends_with(".pq") {
            Format::Parquet
        } else if name.ends_with(".gz") {
            Format::CsvGz
        } else if name.ends_with(".zst") {
            Format::CsvZst
        } else {
            Format::Csv
        }
    }
}

/// Buffer size for reading and writing.
pub const IO_BUFFER: usize = 256 << 10;

/// Opens a CSV input (`-` is standard input), decompressing as `format` says.
pub fn open_csv(path: &Path, format: Format) -> io::Result<Box<dyn BufRead + Send>> {
    let raw: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path)?)
    };
    Ok(match format {
        Format::CsvGz => Box::new(BufReader::with_capacity(
            IO_BUFFER,
            flate2::read::MultiGzDecoder::new(BufReader::with_capacity(IO_BUFFER, raw)),
        )),
        Format::CsvZst => Box::new(BufReader::with_capacity(
            IO_BUFFER,
            zstd::Decoder::new(raw)?,
        )),
        Format::Csv | Format::Parquet => Box::new(BufReader::with_capacity(IO_BUFFER, raw)),
    })
}

/// A CSV output stream, compressed as its format says.
pub enum Encoder<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    pub fn new(inner: W, format: Format) -> io::Result<Self> {
        Ok(match format {
            Format::CsvGz => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::default(),
            )),
            Format::CsvZst => Encoder::Zstd(zstd::Encoder::new(inner, 3)?),
            Format::Csv | Format::Parquet => Encoder::Plain(inner),
        })
    }

    /// Ends the compressed stream and returns the writer underneath.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.write_all(buf),
            Encoder::Gzip(e) => e.write_all(buf),
            Encoder::Zstd(e) => e.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}
