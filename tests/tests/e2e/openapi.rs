use std::collections::BTreeSet;
use std::path::PathBuf;

use faceplate_api::error::ErrorCode;
use faceplate_tests::TestApp;
use reqwest::Method;
use serde_json::Value;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json")
}

/// The committed document is what the code generates. After an intended API change, regenerate it with
/// `UPDATE_OPENAPI=1 cargo nextest run -E 'test(openapi)'` (or `faceplate openapi > openapi/openapi.json`).
#[tokio::test]
async fn served_document_matches_code_and_committed_file() {
    let app = TestApp::spawn().await;
    let served = app.call(Method::GET, "/openapi.json", None, None).await.expect(200).body;
    let generated: Value = serde_json::from_str(&faceplate_api::routes::openapi().to_pretty_json().unwrap()).unwrap();
    assert_eq!(served, generated, "/openapi.json is the generated document");

    let pretty = format!("{}\n", serde_json::to_string_pretty(&generated).unwrap());
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(committed_path(), &pretty).unwrap();
    }
    let committed = std::fs::read_to_string(committed_path()).expect("openapi/openapi.json exists");
    let committed: Value = serde_json::from_str(&committed).expect("committed document is JSON");
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo nextest run -E 'test(openapi)'` and commit it"
    );
}

#[test]
fn document_is_openapi_3_1_and_documents_every_operation_fully() {
    let doc: Value = serde_json::from_str(&faceplate_api::routes::openapi().to_json().unwrap()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."), "OpenAPI 3.1");
    assert_eq!(doc["info"]["license"]["identifier"], "Apache-2.0");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert!(schemes.contains_key("api_key") && schemes.contains_key("operator_token"));

    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(operation_ids.insert(id.to_string()), "duplicate operationId {id}");
            assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()), "{id}: no tag");
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("500") && responses.contains_key("503"), "{id}: server errors");
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            // Public on purpose: probes, metrics and the transparency report.
            let is_ops = path.starts_with("/healthz")
                || path.starts_with("/readyz")
                || path.starts_with("/metrics")
                || path.starts_with("/transparency/");
            assert!(secured || is_ops, "{id}: every API operation names its security scheme");
            if secured {
                assert!(responses.contains_key("401"), "{id}: documents 401");
            }
            if path.starts_with("/v1/") {
                assert!(responses.contains_key("403"), "{id}: documents 403");
            }
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/ErrorEnvelope", "{id} {status}: error envelope");
                }
            }
        }
    }
    assert!(operation_ids.len() >= 20, "all operations are documented: {operation_ids:?}");

    // Every reference resolves.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "$ref" {
                        out.push(v.as_str().unwrap().to_string());
                    } else {
                        refs(v, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected ref {r}"));
        assert!(doc["components"]["schemas"][name].is_object(), "dangling $ref {r}");
    }

    // The error-code table is in the document, and the code enum lists every code.
    let description = doc["info"]["description"].as_str().unwrap();
    let codes: Vec<_> = doc["components"]["schemas"]["ErrorCode"]["oneOf"]
        .as_array()
        .map(|v| v.iter().filter_map(|c| c["enum"][0].as_str().or(c["const"].as_str())).collect())
        .or_else(|| {
            doc["components"]["schemas"]["ErrorCode"]["enum"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
        })
        .unwrap();
    for code in ErrorCode::ALL {
        assert!(description.contains(&format!("`{}`", code.as_str())), "{code} in the description");
        assert!(codes.contains(&code.as_str()), "{code} in the ErrorCode schema");
    }
}
