DROP TABLE signing_keys;
DROP TABLE partner_credentials;
DROP TABLE partners;
