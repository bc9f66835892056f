-- Which write last touched a lease: the `leases` generation of that write.
-- Nodes that share the database read only the rows written since they last
-- looked (LeaseStore::leases_since); the index keeps that read small.
ALTER TABLE leases ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX leases_seq ON leases (seq);
