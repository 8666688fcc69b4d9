"""The CoAP device API: ThingsBoard's provisioning request over UDP (aiocoap)."""
