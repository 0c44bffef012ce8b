//! Consent attestations end to end: no biometric call runs before the tenant accepts the data processing terms,
//! nor without a consent that is valid, unexpired, unrevoked and covers the purpose; templates record their
//! consent; revoking it (or erasing the subject) deletes every template made under it, in every FaceSet and
//! index, with a receipt; a restricted subject is neither processed nor matched.

use base64::Engine as _;
use chrono::{Duration, Utc};
use faceplate_tests::{Resp, TestApp, test_image};
use serde_json::{Value, json};

const EVIDENCE: &str = "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7";

fn b64(photo: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(test_image(photo))
}

/// A tenant that accepted the terms, with an admin+face key; returns (tenant id, token).
async fn ready_tenant(app: &TestApp, name: &str) -> (String, String) {
    let tenant = app.create_tenant(name, None).await;
    let (_, token) = app.create_key(&tenant, &["admin", "face"]).await;
    let version = app.get("/v1/dpa", &token).await.expect(200).body["current_version"].clone();
    app.post("/v1/dpa/acceptance", &token, json!({"version": version})).await.expect(200);
    (tenant, token)
}

fn consent_body(subject: &str, purposes: &[&str]) -> Value {
    json!({
        "subject_ref": subject,
        "purposes": purposes,
        "legal_basis": "explicit_consent",
        "jurisdiction": "DE",
        "collected_at": (Utc::now() - Duration::minutes(1)).to_rfc3339(),
        "evidence_sha256": EVIDENCE,
        "collected_by": "kiosk 7",
    })
}

async fn record(app: &TestApp, token: &str, subject: &str, purposes: &[&str]) -> String {
    let resp = app.post("/v1/consents", token, consent_body(subject, purposes)).await.expect(201);
    resp.body["consent_id"].as_str().unwrap().to_string()
}

async fn detect(app: &TestApp, token: &str, consent: &str, photo: &str) -> Resp {
    app.post("/v1/faces/detect", token, json!({"image_base64": b64(photo), "consent_id": consent})).await
}

async fn detect_token(app: &TestApp, token: &str, consent: &str, photo: &str) -> String {
    let body = detect(app, token, consent, photo).await.expect(200).body;
    body["faces"][0]["face_token"].as_str().unwrap().to_string()
}

async fn enrol(app: &TestApp, token: &str, set: &str, consent: &str, photo: &str, user: &str) -> String {
    let body = json!({"image_base64": b64(photo), "consent_id": consent, "user_id": user});
    let resp = app.post(&format!("/v1/facesets/{set}/enrol"), token, body).await.expect(200);
    resp.body["face_token"].as_str().unwrap().to_string()
}

/// The user ids a search finds above the 1e-4 threshold.
async fn found(app: &TestApp, token: &str, set: &str, consent: &str, photo: &str) -> Vec<String> {
    let body = json!({"faceset_tokens": [set], "image_base64": b64(photo), "consent_id": consent,
        "threshold": "1e-4", "top_k": 10});
    let resp = app.post("/v1/facesets/search", token, body).await.expect(200);
    resp.body["results"].as_array().unwrap().iter().map(|r| r["user_id"].as_str().unwrap().to_string()).collect()
}

fn count(app: &TestApp, sql: &str) -> i64 {
    app.dbs.count_in_region("local", sql)
}

async fn create_set(app: &TestApp, token: &str) -> String {
    let resp = app.post("/v1/facesets", token, json!({"display_name": "staff"})).await.expect(201);
    resp.body["faceset"]["faceset_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn biometric_calls_need_the_terms_and_a_consent_that_covers_the_purpose() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let (_, token) = app.create_key(&tenant, &["admin", "face"]).await;

    // No biometric call before the terms are accepted; reading them is allowed.
    let refused = detect(&app, &token, "cns_x", "astronaut.png").await.expect(403);
    assert_eq!(refused.error_code(), "DPA_NOT_ACCEPTED");
    let dpa = app.get("/v1/dpa", &token).await.expect(200).body;
    assert_eq!(dpa["accepted"], false);
    assert!(dpa["text"].as_str().unwrap().contains("Data Processing Terms"));
    let wrong = app.post("/v1/dpa/acceptance", &token, json!({"version": "1999-01-01"})).await.expect(400);
    assert_eq!(wrong.error_code(), "BAD_ARGUMENTS");
    let (_, face_only) = app.create_key(&tenant, &["face"]).await;
    let version = dpa["current_version"].clone();
    app.post("/v1/dpa/acceptance", &face_only, json!({"version": version})).await.expect(403);
    let accepted = app.post("/v1/dpa/acceptance", &token, json!({"version": version})).await.expect(200).body;
    assert_eq!((accepted["accepted"].clone(), accepted["accepted_version"].clone()), (json!(true), version.clone()));

    // Without a consent, or with one that does not exist, nothing is processed.
    let missing = app.post("/v1/faces/detect", &token, json!({"image_base64": b64("astronaut.png")})).await;
    assert_eq!(missing.expect(403).error_code(), "CONSENT_REQUIRED");
    for bogus in ["nonsense", "cns_0000000000000000000000000000"] {
        assert_eq!(detect(&app, &token, bogus, "astronaut.png").await.expect(403).error_code(), "CONSENT_REQUIRED");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) AS n FROM faces"), 0, "refused calls store nothing");

    // Recording validates every field.
    for (field, value) in [
        ("purposes", json!(["face_tracking"])),
        ("purposes", json!([])),
        ("legal_basis", json!("legitimate_interest")),
        ("jurisdiction", json!("germany")),
        ("evidence_sha256", json!("abc")),
        ("collected_at", json!((Utc::now() + Duration::hours(2)).to_rfc3339())),
        ("expires_at", json!((Utc::now() - Duration::hours(1)).to_rfc3339())),
        ("subject_ref", json!("")),
    ] {
        let mut body = consent_body("ann", &["face_detection"]);
        body[field] = value;
        let resp = app.post("/v1/consents", &token, body).await.expect(400);
        assert_eq!(resp.error_code(), "BAD_ARGUMENTS", "{field}: {}", resp.text);
    }

    // A consent for detection only: detection runs and its templates record it; comparison does not.
    let detection = record(&app, &token, "ann", &["face_detection"]).await;
    let face = detect_token(&app, &token, &detection, "obama.jpg").await;
    assert_eq!(app.get(&format!("/v1/faces/{face}"), &token).await.expect(200).body["consent_id"], json!(detection));
    let compare = json!({"face_token1": face, "face_token2": face, "consent_id": detection});
    let wrong_purpose = app.post("/v1/faces/compare", &token, compare).await.expect(403);
    assert_eq!(wrong_purpose.error_code(), "CONSENT_REQUIRED");
    assert!(wrong_purpose.text.contains("face_compare"), "{}", wrong_purpose.text);

    // An expired consent, and a revoked one, are refused.
    let mut expired = consent_body("ann", &["face_detection"]);
    expired["collected_at"] = json!((Utc::now() - Duration::days(2)).to_rfc3339());
    expired["expires_at"] = json!((Utc::now() - Duration::days(1)).to_rfc3339());
    let expired = app.post("/v1/consents", &token, expired).await.expect(201).body["consent_id"].clone();
    let resp = detect(&app, &token, expired.as_str().unwrap(), "astronaut.png").await.expect(403);
    assert!(resp.text.contains("expired"), "{}", resp.text);
    let revoked = record(&app, &token, "bob", &["face_detection", "face_compare"]).await;
    app.post(&format!("/v1/consents/{revoked}/revoke"), &token, json!({})).await.expect(200);
    let resp = detect(&app, &token, &revoked, "astronaut.png").await.expect(403);
    assert!(resp.text.contains("revoked"), "{}", resp.text);

    // A template of one subject cannot be matched under another subject's consent.
    let bob = record(&app, &token, "bob", &["face_compare"]).await;
    let compare = json!({"face_token1": face, "image_base64_2": b64("obama2.jpg"), "consent_id": bob});
    let other_subject = app.post("/v1/faces/compare", &token, compare).await.expect(403);
    assert!(other_subject.text.contains("another data subject"), "{}", other_subject.text);
    let ann_compare = record(&app, &token, "ann", &["face_compare"]).await;
    let compare = json!({"face_token1": face, "image_base64_2": b64("obama2.jpg"), "consent_id": ann_compare});
    let same = app.post("/v1/faces/compare", &token, compare).await.expect(200).body;
    assert!(same["confidence"].as_f64().unwrap() > 70.0, "{same}");

    // Another tenant's consent is unknown here.
    let (_, other) = ready_tenant(&app, "globex").await;
    let theirs = record(&app, &other, "carol", &["face_detection"]).await;
    assert_eq!(detect(&app, &token, &theirs, "astronaut.png").await.expect(403).error_code(), "CONSENT_REQUIRED");
    app.get(&format!("/v1/consents/{theirs}"), &token).await.expect(404);

    // Face++ calls: refused without consent_id by default; with it, recorded; allowed without it if the tenant
    // says so (its templates then record no consent).
    let (key_id, secret) =
        token.trim_start_matches("fpk_").split_once('.').map(|(i, s)| (format!("fpk_{i}"), s.to_string())).unwrap();
    let facepp = |consent: Option<String>| {
        let mut form = vec![
            ("api_key".to_string(), key_id.clone()),
            ("api_secret".to_string(), secret.clone()),
            ("image_base64".to_string(), b64("astronaut.png")),
        ];
        if let Some(consent) = consent {
            form.push(("consent_id".to_string(), consent));
        }
        let req = app.client.post(app.url("/facepp/v3/detect")).form(&form);
        async move { faceplate_tests::read(req.send().await.unwrap()).await }
    };
    assert_eq!(facepp(None).await.expect(403).error_code(), "CONSENT_REQUIRED");
    let with = facepp(Some(detection.clone())).await.expect(200).body;
    let with_face = with["faces"][0]["face_token"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/v1/faces/{with_face}"), &token).await.expect(200).body["consent_id"],
        json!(detection)
    );
    let settings = app.call(
        reqwest::Method::PUT,
        "/v1/settings/consent",
        Some(&token),
        Some(json!({"facepp_without_consent": "allow"})),
    );
    assert_eq!(settings.await.expect(200).body["facepp_without_consent"], "allow");
    let without = facepp(None).await.expect(200).body;
    let without_face = without["faces"][0]["face_token"].as_str().unwrap();
    assert_eq!(app.get(&format!("/v1/faces/{without_face}"), &token).await.expect(200).body["consent_id"], Value::Null);
    // The native API never runs without one.
    app.post("/v1/faces/detect", &token, json!({"image_base64": b64("astronaut.png")})).await.expect(403);

    // Every step is in the sealed audit log.
    let events = app.get("/v1/audit-events?limit=1000", &token).await.expect(200).body;
    let actions: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in ["dpa.accepted", "consent.recorded", "consent.revoked", "tenant.consent_settings_changed"] {
        assert!(actions.contains(&action), "{action} not in {actions:?}");
    }
}

#[tokio::test]
async fn revoking_a_consent_deletes_every_template_made_under_it() {
    let app = TestApp::spawn().await;
    let (_, token) = ready_tenant(&app, "acme").await;
    let all = ["face_detection", "face_compare", "face_search", "face_enrolment"];
    let obama = record(&app, &token, "obama", &all).await;
    let biden = record(&app, &token, "biden", &all).await;
    let probe = record(&app, &token, "visitor", &["face_search"]).await;
    let staff = create_set(&app, &token).await;
    let visitors = create_set(&app, &token).await;

    // Obama's templates: enrolled twice, detected once and added to two sets by token, and a loose token.
    enrol(&app, &token, &staff, &obama, "obama.jpg", "obama").await;
    enrol(&app, &token, &visitors, &obama, "obama2.jpg", "obama").await;
    let detected = detect_token(&app, &token, &obama, "obama3.jpg").await;
    for set in [&staff, &visitors] {
        let add = json!({"face_tokens": [detected], "consent_id": obama});
        let added = app.post(&format!("/v1/facesets/{set}/faces"), &token, add).await.expect(200).body;
        assert_eq!(added["changed"], 1, "{added}");
    }
    let loose = detect_token(&app, &token, &obama, "obama2.jpg").await;
    enrol(&app, &token, &staff, &biden, "biden.jpg", "biden").await;
    let add = json!({"face_tokens": [loose]});
    assert_eq!(
        app.post(&format!("/v1/facesets/{staff}/faces"), &token, add).await.expect(403).error_code(),
        "CONSENT_REQUIRED"
    );
    // Obama's template cannot be enrolled under Biden's consent.
    let mixed = json!({"face_tokens": [loose], "consent_id": biden});
    let refused = app.post(&format!("/v1/facesets/{staff}/faces"), &token, mixed).await.expect(200).body;
    assert_eq!(
        (refused["changed"].clone(), refused["failure_detail"][0]["reason"].clone()),
        (json!(0), json!("CONSENT_REQUIRED"))
    );

    assert!(found(&app, &token, &staff, &probe, "obama3.jpg").await.contains(&"obama".to_string()));
    assert!(found(&app, &token, &visitors, &probe, "obama.jpg").await.contains(&"obama".to_string()));
    let under = |c: &str| {
        count(&app, &format!("SELECT COUNT(*) AS n FROM faces WHERE consent_id = '{c}'"))
            + count(&app, &format!("SELECT COUNT(*) AS n FROM faceset_faces WHERE consent_id = '{c}'"))
    };
    assert_eq!(under(&obama), 4 + 4, "4 templates, 4 set entries");

    let receipt = app.post(&format!("/v1/consents/{obama}/revoke"), &token, json!({})).await.expect(200).body;
    let receipt = &receipt["receipt"];
    assert_eq!(receipt["faces_deleted"], 4, "{receipt}");
    assert_eq!(receipt["faceset_entries_deleted"], 4, "{receipt}");
    assert_eq!(receipt["consents_revoked"], json!([obama]));
    assert_eq!(receipt["facesets"].as_array().unwrap().len(), 2);
    assert_eq!(receipt["deleted_sha256"].as_str().unwrap().len(), 64);

    // Gone from the store, from the sets and from search, at once; Biden is untouched.
    assert_eq!(under(&obama), 0);
    for face in [&detected, &loose] {
        app.get(&format!("/v1/faces/{face}"), &token).await.expect(404);
    }
    assert_eq!(found(&app, &token, &staff, &probe, "obama3.jpg").await, Vec::<String>::new());
    assert_eq!(found(&app, &token, &visitors, &probe, "obama.jpg").await, Vec::<String>::new());
    assert_eq!(found(&app, &token, &staff, &probe, "biden.jpg").await, vec!["biden".to_string()]);
    let set = app.get(&format!("/v1/facesets/{staff}"), &token).await.expect(200).body;
    assert_eq!(set["faceset"]["face_count"], 1, "{set}");

    // The consent keeps its receipt, cannot be used or revoked again.
    let kept = app.get(&format!("/v1/consents/{obama}"), &token).await.expect(200).body;
    assert!(kept["revoked_at"].is_string());
    assert_eq!(kept["receipt"]["faces_deleted"], 4);
    app.post(&format!("/v1/consents/{obama}/revoke"), &token, json!({})).await.expect(409);
    assert_eq!(detect(&app, &token, &obama, "obama.jpg").await.expect(403).error_code(), "CONSENT_REQUIRED");
    app.post("/v1/consents/cns_0000000000000000000000000000/revoke", &token, json!({})).await.expect(404);

    // After a restart the sets load from the database and snapshots: still nothing of Obama.
    let app = app.restart().await;
    assert_eq!(found(&app, &token, &staff, &probe, "obama3.jpg").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_data_subject_can_be_restricted_resumed_and_erased() {
    let app = TestApp::spawn().await;
    let (_, token) = ready_tenant(&app, "acme").await;
    let enrolment = record(&app, &token, "alice", &["face_detection", "face_enrolment"]).await;
    let searching = record(&app, &token, "alice", &["face_search"]).await;
    let probe = record(&app, &token, "visitor", &["face_search"]).await;
    let set = create_set(&app, &token).await;
    enrol(&app, &token, &set, &enrolment, "obama.jpg", "alice").await;
    let token_of_alice = detect_token(&app, &token, &enrolment, "obama2.jpg").await;
    assert_eq!(found(&app, &token, &set, &probe, "obama3.jpg").await, vec!["alice".to_string()]);

    // Restricted: her consents are refused and her templates are not matched; nothing is deleted.
    let restrict = app.post("/v1/subjects/restrict", &token, json!({"subject_ref": "alice"})).await.expect(200);
    assert_eq!(restrict.body["processing_restricted"], true);
    let refused = detect(&app, &token, &enrolment, "obama.jpg").await.expect(403);
    assert_eq!(refused.error_code(), "PROCESSING_RESTRICTED");
    assert_eq!(found(&app, &token, &set, &probe, "obama3.jpg").await, Vec::<String>::new());
    app.get(&format!("/v1/faces/{token_of_alice}"), &token).await.expect(200);
    // Not even a Face++ call the tenant lets run without consent may match her template.
    let allow = json!({"facepp_without_consent": "allow"});
    app.call(reqwest::Method::PUT, "/v1/settings/consent", Some(&token), Some(allow)).await.expect(200);
    let facepp_compare = json!({"face_token1": token_of_alice, "face_token2": token_of_alice});
    let refused = app.post("/facepp/v3/compare", &token, facepp_compare.clone()).await.expect(403);
    assert_eq!(refused.error_code(), "PROCESSING_RESTRICTED");

    // Resumed: matched again.
    let resume = app.post("/v1/subjects/resume", &token, json!({"subject_ref": "alice"})).await.expect(200);
    assert_eq!(resume.body["processing_restricted"], false);
    app.post("/facepp/v3/compare", &token, facepp_compare).await.expect(200);
    assert_eq!(found(&app, &token, &set, &probe, "obama3.jpg").await, vec!["alice".to_string()]);

    // Erased: every consent revoked, every template gone.
    let erased = app.post("/v1/subjects/erase", &token, json!({"subject_ref": "alice"})).await.expect(200).body;
    assert_eq!(erased["receipt"]["faces_deleted"], 2, "{erased}");
    let mut revoked: Vec<String> =
        erased["receipt"]["consents_revoked"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().into()).collect();
    revoked.sort();
    let mut expected = vec![enrolment.clone(), searching.clone()];
    expected.sort();
    assert_eq!(revoked, expected);
    assert_eq!(found(&app, &token, &set, &probe, "obama3.jpg").await, Vec::<String>::new());
    app.get(&format!("/v1/faces/{token_of_alice}"), &token).await.expect(404);
    let listed = app.get("/v1/consents?subject_ref=alice", &token).await.expect(200).body;
    assert!(listed["consents"].as_array().unwrap().iter().all(|c| c["revoked_at"].is_string()), "{listed}");
    let alice = format!("SELECT COUNT(*) AS n FROM faces WHERE consent_id IN ('{enrolment}', '{searching}')");
    assert_eq!(count(&app, &alice), 0);
    // The searches' own probes were stored under the visitor's consent, which erasing Alice leaves alone.
    assert!(count(&app, &format!("SELECT COUNT(*) AS n FROM faces WHERE consent_id = '{probe}'")) > 0);

    for path in ["/v1/subjects/erase", "/v1/subjects/restrict"] {
        let resp = app.post(path, &token, json!({"subject_ref": "nobody"})).await.expect(404);
        assert_eq!(resp.error_code(), "SUBJECT_NOT_FOUND");
    }
}

/// The store-level guarantee behind revocation: once a consent is revoked no new template can be stored
/// under it, even by a request that checked the consent just before.
#[tokio::test]
async fn a_template_cannot_be_stored_under_a_consent_revoked_mid_request() {
    let app = TestApp::spawn().await;
    let (tenant, token) = ready_tenant(&app, "acme").await;
    let consent = record(&app, &token, "dave", &["face_detection"]).await;
    app.post(&format!("/v1/consents/{consent}/revoke"), &token, json!({})).await.expect(200);
    let tenant = app.stores().control().get_tenant(&faceplate_store::TenantId::parse(&tenant).unwrap()).await.unwrap();
    let data = app.stores().tenant_data(&tenant).unwrap();
    let record = faceplate_store::FaceRecord {
        token: faceplate_store::FaceToken::generate(),
        image_id: "img".into(),
        model: "sface-2021dec".into(),
        embedding: vec![0.1; 128],
        rect: faceplate_store::FaceRect { top: 0, left: 0, width: 10, height: 10 },
        score: 0.9,
        landmarks: json!({}),
        quality: json!({}),
        created_at: Utc::now(),
        expires_at: None,
        user_id: None,
        consent_id: Some(faceplate_store::ConsentId::parse(&consent).unwrap()),
    };
    let refused = data.insert_faces(vec![record]).await.unwrap_err();
    assert!(matches!(refused, faceplate_store::StoreError::ConsentRefused(_)), "{refused:?}");
    assert_eq!(count(&app, "SELECT COUNT(*) AS n FROM faces"), 0);
}
