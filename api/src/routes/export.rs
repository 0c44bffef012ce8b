//! Data portability: `GET /v1/export` streams everything the tenant holds as NDJSON, one record per line, page
//! by page, so an export of any size needs no more memory than a page. The first line describes the export and
//! the last one (`"kind": "end"`) carries the counts: an export without it was cut short.

use actix_web::web::Bytes;
use actix_web::{HttpResponse, get, web};
use base64::Engine as _;
use chrono::{Duration, Utc};
use faceplate_store::{AuditEventId, ConsentId, FaceSetRef, FaceSetToken, KeyId, TenantData};
use futures_util::stream;
use serde_json::{Value, json};

use crate::auth::{AdminScope, Caller};
use crate::error::ApiError;
use crate::state::AppState;

const PAGE: i64 = 500;
pub const FORMAT: &str = "faceplate-export/1";

/// Where the export is.
enum Step {
    Header,
    Keys(Option<KeyId>),
    Consents(Option<ConsentId>),
    Faces(Option<String>),
    FaceSets(Option<FaceSetToken>),
    Members { sets: Vec<FaceSetToken>, index: usize, after: Option<i64> },
    Audit(Option<AuditEventId>),
    Usage(Option<String>),
    End,
    Done,
}

struct Export {
    state: web::Data<AppState>,
    data: TenantData,
    step: Step,
    sets: Vec<FaceSetToken>,
    counts: serde_json::Map<String, Value>,
}

fn line(kind: &str, data: Value, out: &mut Vec<u8>) {
    let record = json!({"kind": kind, "data": data});
    out.extend_from_slice(record.to_string().as_bytes());
    out.push(b'\n');
}

impl Export {
    fn count(&mut self, kind: &str, n: usize) {
        let total = self.counts.get(kind).and_then(Value::as_u64).unwrap_or(0) + n as u64;
        self.counts.insert(kind.to_string(), json!(total));
    }

    /// The next chunk of lines; `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ApiError> {
        let mut out = Vec::new();
        let tenant = self.data.tenant().clone();
        match std::mem::replace(&mut self.step, Step::Done) {
            Step::Header => {
                line(
                    "export",
                    json!({"format": FORMAT, "tenant": crate::routes::types::TenantView::from(tenant),
                        "exported_at": Utc::now(),
                        "embeddings": "face embeddings as base64 of little-endian f32 (SFace, 128 dimensions)"}),
                    &mut out,
                );
                self.step = Step::Keys(None);
            }
            Step::Keys(after) => {
                let keys = self.state.stores.control().list_keys(&tenant.id, after, PAGE).await?;
                self.count("key", keys.len());
                let next = (keys.len() as i64 == PAGE).then(|| keys.last().map(|k| k.id.clone())).flatten();
                for key in keys {
                    // Never a secret or its hash: they are not the tenant's data but credentials.
                    line("key", json!(crate::routes::types::KeyView::from(key)), &mut out);
                }
                self.step = if next.is_some() { Step::Keys(next) } else { Step::Consents(None) };
            }
            Step::Consents(after) => {
                let consents = self.data.list_consents(None, after, PAGE).await?;
                self.count("consent", consents.len());
                let next =
                    (consents.len() as i64 == PAGE).then(|| consents.last().map(|c| c.consent_id.clone())).flatten();
                for c in consents {
                    line("consent", json!(crate::routes::consents::ConsentView::from(c)), &mut out);
                }
                self.step = if next.is_some() { Step::Consents(next) } else { Step::Faces(None) };
            }
            Step::Faces(after) => {
                let faces = self.data.list_faces(after, PAGE).await?;
                self.count("face", faces.len());
                let next = (faces.len() as i64 == PAGE).then(|| faces.last().map(|f| f.token.to_string())).flatten();
                for f in faces {
                    let embedding: Vec<u8> = f.embedding.iter().flat_map(|x| x.to_le_bytes()).collect();
                    line(
                        "face",
                        json!({"face_token": f.token.to_string(), "image_id": f.image_id, "model": f.model,
                            "face_rectangle": {"top": f.rect.top, "left": f.rect.left, "width": f.rect.width,
                                "height": f.rect.height},
                            "score": f.score, "landmarks": f.landmarks, "quality": f.quality,
                            "user_id": f.user_id, "created_at": f.created_at, "expires_at": f.expires_at,
                            "consent_id": f.consent_id,
                            "embedding": base64::engine::general_purpose::STANDARD.encode(embedding)}),
                        &mut out,
                    );
                }
                self.step = if next.is_some() { Step::Faces(next) } else { Step::FaceSets(None) };
            }
            Step::FaceSets(after) => {
                let sets = self.data.list_facesets(after, 0, PAGE, Vec::new()).await?;
                self.count("faceset", sets.len());
                let next = (sets.len() as i64 == PAGE).then(|| sets.last().map(|s| s.token.clone())).flatten();
                for s in sets {
                    self.sets.push(s.token.clone());
                    line(
                        "faceset",
                        json!({"faceset_token": s.token.to_string(), "outer_id": s.outer_id,
                            "display_name": s.display_name, "tags": s.tags, "user_data": s.user_data,
                            "face_count": s.face_count, "created_at": s.created_at, "updated_at": s.updated_at}),
                        &mut out,
                    );
                }
                self.step = match next {
                    Some(next) => Step::FaceSets(Some(next)),
                    None => Step::Members { sets: std::mem::take(&mut self.sets), index: 0, after: None },
                };
            }
            Step::Members { sets, index, after } => {
                let Some(set) = sets.get(index).cloned() else {
                    self.step = Step::Audit(None);
                    return Ok(Some(out));
                };
                let members = match self.data.list_members(FaceSetRef::Token(set.clone()), after, 0, PAGE).await {
                    Ok((_, members)) => members,
                    // Deleted while the export ran: nothing left to export of it.
                    Err(faceplate_store::StoreError::NotFound(_)) => Vec::new(),
                    Err(e) => return Err(e.into()),
                };
                self.count("faceset_member", members.len());
                let next = (members.len() as i64 == PAGE).then(|| members.last().map(|m| m.key)).flatten();
                for m in members {
                    line(
                        "faceset_member",
                        json!({"faceset_token": set.to_string(), "face_token": m.face_token.to_string(),
                            "user_id": m.user_id, "added_at": m.added_at, "consent_id": m.consent_id}),
                        &mut out,
                    );
                }
                self.step = match next {
                    Some(key) => Step::Members { sets, index, after: Some(key) },
                    None => Step::Members { sets, index: index + 1, after: None },
                };
            }
            Step::Audit(after) => {
                let events = self.data.list_audit(after, PAGE).await?;
                self.count("audit_event", events.len());
                let next = (events.len() as i64 == PAGE).then(|| events.last().map(|e| e.id.clone())).flatten();
                for e in events {
                    line("audit_event", json!(crate::routes::audit::AuditEventView::from(e)), &mut out);
                }
                self.step = if next.is_some() { Step::Audit(next) } else { Step::Usage(None) };
            }
            Step::Usage(after) => {
                let (from, to) = (chrono::DateTime::UNIX_EPOCH, Utc::now() + Duration::days(1));
                let events = self.data.usage_events(from, to, after, PAGE).await?;
                self.count("usage_event", events.len());
                let next = (events.len() as i64 == PAGE).then(|| events.last().map(|e| e.id.clone())).flatten();
                for e in events {
                    line("usage_event", json!(e), &mut out);
                }
                self.step = if next.is_some() { Step::Usage(next) } else { Step::End };
            }
            Step::End => {
                line("end", json!({"counts": self.counts}), &mut out);
                self.step = Step::Done;
            }
            Step::Done => return Ok(None),
        }
        Ok(Some(out))
    }
}

/// Export everything the tenant holds (GDPR Art. 20): its account, keys (without secrets), faces with their
/// embeddings, FaceSets and their members, audit log and usage, as NDJSON (`application/x-ndjson`), streamed.
/// The last line is `{"kind": "end", "data": {"counts": {...}}}`.
#[utoipa::path(
    tag = "privacy",
    security(("api_key" = ["admin"])),
    responses((status = 200, description = "NDJSON, one `{kind, data}` record per line", content_type = "application/x-ndjson", body = String))
)]
#[get("/export")]
pub async fn export(caller: Caller<AdminScope>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let data = state.stores.tenant_data(&caller.tenant)?;
    data.record_audit(
        &caller.provenance(),
        "tenant.exported",
        Some(caller.tenant.id.as_str()),
        json!({"format": FORMAT}),
    )
    .await?;
    let export =
        Export { state: state.clone(), data, step: Step::Header, sets: Vec::new(), counts: Default::default() };
    let body = stream::unfold(Some(export), |export| async move {
        let mut export = export?;
        match export.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok::<_, actix_web::Error>(Bytes::from(chunk)), Some(export))),
            Ok(None) => None,
            Err(e) => {
                // The status is sent already: say what went wrong in the stream and stop (no "end" line).
                tracing::warn!(error = %e.message, "export cut short");
                let mut out = Vec::new();
                line("error", json!({"code": e.code.as_str(), "message": e.message}), &mut out);
                Some((Ok(Bytes::from(out)), None))
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header(("Content-Disposition", "attachment; filename=\"faceplate-export.ndjson\""))
        .streaming(body))
}
