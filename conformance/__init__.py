"""RFC conformance of any SCIM server, checked with scim2-tester."""
