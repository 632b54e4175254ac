"""Running rainlm as several processes on one machine: a local PostgreSQL, a round-robin front, and the launcher of a local cluster."""
