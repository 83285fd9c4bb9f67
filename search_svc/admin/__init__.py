"""Data safety of the search index: backups (Edge shard copies, Qdrant snapshots), model generations with an
atomic switch and rollback, and the admin-only gRPC IndexAdminService that exposes them."""
