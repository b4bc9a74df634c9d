"""The per-call policy chain and the per-cluster state it uses (load balancing, outlier detection,
circuit breaking, retries)."""
