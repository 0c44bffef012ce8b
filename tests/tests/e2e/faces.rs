//! The face API end to end: real models, real photos, real HTTP, the tenant's region store.

use base64::Engine as _;
use faceplate_tests::{TestApp, read, test_image};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn upload(name: &str, field: &str, form: Form) -> Form {
    form.part(field.to_string(), Part::bytes(test_image(name)).file_name(name.to_string()))
}

/// `body` with the tenant's consent id added (every biometric call names the consent it relies on).
fn with_consent(mut body: Value, consent: &str) -> Value {
    body["consent_id"] = json!(consent);
    body
}

async fn detect(app: &TestApp, token: &str, consent: &str, name: &str) -> Value {
    let form = upload(name, "image_file", Form::new().text("consent_id", consent.to_string()));
    let resp = app.client.post(app.url("/v1/faces/detect")).bearer_auth(token).multipart(form).send().await.unwrap();
    read(resp).await.expect(200).body
}

#[tokio::test]
async fn detect_finds_the_astronaut_and_stores_a_token_in_the_home_region() {
    let app = TestApp::spawn_with(&["eu", "us"], "").await;
    let tenant = app.create_tenant("acme", Some("us")).await;
    let consent = app.allow_biometrics(&tenant).await;
    let (_, token) = app.create_key(&tenant, &["face"]).await;

    let body = detect(&app, &token, &consent, "astronaut.png").await;
    assert_eq!(body["face_num"], 1);
    let face = &body["faces"][0];
    let rect = &face["face_rectangle"];
    let near = |v: &Value, want: i64| (v.as_i64().unwrap() - want).abs() <= 6;
    assert!(near(&rect["left"], 179) && near(&rect["top"], 63), "{rect}");
    assert!(near(&rect["width"], 90) && near(&rect["height"], 111), "{rect}");
    assert!(face["landmark"]["nose_tip"]["x"].as_f64().unwrap() > 179.0);
    assert!(face["quality"]["sharpness"].as_f64().unwrap() > 0.0);
    let face_token = face["face_token"].as_str().unwrap();
    assert_eq!(face_token.len(), 32);

    let detail = app.get(&format!("/v1/faces/{face_token}"), &token).await.expect(200);
    assert_eq!(detail.body["face_rectangle"], *rect);
    assert_eq!(detail.body["model"], "sface-2021dec");
    assert!(detail.body["expires_at"].is_string());
    assert!(!detail.text.contains("embedding"), "vectors are not served");

    // The face lives in the tenant's home region only.
    assert!(app.dbs.tenant_rows_in_region("us", &tenant) > 0);
    assert_eq!(app.dbs.tenant_rows_in_region("eu", &tenant), 0);

    // Base64 JSON works the same; an image without a face is a result, not an error.
    let astronaut = json!({"image_base64": b64(&test_image("astronaut.png")), "consent_id": consent});
    let resp = app.post("/v1/faces/detect", &token, astronaut).await;
    assert_eq!(resp.expect(200).body["face_num"], 1);
    let blank = png(200, 200);
    let resp = app.post("/v1/faces/detect", &token, json!({"image_base64": b64(&blank), "consent_id": consent})).await;
    let resp = resp.expect(200);
    assert_eq!((resp.body["face_num"].clone(), resp.body["faces"].clone()), (json!(0), json!([])));
}

#[tokio::test]
async fn compare_separates_the_same_person_from_another() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let consent = app.allow_biometrics(&tenant).await;
    let (_, token) = app.create_key(&tenant, &["face"]).await;
    let mut tokens = Vec::new();
    for name in ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"] {
        let body = detect(&app, &token, &consent, name).await;
        assert_eq!(body["face_num"], 1, "{name}");
        tokens.push(body["faces"][0]["face_token"].as_str().unwrap().to_string());
    }
    let (app_ref, token_ref, tokens_ref, consent_ref) = (&app, &token, &tokens, &consent);
    let compare = |a: usize, b: usize| {
        let body = json!({"face_token1": tokens_ref[a], "face_token2": tokens_ref[b], "consent_id": consent_ref});
        async move { app_ref.post("/v1/faces/compare", token_ref, body).await.expect(200).body }
    };
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        let body = compare(a, b).await;
        let confidence = body["confidence"].as_f64().unwrap();
        assert!(confidence > body["thresholds"]["1e-4"].as_f64().unwrap(), "obama {a}-{b}: {body}");
    }
    for a in 0..3 {
        let body = compare(a, 3).await;
        let confidence = body["confidence"].as_f64().unwrap();
        assert!(confidence < body["thresholds"]["1e-3"].as_f64().unwrap(), "obama {a} vs biden: {body}");
    }
    // A token and an image mix freely; the image's faces get tokens of their own.
    let form = Form::new().text("face_token1", tokens[0].clone()).text("consent_id", consent.clone());
    let form = upload("obama2.jpg", "image_file2", form);
    let resp = app.client.post(app.url("/v1/faces/compare")).bearer_auth(&token).multipart(form).send().await.unwrap();
    let body = read(resp).await.expect(200).body;
    assert!(body["confidence"].as_f64().unwrap() > 70.0, "{body}");
    assert_eq!(body["faces2"][0]["face_token"].as_str().unwrap().len(), 32);
    // A side without a face: no confidence, not an error.
    let body = app
        .post(
            "/v1/faces/compare",
            &token,
            json!({"face_token1": tokens[0], "image_base64_2": b64(&png(100, 100)), "consent_id": consent}),
        )
        .await;
    assert!(body.expect(200).body["confidence"].is_null());
}

#[tokio::test]
async fn facepp_clients_work_by_changing_the_base_url() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let consent = app.allow_biometrics(&tenant).await;
    let created = app
        .post(
            &format!("/admin/v1/tenants/{tenant}/keys"),
            faceplate_tests::OPERATOR_TOKEN,
            json!({"name": "facepp", "scopes": ["face"]}),
        )
        .await
        .expect(201);
    let (api_key, api_secret) =
        (created.body["api_key"].as_str().unwrap(), created.body["api_secret"].as_str().unwrap());

    // detect, URL-encoded with base64, as python-facepp and most SDKs send it.
    let form = [
        ("api_key", api_key),
        ("api_secret", api_secret),
        ("image_base64", &b64(&test_image("astronaut.png"))),
        ("return_attributes", "headpose"),
        ("consent_id", &consent),
    ];
    let resp = app.client.post(app.url("/facepp/v3/detect")).form(&form).send().await.unwrap();
    let body = read(resp).await.expect(200).body;
    assert_eq!(body["face_num"], 1);
    assert!(body["request_id"].is_string() && body["time_used"].is_u64() && body["image_id"].is_string());
    let face = &body["faces"][0];
    assert!(face["face_rectangle"]["top"].is_i64() && face["attributes"]["headpose"]["yaw_angle"].is_number());
    let face_token = face["face_token"].as_str().unwrap();

    // compare, multipart with two Obama photos.
    let form = Form::new().text("api_key", api_key.to_string()).text("api_secret", api_secret.to_string());
    let form = form.text("consent_id", consent.clone());
    let form = upload("obama2.jpg", "image_file2", upload("obama.jpg", "image_file1", form));
    let resp = app.client.post(app.url("/facepp/v3/compare")).multipart(form).send().await.unwrap();
    let body = read(resp).await.expect(200).body;
    let confidence = body["confidence"].as_f64().unwrap();
    assert!(confidence > body["thresholds"]["1e-4"].as_f64().unwrap(), "{body}");
    assert_eq!(body["faces1"].as_array().unwrap().len(), 1);

    // face/getdetail, credentials in the query string.
    let url = app.url(&format!("/facepp/v3/face/getdetail?api_key={api_key}&api_secret={api_secret}"));
    let resp = app.client.post(url).form(&[("face_token", face_token)]).send().await.unwrap();
    let body = read(resp).await.expect(200).body;
    assert_eq!(body["face_token"], face_token);

    // Face++ errors: status and `error_message` as Face++ writes them.
    let expect_error = |form: Vec<(&'static str, String)>, path: &'static str, status: u16, message: &'static str| {
        let req = app.client.post(app.url(path)).form(&form);
        async move {
            let resp = read(req.send().await.unwrap()).await.expect(status);
            assert_eq!(resp.body["error_message"], message, "{}", resp.text);
        }
    };
    let auth = |extra: Vec<(&'static str, String)>| {
        let mut form = vec![("api_key", api_key.to_string()), ("api_secret", api_secret.to_string())];
        form.extend(extra);
        form
    };
    expect_error(vec![("image_base64", "x".into())], "/facepp/v3/detect", 400, "MISSING_ARGUMENTS: api_key").await;
    expect_error(vec![("api_key", api_key.into())], "/facepp/v3/detect", 400, "MISSING_ARGUMENTS: api_secret").await;
    let wrong = vec![("api_key", api_key.to_string()), ("api_secret", "wrong".into())];
    let resp = read(app.client.post(app.url("/facepp/v3/detect")).form(&wrong).send().await.unwrap()).await.expect(401);
    assert_eq!(resp.error_code(), "AUTHENTICATION_ERROR");
    let consented = ("consent_id", consent.clone());
    expect_error(auth(vec![consented.clone()]), "/facepp/v3/detect", 400, "MISSING_ARGUMENTS: image_file").await;
    expect_error(
        auth(vec![("face_token", "0".repeat(32))]),
        "/facepp/v3/face/getdetail",
        400,
        &*Box::leak(format!("INVALID_FACE_TOKEN: {}", "0".repeat(32)).into_boxed_str()),
    )
    .await;
    expect_error(
        auth(vec![
            ("image_base64", b64(&test_image("astronaut.png"))),
            ("return_landmark", "1".into()),
            consented.clone(),
        ]),
        "/facepp/v3/detect",
        400,
        "BAD_ARGUMENTS: return_landmark",
    )
    .await;
    let resp = read(
        app.client
            .post(app.url("/facepp/v3/detect"))
            .form(&auth(vec![
                ("image_base64", b64(&test_image("astronaut.png"))),
                ("return_attributes", "gender,age".into()),
                consented,
            ]))
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(400);
    assert!(resp.body["error_message"].as_str().unwrap().contains("gender"), "named, not faked");
}

#[tokio::test]
async fn bad_images_and_arguments_get_clear_errors() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let consent = app.allow_biometrics(&tenant).await;
    let (_, token) = app.create_key(&tenant, &["face"]).await;
    let (_, ocr_only) = app.create_key(&tenant, &["ocr"]).await;
    let post = |body: Value| app.post("/v1/faces/detect", &token, with_consent(body, &consent));

    assert_eq!(post(json!({})).await.expect(400).error_code(), "MISSING_ARGUMENTS");
    assert_eq!(
        post(json!({"image_base64": b64(b"not an image")})).await.expect(400).error_code(),
        "IMAGE_ERROR_UNSUPPORTED_FORMAT"
    );
    assert_eq!(post(json!({"image_base64": "%%%"})).await.expect(400).error_code(), "BAD_ARGUMENTS");
    let jpeg = test_image("obama.jpg");
    let truncated = post(json!({"image_base64": b64(&jpeg[..jpeg.len() / 2])})).await.expect(400);
    assert_eq!(truncated.error_code(), "IMAGE_ERROR_UNSUPPORTED_FORMAT");
    assert_eq!(post(json!({"image_base64": b64(&png(1, 1))})).await.expect(400).error_code(), "INVALID_IMAGE_SIZE");
    assert_eq!(post(json!({"image_url": "http://169.254.169.254/"})).await.expect(400).error_code(), "BAD_ARGUMENTS");
    assert_eq!(post(json!({"image_file_typo": "x"})).await.expect(400).error_code(), "BAD_ARGUMENTS");

    // Over 2 MB: refused while uploading, as multipart and as base64.
    let big = vec![0u8; 2 * 1024 * 1024 + 1];
    let form = Form::new()
        .text("consent_id", consent.clone())
        .part("image_file", Part::bytes(big.clone()).file_name("big.jpg"));
    let resp =
        read(app.client.post(app.url("/v1/faces/detect")).bearer_auth(&token).multipart(form).send().await.unwrap())
            .await;
    assert_eq!(resp.expect(400).error_code(), "IMAGE_FILE_TOO_LARGE");
    assert_eq!(post(json!({"image_base64": b64(&big)})).await.expect(400).error_code(), "IMAGE_FILE_TOO_LARGE");
    let resp =
        read(app.client.post(app.url("/v1/faces/detect")).bearer_auth(&token).body("x").send().await.unwrap()).await;
    assert_eq!(resp.expect(415).error_code(), "UNSUPPORTED_MEDIA_TYPE");

    // Scope and tenant isolation.
    assert_eq!(
        app.post("/v1/faces/detect", &ocr_only, json!({})).await.expect(403).error_code(),
        "AUTHORIZATION_ERROR"
    );
    let body = detect(&app, &token, &consent, "astronaut.png").await;
    let face_token = body["faces"][0]["face_token"].as_str().unwrap();
    let other = app.create_tenant("other", None).await;
    let other_consent = app.allow_biometrics(&other).await;
    let (_, other_token) = app.create_key(&other, &["face"]).await;
    let resp = app.get(&format!("/v1/faces/{face_token}"), &other_token).await.expect(404);
    assert_eq!(resp.error_code(), "FACE_NOT_FOUND");
    let resp = app
        .post(
            "/v1/faces/compare",
            &other_token,
            json!({"face_token1": face_token, "face_token2": face_token, "consent_id": other_consent}),
        )
        .await;
    assert_eq!(resp.expect(404).error_code(), "FACE_NOT_FOUND");
    assert_eq!(app.get("/v1/faces/nonsense", &token).await.expect(404).error_code(), "FACE_NOT_FOUND");
}

#[tokio::test]
async fn expired_face_tokens_are_gone_and_purged() {
    use faceplate_store::{FaceRecord, FaceRect, FaceToken, Stores};
    let app = TestApp::spawn().await;
    let tenant_id = app.create_tenant("acme", None).await;
    let consent = app.allow_biometrics(&tenant_id).await;
    let (_, token) = app.create_key(&tenant_id, &["face"]).await;
    let config = faceplate_api::config::Config::load(Some(&app.config_path)).unwrap();
    let (stores, _) = Stores::open(&config.stores().unwrap(), faceplate_tests::SERVER_SECRET.as_bytes()).await.unwrap();
    let tenant = stores.control().find_tenant("acme").await.unwrap();
    let expired = FaceToken::generate();
    let now = chrono::Utc::now();
    let record = FaceRecord {
        token: expired.clone(),
        image_id: "img".into(),
        model: "sface-2021dec".into(),
        embedding: vec![0.5; 128],
        rect: FaceRect { top: 1, left: 2, width: 3, height: 4 },
        score: 0.9,
        landmarks: json!({}),
        quality: json!({}),
        created_at: now - chrono::Duration::hours(80),
        expires_at: Some(now - chrono::Duration::hours(8)),
        user_id: None,
        consent_id: None,
    };
    stores.tenant_data(&tenant).unwrap().insert_faces(vec![record]).await.unwrap();
    // Expired: invisible at once, even before the purge runs.
    assert_eq!(app.get(&format!("/v1/faces/{expired}"), &token).await.expect(404).error_code(), "FACE_NOT_FOUND");
    let live =
        detect(&app, &token, &consent, "astronaut.png").await["faces"][0]["face_token"].as_str().unwrap().to_string();
    assert_eq!(stores.purge_expired_faces().await.unwrap(), 1);
    assert_eq!(stores.purge_expired_faces().await.unwrap(), 0);
    app.get(&format!("/v1/faces/{live}"), &token).await.expect(200);
}

/// A plain grey PNG of the given size.
fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(width, height, image::Rgb([128, 128, 128])));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A small web server the tests control: serves a photo, an oversized file, a slow response and a redirect.
async fn image_host() -> std::net::SocketAddr {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let photo = test_image("astronaut.png");
    let server = HttpServer::new(move || {
        let photo = photo.clone();
        App::new()
            .route(
                "/astronaut.png",
                web::get().to(move || {
                    let p = photo.clone();
                    async move { HttpResponse::Ok().body(p) }
                }),
            )
            .route("/big.jpg", web::get().to(|| async { HttpResponse::Ok().body(vec![0u8; 3 * 1024 * 1024]) }))
            .route(
                "/slow.jpg",
                web::get().to(|| async {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    HttpResponse::Ok().finish()
                }),
            )
            .route(
                "/moved.jpg",
                web::get().to(|| async {
                    HttpResponse::Found().insert_header(("location", "http://169.254.169.254/")).finish()
                }),
            )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    tokio::spawn(server.run());
    addr
}

#[tokio::test]
async fn image_url_is_off_by_default_and_bounded_when_allowed() {
    let host = image_host().await;
    let url = |path: &str| format!("http://{host}{path}");

    let closed = TestApp::spawn().await;
    let tenant = closed.create_tenant("acme", None).await;
    let consent = closed.allow_biometrics(&tenant).await;
    let (_, token) = closed.create_key(&tenant, &["face"]).await;
    let body = json!({"image_url": url("/astronaut.png"), "consent_id": consent});
    let resp = closed.post("/v1/faces/detect", &token, body).await.expect(400);
    assert_eq!(resp.error_code(), "BAD_ARGUMENTS");
    assert!(resp.body["error"]["message"].as_str().unwrap().contains("disabled"));

    let engine = format!("image_url_allowed_hosts = [\"{host}\"]\nimage_url_timeout_secs = 1");
    let open = TestApp::spawn_configured(&["local"], "", &engine).await;
    let tenant = open.create_tenant("acme", None).await;
    let consent = open.allow_biometrics(&tenant).await;
    let (_, token) = open.create_key(&tenant, &["face"]).await;
    let detect = |body: Value| open.post("/v1/faces/detect", &token, with_consent(body, &consent));
    assert_eq!(detect(json!({"image_url": url("/astronaut.png")})).await.expect(200).body["face_num"], 1);
    let other_port = format!("http://127.0.0.1:{}/astronaut.png", host.port() + 1);
    for (target, status, code) in [
        (url("/big.jpg"), 400, "IMAGE_FILE_TOO_LARGE"),
        (url("/slow.jpg"), 412, "IMAGE_DOWNLOAD_TIMEOUT"),
        (url("/moved.jpg"), 400, "INVALID_IMAGE_URL"),
        (url("/missing.jpg"), 400, "INVALID_IMAGE_URL"),
        ("http://169.254.169.254/latest/meta-data".to_string(), 400, "INVALID_IMAGE_URL"),
        (other_port, 400, "INVALID_IMAGE_URL"),
        ("file:///etc/passwd".to_string(), 400, "INVALID_IMAGE_URL"),
        (format!("http://user:pw@{host}/astronaut.png"), 400, "INVALID_IMAGE_URL"),
    ] {
        let resp = detect(json!({"image_url": target})).await.expect(status);
        assert_eq!(resp.error_code(), code, "{target}");
    }
}

#[tokio::test]
async fn a_full_inference_queue_answers_503_with_retry_after() {
    let app = TestApp::spawn_configured(&["local"], "", "queue_capacity = 1").await;
    let tenant = app.create_tenant("acme", None).await;
    let consent = app.allow_biometrics(&tenant).await;
    let (_, token) = app.create_key(&tenant, &["face"]).await;
    let photo = test_image("obama3.jpg");
    let requests = (0..12).map(|_| {
        let form = Form::new()
            .text("consent_id", consent.clone())
            .part("image_file", Part::bytes(photo.clone()).file_name("obama3.jpg"));
        let req = app.client.post(app.url("/v1/faces/detect")).bearer_auth(&token).multipart(form);
        async move { read(req.send().await.unwrap()).await }
    });
    let responses = futures_util::future::join_all(requests).await;
    let busy: Vec<_> = responses.iter().filter(|r| r.status == 503).collect();
    assert!(responses.iter().all(|r| r.status == 200 || r.status == 503), "only results or busy");
    assert!(!busy.is_empty(), "one worker and a queue of one cannot take twelve requests at once");
    for resp in busy {
        assert_eq!(resp.error_code(), "SERVER_BUSY");
        assert_eq!(resp.header("retry-after"), Some("1"));
    }
    assert!(responses.iter().any(|r| r.status == 200));
}

#[tokio::test]
async fn crowds_and_unusual_encodings_give_results() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("acme", None).await;
    let consent = app.allow_biometrics(&tenant).await;
    let (_, token) = app.create_key(&tenant, &["face"]).await;
    let detect = |bytes: Vec<u8>| {
        app.post("/v1/faces/detect", &token, json!({"image_base64": b64(&bytes), "consent_id": consent}))
    };

    // A crowd: the astronaut tiled 8 x 7 times (56 faces), as a JPEG under 2 MB.
    let astronaut = image::load_from_memory(&test_image("astronaut.png")).unwrap().to_rgb8();
    let tile = image::imageops::resize(&astronaut, 320, 320, image::imageops::FilterType::Triangle);
    let mut crowd = image::RgbImage::new(320 * 8, 320 * 7);
    for row in 0..7 {
        for col in 0..8 {
            image::imageops::replace(&mut crowd, &tile, col * 320, row * 320);
        }
    }
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(crowd.clone()).write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
    let body = detect(jpeg.into_inner()).await.expect(200).body;
    let faces = body["faces"].as_array().unwrap();
    assert!(faces.len() >= 50, "{} of 56 faces found", faces.len());
    let with_tokens = faces.iter().filter(|f| f["face_token"].is_string()).count();
    assert_eq!(with_tokens, 5, "the five largest get tokens");

    // CMYK JPEG (as print workflows produce): converted, not refused.
    let rgb = astronaut;
    let cmyk: Vec<u8> = rgb
        .pixels()
        .flat_map(|p| {
            let [r, g, b] = p.0.map(|v| v as f32 / 255.0);
            let k = 1.0 - r.max(g).max(b);
            let d = (1.0 - k).max(1e-6);
            [(1.0 - r - k) / d, (1.0 - g - k) / d, (1.0 - b - k) / d, k].map(|v| (v * 255.0).round() as u8)
        })
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(&cmyk, rgb.width() as u16, rgb.height() as u16, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let body = detect(out).await.expect(200).body;
    assert_eq!(body["face_num"], 1, "{body}");

    // 16-bit PNG.
    let mut png16 = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb16(image::DynamicImage::ImageRgb8(rgb).to_rgb16())
        .write_to(&mut png16, image::ImageFormat::Png)
        .unwrap();
    assert_eq!(detect(png16.into_inner()).await.expect(200).body["face_num"], 1);
}
