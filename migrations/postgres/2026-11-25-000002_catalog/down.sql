DROP TABLE devices;
DROP TABLE catalog_version;
DROP TABLE plan_prices;
DROP TABLE plan_countries;
DROP TABLE plans;
