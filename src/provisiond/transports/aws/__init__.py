"""AWS IoT fleet provisioning over mutual TLS."""
