//! The report as a table, for logs and terminals.

use std::fmt;
use std::time::Duration;

use super::Report;

struct Ms(Option<Duration>);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => {
                let s = format!("{:.1}", d.as_secs_f64() * 1000.0);
                f.pad(&s)
            }
            None => f.pad("-"),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = widest(self.components.iter().map(|c| c.name.chars().count()), 9);
        writeln!(
            f,
            "lifecycle {} after {:.1} ms{}",
            self.phase,
            self.elapsed.as_secs_f64() * 1000.0,
            match (self.shutdown_at, &self.cause) {
                (Some(t), Some(cause)) => format!(
                    ", shutdown began at {:.1} ms ({cause})",
                    t.as_secs_f64() * 1000.0
                ),
                (Some(t), None) =>
                    format!(", shutdown began at {:.1} ms", t.as_secs_f64() * 1000.0),
                _ => String::new(),
            }
        )?;
        // `restarting` is longer than the other states: only a report taken
        // during a restart needs the wider column.
        let state_width = widest(self.components.iter().map(|c| c.state.as_str().len()), 8);
        writeln!(
            f,
            "{:<width$}  {:<state_width$}  {:>9} {:>8}  {:>9} {:>4}  {:>9} {:>8}  {:>9} {:>8}",
            "component",
            "state",
            "start ms",
            "took",
            "ready ms",
            "try",
            "stop ms",
            "took",
            "close ms",
            "took"
        )?;
        for c in self.components.iter() {
            writeln!(
                f,
                "{:<width$}  {:<state_width$}  {:>9} {:>8}  {:>9} {:>4}  {:>9} {:>8}  {:>9} {:>8}",
                c.name,
                c.state.as_str(),
                Ms(c.start_at),
                Ms(c.start_took),
                Ms(c.ready_at),
                c.attempts,
                Ms(c.stop_at),
                Ms(c.stop_took),
                Ms(c.close_at),
                Ms(c.close_took),
            )?;
        }
        // A line under the table for each component that restarted: as a
        // column it would widen a table already past 80 columns, for what
        // most rows lack. One line each, whatever the error's message holds,
        // so that a reader (or a log) can tell where each one ends.
        for c in self.components.iter() {
            if let Some(latest) = c.failures().last() {
                let n = c.restarts();
                writeln!(
                    f,
                    "{} restarted {n} time{}; latest failure at {:.1} ms: {}",
                    c.name,
                    if n == 1 { "" } else { "s" },
                    latest.at.as_secs_f64() * 1000.0,
                    OneLine(&latest.error)
                )?;
            }
        }
        Ok(())
    }
}

/// A message on one line: its lines trimmed and joined with `; `, blank
/// ones left out, any other control character escaped (`\t`).
struct OneLine<'a>(&'a str);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = self.0.lines().map(str::trim).filter(|l| !l.is_empty());
        for (i, line) in lines.enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            for c in line.chars() {
                if c.is_control() {
                    write!(f, "{}", c.escape_default())?;
                } else {
                    write!(f, "{c}")?;
                }
            }
        }
        Ok(())
    }
}

/// A column's width: its widest cell, and at least `heading`'s.
fn widest(cells: impl Iterator<Item = usize>, heading: usize) -> usize {
    cells.fold(heading, usize::max)
}
