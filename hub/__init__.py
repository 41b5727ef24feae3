"""Hub: the shell around the ledger — settings, HTTP, auth, CLI and embedded services."""
