"""SCIM 2.0 provisioning server for e-service permissions."""
