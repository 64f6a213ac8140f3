ALTER TABLE cards DROP COLUMN profile_state_at;
ALTER TABLE cards DROP COLUMN profile_state;
DROP TABLE profile_events;
DROP INDEX terms_by_end;
DROP TABLE card_notices;
DROP TABLE wallet_alert_thresholds;
DROP TABLE notification_settings;
