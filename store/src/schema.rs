//! One diesel schema shared by both backends. The migrations in `migrations/{control,region}/{sqlite,postgres}`
//! create exactly these tables; a test replays them on both backends.

/// Control-plane tables: tenants, their plans and their API keys.
pub mod control {
    diesel::table! {
        tenants (id) {
            id -> Text,
            name -> Text,
            home_region -> Text,
            status -> Text,
            created_at -> BigInt,
            updated_at -> BigInt,
            plan_id -> Text,
            delete_after -> Nullable<BigInt>,
            processing_restricted_at -> Nullable<BigInt>,
            face_token_ttl_hours -> Nullable<Integer>,
            template_retention_days -> Nullable<Integer>,
            dpa_version -> Nullable<Text>,
            dpa_accepted_at -> Nullable<BigInt>,
            facepp_without_consent -> Text,
        }
    }

    diesel::table! {
        deletion_certificates (tenant_id) {
            tenant_id -> Text,
            tenant_name -> Text,
            home_region -> Text,
            requested_at -> BigInt,
            started_at -> BigInt,
            rows -> Text,
            purged_at -> Nullable<BigInt>,
            keys_destroyed -> Nullable<BigInt>,
            sha256 -> Nullable<Text>,
            seal -> Nullable<Text>,
        }
    }

    diesel::table! {
        plans (id) {
            id -> Text,
            name -> Text,
            tenant_qps -> Integer,
            tenant_concurrency -> Integer,
            key_qps -> Integer,
            key_concurrency -> Integer,
            created_at -> BigInt,
            updated_at -> BigInt,
            currency -> Text,
            base_fee_cents -> BigInt,
        }
    }

    diesel::table! {
        plan_products (plan_id, product) {
            plan_id -> Text,
            product -> Text,
            included_units -> BigInt,
            monthly_cap -> Nullable<BigInt>,
            unit_price_micros -> BigInt,
        }
    }

    diesel::table! {
        api_keys (id) {
            id -> Text,
            tenant_id -> Text,
            name -> Text,
            scopes -> Text,
            secret_hash -> Text,
            previous_secret_hash -> Nullable<Text>,
            previous_secret_expires_at -> Nullable<BigInt>,
            rate_limit_qps -> Nullable<Integer>,
            max_concurrency -> Nullable<Integer>,
            expires_at -> Nullable<BigInt>,
            revoked_at -> Nullable<BigInt>,
            last_used_at -> Nullable<BigInt>,
            created_at -> BigInt,
            rotated_at -> Nullable<BigInt>,
        }
    }

    diesel::table! {
        tenant_billing (tenant_id) {
            tenant_id -> Text,
            customer_id -> Text,
            subscription_id -> Nullable<Text>,
            subscription_status -> Nullable<Text>,
            invoice_status -> Nullable<Text>,
            status_at -> BigInt,
            created_at -> BigInt,
            updated_at -> BigInt,
        }
    }

    diesel::table! {
        tenant_keys (tenant_id, version) {
            tenant_id -> Text,
            version -> Integer,
            provider -> Text,
            wrapped_key -> Text,
            created_at -> BigInt,
        }
    }

    diesel::table! {
        legal_requests (id) {
            id -> Text,
            received_on -> BigInt,
            kind -> Text,
            jurisdiction -> Text,
            authority -> Text,
            accounts_affected -> BigInt,
            outcome -> Text,
            notes -> Nullable<Text>,
            created_at -> BigInt,
            updated_at -> BigInt,
        }
    }

    diesel::table! {
        audit_heads (tenant_id) {
            tenant_id -> Text,
            seq -> BigInt,
            hash -> Text,
            updated_at -> BigInt,
        }
    }

    diesel::table! {
        alert_endpoints (tenant_id) {
            tenant_id -> Text,
            url -> Text,
            secret -> Text,
            created_at -> BigInt,
            updated_at -> BigInt,
        }
    }

    diesel::table! {
        stripe_webhook_events (id) {
            id -> Text,
            #[sql_name = "type"]
            type_ -> Text,
            received_at -> BigInt,
        }
    }

    diesel::joinable!(api_keys -> tenants (tenant_id));
    diesel::joinable!(tenants -> plans (plan_id));
    diesel::joinable!(plan_products -> plans (plan_id));
    diesel::allow_tables_to_appear_in_same_query!(tenants, api_keys, plans, plan_products);
}

/// Region data-store tables: everything a tenant owns. Every table has `tenant_id`.
pub mod region {
    diesel::table! {
        audit_events (id) {
            id -> Text,
            tenant_id -> Text,
            occurred_at -> BigInt,
            actor -> Text,
            action -> Text,
            target -> Nullable<Text>,
            request_id -> Nullable<Text>,
            detail -> Text,
            seq -> Nullable<BigInt>,
            prev_hash -> Nullable<Text>,
            hash -> Nullable<Text>,
        }
    }

    diesel::table! {
        faces (token) {
            token -> Text,
            tenant_id -> Text,
            image_id -> Text,
            model -> Text,
            embedding -> Binary,
            rect_left -> Integer,
            rect_top -> Integer,
            rect_width -> Integer,
            rect_height -> Integer,
            score -> Double,
            landmarks -> Text,
            quality -> Text,
            created_at -> BigInt,
            expires_at -> Nullable<BigInt>,
            user_id -> Nullable<Text>,
            key_version -> Nullable<Integer>,
            consent_id -> Nullable<Text>,
        }
    }

    diesel::table! {
        facesets (token) {
            token -> Text,
            tenant_id -> Text,
            outer_id -> Nullable<Text>,
            display_name -> Text,
            tags -> Text,
            user_data -> Text,
            face_count -> BigInt,
            version -> BigInt,
            next_key -> BigInt,
            created_at -> BigInt,
            updated_at -> BigInt,
        }
    }

    diesel::table! {
        faceset_faces (faceset_token, face_token) {
            faceset_token -> Text,
            face_token -> Text,
            tenant_id -> Text,
            member_key -> BigInt,
            external_image_id -> Nullable<Text>,
            added_at -> BigInt,
            consent_id -> Nullable<Text>,
        }
    }

    diesel::table! {
        consents (id) {
            id -> Text,
            tenant_id -> Text,
            subject_ref -> Text,
            purposes -> Text,
            legal_basis -> Text,
            jurisdiction -> Text,
            collected_at -> BigInt,
            expires_at -> Nullable<BigInt>,
            evidence_sha256 -> Text,
            collected_by -> Text,
            created_at -> BigInt,
            revoked_at -> Nullable<BigInt>,
            receipt -> Nullable<Text>,
        }
    }

    diesel::table! {
        alert_outbox (id) {
            id -> Text,
            tenant_id -> Text,
            payload -> Text,
            created_at -> BigInt,
            attempts -> Integer,
            next_attempt_at -> BigInt,
            last_error -> Nullable<Text>,
        }
    }

    diesel::table! {
        restricted_subjects (tenant_id, subject_ref) {
            tenant_id -> Text,
            subject_ref -> Text,
            restricted_at -> BigInt,
        }
    }

    diesel::table! {
        faceset_removals (faceset_token, member_key) {
            faceset_token -> Text,
            member_key -> BigInt,
            tenant_id -> Text,
            version -> BigInt,
        }
    }

    diesel::table! {
        faceset_tasks (id) {
            id -> Text,
            tenant_id -> Text,
            faceset_token -> Text,
            kind -> Text,
            face_tokens -> Text,
            status -> Text,
            result -> Nullable<Text>,
            created_at -> BigInt,
            finished_at -> Nullable<BigInt>,
            consent_id -> Nullable<Text>,
        }
    }

    diesel::table! {
        usage_events (id) {
            id -> Text,
            tenant_id -> Text,
            dedup_key -> Text,
            request_id -> Text,
            idempotency_key -> Nullable<Text>,
            key_id -> Text,
            product -> Text,
            operation -> Text,
            units -> BigInt,
            status -> Integer,
            fingerprint -> Nullable<Text>,
            occurred_at -> BigInt,
        }
    }

    diesel::table! {
        usage_hourly (tenant_id, product, hour) {
            tenant_id -> Text,
            product -> Text,
            hour -> BigInt,
            units -> BigInt,
            calls -> BigInt,
        }
    }

    diesel::table! {
        billing_outbox (event_id) {
            event_id -> Text,
            tenant_id -> Text,
            product -> Text,
            units -> BigInt,
            occurred_at -> BigInt,
            attempts -> Integer,
            next_attempt_at -> BigInt,
            last_error -> Nullable<Text>,
        }
    }

    diesel::joinable!(faceset_faces -> facesets (faceset_token));
    diesel::joinable!(faceset_faces -> faces (face_token));
    diesel::allow_tables_to_appear_in_same_query!(
        audit_events,
        faces,
        facesets,
        faceset_faces,
        faceset_removals,
        faceset_tasks,
        usage_events,
        usage_hourly,
        billing_outbox,
        consents,
        restricted_subjects,
        alert_outbox
    );

    /// The primary-key columns of each of [`TENANT_TABLES`] (in the same order), for purging in batches.
    pub const TENANT_TABLE_KEYS: &[&str] = &[
        "id",
        "token",
        "token",
        "faceset_token, face_token",
        "faceset_token, member_key",
        "id",
        "id",
        "product, hour",
        "event_id",
        "id",
        "subject_ref",
        "id",
    ];

    /// Every region table, for whole-tenant operations (purge, residency scans).
    pub const TENANT_TABLES: &[&str] = &[
        "audit_events",
        "faces",
        "facesets",
        "faceset_faces",
        "faceset_removals",
        "faceset_tasks",
        "usage_events",
        "usage_hourly",
        "billing_outbox",
        "consents",
        "restricted_subjects",
        "alert_outbox",
    ];
}
