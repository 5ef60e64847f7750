-- The reconciler remembers the last head it saw per service, so a missed
-- webhook is noticed without deploying the same commit twice.
ALTER TABLE services ADD COLUMN last_seen_head TEXT NOT NULL DEFAULT '';
