DROP TABLE usage_records;
DROP TABLE terms;
DROP TABLE cards;
