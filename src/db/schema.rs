// The one schema both backends share; kept in step with migrations/{postgres,sqlite}.

diesel::table! {
    partners (id) {
        id -> Text,
        name -> Text,
        status -> Text,
        scopes -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
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

diesel::allow_tables_to_appear_in_same_query!(partners, partner_credentials, signing_keys);
