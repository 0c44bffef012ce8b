//! Text and document reading end to end: real PP-OCRv4 models, images rendered with real fonts, real HTTP.

use base64::Engine as _;
use faceplate_tests::render;
use faceplate_tests::{Resp, TestApp};
use serde_json::{Value, json};

async fn ocr_key(app: &TestApp) -> String {
    let tenant = app.create_tenant("acme", None).await;
    app.create_key(&tenant, &["ocr"]).await.1
}

/// The benchmark's distorted MRZ page `index` (synthetic, seed 2026).
fn distorted_mrz(index: u32) -> faceplate_synth::Sample {
    faceplate_synth::generate(faceplate_synth::Kind::Mrz, faceplate_synth::Distortion::Distorted, 2026, index).unwrap()
}

async fn post_image(app: &TestApp, path: &str, token: &str, image: &[u8]) -> Resp {
    let body = json!({"image_base64": base64::engine::general_purpose::STANDARD.encode(image)});
    app.post(path, token, body).await
}

fn field<'a>(fields: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(fields, |v, k| &v[*k])
}

#[tokio::test]
async fn an_id_card_gives_a_verified_number_and_a_wrong_check_digit_is_unreadable() {
    let app = TestApp::spawn().await;
    let token = ocr_key(&app).await;
    // 110101199003071233: check character 3 (ISO 7064 MOD 11-2), born 1990-03-07, odd 17th digit = male.
    let card =
        render::id_card_front("张三", "男", "汉", "1990年3月7日", "北京市东城区景山前街4号", "110101199003071233");
    let body = post_image(&app, "/v1/ocr/idcard", &token, &card).await.expect(200).body;
    let front = &body["fields"]["front"];
    assert_eq!(body["fields"]["side"], "front", "{body}");
    assert_eq!(field(front, &["id_number", "value", "number"]), "110101199003071233", "{body}");
    assert_eq!(field(front, &["id_number", "status"]), "valid");
    assert_eq!(field(front, &["name", "value"]), "张三");
    assert_eq!(field(front, &["birth_date", "value"]), "1990-03-07");

    // The same card with X as the check character: read, but not returned as a number.
    let card =
        render::id_card_front("张三", "男", "汉", "1990年3月7日", "北京市东城区景山前街4号", "11010119900307123X");
    let body = post_image(&app, "/v1/ocr/idcard", &token, &card).await.expect(200).body;
    let number = &body["fields"]["front"]["id_number"];
    assert_eq!(number["status"], "unreadable", "{body}");
    assert!(number["value"].is_null());
}

#[tokio::test]
async fn a_bank_card_gives_a_luhn_valid_number_and_its_network() {
    let app = TestApp::spawn().await;
    let token = ocr_key(&app).await;
    let card = render::bank_card("6222 0212 3456 7894", "12/29", "ZHANG SAN");
    let resp = post_image(&app, "/v1/ocr/bankcard", &token, &card).await.expect(200);
    let fields = &resp.body["fields"];
    assert_eq!(field(fields, &["number", "value", "number"]), "6222021234567894", "{}", resp.text);
    assert_eq!(field(fields, &["number", "value", "display"]), "6222 0212 3456 7894");
    assert_eq!(fields["network"], "union_pay");
    assert_eq!(field(fields, &["holder_name", "value"]), "ZHANG SAN");
    assert_eq!(resp.body["lines"], json!([]), "the unmasked number is not repeated in the raw lines");
    assert_eq!(resp.headers.get("cache-control").unwrap(), "no-store");
}

/// Embossed names stand far apart and are found word by word; a word's box reached into the gap where the
/// neighbouring raised letter casts its shadow, and a letter was read there (`THOMAS S CHEN`, `MARK KLOPEZ`).
#[tokio::test]
async fn an_embossed_holder_name_has_no_letter_from_the_word_beside_it() {
    let app = TestApp::spawn().await;
    let token = ocr_key(&app).await;
    for (index, holder) in [(489, "THOMAS CHEN"), (201, "MARK LOPEZ")] {
        let sample =
            faceplate_synth::generate(faceplate_synth::Kind::BankCard, faceplate_synth::Distortion::Clean, 2026, index)
                .unwrap();
        let body = post_image(&app, "/v1/ocr/bankcard", &token, &sample.image).await.expect(200).body;
        assert_eq!(field(&body["fields"], &["holder_name", "value"]), holder, "#{index}: {body}");
    }
}

#[tokio::test]
async fn a_passport_mrz_is_read_with_every_check_digit_verified() {
    let app = TestApp::spawn().await;
    let token = ocr_key(&app).await;
    // The ICAO 9303 specimen.
    let page = render::passport_mrz([
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
        "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
    ]);
    let body = post_image(&app, "/v1/ocr/mrz", &token, &page).await.expect(200).body;
    let mrz = &body["fields"];
    assert_eq!(mrz["valid"], true, "{body}");
    assert_eq!(mrz["format"], "td3");
}

/// A passport photographed slanted and upside down (synthetic, seed 2026, distorted #44): the page-wide search
/// finds only its first MRZ line; the zone searched again on its own gives both, every check digit valid.
#[tokio::test]
async fn a_slanted_passport_photo_gives_its_whole_machine_readable_zone() {
    let app = TestApp::spawn().await;
    let token = ocr_key(&app).await;
    let sample = distorted_mrz(44);
    let body = post_image(&app, "/v1/ocr/mrz", &token, &sample.image).await.expect(200).body;
    let mrz = &body["fields"];
    assert_eq!(mrz["valid"], true, "{body}");
    assert_eq!(mrz["format"], "td3");
    assert_eq!(mrz["document_number"]["value"], "CA3999174", "{body}");
}

/// Two slanted pages (synthetic, seed 2026, distorted): #7, a passport whose zone the first look misses and
/// that lies beyond its photo, found only on the whole straightened page; #2, an ID card whose second line has a
/// single filler (`Z152088827GBR8112196F2912095012735<6`), once not taken for a zone line.
#[tokio::test]
async fn a_zone_far_from_the_text_found_first_is_searched_on_the_whole_page() {
    let app = TestApp::spawn().await;
    let token = ocr_key(&app).await;
    for (index, format, number) in [(7, "td3", "J02877072"), (2, "td2", "Z15208882")] {
        let sample = distorted_mrz(index);
        let body = post_image(&app, "/v1/ocr/mrz", &token, &sample.image).await.expect(200).body;
        let mrz = &body["fields"];
        assert_eq!(mrz["valid"], true, "#{index}: {body}");
        assert_eq!(mrz["format"], format, "#{index}");
        assert_eq!(mrz["document_number"]["value"], number, "#{index}: {body}");
    }
}

/// A slanted ID card (synthetic, seed 2026, distorted #15) whose zone's three lines are found whole at the slant:
/// the MRZ endpoint reads those and not the card's printed fields, which the text endpoint reads.
#[tokio::test]
async fn a_zone_found_whole_is_read_without_the_rest_of_the_page() {
    let app = TestApp::spawn().await;
    let token = ocr_key(&app).await;
    let sample = distorted_mrz(15);
    let body = post_image(&app, "/v1/ocr/mrz", &token, &sample.image).await.expect(200).body;
    assert_eq!(body["fields"]["valid"], true, "{body}");
    assert_eq!(body["fields"]["document_number"]["value"], "C81385630", "{body}");
    let texts = |body: &Value| -> Vec<String> {
        body["lines"].as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap().to_string()).collect()
    };
    let read = texts(&body);
    assert!(read.iter().filter(|t| t.contains("<<")).count() >= 3, "the zone's lines: {read:?}");
    let all = texts(&post_image(&app, "/v1/ocr/text", &token, &sample.image).await.expect(200).body);
    assert!(all.len() >= read.len() + 5, "the page's printed fields: {all:?} against {read:?}");
    assert!(all.iter().any(|t| t.contains("ELIZABETH") && !t.contains('<')), "{all:?}");
    assert!(!read.iter().any(|t| t.contains("ELIZABETH") && !t.contains('<')), "{read:?}");
}

#[tokio::test]
async fn text_without_a_document_and_the_scope_rules() {
    let app = TestApp::spawn().await;
    let token = ocr_key(&app).await;
    let blank = render::png(&image::RgbImage::from_pixel(400, 300, image::Rgb([255, 255, 255])));
    let text = post_image(&app, "/v1/ocr/text", &token, &blank).await.expect(200).body;
    assert_eq!(text["lines"], json!([]));
    let resp = post_image(&app, "/v1/ocr/idcard", &token, &blank).await.expect(422);
    assert_eq!(resp.body["error"]["code"], "NO_CARD_FOUND");
    assert_eq!(
        post_image(&app, "/v1/ocr/bankcard", &token, &blank).await.expect(422).body["error"]["code"],
        "NO_CARD_FOUND"
    );
    assert_eq!(
        post_image(&app, "/v1/ocr/mrz", &token, &blank).await.expect(422).body["error"]["code"],
        "NO_CARD_FOUND"
    );

    let card = render::bank_card("4111 1111 1111 1111", "01/30", "JANE DOE");
    let text = post_image(&app, "/v1/ocr/text", &token, &card).await.expect(200).body;
    let lines: Vec<&str> = text["lines"].as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap()).collect();
    // (The recogniser may drop the space in "EXAMPLE BANK"; spaces between words are not guaranteed.)
    assert!(lines.iter().any(|l| l.starts_with("EXAMPLE")) && lines.contains(&"JANE DOE"), "{lines:?}");
    assert!(lines.contains(&"VALID THRU 01/30"), "{lines:?}");

    let tenant = app.create_tenant("faces-only", None).await;
    let (_, face_key) = app.create_key(&tenant, &["face"]).await;
    assert_eq!(
        post_image(&app, "/v1/ocr/text", &face_key, &card).await.expect(403).body["error"]["code"],
        "AUTHORIZATION_ERROR"
    );
}

/// A Face++ caller for a new tenant with an `ocr` key: `call(path, image)` posts the image as `image_file` with
/// the key's `api_key` and `api_secret` form fields, as Face++ clients do.
async fn facepp_ocr_caller<'a>(
    app: &'a TestApp,
    tenant: &str,
) -> impl Fn(&'static str, Vec<u8>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Resp> + 'a>> + 'a {
    let tenant = app.create_tenant(tenant, None).await;
    let key = app
        .post(
            &format!("/admin/v1/tenants/{tenant}/keys"),
            faceplate_tests::OPERATOR_TOKEN,
            json!({"name": "k", "scopes": ["ocr"]}),
        )
        .await
        .expect(201)
        .body;
    let (api_key, api_secret) =
        (key["api_key"].as_str().unwrap().to_string(), key["api_secret"].as_str().unwrap().to_string());
    move |path, image| {
        let form = reqwest::multipart::Form::new()
            .text("api_key", api_key.clone())
            .text("api_secret", api_secret.clone())
            .part("image_file", reqwest::multipart::Part::bytes(image).file_name("image.png"));
        let request = app.client.post(app.url(path)).multipart(form);
        Box::pin(async move { faceplate_tests::read(request.send().await.unwrap()).await })
    }
}

/// The Face++-compatible card endpoints: Face++ field names; no card is an empty list, as in Face++.
#[tokio::test]
async fn facepp_card_endpoints_answer_in_face_plus_plus_shapes() {
    let app = TestApp::spawn().await;
    let call = facepp_ocr_caller(&app, "acme").await;

    let card =
        render::id_card_front("李四", "女", "回", "1985年12月1日", "上海市黄浦区人民大道200号", "310101198512010028");
    let body = call("/cardpp/v1/ocridcard", card).await.expect(200).body;
    let front = &body["cards"][0];
    assert_eq!(
        (front["side"].clone(), front["name"].clone(), front["gender"].clone()),
        (json!("front"), json!("李四"), json!("女")),
        "{body}"
    );
    assert_eq!(front["id_card_number"], "310101198512010028");
    assert_eq!(front["birthday"], "1985-12-01");

    let blank = render::png(&image::RgbImage::from_pixel(400, 300, image::Rgb([255, 255, 255])));
    assert_eq!(call("/cardpp/v1/ocridcard", blank.clone()).await.expect(200).body["cards"], json!([]));
    assert_eq!(call("/cardpp/v1/ocrbankcard", blank).await.expect(200).body["bank_cards"], json!([]));

    let bank = render::bank_card("4111 1111 1111 1111", "01/30", "JANE DOE");
    let body = call("/cardpp/v1/ocrbankcard", bank.clone()).await.expect(200).body;
    assert_eq!(body["bank_cards"][0]["number"], "4111111111111111", "{body}");
    assert_eq!(body["bank_cards"][0]["organization"], "visa");
    let text = call("/imagepp/v1/recognizetext", bank).await.expect(200).body;
    let values: Vec<&str> = text["result"].as_array().unwrap().iter().map(|l| l["value"].as_str().unwrap()).collect();
    assert!(values.contains(&"JANE DOE"), "{values:?}");
    assert_eq!(text["result"][0]["position"].as_array().unwrap().len(), 4);
}

/// Seeded synthetic car scenes (faceplate-synth) with one mainland plate each, and their ground truth.
fn chinese_plate_scenes(count: usize) -> Vec<(Vec<u8>, faceplate_synth::PlateTruth)> {
    plate_scenes("china", 7, count)
}

/// Seeded synthetic car scenes with one plate each from `region`, and their ground truth.
fn plate_scenes(region: &str, seed: u64, count: usize) -> Vec<(Vec<u8>, faceplate_synth::PlateTruth)> {
    (0..)
        .map(|i| {
            faceplate_synth::generate(faceplate_synth::Kind::Plate, faceplate_synth::Distortion::Clean, seed, i)
                .unwrap()
        })
        .filter(|s| s.truth.plates.len() == 1 && s.truth.plates[0].region == region)
        .take(count)
        .map(|s| (s.image, s.truth.plates[0].clone()))
        .collect()
}

/// European plates: the detector, trained on mainland plates, is unsure of them; their national format vouches
/// for them.
#[tokio::test]
async fn european_plates_are_read_in_their_national_format() {
    let app = TestApp::spawn().await;
    let token = ocr_key(&app).await;
    for (scene, truth) in plate_scenes("europe", 2026, 2) {
        let body = post_image(&app, "/v1/plates/recognize", &token, &scene).await.expect(200).body;
        let plate = &body["plates"][0];
        let number: String = plate["number"].as_str().unwrap().chars().filter(char::is_ascii_alphanumeric).collect();
        assert_eq!(number, truth.text, "{body}");
        assert_eq!(plate["status"], "valid", "{body}");
        assert!(["germany", "france", "italy", "spain"].contains(&plate["format"].as_str().unwrap()), "{body}");
    }
}

/// Singapore's white-on-black plates: the plate detector, trained on mainland plates, does not find them; the
/// text detector finds their line of text, and the check letter vouches for it.
#[tokio::test]
async fn singapore_plates_are_found_as_text_and_checked_by_their_letter() {
    let app = TestApp::spawn().await;
    let token = ocr_key(&app).await;
    for (scene, truth) in plate_scenes("singapore", 2026, 3) {
        let body = post_image(&app, "/v1/plates/recognize", &token, &scene).await.expect(200).body;
        let plates = body["plates"].as_array().unwrap();
        let plate = plates.iter().find(|p| p["format"] == "singapore").unwrap_or_else(|| panic!("{body}"));
        assert_eq!(plate["number"], truth.text.as_str(), "{body}");
        assert_eq!(plate["status"], "valid", "{body}");
        assert_eq!(plate["color"], truth.color.as_str(), "{body}");
        // The corners are the text's, inside the plate's frame.
        let (x1, y1, x2, y2) = (truth.quad[0][0], truth.quad[0][1], truth.quad[2][0], truth.quad[2][1]);
        for corner in plate["corners"].as_array().unwrap() {
            let (x, y) = (corner[0].as_f64().unwrap() as f32, corner[1].as_f64().unwrap() as f32);
            assert!(
                (x1 - 4.0..=x2 + 4.0).contains(&x) && (y1 - 4.0..=y2 + 4.0).contains(&y),
                "{corner} vs {:?}",
                truth.quad
            );
        }
    }
}

/// The largest distance from a corner to the ground truth's, in pixels.
fn corner_error(corners: &Value, truth: &[[f32; 2]; 4]) -> f32 {
    let corners = corners.as_array().unwrap();
    corners
        .iter()
        .zip(truth)
        .map(|(c, t)| {
            let (x, y) = (c[0].as_f64().unwrap() as f32, c[1].as_f64().unwrap() as f32);
            ((x - t[0]).powi(2) + (y - t[1]).powi(2)).sqrt()
        })
        .fold(0.0, f32::max)
}

#[tokio::test]
async fn car_scenes_give_their_plates_with_colour_and_corners() {
    let app = TestApp::spawn().await;
    let token = ocr_key(&app).await;
    for (scene, truth) in chinese_plate_scenes(3) {
        let body = post_image(&app, "/v1/plates/recognize", &token, &scene).await.expect(200).body;
        let plate = &body["plates"][0];
        assert_eq!(body["plates"].as_array().unwrap().len(), 1, "{body}");
        assert_eq!(plate["number"], truth.text.as_str(), "{body}");
        assert_eq!(plate["status"], "valid");
        assert!(plate["format"].as_str().unwrap().starts_with("china_"), "{body}");
        assert_eq!(plate["color"], truth.color.as_str(), "{body}");
        let error = corner_error(&plate["corners"], &truth.quad);
        assert!(error < 12.0, "corners {} are {error:.1} px off {:?}", plate["corners"], truth.quad);
        assert!(plate["confidence"].as_f64().unwrap() > 0.5, "{body}");
    }

    // A scene without a car: a clear error, not an empty success.
    let blank = render::png(&image::RgbImage::from_pixel(640, 480, image::Rgb([120, 130, 140])));
    let resp = post_image(&app, "/v1/plates/recognize", &token, &blank).await.expect(422);
    assert_eq!(resp.body["error"]["code"], "NO_LICENSE_PLATE_FOUND");
    assert!(resp.body["request_id"].is_string());

    // Only known regions.
    let (scene, _) = chinese_plate_scenes(1).remove(0);
    let body = json!({
        "image_base64": base64::engine::general_purpose::STANDARD.encode(&scene),
        "region": "mars",
    });
    let resp = app.post("/v1/plates/recognize", &token, body).await.expect(400);
    assert_eq!(resp.body["error"]["code"], "BAD_ARGUMENTS", "{}", resp.text);
}

/// Face++ `imagepp/v1/licenseplate`: `license_plate_number`, the Face++ colour code and `bound` corners; no
/// plate is an empty `results` list, as in Face++.
#[tokio::test]
async fn facepp_license_plate_answers_in_face_plus_plus_shape() {
    let app = TestApp::spawn().await;
    let facepp = facepp_ocr_caller(&app, "parking").await;
    let call = |image: Vec<u8>| facepp("/imagepp/v1/licenseplate", image);
    let (scene, truth) = chinese_plate_scenes(1).remove(0);
    let body = call(scene).await.expect(200).body;
    let result = &body["results"][0];
    assert_eq!(result["license_plate_number"], truth.text.as_str(), "{body}");
    // 0 blue, 1 yellow, 2 black, 3 white, 4 green, 5 small new-energy, 6 large new-energy.
    let expected_code = match (truth.color.as_str(), truth.text.chars().count()) {
        ("blue", _) => 0,
        ("yellow", _) => 1,
        ("black", _) => 2,
        ("white", _) => 3,
        ("green", 8) if matches!(truth.text.chars().nth(2), Some('D' | 'F')) => 5,
        ("green", 8) => 6,
        _ => 4,
    };
    assert_eq!(result["color"], expected_code, "{body}");
    let bound = &result["bound"];
    for (corner, t) in ["left_top", "right_top", "right_bottom", "left_bottom"].iter().zip(truth.quad) {
        let (x, y) = (bound[corner]["x"].as_f64().unwrap() as f32, bound[corner]["y"].as_f64().unwrap() as f32);
        assert!((x - t[0]).abs() < 12.0 && (y - t[1]).abs() < 12.0, "{corner}: {bound} vs {:?}", truth.quad);
    }
    assert!(body["request_id"].is_string() && body["time_used"].is_u64());

    let blank = render::png(&image::RgbImage::from_pixel(640, 480, image::Rgb([120, 130, 140])));
    assert_eq!(call(blank).await.expect(200).body["results"], json!([]));
}
