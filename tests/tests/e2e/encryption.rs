//! Encryption at rest: face embeddings are stored only as AES-256-GCM ciphertext under their tenant's data
//! key; rotation re-encrypts them and destroys the old key; deleting the tenant destroys its keys, so a copy of
//! its rows kept elsewhere (a backup) no longer decrypts.

use std::sync::Arc;

use base64::Engine as _;
use diesel::RunQueryDsl;
use faceplate_store::crypto::{Keyring, LocalKeyProvider, MasterKey};
use faceplate_store::{FaceToken, TenantId};
use faceplate_tests::{OPERATOR_TOKEN, SERVER_SECRET, TestApp, cli_json, test_image};
use serde_json::json;

#[derive(diesel::QueryableByName)]
struct StoredFace {
    #[diesel(sql_type = diesel::sql_types::Binary)]
    embedding: Vec<u8>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    key_version: Option<i32>,
}

fn stored(app: &TestApp, token: &str) -> StoredFace {
    diesel::sql_query("SELECT embedding, key_version FROM faces WHERE token = $1")
        .bind::<diesel::sql_types::Text, _>(token)
        .get_result(&mut app.dbs.region_connection("local"))
        .unwrap()
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn tenant_keys(app: &TestApp, tenant: &str) -> i64 {
    let url = faceplate_store::db::DatabaseUrl::parse(&app.dbs.control_url).unwrap();
    let mut conn = faceplate_store::db::connect(&url).unwrap();
    diesel::sql_query("SELECT COUNT(*) AS n FROM tenant_keys WHERE tenant_id = $1")
        .bind::<diesel::sql_types::Text, _>(tenant)
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n
}

/// Plaintext embedding bytes, as the platform reads them.
async fn plaintext(app: &TestApp, tenant: &str, face: &str) -> Vec<u8> {
    let tenant = app.stores().control().get_tenant(&TenantId::parse(tenant).unwrap()).await.unwrap();
    let data = app.stores().tenant_data(&tenant).unwrap();
    let record = data.get_face(&FaceToken::parse(face).unwrap()).await.unwrap();
    record.embedding.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn contains_any_window(haystack: &[u8], needle: &[u8]) -> bool {
    needle.chunks(16).filter(|c| c.len() == 16).any(|w| haystack.windows(16).any(|h| h == w))
}

#[tokio::test]
async fn templates_are_ciphertext_at_rest_and_rotation_and_deletion_destroy_keys() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let consent = app.allow_biometrics(&tenant).await;
    let (_, token) = app.create_key(&tenant, &["face"]).await;
    let image = base64::engine::general_purpose::STANDARD.encode(test_image("astronaut.png"));
    let detect = json!({"image_base64": image, "consent_id": consent});
    let detected = app.post("/v1/faces/detect", &token, detect).await.expect(200).body;
    let face = detected["faces"][0]["face_token"].as_str().unwrap().to_string();

    // Stored: ciphertext of version 1, with no 16-byte run of the plaintext in it.
    let plain = plaintext(&app, &tenant, &face).await;
    assert_eq!(plain.len(), 128 * 4);
    let row = stored(&app, &face);
    assert_eq!(row.key_version, Some(1));
    assert_eq!(row.embedding.len(), 12 + plain.len() + 16, "nonce, ciphertext, tag");
    assert!(!contains_any_window(&row.embedding, &plain), "plaintext embedding bytes in the store");
    assert_eq!(tenant_keys(&app, &tenant), 1);

    // Everything that reads templates still works: compare, and a FaceSet search (its index loads them).
    let compare = json!({"face_token1": face, "face_token2": face, "consent_id": consent});
    let same = app.post("/v1/faces/compare", &token, compare.clone()).await.expect(200).body;
    assert!(same["confidence"].as_f64().unwrap() > 90.0, "{same}");
    let set = app.post("/v1/facesets", &token, json!({"outer_id": "crew"})).await.expect(201).body["faceset"]
        ["faceset_token"]
        .as_str()
        .unwrap()
        .to_string();
    let add = json!({"face_tokens": [face], "consent_id": consent});
    app.post(&format!("/v1/facesets/{set}/faces"), &token, add).await.expect(200);
    let search = json!({"faceset_tokens": [set], "face_token": face, "consent_id": consent});
    let found = app.post("/v1/facesets/search", &token, search.clone()).await.expect(200).body;
    assert_eq!(found["results"][0]["face_token"], face.as_str(), "{found}");

    // A backup of the row, taken now, opens with the tenant's keys (so the check below can fail).
    let backup = stored(&app, &face).embedding;
    let control = app.stores().control().database().clone();
    let provider = Arc::new(LocalKeyProvider::new(&MasterKey::derived_from(SERVER_SECRET.as_bytes()).0));
    let tenant_id = TenantId::parse(&tenant).unwrap();
    let keys = Keyring::new(provider.clone(), control.clone()).cipher(&tenant_id, Some(1)).await.unwrap();
    assert_eq!(keys.open(1, &face, &backup).unwrap(), plain);

    // Rotation: a new key encrypts the template again; the old key is destroyed; reads still work.
    let rotation = cli_json(&app.cli(&["--json", "tenant", "rotate-key", "acme"]));
    assert_eq!((rotation["new_version"].as_i64(), rotation["reencrypted"].as_i64()), (Some(2), Some(1)));
    assert_eq!(rotation["destroyed"], json!([1]));
    let row = stored(&app, &face);
    assert_eq!(row.key_version, Some(2));
    assert_ne!(row.embedding, backup);
    assert_eq!(tenant_keys(&app, &tenant), 1);
    assert!(
        app.post("/v1/faces/compare", &token, compare).await.expect(200).body["confidence"].as_f64().unwrap() > 90.0
    );
    let app = app.restart().await;
    // The graceful stop wrote the set's index snapshot: sealed too.
    let snapshots = files_under(&app.index_dir());
    assert!(!snapshots.is_empty(), "no index snapshot in {}", app.index_dir().display());
    for file in &snapshots {
        let bytes = std::fs::read(file).unwrap();
        assert!(bytes.starts_with(b"FPSEAL1"), "{} is not sealed", file.display());
        assert!(!contains_any_window(&bytes, &plain), "plaintext embedding bytes in {}", file.display());
    }
    let found = app.post("/v1/facesets/search", &token, search).await.expect(200).body;
    assert_eq!(found["results"][0]["face_token"], face.as_str(), "{found}");
    let events = app.cli(&["--json", "audit", "verify", "--tenant", "acme"]);
    assert!(events.status.success());

    // The pre-rotation backup no longer opens: its key is gone.
    let keys = Keyring::new(provider.clone(), control.clone()).cipher(&tenant_id, Some(2)).await.unwrap();
    assert!(keys.open(1, &face, &backup).is_err());

    // Deleting the tenant deletes its keys: a backup of its current rows is unreadable too.
    let current = stored(&app, &face).embedding;
    app.call(
        reqwest::Method::DELETE,
        &format!("/admin/v1/tenants/{tenant}?immediately=true"),
        Some(OPERATOR_TOKEN),
        None,
    )
    .await
    .expect(200);
    assert_eq!(tenant_keys(&app, &tenant), 0);
    let fresh = Keyring::new(provider, control).cipher(&tenant_id, None).await.unwrap();
    assert!(fresh.open(2, &face, &current).is_err() && fresh.open(1, &face, &current).is_err());
}

#[tokio::test]
async fn templates_stored_before_encryption_are_encrypted_on_the_next_start() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("legacy", None).await;
    let consent = app.allow_biometrics(&tenant).await;
    let (_, token) = app.create_key(&tenant, &["face"]).await;
    let image = base64::engine::general_purpose::STANDARD.encode(test_image("astronaut.png"));
    let detect = json!({"image_base64": image, "consent_id": consent});
    let detected = app.post("/v1/faces/detect", &token, detect).await.expect(200).body;
    let face = detected["faces"][0]["face_token"].as_str().unwrap().to_string();
    let plain = plaintext(&app, &tenant, &face).await;
    // As an older version stored it: plaintext, no key version.
    diesel::sql_query("UPDATE faces SET embedding = $1, key_version = NULL WHERE token = $2")
        .bind::<diesel::sql_types::Binary, _>(&plain)
        .bind::<diesel::sql_types::Text, _>(&face)
        .execute(&mut app.dbs.region_connection("local"))
        .unwrap();
    assert_eq!(plaintext(&app, &tenant, &face).await, plain, "still readable before the restart");

    let app = app.restart().await;
    let row = stored(&app, &face);
    assert_eq!(row.key_version, Some(1));
    assert!(!contains_any_window(&row.embedding, &plain));
    let compare = json!({"face_token1": face, "face_token2": face, "consent_id": consent});
    assert!(
        app.post("/v1/faces/compare", &token, compare).await.expect(200).body["confidence"].as_f64().unwrap() > 90.0
    );
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}
