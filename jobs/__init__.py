"""Follow-up work after a commit, run by arq workers; every job is idempotent."""
