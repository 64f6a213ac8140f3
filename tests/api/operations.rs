//! Operators' tools: the streaming card import and the trace export over OTLP.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use prost::Message;
use serde_json::Value;

use crate::helpers::{cli, cli_create_partner, cli_output, iccid, Backend, Process, TestDatabase};
use crate::receiver::Receiver;

on_both_backends!(backend: a_card_import_streams_refuses_bad_rows_by_line_and_can_run_again);

/// 2,500 rows in three batches, seven of them bad in every way a file can be: each is
/// refused with its line, the rest go in. Run again, nothing is imported twice.
async fn a_card_import_streams_refuses_bad_rows_by_line_and_can_run_again(backend: Backend) {
    let db = TestDatabase::create(backend);
    let url = db.raw_url.clone();
    let acme = cli_create_partner(&url, "Acme", "cards:read");
    let other = cli_create_partner(&url, "Other", "cards:read");
    let dir = tempfile::tempdir().unwrap();
    let theirs = iccid(61, 1998);
    let their_file = dir.path().join("theirs.csv");
    std::fs::write(
        &their_file,
        format!("iccid,card_type,msisdn,eid\n{theirs},fm,,\n"),
    )
    .unwrap();
    let path = their_file.to_str().unwrap();
    cli(&url, &["cards", "import", path, "--partner", &other.id]);

    // Data row i is on line i + 2 (the header is line 1).
    let mut csv = String::from("iccid,card_type,msisdn,eid\n");
    for i in 0..2_500_u64 {
        let row = match i + 2 {
            5 => "123,fm,,".to_owned(),
            10 => format!("{},fm,,89049032123451234512345678901235", iccid(61, i)),
            20 => format!("{},fm,,", iccid(61, 10)),
            30 => "only,two".to_owned(),
            40 => format!("{},sim,,", iccid(61, i)),
            1600 => format!("{},esim,+8613800138000,", iccid(61, 1)),
            _ => format!("{},fm,,", iccid(61, i)),
        };
        csv.push_str(&row);
        csv.push('\n');
    }
    let file = dir.path().join("cards.csv");
    std::fs::write(&file, csv).unwrap();
    let file = file.to_str().unwrap();

    let first = cli_output(&url, &["cards", "import", file, "--partner", &acme.id]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(
        first.status.code(),
        Some(1),
        "refusals fail the command: {stderr}"
    );
    let tally: Value = serde_json::from_slice(&first.stdout).expect("a JSON tally on stdout");
    assert_eq!(tally["rows"], 2_500);
    assert_eq!(tally["imported"], 2_493, "{tally}");
    assert_eq!(tally["refused"], 7, "{tally}\n{stderr}");
    assert_eq!(tally["already_registered"], 0);
    for (line, why) in [
        (5, "iccid:"),
        (10, "eid: only eSIM cards have an EID"),
        (20, "appears earlier in the file (line 12)"),
        (30, "found record with 2 fields"),
        (40, "unknown variant `sim`, expected `fm` or `esim`"),
        (1600, "appears earlier in the file"),
        (2000, "is registered to another partner"),
    ] {
        let refused = stderr
            .lines()
            .find(|l| l.starts_with(&format!("line {line}: refused: ")))
            .unwrap_or_else(|| panic!("line {line} is not listed:\n{stderr}"));
        assert!(refused.contains(why), "line {line}: {refused}");
    }
    assert!(
        stderr.contains("cards import: 100% (2500 rows"),
        "a plain progress line when stderr is not a terminal:\n{stderr}"
    );

    // The same file again: the partner's cards are counted, not imported twice.
    let again = cli_output(&url, &["cards", "import", file, "--partner", &acme.id]);
    let tally: Value = serde_json::from_slice(&again.stdout).expect("a JSON tally");
    assert_eq!(tally["imported"], 0, "{tally}");
    assert_eq!(tally["already_registered"], 2_494, "{tally}");
    assert_eq!(tally["refused"], 6, "{tally}");

    // A file without the header names nothing and changes nothing.
    let headless = dir.path().join("headless.csv");
    std::fs::write(&headless, format!("{},fm,,\n", iccid(62, 1))).unwrap();
    let refused = cli_output(
        &url,
        &[
            "cards",
            "import",
            headless.to_str().unwrap(),
            "--partner",
            &acme.id,
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("the header must name"));
    let unknown = cli_output(
        &url,
        &[
            "cards",
            "import",
            file,
            "--partner",
            &uuid::Uuid::now_v7().to_string(),
        ],
    );
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no such partner"));
}

fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .and_then(|v| match v {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

fn int_attribute(attributes: &[KeyValue], key: &str) -> Option<i64> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .and_then(|v| match v {
            any_value::Value::IntValue(i) => Some(*i),
            _ => None,
        })
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, request spans arrive at the collector as an
/// OTLP/HTTP protobuf export, each with its request id and response status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_an_otlp_collector_with_the_request_id() {
    let collector = Receiver::start().await;
    let endpoint = collector.url.trim_end_matches("/hooks").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("traces.db").display());
    let server = Process::serve(
        &url,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "simrenew-test"),
            // Export every 100 ms instead of the SDK's 5 s, so the test waits less.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let response = crate::helpers::http_client()
        .get(format!("{}/healthz", server.base_url))
        .header("X-Request-Id", "otlp-probe-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let mut found = None;
    for _ in 0..200 {
        for request in collector.requests() {
            assert_eq!(request.method, "POST");
            assert_eq!(request.path, "/v1/traces", "the OTLP/HTTP path for traces");
            assert_eq!(request.headers["content-type"], "application/x-protobuf");
            let export = ExportTraceServiceRequest::decode(request.body.as_slice())
                .expect("an OTLP protobuf export");
            for resource_spans in &export.resource_spans {
                let resource = resource_spans.resource.as_ref().expect("a resource");
                for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                    if string_attribute(&span.attributes, "request_id") == Some("otlp-probe-1") {
                        found = Some((resource.attributes.clone(), span.clone()));
                    }
                }
            }
        }
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (resource, span) = found.expect("the request's span was exported within 10 s");
    assert_eq!(
        string_attribute(&resource, "service.name"),
        Some("simrenew-test")
    );
    assert_eq!(span.name, "request", "{:?}", span.attributes);
    assert_eq!(string_attribute(&span.attributes, "method"), Some("GET"));
    assert_eq!(string_attribute(&span.attributes, "path"), Some("/healthz"));
    assert_eq!(
        int_attribute(&span.attributes, "http.response.status_code"),
        Some(200),
        "{:?}",
        span.attributes
    );
    // A server span (SPAN_KIND_SERVER = 2).
    assert_eq!(span.kind, 2);
}

/// The container's HEALTHCHECK command: success against a serving instance, failure
/// (exit 1, with the reason) when nothing answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_command_tells_a_serving_instance_from_none() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("health.db").display());
    let server = Process::serve(&url, &[]).await;
    let healthz = format!("{}/healthz", server.base_url);
    let up = cli_output(&url, &["healthcheck", "--url", &healthz]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    drop(server);
    let down = cli_output(&url, &["healthcheck", "--url", &healthz]);
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains(&healthz));
}
