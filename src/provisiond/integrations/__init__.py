"""Adapters to the systems provisiond keeps in step: the MQTT broker, webhooks receivers."""
