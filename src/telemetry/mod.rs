//! Log output (and, when configured, traces over OTLP): human text or JSON lines, always on stderr so stdout stays clean for
//! commands whose output is read by programs (`openapi`, `partner create --json`).
//!
//! Field values can come from clients (a `client_id`, a path, a token's header): in the
//! text format every control character is written escaped (`\n`, `\u{1b}`), so that no
//! value can start a forged line or drive a terminal. JSON escapes them by itself.

pub mod otlp;

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogArgs, LogFormat};

/// Installs the logger and, when an OTLP endpoint is configured, the trace exporter.
/// Keep the returned guard until the process ends: dropping it sends the last spans.
pub fn init(args: &LogArgs) -> Result<otlp::Traces, String> {
    let filter = EnvFilter::try_new(&args.log_filter)
        .map_err(|e| format!("invalid SIMRENEW_LOG filter `{}`: {e}", args.log_filter))?;
    // Colours only on a terminal: a log file or collector gets plain text.
    let lines = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // The filter is the log lines' own: `SIMRENEW_LOG=warn` quietens the log, not the
    // request spans exported as traces.
    let lines: Box<dyn Layer<Registry> + Send + Sync> = match args.log_format {
        LogFormat::Text => Box::new(lines.fmt_fields(EscapedFields).with_filter(filter)),
        LogFormat::Json => Box::new(
            lines
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_filter(filter),
        ),
    };
    let traces = match &args.otlp_endpoint {
        Some(endpoint) => otlp::Traces::export_to(endpoint)?,
        None => otlp::Traces::off(),
    };
    let mut layers = vec![lines];
    layers.extend(traces.layer());
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))?;
    Ok(traces)
}

/// `text` with every control character escaped, as Rust writes it in a string literal.
pub fn escape_controls(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// Formats fields as `name=value`, separated by spaces, with control characters escaped.
struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        let value = escape_controls(value);
        self.result = if field.name() == "message" {
            write!(self.writer, "{separator}{value}")
        } else {
            write!(self.writer, "{separator}{}={value}", field.name())
        };
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_break_a_line() {
        let forged = "evil\n2026-11-25T00:00:00Z INFO simrenew: FORGED\u{1b}[31m\r";
        let escaped = escape_controls(forged);
        assert!(!escaped.chars().any(char::is_control), "{escaped}");
        assert_eq!(
            escaped,
            "evil\\n2026-11-25T00:00:00Z INFO simrenew: FORGED\\u{1b}[31m\\r"
        );
        assert_eq!(escape_controls("plain ümlaut 中文"), "plain ümlaut 中文");
    }
}
