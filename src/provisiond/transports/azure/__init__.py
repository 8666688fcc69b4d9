"""Azure Device Provisioning Service's device API: over MQTT (mqtt.py) and HTTPS (https.py),
with one TLS context (tls.py)."""
