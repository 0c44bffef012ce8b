//! Request bodies for the image endpoints, in any of the forms clients send: multipart uploads (files and
//! fields), URL-encoded forms (Face++ clients) and JSON objects. Every part is bounded as it is read, so an
//! oversized upload is refused without being buffered whole.

use std::collections::BTreeMap;

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{HttpRequest, web};
use base64::Engine as _;
use futures_util::StreamExt;

use crate::error::{ApiError, ErrorCode};

/// Where an image comes from: its bytes, or a URL still to fetch (see `image_url`).
#[derive(Debug)]
pub enum ImageInput {
    Bytes(Vec<u8>),
    Url { field: String, address: String },
}

impl ImageInput {
    pub async fn load(self, fetcher: &crate::image_url::ImageFetcher) -> Result<Vec<u8>, ApiError> {
        match self {
            ImageInput::Bytes(bytes) => Ok(bytes),
            ImageInput::Url { field, address } => fetcher.fetch(&field, &address).await,
        }
    }
}

/// Bounds for one request.
#[derive(Debug, Clone, Copy)]
pub struct FormLimits {
    /// Largest image, as a file part or after base64 decoding.
    pub max_image_bytes: usize,
    /// Largest text field.
    pub max_text_bytes: usize,
    pub max_fields: usize,
}

impl FormLimits {
    /// The whole body: two images (compare) in base64, plus the text fields.
    fn max_body_bytes(&self) -> usize {
        2 * (self.max_image_bytes * 4 / 3 + 4) + self.max_fields * self.max_text_bytes.min(64 * 1024)
    }
}

/// The fields of a form; file parts are kept apart from text fields.
#[derive(Debug, Default)]
pub struct Fields {
    text: BTreeMap<String, String>,
    files: BTreeMap<String, Vec<u8>>,
}

impl Fields {
    pub async fn read(req: &HttpRequest, payload: web::Payload, limits: FormLimits) -> Result<Fields, ApiError> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match mime.as_str() {
            "multipart/form-data" => read_multipart(req, payload, limits).await,
            "application/x-www-form-urlencoded" => {
                let body = read_body(payload, limits.max_body_bytes()).await?;
                let mut fields = Fields::default();
                for (name, value) in url::form_urlencoded::parse(&body) {
                    fields.insert_text(name.into_owned(), value.into_owned(), &limits)?;
                }
                Ok(fields)
            }
            "application/json" => {
                let body = read_body(payload, limits.max_body_bytes()).await?;
                let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
                    .map_err(|e| ApiError::bad_arguments(format!("the body must be a JSON object: {e}")))?;
                let mut fields = Fields::default();
                for (name, value) in object {
                    let text = match value {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Number(n) => n.to_string(),
                        serde_json::Value::Bool(b) => if b { "1" } else { "0" }.to_string(),
                        serde_json::Value::Null => continue,
                        // Lists (face_tokens, tags, embedding) travel comma-separated, as in Face++ forms.
                        serde_json::Value::Array(items) => join_list(&name, items)?,
                        serde_json::Value::Object(_) => {
                            return Err(ApiError::bad_arguments(format!("{name}: expected a string, number or list")));
                        }
                    };
                    fields.insert_text(name, text, &limits)?;
                }
                Ok(fields)
            }
            _ => Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send multipart/form-data, application/x-www-form-urlencoded or application/json",
            )),
        }
    }

    fn insert_text(&mut self, name: String, value: String, limits: &FormLimits) -> Result<(), ApiError> {
        // A base64 image may be as large as the image limit allows; other fields are small.
        let limit =
            if name.starts_with("image_base64") { limits.max_image_bytes * 4 / 3 + 4 } else { limits.max_text_bytes };
        if value.len() > limit {
            return Err(if name.starts_with("image_base64") {
                ApiError::new(
                    ErrorCode::ImageFileTooLarge,
                    format!("{name}: the image is larger than {} bytes", limits.max_image_bytes),
                )
            } else {
                ApiError::bad_arguments(format!("{name}: longer than {limit} bytes"))
            });
        }
        self.check_new(&name, limits)?;
        self.text.insert(name, value);
        Ok(())
    }

    fn check_new(&self, name: &str, limits: &FormLimits) -> Result<(), ApiError> {
        if self.text.contains_key(name) || self.files.contains_key(name) {
            return Err(ApiError::bad_arguments(format!("{name}: given more than once")));
        }
        if self.text.len() + self.files.len() >= limits.max_fields {
            return Err(ApiError::bad_arguments(format!("too many fields (at most {})", limits.max_fields)));
        }
        Ok(())
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.text.get(name).map(String::as_str)
    }

    pub fn has(&self, name: &str) -> bool {
        self.text.contains_key(name) || self.files.contains_key(name)
    }

    /// Every field name that is not in `known`, for rejecting misspelt arguments.
    pub fn unknown<'a>(&'a self, known: &[&str]) -> Vec<&'a str> {
        self.text.keys().chain(self.files.keys()).map(String::as_str).filter(|n| !known.contains(n)).collect()
    }

    /// An integer option with a default and an allowed range.
    /// A comma-separated list (or a JSON list); empty items are dropped. Absent: empty.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.text(name)
            .map(|raw| raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default()
    }

    pub fn int(&self, name: &str, default: i64, range: std::ops::RangeInclusive<i64>) -> Result<i64, ApiError> {
        match self.text(name) {
            None | Some("") => Ok(default),
            Some(raw) => raw.trim().parse::<i64>().ok().filter(|v| range.contains(v)).ok_or_else(|| {
                ApiError::bad_arguments(format!("{name}: must be an integer from {} to {}", range.start(), range.end()))
            }),
        }
    }

    /// The image from `<file>` (upload), `<base64>` or `<url>`, in that order of precedence (as Face++).
    /// The image from `image_file`, `image_base64` or `image_url`; none of them is MISSING_ARGUMENTS naming
    /// `missing`.
    pub fn require_image(&mut self, missing: &str) -> Result<ImageInput, ApiError> {
        self.take_image("image_file", "image_base64", "image_url")?
            .ok_or_else(|| ApiError::new(ErrorCode::MissingArguments, missing.to_string()))
    }

    pub fn take_image(&mut self, file: &str, base64: &str, url: &str) -> Result<Option<ImageInput>, ApiError> {
        if let Some(bytes) = self.files.remove(file) {
            return Ok(Some(ImageInput::Bytes(bytes)));
        }
        if let Some(encoded) = self.text.remove(base64) {
            // Accept data URLs and line-wrapped base64 as clients commonly send them.
            let encoded = encoded.split_once(";base64,").map_or(encoded.as_str(), |(_, data)| data);
            let cleaned: String = encoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            // Padding is optional: strip it and decode without.
            return base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(cleaned.trim_end_matches('='))
                .map(|bytes| Some(ImageInput::Bytes(bytes)))
                .map_err(|_| ApiError::bad_arguments(format!("{base64}: not valid base64")));
        }
        Ok(self.text.remove(url).map(|address| ImageInput::Url { field: url.to_string(), address }))
    }
}

/// A JSON list of strings or numbers as the comma-separated text a form would carry.
fn join_list(name: &str, items: Vec<serde_json::Value>) -> Result<String, ApiError> {
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        match item {
            serde_json::Value::String(s) if !s.contains(',') => parts.push(s),
            serde_json::Value::Number(n) => parts.push(n.to_string()),
            _ => {
                return Err(ApiError::bad_arguments(format!(
                    "{name}: list items must be strings without commas or numbers"
                )));
            }
        }
    }
    Ok(parts.join(","))
}

async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_arguments(format!("unreadable body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(
                ErrorCode::RequestEntityTooLarge,
                format!("the body must be at most {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn read_multipart(req: &HttpRequest, payload: web::Payload, limits: FormLimits) -> Result<Fields, ApiError> {
    let mut multipart = Multipart::new(req.headers(), payload);
    let mut fields = Fields::default();
    while let Some(part) = multipart.next().await {
        let mut part = part.map_err(|e| ApiError::bad_arguments(format!("malformed multipart body: {e}")))?;
        let name =
            part.name().map(str::to_string).ok_or_else(|| ApiError::bad_arguments("a multipart part has no name"))?;
        let is_file =
            part.content_disposition().and_then(|d| d.get_filename()).is_some() || name.starts_with("image_file");
        let limit = if is_file { limits.max_image_bytes } else { limits.max_text_bytes };
        fields.check_new(&name, &limits)?;
        let bytes = match part.bytes(limit).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => return Err(ApiError::bad_arguments(format!("{name}: unreadable part: {e}"))),
            Err(_) if is_file => {
                return Err(ApiError::new(
                    ErrorCode::ImageFileTooLarge,
                    format!("{name}: the image is larger than {} bytes", limits.max_image_bytes),
                ));
            }
            Err(_) => return Err(ApiError::bad_arguments(format!("{name}: longer than {limit} bytes"))),
        };
        if is_file {
            fields.files.insert(name, bytes.to_vec());
        } else {
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|_| ApiError::bad_arguments(format!("{name}: not UTF-8 text")))?;
            fields.insert_text(name, text, &limits)?;
        }
    }
    Ok(fields)
}
