-- Legacy Projects had no Environments: the stage a Service ran as
-- (production, staging, …) was implicit. Imports that know it record it
-- here so the Project migration can place each Service in its own
-- Environment; NULL means "the Project's compute, no distinct stage".
ALTER TABLE services ADD COLUMN legacy_stage TEXT;
