"""HTTP: the SCIM endpoints under the base path."""
