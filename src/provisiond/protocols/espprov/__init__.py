"""ESP-IDF unified provisioning (protocomm and wifi_provisioning), sans-IO."""
