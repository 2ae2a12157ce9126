//! `inland anonymize`: the same code as the stage, on a file or a labelled folder.

use std::path::PathBuf;

use crate::eval::{Dataset, Report, evaluate};
use crate::{Anonymized, Anonymizer, Detection, Error, VisionConfig};

/// Anonymize one JPEG (`inland anonymize IN.jpg OUT.jpg`), or score a labelled folder
/// (`inland anonymize --eval DIR [--json]`).
#[derive(Debug, Clone, clap::Args)]
pub struct AnonymizeArgs {
    /// The JPEG to anonymize.
    #[arg(value_name = "IN.jpg", required_unless_present = "eval")]
    pub input: Option<PathBuf>,
    /// Where to write the anonymized JPEG.
    #[arg(value_name = "OUT.jpg", required_unless_present = "eval")]
    pub output: Option<PathBuf>,
    /// Score a folder laid out like the anon-dev set (JPEGs and labels.json) instead.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["input", "output"])]
    pub eval: Option<PathBuf>,
    /// With --eval: print the summary as one JSON line, last.
    #[arg(long)]
    pub json: bool,
    /// Directory holding centerface.onnx and clp_det.onnx (see scripts/fetch-models.sh).
    #[arg(long, value_name = "DIR", env = "INLAND_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// The ONNX Runtime shared library (see scripts/fetch-models.sh).
    #[arg(long, value_name = "FILE", env = "ORT_DYLIB_PATH")]
    pub ort_dylib: Option<PathBuf>,
    /// Threads per inference.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
}

/// Runs with the default configuration (plus the flags).
pub fn run(args: AnonymizeArgs) -> Result<(), Error> {
    run_with(args, VisionConfig::default())
}

/// Runs with `config` (e.g. the layered Inland config) overridden by the flags.
pub fn run_with(args: AnonymizeArgs, mut config: VisionConfig) -> Result<(), Error> {
    // Checked here, before any model is loaded (clap does not enforce `requires` on a flag
    // next to `required_unless_present` arguments).
    if args.json && args.eval.is_none() {
        return Err(Error::Config("--json goes with --eval DIR".into()));
    }
    if args.models_dir.is_some() {
        config.models_dir = args.models_dir.clone();
    }
    if args.ort_dylib.is_some() {
        config.ort_dylib = args.ort_dylib.clone();
    }
    config.intra_threads = args.threads;
    let anonymizer = Anonymizer::load(&config)?;
    match (&args.eval, &args.input, &args.output) {
        (Some(dir), _, _) => {
            let report = evaluate(&anonymizer, &Dataset::load(dir)?)?;
            print!("{}", table(&report));
            if args.json {
                println!("{}", report.json());
            }
            Ok(())
        }
        (None, Some(input), Some(output)) => {
            let io = |path: &PathBuf, e: std::io::Error| Error::Io {
                path: path.clone(),
                reason: e.to_string(),
            };
            let jpeg = std::fs::read(input).map_err(|e| io(input, e))?;
            let out = anonymizer.anonymize_jpeg(&jpeg)?;
            std::fs::write(output, &out.jpeg).map_err(|e| io(output, e))?;
            print!("{}", found(&out));
            Ok(())
        }
        _ => Err(Error::Config(
            "give IN.jpg and OUT.jpg, or --eval DIR".into(),
        )),
    }
}

fn found(out: &Anonymized) -> String {
    let mut s = format!(
        "{} face(s), {} plate(s) destroyed\n",
        out.faces.len(),
        out.plates.len()
    );
    let line = |class: &str, d: &Detection| {
        let r = d.redacted;
        format!(
            "{class:5} score {:.2} ({:?}) box {:.0},{:.0} {:.0}x{:.0} -> destroyed {},{} {}x{}\n",
            d.score,
            d.source,
            d.bbox.x1,
            d.bbox.y1,
            d.bbox.width(),
            d.bbox.height(),
            r.x1,
            r.y1,
            r.width(),
            r.height()
        )
    };
    out.faces.iter().for_each(|d| s += &line("face", d));
    out.plates.iter().for_each(|d| s += &line("plate", d));
    s
}

fn table(r: &Report) -> String {
    let row = |name: &str, t: crate::eval::Tally| {
        let recall = t.recall().map_or("-".to_string(), |v| format!("{v:.3}"));
        format!("{name:14} {:>3}/{:<3} {recall}\n", t.covered, t.total)
    };
    let mut s = format!(
        "{} images, object covered when >= {:.0} % of its box is destroyed\n",
        r.images,
        crate::eval::COVERED * 100.0
    );
    s += &row("faces normal", r.faces_normal);
    s += &row("faces small", r.faces_small);
    s += &row("faces", r.faces());
    s += &row("plates blue", r.plates_blue);
    s += &row("plates green", r.plates_green);
    if r.plates_other.total > 0 {
        s += &row("plates other", r.plates_other);
    }
    s += &row("plates", r.plates());
    s += &format!(
        "mean area destroyed {:.2} %\n",
        r.mean_area_destroyed * 100.0
    );
    s += &format!(
        "{:.2} frames/s ({:.0} ms/frame)\n",
        r.frames_per_s(),
        1000.0 / r.frames_per_s()
    );
    for m in &r.misses {
        s += &format!(
            "missed {} in {} at {:?} ({:.0} % destroyed)\n",
            m.class,
            m.file,
            m.bbox,
            m.coverage * 100.0
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Inland {
        #[command(flatten)]
        args: AnonymizeArgs,
    }

    fn parse(args: &[&str]) -> Result<AnonymizeArgs, clap::Error> {
        Inland::try_parse_from(std::iter::once("anonymize").chain(args.iter().copied()))
            .map(|i| i.args)
    }

    #[test]
    fn file_and_eval_forms_parse_and_mixtures_do_not() {
        let a = parse(&["in.jpg", "out.jpg", "--threads", "2"]).unwrap();
        assert_eq!(a.input, Some(PathBuf::from("in.jpg")));
        assert_eq!(a.output, Some(PathBuf::from("out.jpg")));
        assert_eq!(a.threads, 2);
        let e = parse(&["--eval", "dev", "--json"]).unwrap();
        assert_eq!(e.eval, Some(PathBuf::from("dev")));
        assert!(e.json);
        assert!(parse(&["in.jpg"]).is_err(), "OUT.jpg is required");
        let json_without_eval = parse(&["in.jpg", "out.jpg", "--json"]).unwrap();
        assert!(matches!(run(json_without_eval), Err(Error::Config(_))));
        assert!(parse(&["in.jpg", "out.jpg", "--eval", "dev"]).is_err());
    }
}
