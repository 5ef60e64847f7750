-- A delivery keeps its verified, normalized event so processing (and a
-- replay) never needs the signature again.
ALTER TABLE deliveries ADD COLUMN normalized BLOB NOT NULL DEFAULT x'';
