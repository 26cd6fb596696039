"""Data the agency maintains without changing code: ``catalogue.toml``, the e-services and
their permissions (read by scim.catalogue). A package so that the file ships in the wheel."""
