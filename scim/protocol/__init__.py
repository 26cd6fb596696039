"""The SCIM protocol rules that are independent of HTTP: filters, paging, projection, PATCH."""
