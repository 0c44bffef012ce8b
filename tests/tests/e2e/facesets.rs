//! FaceSets and 1:N search end to end: real photos, real models, the native and the Face++-compatible API, the
//! in-memory index kept in step with the database, restarts.

use faceplate_tests::{OPERATOR_TOKEN, Resp, TestApp, read, test_image};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// A tenant with one `face` key, ready for biometric calls: (bearer token, Face++ api_key, Face++ api_secret,
/// consent id).
async fn tenant_with_key(app: &TestApp, name: &str) -> (String, String, String, String) {
    let tenant = app.create_tenant(name, None).await;
    let consent = app.allow_biometrics(&tenant).await;
    let key = app
        .post(&format!("/admin/v1/tenants/{tenant}/keys"), OPERATOR_TOKEN, json!({"name": "k", "scopes": ["face"]}))
        .await
        .expect(201)
        .body;
    let text = |v: &Value| v.as_str().unwrap().to_string();
    (text(&key["token"]), text(&key["api_key"]), text(&key["api_secret"]), consent)
}

/// The Face++ calls that process biometric data, and so name a consent.
const FACEPP_BIOMETRIC: &[&str] = &["/detect", "/compare", "/search", "/faceset/addface", "/faceset/async/addface"];

/// A Face++ call: form fields (an `@name` value uploads that test photo), credentials in the form, and the
/// tenant's consent id for a biometric call.
async fn facepp(app: &TestApp, path: &str, creds: &(String, String, String, String), fields: &[(&str, &str)]) -> Resp {
    let mut form = Form::new().text("api_key", creds.1.clone()).text("api_secret", creds.2.clone());
    if FACEPP_BIOMETRIC.contains(&path) {
        form = form.text("consent_id", creds.3.clone());
    }
    for (name, value) in fields {
        form = match value.strip_prefix('@') {
            Some(photo) => form.part(name.to_string(), Part::bytes(test_image(photo)).file_name(photo.to_string())),
            None => form.text(name.to_string(), value.to_string()),
        };
    }
    read(app.client.post(app.url(&format!("/facepp/v3{path}"))).multipart(form).send().await.unwrap()).await
}

/// Native multipart biometric call with the bearer token and the consent id.
async fn native_form(app: &TestApp, path: &str, token: &str, consent: &str, fields: &[(&str, &str)]) -> Resp {
    let mut form = Form::new().text("consent_id", consent.to_string());
    for (name, value) in fields {
        form = match value.strip_prefix('@') {
            Some(photo) => form.part(name.to_string(), Part::bytes(test_image(photo)).file_name(photo.to_string())),
            None => form.text(name.to_string(), value.to_string()),
        };
    }
    read(app.client.post(app.url(path)).bearer_auth(token).multipart(form).send().await.unwrap()).await
}

/// `body` with the consent id added, for a native JSON biometric call.
fn with_consent(mut body: Value, consent: &str) -> Value {
    body["consent_id"] = json!(consent);
    body
}

async fn detect_token(app: &TestApp, token: &str, consent: &str, photo: &str) -> String {
    let body = native_form(app, "/v1/faces/detect", token, consent, &[("image_file", &format!("@{photo}"))])
        .await
        .expect(200)
        .body;
    assert_eq!(body["face_num"], 1, "{photo}: {body}");
    body["faces"][0]["face_token"].as_str().unwrap().to_string()
}

/// Face++ search of one set with a test photo.
async fn search_set(app: &TestApp, creds: &(String, String, String, String), set: &str, photo: &str) -> Value {
    facepp(app, "/search", creds, &[("image_file", &format!("@{photo}")), ("faceset_token", set)])
        .await
        .expect(200)
        .body
}

fn confidence(result: &Value) -> f64 {
    result["confidence"].as_f64().unwrap()
}

/// The acceptance flow with the Face++-compatible API: create → add Obama → search with another Obama
/// photo finds him above the 1e-4 threshold → Biden scores below 1e-3 → restart (graceful, then a crash) →
/// still found → remove → not found → restart → still not found.
#[tokio::test]
async fn facepp_faceset_flow_finds_obama_not_biden_across_restarts_and_removal() {
    let mut app = TestApp::spawn().await;
    let creds = tenant_with_key(&app, "acme").await;
    let created = facepp(
        &app,
        "/faceset/create",
        &creds,
        &[("outer_id", "friends"), ("display_name", "Friends"), ("tags", "vip,team")],
    )
    .await
    .expect(200)
    .body;
    let set = created["faceset_token"].as_str().unwrap().to_string();
    assert_eq!((created["face_added"].clone(), created["face_count"].clone()), (json!(0), json!(0)));

    let mut obama = Vec::new();
    for photo in ["obama.jpg", "obama2.jpg"] {
        let body = facepp(&app, "/detect", &creds, &[("image_file", &format!("@{photo}"))]).await.expect(200).body;
        obama.push(body["faces"][0]["face_token"].as_str().unwrap().to_string());
    }
    let astronaut = facepp(&app, "/detect", &creds, &[("image_file", "@astronaut.png")]).await.expect(200).body["faces"][0]
        ["face_token"]
        .as_str()
        .unwrap()
        .to_string();
    let tokens = format!("{},{},{astronaut}", obama[0], obama[1]);
    let added = facepp(&app, "/faceset/addface", &creds, &[("outer_id", "friends"), ("face_tokens", &tokens)])
        .await
        .expect(200)
        .body;
    assert_eq!((added["face_added"].clone(), added["face_count"].clone()), (json!(3), json!(3)), "{added}");
    assert_eq!(added["failure_detail"], json!([]));
    for token in &obama {
        facepp(&app, "/face/setuserid", &creds, &[("face_token", token), ("user_id", "obama")]).await.expect(200);
    }

    let found = |body: &Value| {
        let top = &body["results"][0];
        top["user_id"] == "obama" && confidence(top) > body["thresholds"]["1e-4"].as_f64().unwrap()
    };
    let hit = search_set(&app, &creds, &set, "obama3.jpg").await;
    assert!(found(&hit), "Obama is found: {hit}");
    assert_eq!(hit["results"][0]["face_token"].as_str().map(|t| obama.contains(&t.to_string())), Some(true));
    assert_eq!(hit["faces"].as_array().unwrap().len(), 1, "the query face is reported: {hit}");
    let biden = search_set(&app, &creds, &set, "biden.jpg").await;
    assert!(
        confidence(&biden["results"][0]) < biden["thresholds"]["1e-3"].as_f64().unwrap(),
        "Biden is nobody here: {biden}"
    );

    app = app.restart().await;
    assert!(found(&search_set(&app, &creds, &set, "obama3.jpg").await), "found after a graceful restart (snapshot)");
    app = app.crash_and_restart().await;
    assert!(found(&search_set(&app, &creds, &set, "obama3.jpg").await), "found after a crash (snapshot + catch-up)");

    let removed =
        facepp(&app, "/faceset/removeface", &creds, &[("faceset_token", &set), ("face_tokens", &obama.join(","))])
            .await
            .expect(200)
            .body;
    assert_eq!((removed["face_removed"].clone(), removed["face_count"].clone()), (json!(2), json!(1)), "{removed}");
    let after = search_set(&app, &creds, &set, "obama3.jpg").await;
    assert_eq!(after["results"][0]["face_token"], astronaut.as_str(), "only the astronaut is left: {after}");
    assert!(confidence(&after["results"][0]) < after["thresholds"]["1e-3"].as_f64().unwrap());
    app = app.crash_and_restart().await;
    let after = search_set(&app, &creds, &set, "obama3.jpg").await;
    assert_eq!(after["results"][0]["face_token"], astronaut.as_str(), "a removal survives a crash: {after}");
    app = app.restart().await;
    let after = search_set(&app, &creds, &set, "obama3.jpg").await;
    assert_eq!(after["results"][0]["face_token"], astronaut.as_str());
}

/// The native API: sets, enrolment from images (idempotent by external_image_id), search with a threshold,
/// by image, face token or embedding, across several sets; face and set deletion reach the index.
#[tokio::test]
async fn native_facesets_enrol_search_and_delete() {
    let app = TestApp::spawn().await;
    let (token, _, _, consent) = tenant_with_key(&app, "acme").await;
    let created = app
        .post(
            "/v1/facesets",
            &token,
            json!({"outer_id": "staff", "display_name": "Staff", "tags": ["hq", "2026_q4"], "user_data": "{\"x\":1}"}),
        )
        .await
        .expect(201)
        .body;
    let staff = created["faceset"]["faceset_token"].as_str().unwrap().to_string();
    assert_eq!(created["faceset"]["tags"], json!(["hq", "2026_q4"]));
    app.post("/v1/facesets", &token, json!({"outer_id": "staff"})).await.expect(409);
    app.post("/v1/facesets", &token, json!({"outer_id": "a,b"})).await.expect(400);
    app.post("/v1/facesets", &token, json!({"outer_id": "x", "colour": "red"})).await.expect(400);
    let visitors = app.post("/v1/facesets", &token, json!({"tags": ["visitors"]})).await.expect(201).body["faceset"]
        ["faceset_token"]
        .as_str()
        .unwrap()
        .to_string();

    // Listing: all, by tag (underscore is not a wildcard), by outer id.
    let list = app.get("/v1/facesets", &token).await.expect(200).body;
    assert_eq!(list["facesets"].as_array().unwrap().len(), 2);
    let tagged = app.get("/v1/facesets?tags=2026_q4", &token).await.expect(200).body;
    assert_eq!(tagged["facesets"].as_array().unwrap().len(), 1);
    assert_eq!(app.get("/v1/facesets?tags=2026xq4", &token).await.expect(200).body["facesets"], json!([]));
    let by_outer = app.get("/v1/facesets?outer_id=staff", &token).await.expect(200).body;
    assert_eq!(by_outer["facesets"][0]["faceset_token"], staff.as_str());

    // Enrol from images; the same external id again adds nothing.
    let enrol = |photo: &'static str, user: &'static str, external: &'static str| {
        let (app, token, staff, consent) = (&app, &token, &staff, &consent);
        async move {
            native_form(
                app,
                &format!("/v1/facesets/{staff}/enrol"),
                token,
                consent,
                &[("image_file", &format!("@{photo}")), ("user_id", user), ("external_image_id", external)],
            )
            .await
        }
    };
    let first = enrol("obama.jpg", "obama", "img-1").await.expect(200).body;
    assert_eq!((first["added"].clone(), first["face_count"].clone()), (json!(true), json!(1)));
    let again = enrol("obama.jpg", "obama", "img-1").await.expect(200).body;
    assert_eq!((again["added"].clone(), again["face_count"].clone()), (json!(false), json!(1)));
    assert_eq!(again["face_token"], first["face_token"]);
    enrol("obama2.jpg", "obama", "img-2").await.expect(200);
    enrol("astronaut.png", "eileen", "img-3").await.expect(200);
    let no_face = native_form(&app, &format!("/v1/facesets/{staff}/enrol"), &token, &consent, &[]).await;
    no_face.expect(400);
    let blank = {
        let mut png = Vec::new();
        image::DynamicImage::new_rgb8(300, 300)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png
    };
    let form =
        Form::new().text("consent_id", consent.clone()).part("image_file", Part::bytes(blank).file_name("blank.png"));
    let resp = read(
        app.client
            .post(app.url(&format!("/v1/facesets/{staff}/enrol")))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(resp.expect(422).body["error"]["code"], "NO_FACE_FOUND");

    // Search by image with a threshold: Obama found, Biden "no match".
    let search = |body: Value| {
        let (app, token, body) = (&app, &token, with_consent(body, &consent));
        async move { app.post("/v1/facesets/search", token, body).await }
    };
    let b64 = |photo: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, test_image(photo));
    let hit =
        search(json!({"faceset_tokens": [staff], "image_base64": b64("obama3.jpg"), "threshold": "1e-4", "top_k": 5}))
            .await
            .expect(200)
            .body;
    let users: Vec<&str> = hit["results"].as_array().unwrap().iter().map(|r| r["user_id"].as_str().unwrap()).collect();
    assert_eq!(users, ["obama", "obama"], "{hit}");
    assert_eq!(hit["faces"].as_array().unwrap().len(), 1);
    let miss = search(json!({"faceset_tokens": [staff], "image_base64": b64("biden.jpg"), "threshold": "1e-3"}))
        .await
        .expect(200)
        .body;
    assert_eq!(miss["results"], json!([]), "no weak match is returned: {miss}");
    let weak = search(json!({"outer_ids": ["staff"], "image_base64": b64("biden.jpg")})).await.expect(200).body;
    assert_eq!(weak["results"].as_array().unwrap().len(), 1, "without a floor the best candidate is returned");

    // By face token, across two sets; the matched face itself is in the results.
    let visitor = detect_token(&app, &token, &consent, "obama3.jpg").await;
    let add = with_consent(json!({"face_tokens": [visitor]}), &consent);
    app.post(&format!("/v1/facesets/{visitors}/faces"), &token, add).await.expect(200);
    let both =
        search(json!({"faceset_tokens": [staff, visitors], "face_token": visitor, "top_k": 10})).await.expect(200).body;
    let found: Vec<&str> =
        both["results"].as_array().unwrap().iter().map(|r| r["faceset_token"].as_str().unwrap()).collect();
    assert_eq!(found.len(), 4, "{both}");
    assert_eq!(both["results"][0]["face_token"], visitor.as_str());
    assert!(both["results"][0]["confidence"].as_f64().unwrap() > 99.0);

    // By embedding: wrong length and garbage are refused.
    search(json!({"faceset_tokens": [staff], "embedding": [0.1, 0.2]})).await.expect(400);
    search(json!({"faceset_tokens": [staff], "embedding": "a,b"})).await.expect(400);
    let unit: Vec<f64> = (0..128).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect();
    search(json!({"faceset_tokens": [staff], "embedding": unit})).await.expect(200);
    search(json!({"faceset_tokens": [staff], "face_token": visitor, "top_k": 101})).await.expect(400);
    search(json!({"face_token": visitor})).await.expect(400);
    search(json!({"faceset_tokens": ["0123456789abcdef0123456789abcdef"], "face_token": visitor})).await.expect(404);

    // Members, user ids, paging.
    let page = app.get(&format!("/v1/facesets/{staff}/faces?limit=2"), &token).await.expect(200).body;
    assert_eq!(page["faces"].as_array().unwrap().len(), 2);
    let next = page["next_after"].as_str().unwrap();
    let rest = app.get(&format!("/v1/facesets/{staff}/faces?limit=2&after={next}"), &token).await.expect(200).body;
    assert_eq!(rest["faces"].as_array().unwrap().len(), 1);
    assert_eq!(rest["faces"][0]["user_id"], "eileen");
    let astronaut = rest["faces"][0]["face_token"].as_str().unwrap().to_string();
    let renamed = app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/faces/{astronaut}"),
            Some(&token),
            Some(json!({"user_id": "collins"})),
        )
        .await
        .expect(200);
    assert_eq!(renamed.body["user_id"], "collins");
    let detail = app.get(&format!("/v1/faces/{astronaut}"), &token).await.expect(200).body;
    assert!(detail["expires_at"].is_null(), "a face kept by a set does not expire: {detail}");

    // Deleting a face removes it from every set and from search at once.
    let obama_tokens: Vec<String> =
        hit["results"].as_array().unwrap().iter().map(|r| r["face_token"].as_str().unwrap().to_string()).collect();
    for face in &obama_tokens {
        app.delete(&format!("/v1/faces/{face}"), &token).await.expect(200);
        app.get(&format!("/v1/faces/{face}"), &token).await.expect(404);
    }
    let gone = search(json!({"faceset_tokens": [staff], "image_base64": b64("obama3.jpg"), "threshold": "1e-4"}))
        .await
        .expect(200)
        .body;
    assert_eq!(gone["results"], json!([]), "{gone}");
    assert_eq!(app.get(&format!("/v1/facesets/{staff}"), &token).await.expect(200).body["faceset"]["face_count"], 1);

    // A set with faces is deleted only with force; then it is gone for search too.
    app.delete(&format!("/v1/facesets/{staff}"), &token).await.expect(409);
    app.delete(&format!("/v1/facesets/{staff}?force=true"), &token).await.expect(200);
    app.get(&format!("/v1/facesets/{staff}"), &token).await.expect(404);
    search(json!({"faceset_tokens": [staff], "face_token": visitor})).await.expect(404);
    // Its faces are released: they expire like any face token again.
    let released = app.get(&format!("/v1/faces/{astronaut}"), &token).await;
    assert!(released.status == 404 || released.body["expires_at"].is_string(), "{}", released.text);
}

/// Another tenant's sets and faces do not exist for a caller.
#[tokio::test]
async fn facesets_are_invisible_to_other_tenants() {
    let app = TestApp::spawn().await;
    let (alice, _, _, alice_consent) = tenant_with_key(&app, "alice").await;
    let bob = tenant_with_key(&app, "bob").await;
    let set = app.post("/v1/facesets", &alice, json!({"outer_id": "mine"})).await.expect(201).body["faceset"]
        ["faceset_token"]
        .as_str()
        .unwrap()
        .to_string();
    let face = detect_token(&app, &alice, &alice_consent, "obama.jpg").await;
    let add = with_consent(json!({"face_tokens": [face]}), &alice_consent);
    app.post(&format!("/v1/facesets/{set}/faces"), &alice, add).await.expect(200);

    app.get(&format!("/v1/facesets/{set}"), &bob.0).await.expect(404);
    app.get(&format!("/v1/facesets/{set}/faces"), &bob.0).await.expect(404);
    app.delete(&format!("/v1/facesets/{set}?force=true"), &bob.0).await.expect(404);
    let probe = with_consent(json!({"faceset_tokens": [set], "embedding": vec![0.1; 128]}), &bob.3);
    app.post("/v1/facesets/search", &bob.0, probe).await.expect(404);
    assert_eq!(app.get("/v1/facesets", &bob.0).await.expect(200).body["facesets"], json!([]));
    // Bob's own set with the same outer id is fine; Alice's face token is unknown to him.
    let bobs = app.post("/v1/facesets", &bob.0, json!({"outer_id": "mine"})).await.expect(201).body["faceset"]
        ["faceset_token"]
        .as_str()
        .unwrap()
        .to_string();
    let add = with_consent(json!({"face_tokens": [face]}), &bob.3);
    let added = app.post(&format!("/v1/facesets/{bobs}/faces"), &bob.0, add).await.expect(200).body;
    assert_eq!(added["failure_detail"][0]["reason"], "INVALID_FACE_TOKEN");
    let facepp_search = facepp(&app, "/search", &bob, &[("outer_id", "mine"), ("face_token", &face)]).await;
    assert_eq!(facepp_search.status, 400);
    let detail = facepp(&app, "/faceset/getdetail", &bob, &[("faceset_token", &set)]).await;
    assert_eq!(detail.expect(400).body["error"]["code"], "INVALID_FACESET_TOKEN");
}

/// Face++ semantics: limits, failure_detail, error codes, paging with start/next, asynchronous tasks.
#[tokio::test]
async fn facepp_faceset_errors_paging_and_async_tasks() {
    let app = TestApp::spawn().await;
    let creds = tenant_with_key(&app, "acme").await;
    let code = |r: Resp| r.expect(400).body["error"]["code"].as_str().unwrap().to_string();
    facepp(&app, "/faceset/create", &creds, &[("outer_id", "a"), ("tags", "x,y")]).await.expect(200);
    assert_eq!(code(facepp(&app, "/faceset/create", &creds, &[("outer_id", "a")]).await), "FACESET_EXIST");
    facepp(&app, "/faceset/create", &creds, &[("outer_id", "b"), ("tags", "y")]).await.expect(200);
    assert_eq!(code(facepp(&app, "/faceset/getdetail", &creds, &[("outer_id", "nope")]).await), "INVALID_OUTER_ID");
    assert_eq!(
        code(facepp(&app, "/faceset/getdetail", &creds, &[("faceset_token", "zz")]).await),
        "INVALID_FACESET_TOKEN"
    );
    assert_eq!(code(facepp(&app, "/faceset/getdetail", &creds, &[]).await), "MISSING_ARGUMENTS");
    assert_eq!(code(facepp(&app, "/faceset/update", &creds, &[("outer_id", "a")]).await), "VOID_REQUEST");
    assert_eq!(
        code(facepp(&app, "/faceset/update", &creds, &[("outer_id", "a"), ("new_outer_id", "b")]).await),
        "NEW_OUTER_ID_EXIST"
    );
    let updated =
        facepp(&app, "/faceset/update", &creds, &[("outer_id", "a"), ("new_outer_id", "c"), ("display_name", "C")])
            .await;
    assert_eq!(updated.expect(200).body["outer_id"], "c");
    let listed = facepp(&app, "/faceset/getfacesets", &creds, &[("tags", "y")]).await.expect(200).body;
    assert_eq!(listed["facesets"].as_array().unwrap().len(), 2);
    let listed = facepp(&app, "/faceset/getfacesets", &creds, &[("tags", "x,y")]).await.expect(200).body;
    assert_eq!(listed["facesets"][0]["outer_id"], "c");
    assert_eq!(listed["facesets"][0]["tags"], "x,y");

    // addface: at most 5 tokens; unknown ones come back in failure_detail.
    let face = facepp(&app, "/detect", &creds, &[("image_file", "@obama.jpg")]).await.expect(200).body["faces"][0]["face_token"]
        .as_str()
        .unwrap()
        .to_string();
    let six = vec![face.clone(); 6].join(",");
    assert_eq!(
        code(facepp(&app, "/faceset/addface", &creds, &[("outer_id", "c"), ("face_tokens", &six)]).await),
        "INVALID_FACE_TOKENS_SIZE"
    );
    let tokens = format!("{face},0123456789abcdef0123456789abcdef,garbage");
    let added =
        facepp(&app, "/faceset/addface", &creds, &[("outer_id", "c"), ("face_tokens", &tokens)]).await.expect(200).body;
    assert_eq!(added["face_added"], 1);
    assert_eq!(added["failure_detail"].as_array().unwrap().len(), 2);
    assert_eq!(added["failure_detail"][0]["reason"], "INVALID_FACE_TOKEN");
    let detail = facepp(&app, "/face/getdetail", &creds, &[("face_token", &face)]).await.expect(200).body;
    assert_eq!(detail["facesets"][0]["outer_id"], "c");

    // The set is not empty: delete refuses unless check_empty=0.
    assert_eq!(code(facepp(&app, "/faceset/delete", &creds, &[("outer_id", "c")]).await), "FACESET_NOT_EMPTY");
    // An empty set cannot be searched.
    assert_eq!(
        code(facepp(&app, "/search", &creds, &[("outer_id", "b"), ("face_token", &face)]).await),
        "EMPTY_FACESET"
    );
    assert_eq!(
        code(
            facepp(&app, "/search", &creds, &[("outer_id", "c"), ("face_token", &face), ("return_result_count", "6")])
                .await
        ),
        "BAD_ARGUMENTS"
    );

    // Asynchronous add of 30 tokens (more than addface takes), then paging through getdetail.
    let mut many = Vec::new();
    for photo in ["obama2.jpg", "obama3.jpg", "biden.jpg"] {
        let body = facepp(&app, "/detect", &creds, &[("image_file", &format!("@{photo}"))]).await.expect(200).body;
        many.push(body["faces"][0]["face_token"].as_str().unwrap().to_string());
    }
    let task = facepp(&app, "/faceset/async/addface", &creds, &[("outer_id", "b"), ("face_tokens", &many.join(","))])
        .await
        .expect(200)
        .body;
    let task_id = task["task_id"].as_str().unwrap().to_string();
    let mut status = Value::Null;
    for _ in 0..100 {
        status = facepp(&app, "/faceset/async/task_status", &creds, &[("task_id", &task_id)]).await.expect(200).body;
        if status["status"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        (status["status"].clone(), status["face_added"].clone(), status["face_count"].clone()),
        (json!(1), json!(3), json!(3)),
        "{status}"
    );
    assert_eq!(
        code(facepp(&app, "/faceset/async/task_status", &creds, &[("task_id", "task_nope")]).await),
        "INVALID_TASK_ID"
    );
    let page = facepp(&app, "/faceset/getdetail", &creds, &[("outer_id", "b"), ("start", "2")]).await.expect(200).body;
    assert_eq!(page["face_tokens"], json!([many[1], many[2]]));
    assert!(page.get("next").is_none());

    let task =
        facepp(&app, "/faceset/async/removeface", &creds, &[("outer_id", "b"), ("face_tokens", "RemoveAllFaceTokens")])
            .await
            .expect(200)
            .body;
    let task_id = task["task_id"].as_str().unwrap().to_string();
    for _ in 0..100 {
        status = facepp(&app, "/faceset/async/task_status", &creds, &[("task_id", &task_id)]).await.expect(200).body;
        if status["status"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!((status["face_removed"].clone(), status["face_count"].clone()), (json!(3), json!(0)), "{status}");
    facepp(&app, "/faceset/delete", &creds, &[("outer_id", "b")]).await.expect(200);
    facepp(&app, "/faceset/delete", &creds, &[("outer_id", "c"), ("check_empty", "0")]).await.expect(200);
    assert_eq!(facepp(&app, "/faceset/getfacesets", &creds, &[]).await.expect(200).body["facesets"], json!([]));
}

/// Many clients adding, removing and searching one set at once (HNSW mode, from 4 faces on): every response
/// is well-formed, and afterwards the index agrees with the database exactly.
#[tokio::test]
async fn concurrent_adds_removes_and_searches_keep_the_index_in_step() {
    let app = TestApp::spawn_with(&["local"], "[facesets]\nexact_search_below = 4\n").await;
    let (token, _, _, consent) = tenant_with_key(&app, "acme").await;
    let set = app.post("/v1/facesets", &token, json!({})).await.expect(201).body["faceset"]["faceset_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut faces = Vec::new();
    for photo in ["obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png", "obama3.jpg"] {
        for _ in 0..3 {
            faces.push(detect_token(&app, &token, &consent, photo).await);
        }
    }
    // Seed, so searches have something to find from the start.
    let seed = with_consent(json!({"face_tokens": faces[..4]}), &consent);
    app.post(&format!("/v1/facesets/{set}/faces"), &token, seed).await.expect(200);

    let (app, token, set, faces, consent) = (&app, &token, &set, &faces, &consent);
    let adder = async move {
        for face in &faces[4..] {
            let add = with_consent(json!({"face_tokens": [face]}), consent);
            app.post(&format!("/v1/facesets/{set}/faces"), token, add).await.expect(200);
        }
    };
    let remover = async move {
        for face in faces.iter().step_by(3) {
            app.post(&format!("/v1/facesets/{set}/faces/remove"), token, json!({"face_tokens": [face]}))
                .await
                .expect(200);
        }
    };
    let searcher = |probe: usize| async move {
        for _ in 0..15 {
            let body = app
                .post(
                    "/v1/facesets/search",
                    token,
                    with_consent(json!({"faceset_tokens": [set], "face_token": faces[probe], "top_k": 20}), consent),
                )
                .await
                .expect(200)
                .body;
            for result in body["results"].as_array().unwrap() {
                assert!(faces.iter().any(|f| result["face_token"] == f.as_str()), "{result}");
            }
        }
    };
    tokio::join!(adder, remover, searcher(1), searcher(7));

    let members: Vec<String> = app.get(&format!("/v1/facesets/{set}/faces"), token).await.expect(200).body["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["face_token"].as_str().unwrap().to_string())
        .collect();
    let count = app.get(&format!("/v1/facesets/{set}"), token).await.expect(200).body["faceset"]["face_count"]
        .as_i64()
        .unwrap();
    assert_eq!(count as usize, members.len());
    // Every member is found by its own face (or its identical twin from the same photo), nothing else is.
    for member in &members {
        let probe = with_consent(json!({"faceset_tokens": [set], "face_token": member, "top_k": 20}), consent);
        let body = app.post("/v1/facesets/search", token, probe).await.expect(200).body;
        let results = body["results"].as_array().unwrap();
        assert!(results[0]["confidence"].as_f64().unwrap() > 99.0, "{member}: {body}");
        for result in results {
            assert!(
                members.iter().any(|m| result["face_token"] == m.as_str()),
                "a removed face was returned: {result}"
            );
        }
    }
}

/// A directory for `faceset import`: 5 photos × 4 crops in per-person folders, an image without a face and one
/// with two faces. Returns how many single-face images it holds.
fn import_dir(dir: &std::path::Path) -> usize {
    let mut singles = 0;
    for (person, photo) in [
        ("obama", "obama.jpg"),
        ("obama", "obama2.jpg"),
        ("obama", "obama3.jpg"),
        ("biden", "biden.jpg"),
        ("eileen", "astronaut.png"),
    ] {
        let image = image::load_from_memory(&test_image(photo)).unwrap();
        std::fs::create_dir_all(dir.join(person)).unwrap();
        for crop in 0..4u32 {
            let (w, h) = (image.width(), image.height());
            let margin = crop * w / 40;
            let variant = image.crop_imm(margin, margin * h / w, w - 2 * margin, h - 2 * margin * h / w).to_rgb8();
            let path = dir.join(person).join(format!("{}-{crop}.jpg", photo.split('.').next().unwrap()));
            variant.save_with_format(&path, image::ImageFormat::Jpeg).unwrap();
            singles += 1;
        }
    }
    std::fs::create_dir_all(dir.join("misc")).unwrap();
    image::RgbImage::from_pixel(320, 240, image::Rgb([200, 200, 200])).save(dir.join("misc/blank.png")).unwrap();
    let (a, b) = (
        image::load_from_memory(&test_image("obama.jpg")).unwrap(),
        image::load_from_memory(&test_image("biden.jpg")).unwrap(),
    );
    let height = 400;
    let (a, b) = (
        a.resize(10_000, height, image::imageops::FilterType::Triangle),
        b.resize(10_000, height, image::imageops::FilterType::Triangle),
    );
    let mut pair = image::RgbImage::new(a.width() + b.width(), height);
    image::imageops::replace(&mut pair, &a.to_rgb8(), 0, 0);
    image::imageops::replace(&mut pair, &b.to_rgb8(), a.width() as i64, 0);
    pair.save(dir.join("misc/pair.jpg")).unwrap();
    singles
}

fn import(
    server: &faceplate_tests::ServerProcess,
    config: &std::path::Path,
    dir: &std::path::Path,
    key: &str,
    consent: &str,
) -> std::process::Child {
    let mut cmd = std::process::Command::new(faceplate_tests::faceplate_bin());
    for (name, _) in std::env::vars() {
        if name.starts_with("FACEPLATE_") {
            cmd.env_remove(name);
        }
    }
    cmd.arg("--config")
        .arg(config)
        .args(["--json", "faceset", "import"])
        .arg(dir)
        .args(["--faceset", "people", "--create", "--quiet", "--concurrency", "2", "--retries", "0"])
        .args(["--url", &server.url(""), "--key", key, "--consent", consent])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// `faceplate faceset import` against a real server process that is killed (SIGKILL) mid-import: a re-run
/// finishes the job; no acknowledged face is lost, none is added twice, no face is left half-added.
#[tokio::test]
async fn faceset_import_resumes_after_the_server_is_killed() {
    let dbs = faceplate_tests::TestDatabases::create(&["local"]);
    let config = dbs.write_config("");
    let images = tempfile::tempdir().unwrap();
    let singles = import_dir(images.path());

    let mut server = faceplate_tests::ServerProcess::start(&config).await;
    let client = faceplate_tests::test_client();
    let tenant = read(
        client
            .post(server.url("/admin/v1/tenants"))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&json!({"name": "acme"}))
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(201)
    .body["tenant"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let consent = faceplate_tests::allow_biometrics(&client, &server.url(""), &tenant).await;
    let key = read(
        client
            .post(server.url(&format!("/admin/v1/tenants/{tenant}/keys")))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&json!({"name": "import", "scopes": ["face"]}))
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(201)
    .body["token"]
        .as_str()
        .unwrap()
        .to_string();

    // Kill the server once a few images are through.
    let mut first = import(&server, &config, images.path(), &key, &consent);
    let journal = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with(".faceplate-import-"))
            .map(|e| e.path())
    };
    let mut lines = 0;
    for _ in 0..1200 {
        lines = journal(images.path()).map(|j| std::fs::read_to_string(j).unwrap().lines().count()).unwrap_or(0);
        if lines >= 5 || first.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(lines >= 5, "the import made progress before the kill");
    server.kill();
    let first = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap()).await.unwrap();
    assert!(
        !first.status.success(),
        "the interrupted run reports failures: {}",
        String::from_utf8_lossy(&first.stderr)
    );

    let server = faceplate_tests::ServerProcess::start(&config).await;
    let second = import(&server, &config, images.path(), &key, &consent);
    let second = tokio::task::spawn_blocking(move || second.wait_with_output().unwrap()).await.unwrap();
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let report: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert!(report["skipped_done_earlier"].as_u64().unwrap() >= 5, "{report}");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["face_count"], singles as u64, "every single-face image enrolled exactly once: {report}");

    // The whole journal: each file has one final outcome; the blank and the pair were skipped.
    let text = std::fs::read_to_string(journal(images.path()).unwrap()).unwrap();
    let outcomes: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let last = |file: &str| outcomes.iter().rev().find(|o| o["file"] == file).unwrap()["outcome"].clone();
    assert_eq!(last("misc/blank.png"), "no_face");
    assert_eq!(last("misc/pair.jpg"), "multiple_faces");

    // No half-added faces: every stored face is in the set, and no image is in it twice.
    assert_eq!(dbs.count_in_region("local", "SELECT COUNT(*) AS n FROM faces"), singles as i64);
    assert_eq!(dbs.count_in_region("local", "SELECT COUNT(*) AS n FROM faceset_faces"), singles as i64);
    assert_eq!(
        dbs.count_in_region("local", "SELECT COUNT(DISTINCT external_image_id) AS n FROM faceset_faces"),
        singles as i64
    );

    // The enrolled faces are searchable, with user ids from the folder names.
    let body = read(
        client
            .post(server.url("/v1/facesets/search"))
            .bearer_auth(&key)
            .json(&json!({"outer_ids": ["people"], "face_token": null, "image_base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, test_image("obama3.jpg")), "top_k": 3, "consent_id": consent}))
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(200)
    .body;
    assert!(body["results"].as_array().unwrap().iter().all(|r| r["user_id"] == "obama"), "{body}");
}

/// Two nodes on the same databases, each with its own in-memory index: a change made through one is seen by
/// the next search on the other.
#[tokio::test]
async fn a_second_node_sees_adds_removes_and_deletion() {
    let a = TestApp::spawn().await;
    let b = a.second_node().await;
    let (token, _, _, consent) = tenant_with_key(&a, "acme").await;
    let set = a.post("/v1/facesets", &token, json!({})).await.expect(201).body["faceset"]["faceset_token"]
        .as_str()
        .unwrap()
        .to_string();
    let obama = detect_token(&a, &token, &consent, "obama.jpg").await;
    let obama2 = detect_token(&a, &token, &consent, "obama2.jpg").await;
    let astronaut = detect_token(&a, &token, &consent, "astronaut.png").await;
    let add = |faces: Value| with_consent(json!({"face_tokens": faces}), &consent);
    a.post(&format!("/v1/facesets/{set}/faces"), &token, add(json!([obama, astronaut]))).await.expect(200);

    let body = json!({"faceset_tokens": [set], "face_token": obama2, "threshold": "1e-4", "top_k": 5});
    let body = with_consent(body, &consent);
    let search = |node: &'static str| {
        let (node, token, body) = (if node == "a" { &a } else { &b }, &token, body.clone());
        async move { node.post("/v1/facesets/search", token, body).await }
    };
    let tokens = |body: &Value| -> Vec<String> {
        body["results"].as_array().unwrap().iter().map(|r| r["face_token"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(tokens(&search("b").await.expect(200).body), vec![obama.clone()], "B loads the set from the database");
    let metrics = b.client.get(b.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("faceplate_faceset_indexes 1") && metrics.contains("faceplate_faceset_index_faces 2"),
        "{metrics}"
    );
    a.post(&format!("/v1/facesets/{set}/faces"), &token, add(json!([obama2]))).await.expect(200);
    assert_eq!(tokens(&search("b").await.expect(200).body).len(), 2, "B sees A's add");
    a.post(&format!("/v1/facesets/{set}/faces/remove"), &token, json!({"face_tokens": [obama]})).await.expect(200);
    assert_eq!(tokens(&search("b").await.expect(200).body), vec![obama2.clone()], "B sees A's removal");
    a.delete(&format!("/v1/facesets/{set}?force=true"), &token).await.expect(200);
    search("b").await.expect(404);
}

/// Configured capacities: faces per set (reported per face, as Face++ does) and sets per tenant.
#[tokio::test]
async fn set_capacity_and_sets_per_tenant_are_enforced() {
    let app = TestApp::spawn_with(&["local"], "[facesets]\nmax_faces_per_set = 2\nmax_sets_per_tenant = 2\n").await;
    let creds = tenant_with_key(&app, "acme").await;
    let (token, consent) = (&creds.0, &creds.3);
    let set =
        app.post("/v1/facesets", token, json!({"outer_id": "one"})).await.expect(201).body["faceset"]["faceset_token"]
            .as_str()
            .unwrap()
            .to_string();
    let faces = [
        detect_token(&app, token, consent, "obama.jpg").await,
        detect_token(&app, token, consent, "obama2.jpg").await,
        detect_token(&app, token, consent, "biden.jpg").await,
    ];
    let add = with_consent(json!({"face_tokens": faces}), consent);
    let added = app.post(&format!("/v1/facesets/{set}/faces"), token, add).await.expect(200).body;
    assert_eq!((added["changed"].clone(), added["face_count"].clone()), (json!(2), json!(2)), "{added}");
    assert_eq!(added["failure_detail"], json!([{"face_token": faces[2], "reason": "QUOTA_EXCEEDED"}]));
    let full =
        native_form(&app, &format!("/v1/facesets/{set}/enrol"), token, consent, &[("image_file", "@astronaut.png")])
            .await;
    assert_eq!(full.expect(409).body["error"]["code"], "LIMIT_REACHED");

    app.post("/v1/facesets", token, json!({})).await.expect(201);
    assert_eq!(app.post("/v1/facesets", token, json!({})).await.expect(409).body["error"]["code"], "LIMIT_REACHED");
    let refused = facepp(&app, "/faceset/create", &creds, &[("outer_id", "three")]).await;
    assert_eq!(refused.expect(400).body["error"]["code"], "FACESET_QUOTA_EXCEEDED");
}

/// Snapshots are a cache: a damaged one is rebuilt from the database, and one that is ahead of the database
/// (a database restored from an older backup) is not trusted.
#[tokio::test]
async fn damaged_or_foreign_snapshots_are_rebuilt_from_the_database() {
    let mut app = TestApp::spawn().await;
    let (token, _, _, consent) = tenant_with_key(&app, "acme").await;
    let set = app.post("/v1/facesets", &token, json!({})).await.expect(201).body["faceset"]["faceset_token"]
        .as_str()
        .unwrap()
        .to_string();
    let obama = detect_token(&app, &token, &consent, "obama.jpg").await;
    let add = with_consent(json!({"face_tokens": [obama]}), &consent);
    app.post(&format!("/v1/facesets/{set}/faces"), &token, add).await.expect(200);
    let probe = with_consent(json!({"faceset_tokens": [set], "face_token": obama, "threshold": "1e-5"}), &consent);
    assert_eq!(
        app.post("/v1/facesets/search", &token, probe.clone()).await.expect(200).body["results"][0]["face_token"],
        obama.as_str()
    );
    app = app.restart().await;
    let snapshots: Vec<_> = walk(&app.index_dir());
    assert_eq!(snapshots.len(), 1, "a snapshot was written at shutdown: {snapshots:?}");

    for damage in [b"not an index".to_vec(), Vec::new()] {
        std::fs::write(&snapshots[0], &damage).unwrap();
        app = app.crash_and_restart().await;
        let body = app.post("/v1/facesets/search", &token, probe.clone()).await.expect(200).body;
        assert_eq!(body["results"][0]["face_token"], obama.as_str(), "rebuilt from the database: {body}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            files.extend(walk(&entry.path()));
        } else {
            files.push(entry.path());
        }
    }
    files
}
