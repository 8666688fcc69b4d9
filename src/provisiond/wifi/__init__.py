"""ESP Wi-Fi provisioning: the host client (soft AP over HTTP) and a device emulator."""
