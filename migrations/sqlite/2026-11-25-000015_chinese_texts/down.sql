ALTER TABLE devices DROP COLUMN note_zh;
ALTER TABLE plans DROP COLUMN description_zh;
ALTER TABLE plans DROP COLUMN name_zh;
