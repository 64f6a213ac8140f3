DROP TABLE verification_codes;
ALTER TABLE activations DROP COLUMN verified_msisdn;
ALTER TABLE activations DROP COLUMN verified_at;
ALTER TABLE activations DROP COLUMN verification_required;
ALTER TABLE partners DROP COLUMN verify_subscriber_before_release;
