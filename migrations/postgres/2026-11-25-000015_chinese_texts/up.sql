-- Simplified Chinese texts beside the English ones; `NULL`: the English text is shown.
ALTER TABLE plans ADD COLUMN name_zh TEXT;
ALTER TABLE plans ADD COLUMN description_zh TEXT;
ALTER TABLE devices ADD COLUMN note_zh TEXT;
