//! The live progress line on stderr: a spinner with sent, acked and rejected counts and the
//! current ack rate, redrawn twice a second. Hidden when turned off or when stderr is not a
//! terminal, so logs and pipes stay clean.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::stats::{Progress, Stats};

const REDRAW: Duration = Duration::from_millis(500);

/// Clears the line and stops redrawing when dropped.
pub struct ProgressLine {
    bar: ProgressBar,
    redraw: Option<JoinHandle<()>>,
}

impl ProgressLine {
    pub fn start(stats: Arc<Stats>, enabled: bool) -> Self {
        let target = if enabled && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        if bar.is_hidden() {
            return Self { bar, redraw: None };
        }
        bar.set_style(
            ProgressStyle::with_template("{spinner:.green} [{elapsed}] {msg}")
                .expect("a valid template"),
        );
        let line = bar.clone();
        let redraw = tokio::spawn(async move {
            let mut every = tokio::time::interval(REDRAW);
            let mut last = (Instant::now(), stats.progress().acked);
            loop {
                every.tick().await;
                let now = Instant::now();
                let p = stats.progress();
                let rate = (p.acked - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-3);
                last = (now, p.acked);
                line.set_message(message(&p, rate));
                line.tick();
            }
        });
        Self {
            bar,
            redraw: Some(redraw),
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        if let Some(redraw) = self.redraw.take() {
            redraw.abort();
        }
        self.bar.finish_and_clear();
    }
}

fn message(p: &Progress, acks_per_s: f64) -> String {
    format!(
        "sent {} · acked {} · rejected {} · stream errors {} · {acks_per_s:.1} acks/s",
        p.sent, p.acked, p.rejected, p.stream_errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_counts_and_rate() {
        let p = Progress {
            sent: 120,
            acked: 118,
            rejected: 2,
            stream_errors: 1,
        };
        assert_eq!(
            message(&p, 19.96),
            "sent 120 · acked 118 · rejected 2 · stream errors 1 · 20.0 acks/s"
        );
    }

    #[tokio::test]
    async fn turned_off_it_draws_nothing() {
        let line = ProgressLine::start(Arc::new(Stats::new()), false);
        assert!(line.bar.is_hidden());
        assert!(line.redraw.is_none());
    }
}
