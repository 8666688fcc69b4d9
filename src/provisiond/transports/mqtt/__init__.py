"""The MQTT provisioning listener (a dedicated endpoint, not a general broker)."""
