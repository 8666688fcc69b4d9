"""The device API over HTTP: provisioning, token registration, claim button and windows."""
