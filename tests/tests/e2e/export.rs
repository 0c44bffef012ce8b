//! Data portability: `GET /v1/export` streams everything the tenant holds, and nothing of another tenant's.

use std::collections::BTreeMap;

use base64::Engine as _;
use faceplate_tests::{TestApp, test_image};
use serde_json::{Value, json};

#[tokio::test]
async fn export_streams_everything_the_tenant_holds_and_nothing_else() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let other = app.create_tenant("globex", None).await;
    let consent = app.allow_biometrics(&tenant).await;
    let other_consent = app.allow_biometrics(&other).await;
    let (_, token) = app.create_key(&tenant, &["face", "admin"]).await;
    let (_, face_only) = app.create_key(&tenant, &["face"]).await;
    let (_, other_token) = app.create_key(&other, &["face"]).await;
    let image = base64::engine::general_purpose::STANDARD.encode(test_image("astronaut.png"));
    let detect = json!({"image_base64": image, "consent_id": consent});
    let face = app.post("/v1/faces/detect", &token, detect).await.expect(200).body["faces"][0]["face_token"]
        .as_str()
        .unwrap()
        .to_string();
    app.post("/v1/faces/detect", &other_token, json!({"image_base64": image, "consent_id": other_consent}))
        .await
        .expect(200);
    let set = app.post("/v1/facesets", &token, json!({"outer_id": "crew"})).await.expect(201).body["faceset"]
        ["faceset_token"]
        .as_str()
        .unwrap()
        .to_string();
    let add = json!({"face_tokens": [face], "consent_id": consent});
    app.post(&format!("/v1/facesets/{set}/faces"), &token, add).await.expect(200);

    assert_eq!(app.get("/v1/export", &face_only).await.expect(403).error_code(), "AUTHORIZATION_ERROR");
    let response = app.client.get(app.url("/v1/export")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        *kinds.entry(r["kind"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(records.first().unwrap()["data"]["format"], "faceplate-export/1");
    assert_eq!(records.first().unwrap()["data"]["tenant"]["id"], tenant.as_str());
    let end = records.last().unwrap();
    assert_eq!(end["kind"], "end", "the export ends with its counts");
    for (kind, n) in end["data"]["counts"].as_object().unwrap() {
        assert_eq!(kinds.get(kind).copied().unwrap_or(0) as u64, n.as_u64().unwrap(), "{kind}");
    }
    // Three keys: the two above and the one `allow_biometrics` accepted the DPA and recorded the consent with.
    assert_eq!((kinds["key"], kinds["face"], kinds["faceset"], kinds["faceset_member"]), (3, 1, 1, 1));
    assert!(kinds["audit_event"] >= 3 && kinds["usage_event"] >= 1, "{kinds:?}");

    // The face comes with its embedding (decrypted: the tenant's own data), and no secret leaves.
    let exported = records.iter().find(|r| r["kind"] == "face").unwrap();
    assert_eq!(exported["data"]["face_token"], face.as_str());
    let embedding =
        base64::engine::general_purpose::STANDARD.decode(exported["data"]["embedding"].as_str().unwrap()).unwrap();
    assert_eq!(embedding.len(), 128 * 4);
    let norm: f32 = embedding.chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).powi(2)).sum();
    assert!((norm - 1.0).abs() < 0.01, "a unit vector, not ciphertext: {norm}");
    assert!(
        !text.contains(&other) && !text.contains("secret_hash") && !text.contains(token.split('.').nth(1).unwrap())
    );

    // The export itself is in the audit log.
    let audit = app.get("/v1/audit-events", &token).await.expect(200).body;
    assert!(audit["events"].as_array().unwrap().iter().any(|e| e["action"] == "tenant.exported"));
}

#[tokio::test]
async fn a_restriction_of_processing_stops_biometric_operations_and_keeps_the_data() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let created = app
        .post(
            &format!("/admin/v1/tenants/{tenant}/keys"),
            faceplate_tests::OPERATOR_TOKEN,
            json!({"name": "k", "scopes": ["face", "admin"]}),
        )
        .await
        .expect(201)
        .body;
    let token = created["token"].as_str().unwrap().to_string();
    let (api_key, api_secret) = (created["api_key"].as_str().unwrap(), created["api_secret"].as_str().unwrap());
    let consent = app.allow_biometrics(&tenant).await;
    let image = base64::engine::general_purpose::STANDARD.encode(test_image("astronaut.png"));
    let detect = json!({"image_base64": image, "consent_id": consent});
    let face = app.post("/v1/faces/detect", &token, detect.clone()).await.expect(200).body["faces"][0]["face_token"]
        .as_str()
        .unwrap()
        .to_string();

    let restricted = app.post("/v1/processing/restrict", &token, json!({})).await.expect(200).body;
    assert_eq!(restricted["processing_restricted"], true);
    assert_eq!(
        app.post("/v1/faces/detect", &token, detect.clone()).await.expect(403).error_code(),
        "PROCESSING_RESTRICTED"
    );
    let compare = json!({"face_token1": face, "face_token2": face, "consent_id": consent});
    assert_eq!(
        app.post("/v1/faces/compare", &token, compare.clone()).await.expect(403).error_code(),
        "PROCESSING_RESTRICTED"
    );
    let facepp = app
        .client
        .post(app.url("/facepp/v3/detect"))
        .form(&[
            ("api_key", api_key),
            ("api_secret", api_secret),
            ("image_base64", image.as_str()),
            ("consent_id", consent.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(facepp.status(), 403);
    // The data stays, and can be read and exported.
    app.get(&format!("/v1/faces/{face}"), &token).await.expect(200);
    let export = app.client.get(app.url("/v1/export")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(export.status(), 200);

    let resumed = app.post("/v1/processing/resume", &token, json!({})).await.expect(200).body;
    assert_eq!(resumed["processing_restricted"], false);
    app.post("/v1/faces/compare", &token, compare).await.expect(200);
    let audit = app.get("/v1/audit-events", &token).await.expect(200).body;
    let actions: Vec<&str> =
        audit["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"tenant.processing_restricted") && actions.contains(&"tenant.processing_resumed"));
}

#[tokio::test]
async fn retention_settings_shorten_token_life_and_purge_old_templates_everywhere() {
    use diesel::RunQueryDsl;
    let app = TestApp::spawn_with(&["local"], "[faces]\npurge_interval_secs = 1\n").await;
    let tenant = app.create_tenant("acme", None).await;
    let consent = app.allow_biometrics(&tenant).await;
    let (_, token) = app.create_key(&tenant, &["face", "admin"]).await;
    let defaults = app.get("/v1/settings/retention", &token).await.expect(200).body;
    assert_eq!(
        (defaults["effective_face_token_ttl_hours"].as_i64(), defaults["template_retention_days"].is_null()),
        (Some(72), true)
    );
    for bad in [json!({"face_token_ttl_hours": 0}), json!({"template_retention_days": -1}), json!({"ttl": 1})] {
        app.call(reqwest::Method::PUT, "/v1/settings/retention", Some(&token), Some(bad)).await.expect(400);
    }
    let set = app
        .call(
            reqwest::Method::PUT,
            "/v1/settings/retention",
            Some(&token),
            Some(json!({"face_token_ttl_hours": 2, "template_retention_days": 1})),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        (set["effective_face_token_ttl_hours"].as_i64(), set["template_retention_days"].as_i64()),
        (Some(2), Some(1))
    );

    // A new face token lives 2 hours, not the server's 72.
    let image = base64::engine::general_purpose::STANDARD.encode(test_image("astronaut.png"));
    let detect = json!({"image_base64": image, "consent_id": consent});
    let face = app.post("/v1/faces/detect", &token, detect).await.expect(200).body["faces"][0]["face_token"]
        .as_str()
        .unwrap()
        .to_string();
    #[derive(diesel::QueryableByName)]
    struct Expiry {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        ttl: i64,
    }
    let expiry: Expiry = diesel::sql_query("SELECT expires_at - created_at AS ttl FROM faces WHERE token = $1")
        .bind::<diesel::sql_types::Text, _>(&face)
        .get_result(&mut app.dbs.region_connection("local"))
        .unwrap();
    assert_eq!(expiry.ttl, 2 * 3_600_000);

    // A FaceSet member older than the retention is deleted by the background job, from the set too.
    let set = app.post("/v1/facesets", &token, json!({"outer_id": "crew"})).await.expect(201).body["faceset"]
        ["faceset_token"]
        .as_str()
        .unwrap()
        .to_string();
    let add = json!({"face_tokens": [face], "consent_id": consent});
    app.post(&format!("/v1/facesets/{set}/faces"), &token, add).await.expect(200);
    diesel::sql_query("UPDATE faces SET created_at = created_at - 2 * 86400000 WHERE token = $1")
        .bind::<diesel::sql_types::Text, _>(&face)
        .execute(&mut app.dbs.region_connection("local"))
        .unwrap();
    let mut status = 0;
    for _ in 0..100 {
        status = app.get(&format!("/v1/faces/{face}"), &token).await.status.as_u16();
        if status == 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 404, "the old template was not purged");
    let kept = app.get(&format!("/v1/facesets/{set}"), &token).await.expect(200).body;
    assert_eq!(kept["faceset"]["face_count"], 0);
}
