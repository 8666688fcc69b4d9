"""The ESP provisioning messages, compiled by protoc from ../proto (scripts/protos)."""
