-- A running pipeline touches heartbeat_at every few seconds, so any replica
-- can tell a deployment whose worker died from one that is still running.
ALTER TABLE deployments ADD COLUMN heartbeat_at TIMESTAMPTZ;
