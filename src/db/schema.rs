// The one schema both backends share; kept in step with migrations/{postgres,sqlite}.

diesel::table! {
    event_counters (partner_id) {
        partner_id -> Text,
        last_seq -> BigInt,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        partner_id -> Text,
        url -> Text,
        event_types -> Text,
        description -> Nullable<Text>,
        status -> Text,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_until -> Nullable<Timestamp>,
        failing_since -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        endpoint_id -> Text,
        event_id -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        lease_until -> Nullable<Timestamp>,
        claim_token -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Text,
        delivery_id -> Text,
        attempted_at -> Timestamp,
        status_code -> Nullable<Integer>,
        latency_ms -> Integer,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    events (id) {
        id -> Text,
        partner_id -> Text,
        seq -> BigInt,
        #[sql_name = "type"]
        event_type -> Text,
        data -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    partners (id) {
        id -> Text,
        name -> Text,
        status -> Text,
        scopes -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        token_generation -> Integer,
        rate_limit_per_second -> Nullable<Integer>,
        rate_limit_burst -> Nullable<Integer>,
        verify_subscriber_before_release -> Bool,
    }
}

diesel::table! {
    readiness_probe (id) {
        id -> Integer,
        checked_at -> Timestamp,
    }
}

diesel::table! {
    partner_credentials (client_id) {
        client_id -> Text,
        partner_id -> Text,
        secret_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        algorithm -> Text,
        private_key -> Text,
        public_key -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(partner_credentials -> partners (partner_id));

diesel::table! {
    plans (id) {
        id -> Text,
        code -> Text,
        name -> Text,
        description -> Text,
        fits_fm -> Bool,
        fits_esim -> Bool,
        period -> Text,
        validity_days -> Integer,
        data_bytes -> Nullable<BigInt>,
        voice_minutes -> Integer,
        sms -> Integer,
        region -> Nullable<Text>,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        name_zh -> Nullable<Text>,
        description_zh -> Nullable<Text>,
    }
}

diesel::table! {
    plan_countries (plan_id, country) {
        plan_id -> Text,
        country -> Text,
    }
}

diesel::table! {
    plan_prices (plan_id, currency) {
        plan_id -> Text,
        currency -> Text,
        amount -> BigInt,
    }
}

diesel::table! {
    catalog_version (id) {
        id -> Integer,
        version -> BigInt,
    }
}

diesel::table! {
    devices (model_key) {
        model_key -> Text,
        model -> Text,
        esim_supported -> Bool,
        note -> Nullable<Text>,
        created_at -> Timestamp,
        note_zh -> Nullable<Text>,
    }
}

diesel::table! {
    cards (iccid) {
        iccid -> Text,
        partner_id -> Text,
        card_type -> Text,
        msisdn -> Nullable<Text>,
        eid -> Nullable<Text>,
        suspended -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        profile_state -> Nullable<Text>,
        profile_state_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    terms (id) {
        id -> Text,
        iccid -> Text,
        plan_id -> Text,
        order_id -> Nullable<Text>,
        valid_from -> Timestamp,
        valid_until -> Timestamp,
        data_total_bytes -> Nullable<BigInt>,
        voice_total_minutes -> Integer,
        sms_total -> Integer,
        data_used_bytes -> BigInt,
        voice_used_minutes -> BigInt,
        sms_used -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    usage_records (id) {
        id -> Text,
        iccid -> Text,
        term_id -> Text,
        kind -> Text,
        quantity -> BigInt,
        charged -> BigInt,
        occurred_at -> Timestamp,
        received_at -> Timestamp,
    }
}

diesel::table! {
    wallet_balances (partner_id, currency) {
        partner_id -> Text,
        currency -> Text,
        available -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    ledger_entries (id) {
        id -> Text,
        partner_id -> Text,
        currency -> Text,
        kind -> Text,
        amount -> BigInt,
        balance_after -> BigInt,
        order_id -> Nullable<Text>,
        reference -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    orders (id) {
        id -> Text,
        partner_id -> Text,
        iccid -> Text,
        plan_id -> Text,
        status -> Text,
        amount -> BigInt,
        currency -> Text,
        payment_method -> Text,
        payment_status -> Text,
        receipt_number -> Nullable<Text>,
        client_reference -> Nullable<Text>,
        refunded_amount -> Nullable<BigInt>,
        refunded_at -> Nullable<Timestamp>,
        paid_at -> Nullable<Timestamp>,
        closed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        provider -> Nullable<Text>,
        provider_payment_id -> Nullable<Text>,
        next_action -> Nullable<Text>,
        provider_session_id -> Nullable<Text>,
        provider_attempt -> Integer,
        provider_closed_at -> Nullable<Timestamp>,
        payment_issue -> Nullable<Text>,
        start_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    refunds (id) {
        id -> Text,
        order_id -> Text,
        provider -> Text,
        provider_payment_id -> Text,
        provider_refund_id -> Nullable<Text>,
        amount -> BigInt,
        currency -> Text,
        status -> Text,
        origin -> Text,
        failure_reason -> Nullable<Text>,
        attempts -> Integer,
        key_attempt -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    payment_events (provider, event_id) {
        provider -> Text,
        event_id -> Text,
        order_id -> Nullable<Text>,
        kind -> Text,
        outcome -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    /// SQLite only: the receipt number counter (PostgreSQL has the `receipt_numbers`
    /// sequence instead).
    receipt_sequence (id) {
        id -> Integer,
        last -> BigInt,
    }
}

diesel::table! {
    idempotency_keys (partner_id, idempotency_key) {
        partner_id -> Text,
        idempotency_key -> Text,
        fingerprint -> Text,
        state -> Text,
        locked_until -> Timestamp,
        response_status -> Nullable<Integer>,
        response_location -> Nullable<Text>,
        response_body -> Nullable<Binary>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        resource_id -> Nullable<Text>,
        claim_token -> Nullable<Text>,
    }
}

diesel::table! {
    activations (order_id) {
        order_id -> Text,
        iccid -> Text,
        card_type -> Text,
        mode -> Text,
        status -> Text,
        smdp_address -> Nullable<Text>,
        matching_id -> Nullable<Text>,
        term_id -> Nullable<Text>,
        effective_from -> Nullable<Timestamp>,
        valid_until -> Nullable<Timestamp>,
        previous_valid_until -> Nullable<Timestamp>,
        confirmed_at -> Nullable<Timestamp>,
        failure_reason -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        verification_required -> Bool,
        verified_at -> Nullable<Timestamp>,
        verified_msisdn -> Nullable<Text>,
    }
}

diesel::table! {
    verification_codes (id) {
        id -> Text,
        order_id -> Text,
        msisdn -> Text,
        code_hash -> Text,
        provider -> Text,
        provider_message_id -> Nullable<Text>,
        status -> Text,
        checks -> Integer,
        sent_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    notification_settings (partner_id) {
        partner_id -> Text,
        data_thresholds_percent -> Text,
        expiry_days -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    wallet_alert_thresholds (partner_id, currency) {
        partner_id -> Text,
        currency -> Text,
        amount -> BigInt,
    }
}

diesel::table! {
    card_notices (term_id, kind, threshold) {
        term_id -> Text,
        kind -> Text,
        threshold -> Integer,
        told -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    profile_events (id) {
        id -> Text,
        iccid -> Text,
        matching_id -> Nullable<Text>,
        eid -> Nullable<Text>,
        state -> Text,
        occurred_at -> Timestamp,
        reason -> Nullable<Text>,
        order_id -> Nullable<Text>,
        received_at -> Timestamp,
    }
}

diesel::table! {
    subscriptions (id) {
        id -> Text,
        partner_id -> Text,
        iccid -> Text,
        plan_id -> Text,
        currency -> Text,
        renew_days_before_expiry -> Integer,
        ends_after_renewals -> Nullable<Integer>,
        status -> Text,
        covered_until -> Timestamp,
        next_renewal_at -> Nullable<Timestamp>,
        last_order_id -> Nullable<Text>,
        renewals -> Integer,
        failed_attempts -> Integer,
        last_failure -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(activations -> orders (order_id));
diesel::joinable!(subscriptions -> cards (iccid));
diesel::joinable!(card_notices -> terms (term_id));
diesel::joinable!(profile_events -> cards (iccid));
diesel::joinable!(refunds -> orders (order_id));
diesel::joinable!(orders -> cards (iccid));
diesel::joinable!(orders -> plans (plan_id));
diesel::joinable!(cards -> partners (partner_id));
diesel::joinable!(terms -> cards (iccid));
diesel::joinable!(terms -> plans (plan_id));
diesel::joinable!(usage_records -> terms (term_id));
diesel::joinable!(plan_countries -> plans (plan_id));
diesel::joinable!(plan_prices -> plans (plan_id));

diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
diesel::joinable!(webhook_deliveries -> events (event_id));

diesel::allow_tables_to_appear_in_same_query!(
    events,
    webhook_endpoints,
    webhook_deliveries,
    webhook_attempts,
    partners,
    partner_credentials,
    signing_keys,
    plans,
    plan_countries,
    plan_prices,
    catalog_version,
    devices,
    cards,
    terms,
    usage_records,
    wallet_balances,
    ledger_entries,
    refunds,
    orders,
    receipt_sequence,
    idempotency_keys,
    activations,
    payment_events,
    notification_settings,
    wallet_alert_thresholds,
    card_notices,
    profile_events,
    subscriptions,
    verification_codes,
);
