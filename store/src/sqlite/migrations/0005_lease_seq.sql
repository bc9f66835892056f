-- Which write last touched a lease: the `leases` generation of that write.
-- Nodes that share a store read only the rows written since they last
-- looked (LeaseStore::leases_since).
ALTER TABLE leases ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
