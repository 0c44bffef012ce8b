use faceplate_tests::TestApp;
use reqwest::Method;

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn_with(&["eu", "us"], "").await;
    let health = app.call(Method::GET, "/healthz", None, None).await.expect(200);
    assert_eq!(health.body["status"], "ok");
    let ready = app.call(Method::GET, "/readyz", None, None).await.expect(200);
    assert_eq!(ready.body["stores"], serde_json::json!(["control", "region:eu", "region:us"]));

    app.call(Method::GET, "/v1/me", None, None).await.expect(401);
    app.call(Method::GET, "/no/such/route", None, None).await.expect(404);
    let metrics = app.call(Method::GET, "/metrics", None, None).await.expect(200);
    let text = &metrics.text;
    assert!(metrics.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    assert!(text.contains(r#"faceplate_http_requests_total{method="GET",route="/v1/me",status="401"} 1"#), "{text}");
    assert!(text.contains(r#"faceplate_http_requests_total{method="GET",route="/healthz",status="200"} 1"#));
    assert!(text.contains(r#"route="unmatched",status="404""#), "raw paths never become labels");
    assert!(text.contains("faceplate_http_request_duration_seconds_bucket{"));
    assert!(!text.contains("/no/such/route"));
}

#[tokio::test]
async fn interactive_docs_are_served_offline() {
    let app = TestApp::spawn().await;
    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("https://"), "the docs page loads nothing from the internet");
    let js = app.client.get(app.url("/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(js.status(), 200);
}
