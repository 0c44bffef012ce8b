//! Fetching an image by URL for a caller (`image_url`). Off unless the operator allow-lists hosts: a server
//! that fetches arbitrary URLs lets callers probe the networks it can reach (SSRF). Only http(s) URLs to an
//! allow-listed host and port are fetched, redirects are not followed, and the download is bounded in size
//! and time.

use std::time::Duration;

use futures_util::StreamExt;

use crate::error::{ApiError, ErrorCode};

#[derive(Debug, Clone)]
pub struct ImageFetcher {
    /// `host` or `host:port`, lower case; empty: fetching is disabled.
    allowed_hosts: Vec<String>,
    max_bytes: usize,
    client: reqwest::Client,
}

impl ImageFetcher {
    pub fn new(allowed_hosts: &[String], max_bytes: usize, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(ImageFetcher {
            allowed_hosts: allowed_hosts.iter().map(|h| h.trim().to_ascii_lowercase()).collect(),
            max_bytes,
            client,
        })
    }

    pub async fn fetch(&self, field: &str, raw: &str) -> Result<Vec<u8>, ApiError> {
        if self.allowed_hosts.is_empty() {
            return Err(ApiError::bad_arguments(format!(
                "{field}: fetching images by URL is disabled on this server; upload the image"
            )));
        }
        let invalid = |why: &str| ApiError::new(ErrorCode::InvalidImageUrl, format!("{field}: {why}"));
        let url = url::Url::parse(raw.trim()).map_err(|_| invalid("not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("only http and https URLs are fetched"));
        }
        let host = url.host_str().ok_or_else(|| invalid("the URL has no host"))?.to_ascii_lowercase();
        let with_port = url.port().map(|p| format!("{host}:{p}"));
        let allowed = self.allowed_hosts.iter().any(|h| *h == host || Some(h) == with_port.as_ref());
        if !allowed || !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("this host is not on the server's allow-list"));
        }
        let timed_out = |e: &reqwest::Error| e.is_timeout();
        let response = self.client.get(url).send().await.map_err(|e| {
            if timed_out(&e) {
                ApiError::new(ErrorCode::ImageDownloadTimeout, format!("{field}: the download timed out"))
            } else {
                invalid("the image could not be downloaded")
            }
        })?;
        if !response.status().is_success() {
            return Err(invalid(&format!("the server answered {}", response.status().as_u16())));
        }
        if response.content_length().is_some_and(|n| n > self.max_bytes as u64) {
            return Err(too_large(field, self.max_bytes));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                if timed_out(&e) {
                    ApiError::new(ErrorCode::ImageDownloadTimeout, format!("{field}: the download timed out"))
                } else {
                    invalid("the download failed")
                }
            })?;
            if body.len() + chunk.len() > self.max_bytes {
                return Err(too_large(field, self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn too_large(field: &str, limit: usize) -> ApiError {
    ApiError::new(ErrorCode::ImageFileTooLarge, format!("{field}: the image is larger than {limit} bytes"))
}
